//! Unit tests of the core against a mock platform.
//!
//! `mock` is the platform (scripted exits over `Vec` memory), `image` writes tiny Xen PV64 ELF
//! kernels, and [`World`] is the test bench: a hypervisor over the mock plus helpers to make a
//! hypercall, inject an exception and read or write guest memory at a virtual address (through
//! the core's own page walk).

use crate::testing::{image, mock};

mod builder;
mod cpu;
mod debugregs;
mod elf;
mod evtchn;
mod grant;
mod lifecycle;
mod memory;
mod mmu;
mod pointers;
mod privop;
mod ptwr;
mod smp;
mod store;
mod traps;

use std::sync::Arc;

use crate::abi::{shinfo, StartInfo};
use crate::domain::DomainConfig;
use crate::hv::{ControlError, SLICE_NS};
use crate::mm::memory::Pod;
use crate::mm::paging::{walk, Walk};
use crate::mm::{MachineMemory, Maddr, Mfn, PAGE_SIZE};
use crate::platform::{CpuState, Exit, Gate};

use crate::platform::Platform;
use crate::{DomId, Hypervisor};

use mock::{Mock, Step};

/// Machine memory of the mock (MiB).
const MACHINE_MIB: usize = 64;
/// Frames below this belong to the "platform".
const RESERVED: u64 = 16;
/// Time a scripted step takes (virtual ns).
const STEP_NS: u64 = 1_000;

/// Hypercall numbers used here.
mod nr {
    pub const SET_TRAP_TABLE: u64 = 0;
    pub const MMU_UPDATE: u64 = 1;
    pub const MULTICALL: u64 = 13;
    pub const UPDATE_VA_MAPPING: u64 = 14;
    pub const XEN_VERSION: u64 = 17;
    pub const CONSOLE_IO: u64 = 18;
    pub const IRET: u64 = 23;
    pub const VCPU_OP: u64 = 24;
    pub const MMUEXT_OP: u64 = 26;
    pub const SCHED_OP: u64 = 29;
    pub const EVENT_CHANNEL_OP: u64 = 32;
}

const EPERM: i64 = -1;
const EBUSY: i64 = -16;
const EFAULT: i64 = -14;
const EINVAL: i64 = -22;
const ENOSYS: i64 = -38;

/// A hypervisor over the mock, with helpers.
pub struct World {
    pub hv: Hypervisor<Mock>,
}

impl World {
    pub fn new() -> Self {
        Self::with_gate(Gate::Syscall)
    }

    pub fn with_gate(gate: Gate) -> Self {
        let mut hv = Hypervisor::new(Mock::new(MACHINE_MIB, gate), RESERVED).expect("hypervisor over the mock");
        hv.platform.xen_slots = Some(hv.xen.slots.to_vec());
        Self { hv }
    }

    /// A config for the default test kernel.
    pub fn config(name: &str) -> DomainConfig {
        DomainConfig::new(name, "test", Arc::from(image::kernel()))
    }

    pub fn try_create(&mut self, cfg: DomainConfig) -> Result<DomId, ControlError> {
        self.hv.create_domain(cfg)
    }

    pub fn create(&mut self, name: &str) -> DomId {
        self.try_create(Self::config(name)).expect("create_domain")
    }

    pub fn cpu(&self, d: DomId) -> CpuState {
        self.hv.doms.get(&d).unwrap_or_else(|| panic!("d{d} is gone")).vcpus[0].cpu
    }

    pub fn cpu_mut(&mut self, d: DomId) -> &mut CpuState {
        &mut self.hv.doms.get_mut(&d).unwrap_or_else(|| panic!("d{d} is gone")).vcpus[0].cpu
    }

    pub fn cr3(&self, d: DomId) -> u64 {
        self.cpu(d).cr3
    }

    /// The core's page walk of `va` in `d`'s current address space.
    pub fn walk(&mut self, d: DomId, va: u64) -> Option<Walk> {
        let l4 = Mfn(self.cr3(d) >> 12);
        walk(&MachineMemory::new(self.hv.platform.memory()), l4, va).ok()
    }

    pub fn maddr(&mut self, d: DomId, va: u64) -> Maddr {
        self.walk(d, va).unwrap_or_else(|| panic!("{va:#x} not mapped in d{d}")).maddr
    }

    pub fn mfn_of(&mut self, d: DomId, va: u64) -> Mfn {
        self.maddr(d, va).mfn()
    }

    /// Write guest memory as the guest would (the page must be mapped writable).
    pub fn write(&mut self, d: DomId, va: u64, data: &[u8]) {
        let cr3 = self.cr3(d);
        mock::poke(&mut self.hv.platform.mem, cr3, va, data);
    }

    pub fn read(&mut self, d: DomId, va: u64, len: usize) -> Vec<u8> {
        let cr3 = self.cr3(d);
        mock::peek(&self.hv.platform.mem, cr3, va, len)
    }

    pub fn write_pod<T: Pod>(&mut self, d: DomId, va: u64, v: &T) {
        self.write(d, va, v.as_bytes());
    }

    pub fn read_pod<T: Pod>(&mut self, d: DomId, va: u64) -> T {
        let mut v = T::zeroed();
        let b = self.read(d, va, core::mem::size_of::<T>());
        v.as_bytes_mut().copy_from_slice(&b);
        v
    }

    pub fn read_u64(&mut self, d: DomId, va: u64) -> u64 {
        self.read_pod(d, va)
    }

    pub fn mread_u64(&mut self, a: Maddr) -> u64 {
        let i = a.0 as usize;
        u64::from_le_bytes(self.hv.platform.mem[i..i + 8].try_into().unwrap())
    }

    pub fn mread_u8(&mut self, a: Maddr) -> u8 {
        self.hv.platform.mem[a.0 as usize]
    }

    pub fn start_info(&mut self, d: DomId) -> StartInfo {
        let va = self.hv.doms[&d].start_info_va;
        self.read_pod(d, va)
    }

    /// Machine address of `d`'s vcpu_info 0.
    pub fn vcpu_info(&self, d: DomId) -> Maddr {
        self.hv.doms[&d].vcpus[0].vcpu_info
    }

    pub fn shared_info(&self, d: DomId) -> Maddr {
        self.hv.doms[&d].shared_info.maddr()
    }

    /// A free, writable page of the bootstrap mapping (2 MiB above VIRT_BASE), `i` pages in.
    pub fn scratch(&self, d: DomId, i: u64) -> u64 {
        self.hv.doms[&d].virt_base + 0x20_0000 + i * PAGE_SIZE
    }

    /// Queue a scripted step for `d`.
    pub fn step(&mut self, d: DomId, f: impl FnOnce(&mut CpuState, &mut [u8]) -> Exit + 'static) {
        self.hv.platform.scripts.entry(d).or_default().push_back(Step { f: Box::new(f), ns: STEP_NS });
    }

    /// Queue a hypercall step for `d`.
    pub fn step_hypercall(&mut self, d: DomId, n: u64, args: [u64; 5]) {
        self.step(d, move |c, _| {
            c.rax = n;
            [c.rdi, c.rsi, c.rdx, c.r10, c.r8] = args;
            Exit::Gate
        });
    }

    /// Run until every live, unpaused domain has used up its script.
    pub fn run(&mut self) {
        for _ in 0..1000 {
            let pending = self.hv.doms.values().any(|dom| !dom.is_paused() && !self.hv.platform.script_empty(dom.id));
            if !pending {
                return;
            }
            let end = self.hv.now + SLICE_NS;
            self.hv.run_until(end);
        }
        panic!("scripts never drained");
    }

    /// Make one hypercall from `d` and return rax.
    pub fn hypercall(&mut self, d: DomId, n: u64, args: [u64; 5]) -> i64 {
        self.step_hypercall(d, n, args);
        self.run();
        self.cpu(d).rax as i64
    }

    /// Inject an exit (exception, soft int...) into `d` and run it.
    pub fn exit(&mut self, d: DomId, exit: Exit) {
        self.step(d, move |_, _| exit);
        self.run();
    }

    pub fn traces(&self) -> &[String] {
        &self.hv.platform.traces
    }

    /// The trace lines containing all of `needles`.
    pub fn trace_lines(&self, needles: &[&str]) -> Vec<String> {
        self.traces().iter().filter(|l| needles.iter().all(|n| l.contains(n))).cloned().collect()
    }

    #[track_caller]
    pub fn assert_trace(&self, needles: &[&str]) {
        assert!(!self.trace_lines(needles).is_empty(), "no trace line contains {needles:?}; trace:\n{}", self.traces().join("\n"));
    }

    /// console_io(write) of `s`, staged at scratch page 15.
    pub fn console_write(&mut self, d: DomId, s: &str) -> i64 {
        let buf = self.scratch(d, 15);
        self.write(d, buf, s.as_bytes());
        self.hypercall(d, nr::CONSOLE_IO, [0, s.len() as u64, buf, 0, 0])
    }

    /// sched_op(shutdown, reason).
    pub fn shutdown_call(&mut self, d: DomId, reason: u32) -> Option<i64> {
        let arg = self.scratch(d, 14);
        self.write_pod(d, arg, &reason);
        self.step_hypercall(d, nr::SCHED_OP, [2, arg, 0, 0, 0]);
        self.run();
        self.hv.doms.get(&d).map(|dom| dom.vcpus[0].cpu.rax as i64)
    }

    /// update_va_mapping(va, val, flags=invlpg).
    pub fn update_va_mapping(&mut self, d: DomId, va: u64, val: u64) -> i64 {
        self.hypercall(d, nr::UPDATE_VA_MAPPING, [va, val, 2, 0, 0])
    }

    /// mmu_update with `reqs` staged at scratch page 13.
    pub fn mmu_update(&mut self, d: DomId, reqs: &[(u64, u64)]) -> i64 {
        let list = self.scratch(d, 13);
        for (i, &(ptr, val)) in reqs.iter().enumerate() {
            self.write_pod(d, list + i as u64 * 16, &crate::abi::MmuUpdate { ptr, val });
        }
        self.hypercall(d, nr::MMU_UPDATE, [list, reqs.len() as u64, 0, 0x7FF0, 0])
    }

    /// One mmuext_op staged at scratch page 12.
    pub fn mmuext(&mut self, d: DomId, cmd: u32, arg1: u64) -> i64 {
        let list = self.scratch(d, 12);
        self.write_pod(d, list, &crate::abi::MmuextOp { cmd, _pad: 0, arg1, arg2: 0 });
        self.hypercall(d, nr::MMUEXT_OP, [list, 1, 0, 0x7FF0, 0])
    }

    /// set_trap_table with `(vector, flags, address)` entries staged at scratch page 11.
    pub fn set_traps(&mut self, d: DomId, entries: &[(u8, u8, u64)]) -> i64 {
        let base = self.scratch(d, 11);
        for (i, &(vector, flags, address)) in entries.iter().chain([(0, 0, 0)].iter()).enumerate() {
            let ti = crate::abi::TrapInfo { vector, flags, cs: crate::abi::FLAT_KERNEL_CS, _pad: 0, address };
            self.write_pod(d, base + i as u64 * 16, &ti);
        }
        self.hypercall(d, nr::SET_TRAP_TABLE, [base, 0, 0, 0, 0])
    }

    /// Upcall mask of `d`'s vCPU 0.
    pub fn upcall_mask(&mut self, d: DomId) -> u8 {
        let vi = self.vcpu_info(d);
        self.mread_u8(vi.add(shinfo::UPCALL_MASK))
    }

    /// Is `port` pending in `d`'s shared_info?
    pub fn port_pending(&mut self, d: DomId, port: u32) -> bool {
        let a = self.shared_info(d).add(shinfo::EVTCHN_PENDING + (port / 64) as u64 * 8);
        self.mread_u64(a) & (1 << (port % 64)) != 0
    }

    /// Machine address of the L1 entry mapping `va` in `d`.
    pub fn l1e(&mut self, d: DomId, va: u64) -> Maddr {
        self.walk(d, va).expect("mapped").l1e
    }
}

#[test]
fn world_makes_a_hypercall() {
    let mut w = World::new();
    let d = w.create("hello");
    assert_eq!(w.hypercall(d, nr::XEN_VERSION, [0, 0, 0, 0, 0]), (4 << 16) | 17);
    // The next run was entered with the result in rax.
    let last = w.hv.platform.runs.last().unwrap().entry;
    assert_eq!(last.rax, (4 << 16) | 17);
    w.assert_trace(&["d1v0 xen_version(version) = 0x40011"]);
    assert_eq!(w.console_write(d, "hi\n"), 0);
    assert_eq!(w.hv.record("hello").unwrap().console, vec!["hi".to_string()]);
}
