//! The hypervisor: machine-wide state, the domain lifecycle (create, pause, unpause, shutdown,
//! reboot, destroy), and the loop: pick a vCPU → run it for a budget → handle the exit → repeat.
//! The loop is the same on every platform; only `Platform::run` and memory differ.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::abi::{self, shinfo, vector, ShutdownReason, XEN_L4_FIRST, XEN_L4_LAST};
use crate::builder::{self, BuildEnv, BuildError};
use crate::domain::*;
use crate::evtchn;
use crate::hypercall::{self, Ctx, Effects};
use crate::mm::frames::{FrameTable, Owner};
use crate::mm::pagetable::{PtCtx, XenSlots};
use crate::mm::paging::*;
use crate::mm::{MachineMemory, Mfn, PAGE_SIZE};
use crate::platform::{Exit, Platform};
use crate::sched::{credit, Credit, UnitId};
use crate::traps;
use crate::DomId;

mod smp;
pub use smp::{SmpEntry, SmpStep};

/// With several pCPUs, the longest stretch of virtual time one pCPU runs before the pCPU that is
/// furthest behind gets its turn (ns): it bounds how far their clocks drift apart.
pub const SLICE_NS: u64 = 1_000_000;

/// Machine-wide hypervisor mappings shared by every guest address space.
pub struct XenState {
    /// L4 entries for slots 256..=271.
    pub slots: XenSlots,
    /// L3 tables behind those slots.
    pub l3: [Mfn; XEN_L4_LAST - XEN_L4_FIRST + 1],
    /// First frame of the machine-to-phys table.
    pub m2p: Mfn,
    pub m2p_frames: u64,
    /// The CPUID policy offers FSGSBASE (the platform can give it as Xen does).
    pub fsgsbase: bool,
}

/// What became of a domain, by name, for reports and expectations.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RecordState {
    Running,
    Paused,
    /// Shut down and preserved.
    Shutdown(ShutdownReason),
    Destroyed,
}

/// A domain's history, kept after it is destroyed.
#[derive(Clone, Debug)]
pub struct Record {
    pub name: String,
    pub id: DomId,
    pub state: RecordState,
    pub shutdowns: Vec<ShutdownReason>,
    pub console: Vec<String>,
    /// Why the hypervisor crashed it, if it did.
    pub crash_reason: Option<String>,
    /// CPU time its vCPUs consumed (virtual ns).
    pub cpu_ns: u64,
}

/// Why a control operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    NoSuchDomain(String),
    Build(BuildError),
    NotPaused(String),
    Platform(&'static str),
    /// A bad scheduler parameter (`sched-credit`): what was wrong.
    Invalid(String),
}

impl core::fmt::Display for ControlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSuchDomain(n) => write!(f, "no domain named {n:?}"),
            Self::Build(e) => write!(f, "{e}"),
            Self::NotPaused(n) => write!(f, "domain {n:?} is not paused"),
            Self::Platform(e) => write!(f, "platform: {e}"),
            Self::Invalid(e) => write!(f, "{e}"),
        }
    }
}

/// The hypervisor over one platform.
pub struct Hypervisor<P: Platform> {
    pub platform: P,
    pub frames: FrameTable,
    pub doms: BTreeMap<DomId, Domain>,
    pub xen: XenState,
    /// Virtual time in ns.
    pub now: u64,
    pub tracing: bool,
    pub records: BTreeMap<String, Record>,
    next_domid: DomId,
    /// The credit scheduler and the pCPUs' clocks (see `run_until`).
    pub sched: Credit,
    /// The last handled exit was a yield.
    yielded: bool,
    /// The vCPU whose runstate is `running` (vcpu.rs context_switch).
    pub(crate) on_cpu: Option<(DomId, u32)>,
    /// Several real CPUs (`smp_enter`): per pCPU, the unit it last entered, the clock then and
    /// the guest time it has run since, so credit burns guest time (`smp_charge`).
    smp_runs: Vec<Option<(UnitId, u64, u64)>>,
    /// Hypercalls handled (for benches and reports).
    pub hypercalls: u64,
    pub exits: u64,
    /// xenstore (`store/`): the tree, each domain's connection, pending shutdown requests.
    pub store: crate::store::Store,
}

impl<P: Platform> Hypervisor<P> {
    /// Take over the platform's machine memory. Frames below `reserved` belong to the platform.
    pub fn new(mut platform: P, reserved: u64) -> Result<Self, &'static str> {
        let nframes = platform.memory().len() as u64 / PAGE_SIZE;
        if nframes <= reserved + 64 {
            return Err("machine memory too small");
        }
        let mut frames = FrameTable::new(nframes, reserved);
        let m2p_frames = (nframes * 8).div_ceil(PAGE_SIZE);
        let m2p = frames.alloc_contig(m2p_frames, Owner::Xen).ok_or("no room for the M2P")?;
        let mut l3 = [Mfn(0); XEN_L4_LAST - XEN_L4_FIRST + 1];
        let mut slots = [0u64; XEN_L4_LAST - XEN_L4_FIRST + 1];
        {
            let mut mem = MachineMemory::new(platform.memory());
            for m in 0..m2p_frames {
                let f = Mfn(m2p.0 + m);
                mem.slice_mut(f.maddr(), PAGE_SIZE as usize).ok_or("M2P")?.fill(0xff);
            }
            for i in 0..l3.len() {
                let t = frames.alloc_contig(1, Owner::Xen).ok_or("no room for Xen tables")?;
                mem.zero_frame(t).ok_or("xen l3")?;
                l3[i] = t;
                slots[i] = t.maddr().0 | PTE_P | PTE_RW | PTE_US | PTE_A;
            }
        }
        let fsgsbase = platform.fsgsbase();
        let mut hv = Self {
            platform,
            frames,
            doms: BTreeMap::new(),
            xen: XenState { slots, l3, m2p, m2p_frames, fsgsbase },
            now: 0,
            tracing: true,
            records: BTreeMap::new(),
            next_domid: 1,
            sched: Credit::new(1),
            yielded: false,
            on_cpu: None,
            smp_runs: Vec::new(),
            hypercalls: 0,
            exits: 0,
            store: crate::store::Store::new(),
        };
        // The read-only M2P, visible to guests at RO_MPT_VIRT_START.
        for m in 0..m2p_frames {
            hv.map_xen_page(abi::RO_MPT_VIRT_START + m * PAGE_SIZE, Mfn(m2p.0 + m), PTE_US | PTE_NX)?;
        }
        Ok(hv)
    }

    /// The machine address of the entry for `va` in the hypervisor's table of `level` (1 or 2),
    /// creating the intermediate tables below the slot's L3 as needed.
    fn xen_entry(&mut self, va: u64, level: u8) -> Result<crate::mm::Maddr, &'static str> {
        if !in_xen_range(va) {
            return Err("not a hypervisor address");
        }
        let mut table = self.xen.l3[table_index(va, 4) - XEN_L4_FIRST];
        let mut mem = MachineMemory::new(self.platform.memory());
        for l in (level + 1..=3).rev() {
            let ea = table.maddr().add(table_index(va, l) as u64 * 8);
            let e = mem.read_u64(ea).ok_or("xen table")?;
            table = if e & PTE_P != 0 {
                pte_mfn(e)
            } else {
                let t = self.frames.alloc_contig(1, Owner::Xen).ok_or("out of memory for Xen tables")?;
                mem.zero_frame(t).ok_or("xen table")?;
                mem.write_u64(ea, t.maddr().0 | PTE_P | PTE_RW | PTE_US | PTE_A).ok_or("xen table")?;
                t
            };
        }
        Ok(table.maddr().add(table_index(va, level) as u64 * 8))
    }

    /// Map a hypervisor page at `va` (inside the reserved range) in every guest address space.
    /// `flags` beyond present are the caller's (RW, US, NX).
    pub fn map_xen_page(&mut self, va: u64, mfn: Mfn, flags: u64) -> Result<(), &'static str> {
        let ea = self.xen_entry(va, 1)?;
        MachineMemory::new(self.platform.memory()).write_u64(ea, mfn.maddr().0 | PTE_P | PTE_A | PTE_D | flags).ok_or("xen table")
    }

    /// Map 2 MiB of machine memory at `maddr` as one superpage at `va` (hypervisor range, both
    /// 2 MiB aligned), supervisor-only. The bare-metal layer maps its direct map this way.
    pub fn map_xen_superpage(&mut self, va: u64, maddr: u64, flags: u64) -> Result<(), &'static str> {
        if va & 0x1f_ffff != 0 || maddr & 0x1f_ffff != 0 {
            return Err("bad superpage");
        }
        let ea = self.xen_entry(va, 2)?;
        MachineMemory::new(self.platform.memory()).write_u64(ea, maddr | PTE_P | PTE_PS | PTE_A | PTE_D | flags).ok_or("xen table")
    }

    /// Emit one trace line.
    pub fn trace(&mut self, line: &str) {
        if self.tracing {
            self.platform.trace(line);
        }
    }

    fn trace_with(&mut self, f: impl FnOnce() -> String) {
        if self.tracing {
            let l = f();
            self.platform.trace(&l);
        }
    }

    /// Create and start a domain (`xl create`).
    pub fn create_domain(&mut self, config: DomainConfig) -> Result<DomId, ControlError> {
        let id = self.next_domid;
        self.next_domid += 1;
        self.build_domain(id, config, 0)?;
        Ok(id)
    }

    fn build_domain(&mut self, id: DomId, config: DomainConfig, generation: u32) -> Result<(), ControlError> {
        self.trace_with(|| {
            alloc::format!(
                "d{id} create name={} kernel={} memory={}MiB vcpus={}",
                config.name,
                config.kernel_name,
                config.memory_mib,
                config.vcpus
            )
        });
        let gate = self.platform.gate();
        let now = self.now;
        let dom = {
            let mut mem = MachineMemory::new(self.platform.memory());
            let mut env = BuildEnv { frames: &mut self.frames, mem: &mut mem, xen_slots: &self.xen.slots, m2p: self.xen.m2p, gate, now };
            builder::build(&mut env, id, &config, generation)
        };
        let dom = match dom {
            Ok(d) => d,
            Err(e) => {
                // Give back whatever the failed build took.
                self.frames.free_domain(id);
                self.trace_with(|| alloc::format!("d{id} create failed: {e}"));
                return Err(ControlError::Build(e));
            }
        };
        let first = dom.p2m.first().copied().unwrap_or(Mfn(0));
        self.platform.code_changed(first.maddr().0, dom.nr_pages * PAGE_SIZE);
        for v in &dom.vcpus {
            if let Err(e) = self.platform.vcpu_create(v.key) {
                self.frames.free_domain(id);
                return Err(ControlError::Platform(e));
            }
        }
        let rec = self.records.entry(config.name.clone()).or_insert_with(|| Record {
            name: config.name.clone(),
            id,
            state: RecordState::Running,
            shutdowns: Vec::new(),
            console: Vec::new(),
            crash_reason: None,
            cpu_ns: 0,
        });
        rec.state = RecordState::Running;
        rec.id = id;
        self.sched.add_domain(id, dom.vcpus.len() as u32, dom.config.weight, dom.config.cap);
        self.doms.insert(id, dom);
        self.store_introduce(id);
        Ok(())
    }

    /// Find a live domain by name.
    pub fn domid(&self, name: &str) -> Option<DomId> {
        self.doms.values().find(|d| d.config.name == name).map(|d| d.id)
    }

    fn by_name(&self, name: &str) -> Result<DomId, ControlError> {
        self.domid(name).ok_or_else(|| ControlError::NoSuchDomain(name.into()))
    }

    /// `xl pause`.
    pub fn pause(&mut self, name: &str) -> Result<(), ControlError> {
        let id = self.by_name(name)?;
        if let Some(d) = self.doms.get_mut(&id) {
            d.pause_count += 1;
        }
        if let Some(r) = self.records.get_mut(name) {
            r.state = RecordState::Paused;
        }
        self.trace_with(|| alloc::format!("d{id} pause"));
        Ok(())
    }

    /// `xl unpause`.
    pub fn unpause(&mut self, name: &str) -> Result<(), ControlError> {
        let id = self.by_name(name)?;
        let d = self.doms.get_mut(&id).ok_or_else(|| ControlError::NoSuchDomain(name.into()))?;
        if d.pause_count == 0 {
            return Err(ControlError::NotPaused(name.into()));
        }
        d.pause_count -= 1;
        let still = d.pause_count > 0;
        if !still {
            // domain_unpause wakes every vCPU (credit.c: csched_unit_wake).
            for v in 0..d.vcpus.len() as u32 {
                self.sched.wake((id, v));
            }
        }
        if let (Some(r), false) = (self.records.get_mut(name), still) {
            if r.state == RecordState::Paused {
                r.state = RecordState::Running;
            }
        }
        self.trace_with(|| alloc::format!("d{id} unpause"));
        Ok(())
    }

    /// `xl shutdown` / `xl reboot`: the toolstack's request, through xenstore's
    /// control/shutdown as xl does (`store::tool`, with xenolith's fallback for a guest that
    /// ignores it).
    pub fn shutdown(&mut self, name: &str, reason: ShutdownReason) -> Result<(), ControlError> {
        let id = self.by_name(name)?;
        self.trace_with(|| alloc::format!("d{id} {} requested", if reason == ShutdownReason::Reboot { "reboot" } else { "shutdown" }));
        self.request_shutdown(id, reason);
        Ok(())
    }

    /// `xl destroy`.
    pub fn destroy(&mut self, name: &str) -> Result<(), ControlError> {
        let id = self.by_name(name)?;
        self.destroy_domain(id);
        Ok(())
    }

    /// A domain shut down (by itself, by request, or crashed): apply its on_* action.
    pub fn domain_shutdown(&mut self, id: DomId, reason: ShutdownReason) {
        let Some(d) = self.doms.get_mut(&id) else { return };
        d.last_shutdown = Some(reason);
        let action = match reason {
            ShutdownReason::Poweroff => d.config.on_poweroff,
            ShutdownReason::Reboot => d.config.on_reboot,
            ShutdownReason::Crash | ShutdownReason::Watchdog => d.config.on_crash,
            ShutdownReason::Suspend => Action::Preserve,
        };
        let name = d.config.name.clone();
        self.flush_console(id);
        if let Some(r) = self.records.get_mut(&name) {
            r.shutdowns.push(reason);
        }
        self.trace_with(|| alloc::format!("d{id} shutdown {} -> {}", reason.name(), action.name()));
        match action {
            Action::Preserve => {
                if let Some(d) = self.doms.get_mut(&id) {
                    d.state = DomState::Shutdown(reason);
                }
                if let Some(r) = self.records.get_mut(&name) {
                    r.state = RecordState::Shutdown(reason);
                }
            }
            a if a.restarts() => {
                let Some(d) = self.doms.get(&id) else { return };
                let (config, generation) = (d.config.clone(), d.generation + 1);
                self.teardown(id);
                if self.build_domain(id, config, generation).is_err() {
                    if let Some(r) = self.records.get_mut(&name) {
                        r.state = RecordState::Destroyed;
                    }
                }
            }
            _ => self.destroy_domain(id),
        }
    }

    /// Crash a domain (a fault with no handler, a bad iret...).
    pub fn crash_domain(&mut self, id: DomId, why: &str) {
        self.trace_with(|| alloc::format!("d{id} crash: {why}"));
        if let Some(d) = self.doms.get(&id) {
            let name = d.config.name.clone();
            if let Some(r) = self.records.get_mut(&name) {
                r.crash_reason = Some(why.into());
            }
        }
        self.domain_shutdown(id, ShutdownReason::Crash);
    }

    fn teardown(&mut self, id: DomId) {
        self.store_release(id);
        if self.doms.contains_key(&id) {
            let mut mem = MachineMemory::new(self.platform.memory());
            crate::hypercall::grant::release_domain(&mut self.doms, &mut self.frames, &mut mem, id);
        }
        let Some(d) = self.doms.remove(&id) else { return };
        hypercall::unbind_peers(&mut self.doms, id);
        for v in &d.vcpus {
            self.platform.vcpu_destroy(v.key);
        }
        let mut mem = MachineMemory::new(self.platform.memory());
        for m in self.frames.domain_frames(id) {
            mem.write_u64(self.xen.m2p.maddr().add(m.0 * 8), !0);
        }
        self.frames.free_domain(id);
        self.sched.remove_domain(id);
        if self.on_cpu.is_some_and(|(d, _)| d == id) {
            self.on_cpu = None;
        }
    }

    fn destroy_domain(&mut self, id: DomId) {
        let Some(d) = self.doms.get(&id) else { return };
        let name = d.config.name.clone();
        self.flush_console(id);
        self.teardown(id);
        if let Some(r) = self.records.get_mut(&name) {
            r.state = RecordState::Destroyed;
        }
        self.trace_with(|| alloc::format!("d{id} destroy"));
    }

    /// Move completed console lines of a domain into its record.
    fn flush_console(&mut self, id: DomId) {
        if let Some(d) = self.doms.get_mut(&id) {
            if let Some(r) = self.records.get_mut(&d.config.name) {
                r.console.append(&mut d.console.lines);
            } else {
                d.console.lines.clear();
            }
        }
    }

    /// Any domain still alive and not shut down?
    pub fn any_running(&self) -> bool {
        self.doms.values().any(|d| d.state == DomState::Running)
    }

    /// Use `n` physical CPUs (1 by default). Call before creating domains: it starts a fresh
    /// scheduler.
    pub fn set_pcpus(&mut self, n: usize) {
        self.sched = Credit::new(n);
    }

    /// `xl sched-credit -d NAME [-w WEIGHT] [-c CAP]`: set a running domain's weight and cap at
    /// once (effective at the next accounting, within one 30 ms timeslice). Limits are libxl's
    /// (libxl_sched.c: sched_credit_domain_set): weight 1..=65535, cap 0..=100 × vCPUs.
    /// Returns the values now in force.
    pub fn sched_credit(&mut self, name: &str, weight: Option<u16>, cap: Option<u16>) -> Result<(u16, u16), ControlError> {
        let id = self.by_name(name)?;
        let d = self.doms.get_mut(&id).ok_or_else(|| ControlError::NoSuchDomain(name.into()))?;
        if weight == Some(0) {
            return Err(ControlError::Invalid("weight 0 is out of range 1..=65535".into()));
        }
        let max_cap = 100 * d.vcpus.len() as u32;
        if let Some(c) = cap.filter(|&c| u32::from(c) > max_cap) {
            return Err(ControlError::Invalid(alloc::format!("cap {c} is out of range 0..={max_cap} for {} vcpus", d.vcpus.len())));
        }
        if let Some(w) = weight {
            d.config.weight = w;
        }
        if let Some(c) = cap {
            d.config.cap = c;
        }
        let (w, c) = (d.config.weight, d.config.cap);
        self.sched.set_params(id, w, c);
        self.trace_with(|| alloc::format!("d{id} sched-credit weight={w} cap={c}"));
        Ok((w, c))
    }

    /// Console input (`xl console`, xenconsoled's tty side): put as many of `bytes` as the
    /// domain's console ring `in` buffer has room for, notify its console event channel and wake
    /// the vCPU that waits on it. Returns how many bytes were taken (the rest is the caller's to
    /// offer again, as xenconsoled leaves unread bytes in the pty). Called between runs, so the
    /// input lands at `self.now` on the virtual clock: the same input at the same virtual times
    /// gives the same run. Traced as `dN console input "..." (K bytes)`.
    pub fn console_input(&mut self, name: &str, bytes: &[u8]) -> Result<usize, ControlError> {
        let id = self.by_name(name)?;
        let Some(d) = self.doms.get(&id) else { return Err(ControlError::NoSuchDomain(name.into())) };
        if d.state != DomState::Running || bytes.is_empty() {
            return Ok(0);
        }
        let (n, woke) = hypercall::fill_console_input(&mut MachineMemory::new(self.platform.memory()), d, bytes);
        if n > 0 {
            self.trace_with(|| {
                let shown = String::from_utf8_lossy(&bytes[..n.min(64)]).into_owned();
                let more = if n > 64 { "…" } else { "" };
                alloc::format!("d{id} console input {shown:?}{more} ({n} bytes)")
            });
        }
        for v in woke {
            if let Some(vcpu) = self.doms.get_mut(&id).and_then(|d| d.vcpus.get_mut(v as usize)) {
                if unblock(vcpu) {
                    self.sched.wake((id, v));
                }
            }
        }
        Ok(n)
    }

    /// A domain's credit parameters (`xl sched-credit -d NAME`): (weight, cap).
    pub fn sched_credit_get(&self, name: &str) -> Result<(u16, u16), ControlError> {
        let id = self.by_name(name)?;
        let d = &self.doms[&id];
        Ok((d.config.weight, d.config.cap))
    }

    fn next_timer(&self) -> Option<u64> {
        self.doms
            .values()
            .filter(|d| d.state == DomState::Running)
            .flat_map(|d| {
                d.vcpus.iter().flat_map(|v| [v.timer, v.poll.and_then(|p| p.deadline), crate::vcpu::periodic_deadline(v)]).flatten()
            })
            .chain(self.store.next_deadline())
            .min()
    }

    /// Fire due singleshot timers (each vCPU's VIRQ_TIMER), time out polls, and wake blocked
    /// vCPUs with pending events.
    fn fire_timers(&mut self) {
        let now = self.now;
        let mut mem = MachineMemory::new(self.platform.memory());
        let sched = &mut self.sched;
        for d in self.doms.values_mut() {
            let mut wake = Vec::new();
            for vi in 0..d.vcpus.len() {
                let v = &mut d.vcpus[vi];
                let single = v.timer.is_some_and(|t| t <= now);
                if single {
                    v.timer = None;
                }
                if crate::vcpu::periodic_tick(v, now) || single {
                    if let Some(p) = d.evtchn.virq_port(abi::hypercall::virq::TIMER, vi as u32) {
                        wake.extend(evtchn::raise(&mut mem, d, p));
                    }
                }
                let v = &mut d.vcpus[vi];
                if v.poll.is_some_and(|p| p.deadline.is_some_and(|t| t <= now)) {
                    wake.push(v.id);
                }
                // A blocked (not polling) vCPU wakes on any pending upcall.
                if v.state == VcpuState::Blocked && v.poll.is_none() && evtchn::upcall_pending(&mem, v.vcpu_info) {
                    wake.push(v.id);
                }
            }
            for w in wake {
                if let Some(v) = d.vcpus.get_mut(w as usize) {
                    if unblock(v) {
                        sched.wake((d.id, w));
                    }
                }
            }
        }
    }

    /// Run the machine until virtual time `end` (or until nothing can ever run again).
    ///
    /// Each pCPU has its own clock. The loop always advances the pCPU whose clock is furthest
    /// behind (the lowest-numbered one on a tie), by one stretch: up to its next exit, timer,
    /// scheduler tick, accounting, the end of its timeslice, or — with several pCPUs — at most
    /// [`SLICE_NS`]. So the interleaving of several pCPUs depends on virtual time only, and runs
    /// are deterministic. `self.now` is the clock of the pCPU being advanced.
    pub fn run_until(&mut self, end: u64) {
        let sync = if self.sched.pcpus.len() > 1 { SLICE_NS } else { u64::MAX };
        loop {
            let p = self.sched.next_pcpu();
            let t = self.sched.pcpus[p].now;
            if t >= end {
                break;
            }
            self.now = t;
            self.sched_account(p, t);
            self.fire_timers();
            self.store_deadlines();
            let doms = &self.doms;
            let runnable = |u: UnitId| vcpu_runnable(doms, u);
            if self.sched.must_decide(p, runnable) {
                self.sched.schedule(p, runnable);
            }
            let mut limit = end.min(self.sched.next_acct).min(t.saturating_add(sync));
            if let Some(n) = self.next_timer().filter(|&n| n > t) {
                limit = limit.min(n);
            }
            let pc = &self.sched.pcpus[p];
            match pc.curr {
                Some(u) if self.sched.ready_at(u) <= t => {
                    let limit = limit.min(pc.slice_end).min(pc.next_tick).max(t + 1);
                    self.yielded = false;
                    if !self.run_once(u.0, u.1, limit - t) {
                        self.sched.pcpus[p].resched = true;
                        if self.yielded {
                            self.sched.yield_(p);
                        }
                    }
                }
                // Just stopped on a pCPU whose clock is ahead: start it when it stopped there.
                Some(u) => {
                    let until = self.sched.ready_at(u).min(limit).max(t + 1);
                    self.now = t + self.platform.idle(until - t).max(1);
                }
                None => {
                    let until = self.sched.idle_until(p, limit);
                    self.now = t + self.platform.idle(until - t).max(1);
                }
            }
            self.sched.pcpus[p].now = self.now.max(t + 1);
        }
        self.now = self.sched.pcpus.iter().map(|p| p.now).max().unwrap_or(end).max(self.now);
    }

    /// Scheduler time keeping on pCPU `p` at its clock `t`: the 30 ms accounting and the pCPU's
    /// 10 ms tick (credit.c: csched_acct, csched_tick).
    fn sched_account(&mut self, p: usize, t: u64) {
        if t >= self.sched.next_acct {
            for d in self.doms.values() {
                self.sched.set_params(d.id, d.config.weight, d.config.cap);
            }
            self.sched.acct();
            while self.sched.next_acct <= t {
                self.sched.next_acct += credit::TSLICE_NS;
            }
        }
        let pc = &self.sched.pcpus[p];
        if pc.curr.is_some() && t >= pc.next_tick {
            self.sched.tick(p, t);
            let pc = &mut self.sched.pcpus[p];
            while pc.next_tick <= t {
                pc.next_tick += credit::TICK_NS;
            }
        }
    }

    /// Run one vCPU until its next exit; handle the exit. Returns false when the vCPU should
    /// give up the CPU (yield, block, shutdown).
    fn run_once(&mut self, id: DomId, vi: u32, budget: u64) -> bool {
        let Some(key) = self.prepare_entry(id, vi) else { return false };
        let v = vi as usize;
        let Some(vc) = self.doms.get_mut(&id).and_then(|d| d.vcpus.get_mut(v)) else { return false };
        let (exit, ran) = self.platform.run(key, &mut vc.cpu, budget);
        self.now += ran;
        self.handle_vcpu_exit(id, v, exit, ran)
    }

    /// Everything before vCPU `vi` of `id` enters its guest (one CPU's loop and each CPU of the
    /// image's SMP loop): the start-of-day line, the runstate switch, NMI and event delivery,
    /// a TLB flush, the entry check, FSGSBASE, debug registers and the time record. None when it
    /// must not run (gone, crashed, shut down by what was delivered).
    pub(crate) fn prepare_entry(&mut self, id: DomId, vi: u32) -> Option<crate::platform::VcpuKey> {
        let v = vi as usize;
        let (key, started) = self.doms.get(&id).and_then(|d| d.vcpus.get(v)).map(|vc| (vc.key, vc.started))?;
        crate::vcpu::context_switch(
            &mut self.doms,
            &mut MachineMemory::new(self.platform.memory()),
            self.now,
            &mut self.on_cpu,
            Some((id, vi)),
        );
        if !started {
            let d = &self.doms[&id];
            let line = alloc::format!("d{id}v{vi} start entry={:#x} start_info={:#x}", d.vcpus[v].cpu.rip, d.start_info_va);
            self.trace(&line);
            if let Some(d) = self.doms.get_mut(&id) {
                d.vcpus[v].started = true;
            }
        }
        let fx = self.with_ctx(id, v, |ctx| {
            crate::hypercall::deliver_nmi(ctx);
            deliver_upcall(ctx);
        });
        if !self.apply(id, v, fx.0, fx.1) {
            return None;
        }
        if self.platform.wants_core_view() {
            let view = crate::debug::view(self);
            self.platform.core_view(view);
        }
        let d = self.doms.get_mut(&id)?;
        let vc = &mut d.vcpus[v];
        if vc.needs_flush {
            vc.needs_flush = false;
            self.platform.flush_tlb(key);
        }
        if let Some(why) = crate::desc::entry_problem(&MachineMemory::new(self.platform.memory()), &self.frames, id, &vc.cpu) {
            let line = alloc::format!("cannot enter d{id}v{vi}: {why}");
            self.crash_domain(id, &line);
            return None;
        }
        if vc.privs.fsgsbase_dirty {
            vc.privs.fsgsbase_dirty = false;
            self.platform.set_fsgsbase(key, vc.privs.cr4 & crate::privop::CR4_FSGSBASE != 0);
        }
        if vc.privs.dr_dirty {
            vc.privs.dr_dirty = false;
            self.platform.set_debug_regs(key, &vc.privs.hw_debug_regs());
        }
        let tsc = self.platform.guest_tsc(self.now);
        update_time(&mut MachineMemory::new(self.platform.memory()), vc.vcpu_info, self.now, tsc);
        crate::vcpu::publish_time(&mut MachineMemory::new(self.platform.memory()), vc);
        Some(key)
    }

    /// After vCPU `v` of `id` ran `ran` ns and left with `exit` (its context written back):
    /// count it, handle the exit and carry out its effects. False when the vCPU gives up the
    /// CPU (its runstate then leaves running).
    pub(crate) fn handle_vcpu_exit(&mut self, id: DomId, v: usize, exit: Exit, ran: u64) -> bool {
        self.exits += 1;
        if let Some(name) = self.doms.get(&id).map(|d| &d.config.name) {
            if let Some(r) = self.records.get_mut(name) {
                r.cpu_ns += ran;
            }
        }
        let (fx, lines) = self.with_ctx(id, v, |ctx| handle_exit(ctx, exit));
        if fx.hypercall {
            self.hypercalls += 1;
        }
        let keep = self.apply(id, v, fx, lines);
        if !keep {
            // Off the CPU: its runstate becomes runnable, blocked or offline.
            crate::vcpu::context_switch(&mut self.doms, &mut MachineMemory::new(self.platform.memory()), self.now, &mut self.on_cpu, None);
        }
        keep
    }

    fn with_ctx<R>(&mut self, id: DomId, v: usize, f: impl FnOnce(&mut Ctx<'_, '_>) -> R) -> (Effects, Vec<String>) {
        let mut ctx = Ctx {
            mem: MachineMemory::new(self.platform.memory()),
            frames: &mut self.frames,
            doms: &mut self.doms,
            xen: &self.xen,
            dom: id,
            vcpu: v,
            now: self.now,
            tracing: self.tracing,
            lines: Vec::new(),
            desc: String::new(),
            note: String::new(),
            fx: Effects::default(),
            depth: 0,
        };
        f(&mut ctx);
        (ctx.fx, ctx.lines)
    }

    /// Carry out what a handled exit asked for. Returns false when the vCPU stops running.
    fn apply(&mut self, id: DomId, v: usize, fx: Effects, lines: Vec<String>) -> bool {
        if !fx.release_tables.is_empty() {
            self.release_tables(id, v, &fx.release_tables);
        }
        for l in &lines {
            self.platform.trace(l);
        }
        if !fx.console_out.is_empty() {
            if let Some(d) = self.doms.get(&id) {
                let name = d.config.name.clone();
                self.platform.console(id, &name, &fx.console_out);
            }
        }
        let mut wake = fx.wake;
        if fx.console_kick {
            let drained = self.doms.get(&id).map(|d| {
                let mut mem = MachineMemory::new(self.platform.memory());
                hypercall::drain_console_ring(&mut mem, d)
            });
            if let Some((bytes, woke)) = drained {
                wake.extend(woke.into_iter().map(|v| (id, v)));
                if let Some(d) = self.doms.get_mut(&id) {
                    let done = crate::hypercall::console_output_pub(d, &bytes, self.tracing);
                    let name = d.config.name.clone();
                    for l in done {
                        let line = alloc::format!("d{id} console {l:?}");
                        self.platform.trace(&line);
                    }
                    self.platform.console(id, &name, &bytes);
                }
            }
        }
        if fx.store_kick {
            wake.extend(self.store_service(Some(id)));
        }
        for (d, vc) in wake {
            if let Some(vcpu) = self.doms.get_mut(&d).and_then(|d| d.vcpus.get_mut(vc as usize)) {
                if unblock(vcpu) {
                    self.sched.wake((d, vc));
                }
            }
        }
        self.flush_console(id);
        if let Some(why) = fx.crash {
            self.crash_domain(id, &why);
            return false;
        }
        if let Some(r) = fx.shutdown {
            self.domain_shutdown(id, r);
            return false;
        }
        let Some(d) = self.doms.get_mut(&id) else { return false };
        if fx.flush_tlb {
            // Every vCPU of the domain, as Xen's flushes cover the domain's dirty pCPUs: a
            // guest's TLB_FLUSH_ALL/MULTI and UVMF_ALL (xen/arch/x86/mm.c do_mmuext_op,
            // do_update_va_mapping: flush_tlb_mask(d->dirty_cpumask)), and a page whose type
            // changes (mm.c _get_page_type: flush_tlb_mask of the dirty mask), so that no vCPU
            // keeps a writable mapping of a new page table. More than a local flush asked for,
            // never less; on one vCPU the same as before.
            for vc in d.vcpus.iter_mut() {
                vc.needs_flush = true;
            }
        }
        let Some(vc) = d.vcpus.get_mut(v) else { return false };
        if fx.block {
            // SCHEDOP_block enables event delivery, then blocks unless an event is pending.
            let mut mem = MachineMemory::new(self.platform.memory());
            mem.write_u8(vc.vcpu_info.add(shinfo::UPCALL_MASK), 0);
            if !evtchn::upcall_pending(&mem, vc.vcpu_info) {
                vc.state = VcpuState::Blocked;
            }
            return false;
        }
        if let Some(p) = fx.poll {
            // A timeout already in the past fires at once: the vCPU only gives up the CPU.
            if p.deadline.is_none_or(|t| t > self.now) {
                vc.state = VcpuState::Blocked;
                vc.poll = Some(p);
            }
            return false;
        }
        self.yielded = fx.yield_;
        !fx.yield_
    }

    /// Drop the base-pointer references a hypercall gave up, once the platform runs on the
    /// vCPU's current tables: this is where a table the guest left can lose its type.
    fn release_tables(&mut self, id: DomId, v: usize, tables: &[Mfn]) {
        let Some((key, cr3)) = self.doms.get(&id).and_then(|d| d.vcpus.get(v)).map(|vc| (vc.key, vc.cpu.cr3)) else {
            return;
        };
        self.platform.switch_tables(key, cr3);
        let mut mem = MachineMemory::new(self.platform.memory());
        let mut pt = PtCtx { frames: &mut self.frames, mem: &mut mem, dom: id, xen_slots: &self.xen.slots };
        for &t in tables {
            pt.put_type(t);
        }
    }

    /// A domain's record by name.
    pub fn record(&self, name: &str) -> Option<&Record> {
        self.records.get(name)
    }
}

/// Wake a blocked or polling vCPU (Xen's `vcpu_unblock`; a poll ends). True when it was
/// blocked: the scheduler must hear of the wake-up.
fn unblock(v: &mut crate::domain::Vcpu) -> bool {
    v.poll = None;
    if v.state == VcpuState::Blocked {
        v.state = VcpuState::Runnable;
        return true;
    }
    false
}

/// Can this vCPU run: its domain alive, not paused, and the vCPU up and not blocked.
fn vcpu_runnable(doms: &BTreeMap<DomId, Domain>, (id, v): UnitId) -> bool {
    doms.get(&id).is_some_and(|d| {
        d.state == DomState::Running && !d.is_paused() && d.vcpus.get(v as usize).is_some_and(|v| v.state == VcpuState::Runnable)
    })
}

/// Publish time in the vCPU's vcpu_info, as Xen's `__update_vcpu_system_time`: the version is
/// made odd, the fields written, then made even again (`version_update_begin`/`_end`), so a
/// guest that reads an odd or changed version retries. `system_time` is virtual time (ns) and
/// `tsc_timestamp` the guest's TSC at that instant ([`Platform::guest_tsc`]); the scale is one
/// TSC tick per nanosecond (`tsc_to_system_mul` 2^31 with `tsc_shift` 1:
/// ns = ((tsc delta << 1) * 2^31) >> 32). TSC_STABLE as Xen sets it for a TSC clocksource.
///
/// As Xen ("don't bother unless timestamp record has changed"), a record that already gives the
/// right time is left alone: where the guest's TSC is virtual time (the simulator) the first
/// record stays right for ever, so its version never moves under a guest that reads the clock
/// across an exit (Linux's pvclock read loop takes an emulated `rdtsc` in the middle: a version
/// bumped at every entry would make it retry for ever).
pub fn update_time(mem: &mut MachineMemory<'_>, vi: crate::mm::Maddr, now: u64, tsc: u64) {
    let t = vi.add(shinfo::TIME);
    let ver = mem.read_u32(t).unwrap_or(0);
    if ver & 1 == 0 {
        let stamp = mem.read_u64(t.add(abi::time::TSC_TIMESTAMP)).unwrap_or(0);
        let stime = mem.read_u64(t.add(abi::time::SYSTEM_TIME)).unwrap_or(0);
        let mul = mem.read_u32(t.add(abi::time::TSC_TO_SYSTEM_MUL)).unwrap_or(0);
        let shift = mem.read_u8(t.add(abi::time::TSC_SHIFT)).unwrap_or(0);
        let flags = mem.read_u8(t.add(abi::time::FLAGS)).unwrap_or(0);
        let same_scale = mul == 1 << 31 && shift == 1 && flags == abi::XEN_PVCLOCK_TSC_STABLE_BIT;
        if same_scale && ver != 0 && tsc >= stamp && stime.wrapping_add(tsc - stamp) == now {
            return;
        }
    }
    mem.write_u32(t, ver.wrapping_add(1) | 1);
    mem.write_u64(t.add(abi::time::TSC_TIMESTAMP), tsc);
    mem.write_u64(t.add(abi::time::SYSTEM_TIME), now);
    mem.write_u32(t.add(abi::time::TSC_TO_SYSTEM_MUL), 1 << 31);
    mem.write_u8(t.add(abi::time::TSC_SHIFT), 1);
    mem.write_u8(t.add(abi::time::FLAGS), abi::XEN_PVCLOCK_TSC_STABLE_BIT);
    mem.write_u32(t, ver.wrapping_add(2) & !1);
}

/// Deliver a pending, unmasked event upcall to the guest's event callback.
fn deliver_upcall(ctx: &mut Ctx<'_, '_>) {
    let vc = ctx.cur_ref();
    let (cb, vi) = (vc.callbacks.event, vc.vcpu_info);
    if cb == 0 || !evtchn::upcall_deliverable(&ctx.mem, vi) {
        return;
    }
    let b = traps::Bounce { target: cb, error_code: None, mask_events: true };
    match traps::bounce(ctx, &b) {
        Ok(()) => {
            let who = ctx.who();
            if ctx.tracing {
                ctx.lines.push(alloc::format!("{who} event upcall -> {cb:#x}"));
            }
        }
        Err(e) => ctx.fx.crash = Some(alloc::format!("event upcall: {}", e.0)),
    }
}

/// Handle one exit of the current vCPU.
fn handle_exit(ctx: &mut Ctx<'_, '_>, exit: Exit) {
    match exit {
        Exit::Budget => {}
        Exit::Gate => gate(ctx),
        Exit::SoftInt { vector: vec, len } => {
            let (rip, hp) = (ctx.cur_ref().cpu.rip, ctx.domain_ref().hypercall_page);
            if vec == vector::BP && len == 1 && hp.is_some_and(|hp| (hp..hp + PAGE_SIZE).contains(&rip.wrapping_sub(1))) {
                gate(ctx);
                return;
            }
            let v = ctx.cur_ref();
            if traps::softint_permitted(v, vec) {
                let b = traps::trap_bounce(v, vec, None);
                deliver(ctx, vec, None, 0, b);
            } else {
                // The gate's DPL forbids `int n` from the guest: #GP(vec*8+2) at the instruction.
                ctx.cur().cpu.rip = rip.wrapping_sub(len as u64);
                let ec = (vec as u32) * 8 + 2;
                let b = traps::trap_bounce(ctx.cur_ref(), vector::GP, Some(ec));
                deliver(ctx, vector::GP, Some(ec), 0, b);
            }
        }
        Exit::Debug { dr6 } => {
            // Xen's do_debug, guest context: merge the status into the virtual DR6 (where the
            // guest reads it with get_debugreg or `mov %dr6`) and bounce #DB.
            ctx.cur().privs.merge_dr6(dr6);
            deliver_debug(ctx);
        }
        Exit::Exception { vector: vec, error_code, cr2 } => {
            if vec == vector::UD && forced_cpuid(ctx) {
                // Xen's pv_emul_instruction_done: an emulated instruction single-steps too.
                let v = ctx.cur();
                v.cpu.rflags &= !(1 << 16);
                if v.cpu.rflags & (1 << 8) != 0 {
                    v.privs.dr[6] |= crate::privop::dr::DR6_BS | crate::privop::dr::DR6_DEFAULT;
                    deliver_debug(ctx);
                }
                return;
            }
            let ec = if vector::has_error_code(vec) { Some(error_code.unwrap_or(0)) } else { None };
            if vec == vector::PF && crate::emulate::m2p_load(ctx, cr2) {
                return;
            }
            // Writable page tables (traps.c fixup_page_fault -> pv_ro_page_fault).
            if vec == vector::PF {
                match crate::ptwr::page_fault(ctx, error_code.unwrap_or(0), cr2) {
                    crate::ptwr::Outcome::NotMine => {}
                    crate::ptwr::Outcome::Emulated => return,
                    crate::ptwr::Outcome::EmulatedDebug => {
                        deliver_debug(ctx);
                        return;
                    }
                }
            }
            // Xen emulates what a PV kernel may do in ring 0 only on #GP(0) (traps.c:
            // do_general_protection).
            if vec == vector::GP && ec == Some(0) {
                match crate::privop::emulate(ctx) {
                    crate::privop::Outcome::Emulated => return,
                    crate::privop::Outcome::EmulatedDebug => {
                        deliver_debug(ctx);
                        return;
                    }
                    crate::privop::Outcome::Undefined => {
                        let b = traps::trap_bounce(ctx.cur_ref(), vector::UD, None);
                        deliver(ctx, vector::UD, None, 0, b);
                        return;
                    }
                    crate::privop::Outcome::Refused => {}
                }
            }
            // As Xen's pv_inject_event: the user bit of a #PF says which guest mode faulted,
            // not the hardware ring (the guest kernel runs in ring 3).
            let ec = match ec {
                Some(e) if vec == vector::PF => Some(if ctx.cur_ref().kernel_mode { e & !traps::pf::USER } else { e | traps::pf::USER }),
                other => other,
            };
            if vec == vector::PF {
                let vi = ctx.cur_ref().vcpu_info;
                ctx.mem.write_u64(vi.add(shinfo::CR2), cr2);
                ctx.cur().privs.cr2 = cr2;
            }
            let b = traps::trap_bounce(ctx.cur_ref(), vec, ec);
            deliver(ctx, vec, ec, cr2, b);
        }
        Exit::Fatal(why) => ctx.fx.crash = Some(alloc::format!("platform: {why}")),
    }
}

fn deliver(ctx: &mut Ctx<'_, '_>, vec: u8, ec: Option<u32>, cr2: u64, b: traps::Bounce) {
    let rip = ctx.cur_ref().cpu.rip;
    let what = if ctx.tracing { traps::describe_fault(vec, ec, cr2) } else { String::new() };
    match traps::bounce(ctx, &b) {
        Ok(()) => {
            if ctx.tracing {
                let who = ctx.who();
                ctx.lines.push(alloc::format!("{who} trap {what} at {rip:#x} -> guest handler {:#x}", b.target));
            }
        }
        Err(e) => {
            if ctx.tracing {
                let who = ctx.who();
                ctx.lines.push(alloc::format!("{who} trap {what} at {rip:#x}: {}", e.0));
            }
            ctx.fx.crash = Some(alloc::format!("unhandled {} at {rip:#x}", vector::name(vec)));
        }
    }
}

/// Bounce #DB (no error code) to the guest; the trace shows the DR6 it will read.
fn deliver_debug(ctx: &mut Ctx<'_, '_>) {
    let dr6 = ctx.cur_ref().privs.dr[6];
    let b = traps::trap_bounce(ctx.cur_ref(), vector::DB, None);
    deliver(ctx, vector::DB, None, dr6, b);
}

/// Xen's forced-emulation prefix: emulate CPUID for the guest. True if it was one.
fn forced_cpuid(ctx: &mut Ctx<'_, '_>) -> bool {
    let rip = ctx.cur_ref().cpu.rip;
    let mut b = [0u8; 7];
    if ctx.copy_from_guest(rip, &mut b).is_err() || b != traps::FORCED_CPUID {
        return false;
    }
    let (leaf, sub) = (ctx.cur_ref().cpu.rax as u32, ctx.cur_ref().cpu.rcx as u32);
    let r = traps::cpuid(leaf, sub, ctx.xen.fsgsbase);
    let who = ctx.who();
    let c = &mut ctx.cur().cpu;
    c.rax = r[0] as u64;
    c.rbx = r[1] as u64;
    c.rcx = r[2] as u64;
    c.rdx = r[3] as u64;
    c.rip = rip.wrapping_add(7);
    if ctx.tracing {
        ctx.lines.push(alloc::format!("{who} cpuid({leaf:#x}, {sub:#x}) = {:#x} {:#x} {:#x} {:#x}", r[0], r[1], r[2], r[3]));
    }
    true
}

/// The hypercall gate fired: a hypercall from the guest kernel, or a guest user `syscall`.
fn gate(ctx: &mut Ctx<'_, '_>) {
    if !ctx.cur_ref().kernel_mode {
        // A system call from guest user space goes to the kernel's syscall callback.
        let v = ctx.cur_ref();
        // From compatibility mode (the platform reports FLAT_USER_CS32, as Xen's cstar_enter):
        // the syscall32 callback (x86_64/entry.S switch_to_kernel).
        let b = if v.cpu.cs == abi::FLAT_RING3_CS32 {
            traps::Bounce { target: v.callbacks.syscall32, error_code: None, mask_events: v.callbacks.syscall32_mask_events }
        } else {
            traps::Bounce { target: v.callbacks.syscall, error_code: None, mask_events: v.callbacks.syscall_mask_events }
        };
        if b.target == 0 {
            let b = traps::trap_bounce(v, vector::UD, None);
            deliver(ctx, vector::UD, None, 0, b);
        } else if let Err(e) = traps::bounce(ctx, &b) {
            ctx.fx.crash = Some(alloc::format!("syscall bounce: {}", e.0));
        }
        return;
    }
    ctx.fx.hypercall = true;
    let c = ctx.cur_ref().cpu;
    let args = [c.rdi, c.rsi, c.rdx, c.r10, c.r8];
    let mut out = Vec::new();
    let r = hypercall::dispatch(ctx, c.rax, args, &mut out);
    let mut extra = core::mem::take(&mut ctx.lines);
    ctx.lines = out;
    ctx.lines.append(&mut extra);
    if !ctx.fx.no_ret {
        ctx.cur().cpu.rax = match r {
            Ok(v) => v as u64,
            Err(e) => e.to_ret() as u64,
        };
    }
}
