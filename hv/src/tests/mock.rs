//! The mock platform: `Vec`-backed machine memory and scripted vCPU exits.
//!
//! There is no CPU. A vCPU "runs" by popping the next [`Step`] of its domain's script: the step
//! may change registers and machine memory and says how the run ended ([`Exit`]) and how much
//! virtual time it took. Every `run` call is recorded with the registers it was entered with, so
//! a test can see the result the core wrote into `rax` for the previous hypercall.

use std::collections::{BTreeMap, VecDeque};

use crate::mm::paging::walk_slice;
use crate::mm::{Mfn, PAGE_SIZE};
use crate::platform::{CpuState, Exit, Gate, Platform, VcpuKey};
use crate::DomId;

/// What a scripted step does to the vCPU and memory.
pub type StepFn = Box<dyn FnOnce(&mut CpuState, &mut [u8]) -> Exit>;

/// One scripted exit.
pub struct Step {
    pub f: StepFn,
    /// Virtual time charged (capped at the budget the core offered).
    pub ns: u64,
}

/// What `run` does when a domain's script is empty.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OnEmpty {
    /// Spin: use the whole budget and return `Exit::Budget` (the guest is "busy").
    Spin,
    /// `Exit::Fatal("script ended")`: the core must crash the domain.
    Fatal,
}

/// One call of `Platform::run`.
#[derive(Clone, Debug)]
pub struct Run {
    pub key: VcpuKey,
    /// Registers on entry (rax = the previous hypercall's result).
    pub entry: CpuState,
    pub budget: u64,
}

pub struct Mock {
    pub mem: Vec<u8>,
    pub gate: Gate,
    pub on_empty: OnEmpty,
    pub scripts: BTreeMap<DomId, VecDeque<Step>>,
    pub runs: Vec<Run>,
    pub traces: Vec<String>,
    pub console: Vec<(DomId, String, Vec<u8>)>,
    pub created: Vec<VcpuKey>,
    pub destroyed: Vec<VcpuKey>,
    pub flushes: Vec<VcpuKey>,
    pub code_changed: Vec<(u64, u64)>,
    pub idle_ns: u64,
    /// Breakpoints the core asked the platform to arm (set_debug_regs), in order.
    pub debug_regs: Vec<(VcpuKey, crate::platform::DebugRegs)>,
    /// What `fsgsbase()` answers, and the CR4.FSGSBASE changes the core passed on.
    pub fsgsbase: bool,
    pub fsgsbase_set: Vec<(VcpuKey, bool)>,
    /// The page tables the "CPU" is on, as bare metal would be: the CR3 of the last run, or
    /// of the last `switch_tables`; 0 (the platform's own tables) after a vCPU is destroyed.
    pub loaded_cr3: u64,
    /// The hypervisor's L4 slots (set by the test bench): every table the CPU is on must carry
    /// them, or bare metal would fault in the hypervisor. Checked before the CPU leaves a table.
    pub xen_slots: Option<Vec<u64>>,
}

impl Mock {
    pub fn new(mib: usize, gate: Gate) -> Self {
        Self {
            mem: vec![0u8; mib << 20],
            gate,
            on_empty: OnEmpty::Spin,
            scripts: BTreeMap::new(),
            runs: Vec::new(),
            traces: Vec::new(),
            console: Vec::new(),
            created: Vec::new(),
            destroyed: Vec::new(),
            flushes: Vec::new(),
            code_changed: Vec::new(),
            idle_ns: 0,
            debug_regs: Vec::new(),
            fsgsbase: false,
            fsgsbase_set: Vec::new(),
            loaded_cr3: 0,
            xen_slots: None,
        }
    }

    /// The CPU has been running the hypervisor on `loaded_cr3` since the last switch: it must
    /// still be a table with the hypervisor's slots, as bare metal needs (panics otherwise).
    fn check_loaded(&self) {
        let (Some(slots), cr3) = (&self.xen_slots, self.loaded_cr3) else { return };
        if cr3 == 0 {
            return;
        }
        for (i, want) in slots.iter().enumerate() {
            let a = (cr3 & !0xfff) as usize + (crate::abi::XEN_L4_FIRST + i) * 8;
            let got = u64::from_le_bytes(self.mem[a..a + 8].try_into().expect("8 bytes"));
            assert_eq!(
                got,
                *want,
                "the hypervisor ran on the table at {cr3:#x} after its slot {} was removed",
                crate::abi::XEN_L4_FIRST + i
            );
        }
    }

    /// Runs of domain `dom` so far.
    pub fn runs_of(&self, dom: DomId) -> usize {
        self.runs.iter().filter(|r| r.key.dom == dom).count()
    }

    pub fn script_empty(&self, dom: DomId) -> bool {
        self.scripts.get(&dom).is_none_or(|q| q.is_empty())
    }
}

impl Platform for Mock {
    fn memory(&mut self) -> &mut [u8] {
        &mut self.mem
    }
    fn gate(&self) -> Gate {
        self.gate
    }
    fn vcpu_create(&mut self, key: VcpuKey) -> Result<(), &'static str> {
        self.created.push(key);
        Ok(())
    }
    fn fsgsbase(&self) -> bool {
        self.fsgsbase
    }
    fn set_fsgsbase(&mut self, key: VcpuKey, enabled: bool) {
        self.fsgsbase_set.push((key, enabled));
    }
    fn set_debug_regs(&mut self, key: VcpuKey, regs: &crate::platform::DebugRegs) {
        self.debug_regs.push((key, *regs));
    }
    fn vcpu_destroy(&mut self, key: VcpuKey) {
        self.destroyed.push(key);
        self.check_loaded();
        self.loaded_cr3 = 0;
    }
    fn run(&mut self, key: VcpuKey, cpu: &mut CpuState, budget: u64) -> (Exit, u64) {
        assert!(self.created.contains(&key) && !self.destroyed.contains(&key), "run of a dead vCPU {key:?}");
        self.runs.push(Run { key, entry: *cpu, budget });
        self.check_loaded();
        self.loaded_cr3 = cpu.cr3;
        match self.scripts.get_mut(&key.dom).and_then(|q| q.pop_front()) {
            Some(step) => {
                let exit = (step.f)(cpu, &mut self.mem);
                (exit, step.ns.min(budget))
            }
            None => match self.on_empty {
                OnEmpty::Spin => (Exit::Budget, budget),
                OnEmpty::Fatal => (Exit::Fatal("script ended"), 0),
            },
        }
    }
    fn flush_tlb(&mut self, key: VcpuKey) {
        self.flushes.push(key);
    }
    fn switch_tables(&mut self, _key: VcpuKey, cr3: u64) {
        self.check_loaded();
        self.loaded_cr3 = cr3;
    }
    fn code_changed(&mut self, first_maddr: u64, len: u64) {
        self.code_changed.push((first_maddr, len));
    }
    fn idle(&mut self, ns: u64) -> u64 {
        self.idle_ns += ns;
        ns
    }
    fn trace(&mut self, line: &str) {
        self.traces.push(line.to_string());
    }
    fn console(&mut self, dom: DomId, name: &str, bytes: &[u8]) {
        self.console.push((dom, name.to_string(), bytes.to_vec()));
    }
}

/// Write guest memory at `va` through the page tables rooted at `cr3`, as the guest would:
/// every page must be mapped writable and user-accessible (panics otherwise: a test bug).
pub fn poke(mem: &mut [u8], cr3: u64, va: u64, data: &[u8]) {
    let mut done = 0usize;
    while done < data.len() {
        let a = va + done as u64;
        let w = walk_slice(mem, Mfn(cr3 >> 12), a).unwrap_or_else(|f| panic!("poke {a:#x}: not mapped ({f:?})"));
        assert!(w.writable && w.user, "poke {a:#x}: not a writable user mapping");
        let n = ((PAGE_SIZE - (a & (PAGE_SIZE - 1))) as usize).min(data.len() - done);
        let m = w.maddr.0 as usize;
        mem[m..m + n].copy_from_slice(&data[done..done + n]);
        done += n;
    }
}

/// Read guest memory at `va` through the page tables rooted at `cr3` (mapped pages only).
pub fn peek(mem: &[u8], cr3: u64, va: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let a = va + out.len() as u64;
        let w = walk_slice(mem, Mfn(cr3 >> 12), a).unwrap_or_else(|f| panic!("peek {a:#x}: not mapped ({f:?})"));
        let n = ((PAGE_SIZE - (a & (PAGE_SIZE - 1))) as usize).min(len - out.len());
        let m = w.maddr.0 as usize;
        out.extend_from_slice(&mem[m..m + n]);
    }
    out
}
