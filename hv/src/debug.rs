//! The core's state as text for a debugger attached to the platform (the simulator's gdb stub
//! answers `monitor domains` and `monitor evtchn` with it). Built only when the platform asks
//! ([`crate::platform::Platform::wants_core_view`]), before a vCPU runs: the core's state does not
//! change while a guest runs, so the view is exact at any stop inside that run.

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

use crate::domain::{DomState, VcpuState};
use crate::evtchn::{self, PortState};
use crate::hv::Hypervisor;
use crate::mm::MachineMemory;
use crate::platform::Platform;

/// What a debugger shows of the core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreView {
    /// Virtual time (ns) when the view was taken.
    pub now: u64,
    /// One line per domain, then one per vCPU.
    pub domains: String,
    /// One line per bound port of every domain.
    pub evtchn: String,
}

/// The view of `hv` now.
pub fn view<P: Platform>(hv: &mut Hypervisor<P>) -> CoreView {
    let mut domains = String::new();
    let mut ev = String::new();
    let now = hv.now;
    let mem = MachineMemory::new(hv.platform.memory());
    for d in hv.doms.values() {
        let state = match d.state {
            DomState::Running if d.pause_count > 0 => String::from("paused"),
            DomState::Running => String::from("running"),
            DomState::Shutdown(r) => format!("shutdown ({})", r.name()),
        };
        let _ = writeln!(
            domains,
            "d{} {:?} {state} pages={} vcpus={} shared_info=mfn {:#x} start_info={:#x}",
            d.id,
            d.config.name,
            d.nr_pages,
            d.vcpus.len(),
            d.shared_info.0,
            d.start_info_va
        );
        for v in &d.vcpus {
            let st = match v.state {
                VcpuState::Down => "down",
                VcpuState::Runnable => "runnable",
                VcpuState::Blocked if v.poll.is_some() => "polling",
                VcpuState::Blocked => "blocked",
            };
            let timer = v.timer.map(|t| format!(" timer@{t}")).unwrap_or_default();
            let _ = writeln!(
                domains,
                "  d{}v{} {st} {} rip={:#x} rsp={:#x} cr3=maddr {:#x} upcall_pending={} mask={}{timer}",
                d.id,
                v.id,
                if v.kernel_mode { "kernel" } else { "user" },
                v.cpu.rip,
                v.cpu.rsp,
                v.cpu.cr3,
                mem.read_u8(v.vcpu_info.add(crate::abi::shinfo::UPCALL_PENDING)).unwrap_or(0),
                mem.read_u8(v.vcpu_info.add(crate::abi::shinfo::UPCALL_MASK)).unwrap_or(0),
            );
        }
        for (port, p) in d.evtchn.ports.iter().enumerate() {
            if !p.state.usable() {
                continue;
            }
            let what = match p.state {
                PortState::Unbound { remote } => format!("unbound remote=d{remote}"),
                PortState::Interdomain { remote, remote_port } => format!("interdomain d{remote}:{remote_port}"),
                PortState::Virq { virq, vcpu } => format!("virq {virq} vcpu {vcpu}"),
                PortState::Ipi => String::from("ipi"),
                PortState::Backend(b) => format!("backend {b:?}").to_lowercase(),
                PortState::Free | PortState::Reserved => continue,
            };
            let pending = evtchn::is_pending(&mem, d.shared_info, port as u32);
            let _ = writeln!(ev, "d{} port {port}: {what} notify=v{} pending={}", d.id, p.vcpu, pending as u8);
        }
    }
    CoreView { now, domains, evtchn: ev }
}
