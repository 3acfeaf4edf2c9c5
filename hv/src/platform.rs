//! The one seam between the portable core and the world: [`Platform`].
//!
//! Implemented by the unicorn simulator (`sim/`), the bare-metal layer (`arch/`), and the mock in
//! the core's own tests. The core owns the loop; a platform only runs a vCPU until something the
//! core must handle happens, and lends the core machine memory.

use crate::DomId;

/// Identifies a vCPU to the platform. `generation` changes when a domain is rebuilt (reboot), so
/// the platform can drop state tied to the old incarnation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct VcpuKey {
    pub dom: DomId,
    pub vcpu: u32,
    pub generation: u32,
}

/// The architectural state of a PV vCPU that the core reads and writes.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct CpuState {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cs: u16,
    pub ss: u16,
    pub fs_base: u64,
    pub gs_base: u64,
    /// Machine address of the active L4 table.
    pub cr3: u64,
}

/// How guests enter the hypervisor from the hypercall page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Gate {
    /// `syscall` (TCG, real VT-x/AMD-V hardware, the simulator).
    Syscall,
    /// `int3`-style exception gate: `int3` is the one ring-3 exception every accelerator here
    /// delivers to ring 0 (kvm_pvm does not deliver a ring-3 `syscall`).
    Int3,
}

impl Gate {
    pub fn name(self) -> &'static str {
        match self {
            Gate::Syscall => "syscall",
            Gate::Int3 => "int3",
        }
    }
}

/// Why `run` returned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Exit {
    /// The guest executed the gate instruction; `rip` is past it.
    Gate,
    /// A fault or trap. `rip` is at the faulting instruction for faults, after it for traps.
    Exception { vector: u8, error_code: Option<u32>, cr2: u64 },
    /// `int n` executed in ring 3 (the core checks the guest's gate DPL); `rip` is after it.
    SoftInt { vector: u8, len: u8 },
    /// The time budget ran out.
    Budget,
    /// The platform could not run the vCPU at all (a bug or an unrecoverable emulator state).
    Fatal(&'static str),
}

/// What the world provides to the core.
pub trait Platform {
    /// Machine memory, indexed by machine address. It must be all zero when the hypervisor is
    /// created (above the platform's reserved frames): the core scrubs only frames that a
    /// previous owner used.
    fn memory(&mut self) -> &mut [u8];
    /// The gate instruction the hypercall page should use.
    fn gate(&self) -> Gate;
    /// Prepare to run a new vCPU.
    fn vcpu_create(&mut self, key: VcpuKey) -> Result<(), &'static str>;
    /// Forget a vCPU.
    fn vcpu_destroy(&mut self, key: VcpuKey);
    /// Run `key` from `cpu` for at most `budget_ns` of (virtual) time. Returns the exit and the
    /// time consumed; `cpu` holds the state at the exit.
    fn run(&mut self, key: VcpuKey, cpu: &mut CpuState, budget_ns: u64) -> (Exit, u64);
    /// The vCPU's page tables changed in ways a TLB may have cached.
    fn flush_tlb(&mut self, key: VcpuKey);
    /// The vCPU's base pointer moved to `cr3`, and the core is about to drop its reference to
    /// the tables it left (which may devalidate them, making them ordinary guest memory). A
    /// platform whose hypervisor runs on the guest's page tables (bare metal, like Xen) must stop
    /// running on the old tables now, before this returns: as Xen's `new_guest_cr3` writes the
    /// new base before it puts the old one.
    fn switch_tables(&mut self, key: VcpuKey, cr3: u64);
    /// Code in these machine frames may have been rewritten by the hypervisor (a rebuilt domain).
    fn code_changed(&mut self, first_maddr: u64, len: u64);
    /// Nothing is runnable: let `ns` of time pass. Returns the time that passed.
    fn idle(&mut self, ns: u64) -> u64;
    /// One trace line (no newline).
    fn trace(&mut self, line: &str);
    /// Bytes a domain wrote to its console.
    fn console(&mut self, dom: DomId, name: &str, bytes: &[u8]);
    /// The value a guest's `rdtsc` returns at virtual time `now`, for the `tsc_timestamp` of
    /// vcpu_time_info. A platform that traps the guest's `rdtsc` (CR4.TSD; the core then answers
    /// with `now`, see `privop`) keeps the default: the guest's TSC is virtual time, one tick per
    /// nanosecond, and deterministic. A platform that lets `rdtsc` run natively returns the
    /// hardware TSC read now (its `now` counts TSC cycles as nanoseconds).
    fn guest_tsc(&mut self, now: u64) -> u64 {
        now
    }
}
