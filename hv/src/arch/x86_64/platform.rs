//! [`Platform`] on bare metal: guests run natively in ring 3 until a trap or the gate returns
//! control; time is the TSC (one cycle counted as one nanosecond of "virtual" time).

use super::cpu;
use super::entry::{self, Frame, SYSCALL_VECTOR};
use super::timer;
use crate::abi::{self, vector};
use crate::mm::paging::walk_slice;
use crate::mm::Mfn;
use crate::platform::{CpuState, DebugRegs, Exit, Gate, Platform, VcpuKey};
use crate::DomId;

const MSR_FS_BASE: u32 = 0xC000_0100;
const MSR_GS_BASE: u32 = 0xC000_0101;

/// How late (TSC cycles) the timer may end a guest's run before the excess counts as stolen by
/// the host rather than run by the guest: 1 ms at these machines' ~2.6 GHz TSC is 2.6 M cycles; a
/// timer on hardware is late by microseconds.
pub(super) const STEAL_LATE: u64 = 2_600_000;

/// What one CPU has loaded of the vCPUs it runs, so that an entry changes only what differs:
/// the debug registers, CR4.FSGSBASE and the guest's GDT entries. One CPU's `run` keeps one in
/// [`BareMetal`], each CPU of the SMP loop its own (smp.rs).
pub(super) struct CpuLoaded {
    /// What DR0..3/DR7 hold.
    pub debug: DebugRegs,
    /// Whether CR4.FSGSBASE is set.
    pub cr4_fsgsbase: bool,
    /// Whose guest GDT the CPU's GDT holds below Xen's reserved entries, and how many entries.
    gdt: Option<(VcpuKey, crate::platform::GuestGdt)>,
    gdt_written: usize,
}

impl CpuLoaded {
    pub const fn new() -> Self {
        Self { debug: DebugRegs { addr: [0; 4], dr7: 0x400 }, cr4_fsgsbase: false, gdt: None, gdt_written: 0 }
    }

    /// Load vCPU `key`'s state (`c` its context) into this CPU where it differs from what is
    /// loaded.
    pub fn load(&mut self, plat: &BareMetal, key: VcpuKey, c: &CpuState) {
        // The vCPU's breakpoints go into the CPU while it runs (as Xen's activate_debugregs on
        // a context switch); a vCPU without any runs with DR7 clear.
        let want = plat.debug.get(&key).copied().filter(DebugRegs::armed).unwrap_or(DebugRegs { addr: [0; 4], dr7: 0x400 });
        if want != self.debug {
            // Control fields of disabled breakpoints are cleared: an I/O breakpoint (emulated by
            // the core, its enables already stripped) must not reach the CPU's DR7.
            let mut dr7 = want.dr7;
            for n in 0..4 {
                if !crate::privop::dr::enabled(dr7, n) {
                    dr7 &= !(0xf << (16 + 4 * n));
                }
            }
            cpu::load_debug_regs(&want.addr, dr7);
            self.debug = want;
        }
        // CR4.FSGSBASE as the vCPU's view says (Xen's pv_make_cr4).
        let fsgs = plat.fsgsbase_ok && plat.fsgsbase_on.contains(&key);
        if fsgs != self.cr4_fsgsbase {
            cpu::set_cr4_fsgsbase(fsgs);
            self.cr4_fsgsbase = fsgs;
        }
        if self.gdt != Some((key, c.gdt)) {
            self.gdt_written = cpu::load_guest_gdt(plat.mem, &c.gdt, self.gdt_written);
            self.gdt = Some((key, c.gdt));
        }
    }
}

/// A vCPU's x87/SSE state, as `fxsave64` writes it.
#[repr(C, align(16))]
pub(super) struct FxArea(pub(super) [u8; 512]);

impl FxArea {
    /// The state after reset/`fninit`: FCW 0x37f, MXCSR 0x1f80 (masked exceptions), all
    /// registers zero (Intel SDM vol. 1, 10.5.1, FXSAVE area layout).
    pub(super) fn initial() -> alloc::boxed::Box<FxArea> {
        let mut a = alloc::boxed::Box::new(FxArea([0; 512]));
        a.0[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        a.0[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        a
    }
}

/// The bare-metal platform.
pub struct BareMetal {
    pub(super) mem: &'static mut [u8],
    pub gate: Gate,
    pub(super) boot_cr3: u64,
    cur_cr3: u64,
    fs: u64,
    gs: u64,
    /// Guest exits taken (for the summary).
    pub exits: u64,
    /// Tracing is off (`trace=0`): print console output itself, as `# console dN: ...` lines.
    pub raw_console: bool,
    /// The APIC timer preempts guests at the end of their budget.
    pub timer: bool,
    /// Timer expiries that ended a guest's run, and by how much (TSC cycles) the run overshot its
    /// budget on them, in all and at most: the timer's latency as the scheduler sees it.
    pub timer_exits: u64,
    pub late_sum: u64,
    pub late_max: u64,
    /// Lateness not charged (see `STEAL_LATE`), TSC cycles.
    pub stolen: u64,
    /// The first lateness samples (TSC cycles), for percentiles.
    pub late_samples: alloc::vec::Vec<u64>,
    /// Each vCPU's x87/SSE registers while another vCPU owns the CPU's (the hypervisor is
    /// soft-float and never touches them, so they are switched only between vCPUs).
    pub(super) fpu: alloc::collections::BTreeMap<VcpuKey, alloc::boxed::Box<FxArea>>,
    fpu_owner: Option<VcpuKey>,
    /// Ring 3 may change its own FS/GS base (`wrfsbase` works): read them back after each exit.
    /// True unless our CR4.FSGSBASE is clear and ring 3 runs on our CR4 (not under kvm_pvm,
    /// where it runs on the host's; `new` decides).
    pub bases_writable: bool,
    /// Each vCPU's breakpoints (set_debug_regs).
    pub(super) debug: alloc::collections::BTreeMap<VcpuKey, DebugRegs>,
    /// Guests may have FSGSBASE (see `Platform::fsgsbase`); the vCPUs whose CR4 view has it.
    pub fsgsbase_ok: bool,
    pub(super) fsgsbase_on: alloc::collections::BTreeSet<VcpuKey>,
    /// What the boot CPU has loaded for one CPU's `run` (each CPU of the SMP loop has its own).
    loaded: CpuLoaded,
    /// #DBs that QEMU TCG raised early after a `mov ss` and that belonged to hypervisor context.
    pub db_dropped: u64,
    /// Several CPUs run guests (smp.rs): each CPU loads its vCPU's state itself and returns to
    /// the boot page tables after every exit.
    pub smp: bool,
}

impl BareMetal {
    /// # Safety
    /// `mem` must be the direct map of machine memory [0, len): nothing else may alias it
    /// except the hypervisor's own reserved frames, which the core never hands out.
    pub unsafe fn new(mem: &'static mut [u8], gate: Gate) -> Self {
        let boot_cr3 = cpu::read_cr3();
        BareMetal {
            mem,
            gate,
            boot_cr3,
            cur_cr3: boot_cr3,
            fs: 0,
            gs: 0,
            exits: 0,
            raw_console: false,
            timer: false,
            timer_exits: 0,
            late_sum: 0,
            late_max: 0,
            late_samples: alloc::vec::Vec::new(),
            stolen: 0,
            fpu: alloc::collections::BTreeMap::new(),
            fpu_owner: None,
            bases_writable: true,
            debug: alloc::collections::BTreeMap::new(),
            db_dropped: 0,
            fsgsbase_ok: false,
            fsgsbase_on: alloc::collections::BTreeSet::new(),
            loaded: CpuLoaded::new(),
            smp: false,
        }
    }

    /// Give the CPU's x87/SSE registers to `key`: save the previous owner's, load `key`'s (a
    /// fresh state for a new vCPU). Without this one domain's registers leak into another's.
    fn switch_fpu(&mut self, key: VcpuKey) {
        if self.fpu_owner == Some(key) {
            return;
        }
        if let Some(old) = self.fpu_owner.take() {
            let area = self.fpu.entry(old).or_insert_with(FxArea::initial);
            // SAFETY: a 512-byte, 16-aligned save area we own; CR4.OSFXSR is set at boot.
            unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack)) };
        }
        let area = self.fpu.entry(key).or_insert_with(FxArea::initial);
        // SAFETY: as above; the area holds a state fxsave64 wrote or the architectural initial
        // state (reserved MXCSR bits clear), so fxrstor64 cannot fault.
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack)) };
        self.fpu_owner = Some(key);
    }

    pub(super) fn read_guest(&self, cr3: u64, va: u64, out: &mut [u8]) -> bool {
        for (i, b) in out.iter_mut().enumerate() {
            match walk_slice(self.mem, Mfn(cr3 >> 12), va.wrapping_add(i as u64)) {
                Ok(w) if w.user => *b = self.mem[w.maddr.0 as usize],
                _ => return false,
            }
        }
        true
    }

    /// Is the instruction at rip a non-canonical stack-segment access (see
    /// `emulate::is_stack_fault`)?
    pub(super) fn stack_fault_at(&self, cpu: &CpuState) -> bool {
        let n = (4096 - (cpu.rip & 4095)).min(15) as usize;
        let mut b = [0u8; 15];
        self.read_guest(cpu.cr3, cpu.rip, &mut b[..n]) && crate::emulate::is_stack_fault(&b[..n], cpu)
    }

    /// An `int n` that the CPU turned into #GP (gate DPL 0) or, under kvm_pvm, #UD: decode the
    /// instruction instead of trusting the error code (QEMU 7.2 TCG reports n*16+2).
    pub(super) fn soft_int_at(&self, cpu: &CpuState) -> Option<u8> {
        let mut b = [0u8; 2];
        (self.read_guest(cpu.cr3, cpu.rip, &mut b) && b[0] == 0xcd).then_some(b[1])
    }
    /// One entry into the guest until its next exit.
    fn run_once(&mut self, key: VcpuKey, c: &mut CpuState, budget_ns: u64) -> (Exit, u64) {
        self.switch_fpu(key);
        let mut loaded = core::mem::replace(&mut self.loaded, CpuLoaded::new());
        loaded.load(self, key, c);
        self.loaded = loaded;
        if c.cr3 != self.cur_cr3 {
            // SAFETY: every guest L4 carries the hypervisor slots (the core writes them).
            unsafe { cpu::write_cr3(c.cr3) };
            self.cur_cr3 = c.cr3;
        }
        if c.fs_base != self.fs {
            // SAFETY: FS_BASE takes any canonical value; the core checks canonicality.
            unsafe { cpu::wrmsr(MSR_FS_BASE, c.fs_base) };
            self.fs = c.fs_base;
        }
        if c.gs_base != self.gs {
            // SAFETY: as above.
            unsafe { cpu::wrmsr(MSR_GS_BASE, c.gs_base) };
            self.gs = c.gs_base;
        }
        let f = entry_frame(c);
        // The boot CPU's steal so far (KVM's steal time; None elsewhere).
        let steal0 = super::kvm::stolen(0);
        let t0 = cpu::rdtsc();
        if self.timer {
            timer::arm(t0.wrapping_add(budget_ns.max(1000)));
        }
        // SAFETY: the frame describes a ring-3 context (CS/SS RPL 3, IOPL 0); the entry code
        // returns here on the guest's next trap or syscall.
        let e: Frame = unsafe { *entry::xen_enter_guest(&f) };
        if self.timer {
            timer::arm(0);
        }
        let mut ran = cpu::rdtsc().wrapping_sub(t0).max(1);
        self.exits += 1;
        // The guest may have changed its FS/GS base itself: with FSGSBASE enabled in the CR4 it
        // runs under (kvm_pvm runs ring 3 on the host's CR4, where Linux enables it),
        // `wrfsbase`/`wrgsbase` work in ring 3. Read them back so the core's view, and the next
        // vCPU's, never inherit another guest's bases.
        let (fs, gs) = if self.bases_writable || self.loaded.cr4_fsgsbase {
            // SAFETY: architectural MSRs, readable in ring 0.
            unsafe { (cpu::rdmsr(MSR_FS_BASE), cpu::rdmsr(MSR_GS_BASE)) }
        } else {
            (self.fs, self.gs)
        };
        self.fs = fs;
        self.gs = gs;
        if e.cs & 3 == 0 {
            // The `iretq` into the guest faulted in ring 0 (see entry.rs): `c` still holds the
            // context the CPU refused. The core checks contexts before entry; this is the net.
            return (Exit::Fatal("the CPU refused to enter the guest's context"), ran);
        }
        c.fs_base = fs;
        c.gs_base = gs;
        let exit = if let Some(x) = self.decode_exit(c, &e) {
            x
        } else {
            // The APIC timer (end of the budget) or another interrupt while the guest ran.
            if e.vector == timer::TIMER_VECTOR && self.timer {
                timer::eoi();
                let late = ran.saturating_sub(budget_ns.max(1000));
                self.timer_exits += 1;
                self.late_sum += late;
                self.late_max = self.late_max.max(late);
                if self.late_samples.len() < 4096 {
                    self.late_samples.push(late);
                }
                // Lateness beyond STEAL_LATE is time the guest did not have: under emulation the
                // host took the CPU from QEMU (measured here: median 50-150 us, tail up to 0.7 s
                // on a loaded host, while the TSC runs on). As KVM's steal time, it is not
                // charged to the guest nor counted as virtual time; on hardware the timer is
                // microseconds late and this never applies.
                if steal0.is_none() && late > STEAL_LATE {
                    let steal = late - STEAL_LATE;
                    self.stolen += steal;
                    ran -= steal;
                }
            }
            Exit::Budget
        };
        // Under KVM, what the host says it took during the run, whatever ended it.
        if let (Some(s0), Some(s1)) = (steal0, super::kvm::stolen(0)) {
            let steal = s1.saturating_sub(s0).min(ran - 1);
            self.stolen += steal;
            ran -= steal;
        }
        (exit, ran)
    }

    /// The guest's registers from the exit frame `e` into `c`, and what the exit was; None for
    /// an interrupt (vector 32 and up: the timer, an IPI), which the caller acknowledges. One
    /// CPU's `run` and every CPU of the SMP loop (smp.rs) decode their exits with it.
    pub(super) fn decode_exit(&self, c: &mut CpuState, e: &Frame) -> Option<Exit> {
        c.r15 = e.r15;
        c.r14 = e.r14;
        c.r13 = e.r13;
        c.r12 = e.r12;
        c.r11 = e.r11;
        c.r10 = e.r10;
        c.r9 = e.r9;
        c.r8 = e.r8;
        c.rbp = e.rbp;
        c.rdi = e.rdi;
        c.rsi = e.rsi;
        c.rdx = e.rdx;
        c.rcx = e.rcx;
        c.rbx = e.rbx;
        c.rax = e.rax;
        c.rip = e.rip;
        c.rflags = e.rflags;
        c.rsp = e.rsp;
        // The selectors the guest was on (the syscall entry records Xen's flat ones, as Xen's
        // lstar_enter does): a guest may have moved to those of its own GDT.
        c.cs = e.cs as u16;
        c.ss = e.ss as u16;
        let mut v = e.vector;
        // Under kvm_pvm a ring-3 `syscall` does not reach ring 0: the CPU loads rcx/r11 and jumps
        // to LSTAR (or CSTAR) still in ring 3, which faults on fetching our entry point. That is
        // the guest's syscall all the same (Linux and XTF issue it themselves, with no hypercall
        // page): report it as the syscall entry would. A guest that jumps there by itself only
        // gets its own rcx/r11 taken as the return point, as after a syscall.
        if v == vector::PF as u64 && e.cs & 3 == 3 {
            let lstar = entry::xen_syscall_entry as *const () as u64;
            let cstar = entry::xen_syscall32_entry as *const () as u64;
            if e.rip == lstar || e.rip == cstar {
                c.rip = e.rcx;
                c.rflags = e.r11;
                c.cs = if e.rip == lstar { abi::FLAT_RING3_CS64 } else { abi::FLAT_RING3_CS32 };
                c.ss = abi::FLAT_RING3_SS64;
                v = SYSCALL_VECTOR;
            }
        }
        let exit = if v == SYSCALL_VECTOR {
            Exit::Gate
        } else if v == vector::DB as u64 {
            // As Xen's do_debug: DR6 read as early as possible, then reset to its default.
            Exit::Debug { dr6: cpu::take_dr6() }
        } else if v == vector::BP as u64 {
            Exit::SoftInt { vector: 3, len: 1 }
        } else if v == vector::GP as u64 && e.error & 2 != 0 {
            match self.soft_int_at(c) {
                Some(n) => {
                    c.rip = c.rip.wrapping_add(2);
                    Exit::SoftInt { vector: n, len: 2 }
                }
                None => Exit::Exception { vector: 13, error_code: Some(e.error as u32), cr2: 0 },
            }
        } else if v == vector::UD as u64 && self.soft_int_at(c).is_some() {
            let n = self.soft_int_at(c).unwrap_or(0);
            c.rip = c.rip.wrapping_add(2);
            Exit::SoftInt { vector: n, len: 2 }
        } else if v < 32 {
            let mut vec = v as u8;
            if vec == vector::GP && e.error == 0 && self.stack_fault_at(c) {
                // QEMU's TCG raises #GP(0) where hardware raises #SS(0) (emulate::is_stack_fault).
                vec = vector::SS;
            }
            let cr2 = if vec == vector::PF { cpu::read_cr2() } else { 0 };
            let ec = vector::has_error_code(vec).then_some(e.error as u32);
            Exit::Exception { vector: vec, error_code: ec, cr2 }
        } else {
            return None;
        };
        Some(exit)
    }

    /// Is this data-breakpoint #DB one QEMU TCG raised right after a `mov ss`/`pop ss` instead
    /// of after the next instruction (see `emulate::movss_breakpoint`)?
    fn movss_early(&self, c: &CpuState, dr6: u64) -> bool {
        let mut b = [0u8; 15];
        let mut n = 15;
        // Take as many bytes before rip as are mapped (the instruction may start a page earlier).
        while n > 0 && !self.read_guest(c.cr3, c.rip.wrapping_sub(n as u64), &mut b[15 - n..]) {
            n -= 1;
        }
        crate::emulate::movss_breakpoint(&b[15 - n..], c, &self.loaded.debug, dr6)
    }
}

impl Platform for BareMetal {
    fn memory(&mut self) -> &mut [u8] {
        self.mem
    }

    fn gate(&self) -> Gate {
        self.gate
    }

    fn vcpu_create(&mut self, _key: VcpuKey) -> Result<(), &'static str> {
        Ok(())
    }

    fn run(&mut self, key: VcpuKey, c: &mut CpuState, budget_ns: u64) -> (Exit, u64) {
        let (exit, mut ran) = self.run_once(key, c, budget_ns);
        let Exit::Debug { dr6 } = exit else { return (exit, ran) };
        if dr6 & 0xf == 0 || !self.movss_early(c, dr6) {
            return (exit, ran);
        }
        // QEMU TCG delivered a data breakpoint hit by `mov ss`/`pop ss` before the instruction
        // the shadow covers. Do what the CPU should: run that one instruction (TF), then report
        // the #DB after it; if the instruction left the guest instead (syscall, int, a fault),
        // the #DB belongs to hypervisor context, where Xen drops it (traps.c: do_debug).
        const TF: u64 = 1 << 8;
        let guest_tf = c.rflags & TF;
        let at = c.rip;
        c.rflags |= TF;
        let mut tries = 0;
        loop {
            let (e, r) = self.run_once(key, c, budget_ns);
            ran += r;
            tries += 1;
            c.rflags = (c.rflags & !TF) | guest_tf;
            match e {
                Exit::Debug { dr6: d } if d & crate::privop::dr::DR6_BS != 0 => {
                    let bs = if guest_tf != 0 { crate::privop::dr::DR6_BS } else { 0 };
                    return (Exit::Debug { dr6: (d & !crate::privop::dr::DR6_BS) | (dr6 & 0xf) | bs }, ran);
                }
                // An interrupt (the time budget) before the instruction ran: run it again.
                Exit::Budget if c.rip == at && tries < 8 => c.rflags |= TF,
                Exit::Gate => {
                    // syscall saved the flags (with our TF) in r11.
                    c.r11 = (c.r11 & !TF) | guest_tf;
                    self.db_dropped += 1;
                    return (e, ran);
                }
                _ => {
                    self.db_dropped += 1;
                    return (e, ran);
                }
            }
        }
    }

    fn set_debug_regs(&mut self, key: VcpuKey, regs: &DebugRegs) {
        self.debug.insert(key, *regs);
    }

    fn fsgsbase(&self) -> bool {
        self.fsgsbase_ok
    }

    fn set_fsgsbase(&mut self, key: VcpuKey, enabled: bool) {
        if enabled {
            self.fsgsbase_on.insert(key);
        } else {
            self.fsgsbase_on.remove(&key);
        }
    }

    fn vcpu_destroy(&mut self, key: VcpuKey) {
        if self.smp {
            // No CPU may still run a guest whose tables and frames are about to be freed.
            super::smp::kick_guests_and_wait();
        }
        self.fpu.remove(&key);
        self.debug.remove(&key);
        self.fsgsbase_on.remove(&key);
        if self.fpu_owner == Some(key) {
            self.fpu_owner = None;
        }
        // Its page tables are about to be freed: stop running on them.
        if self.cur_cr3 != self.boot_cr3 {
            // SAFETY: the boot tables map the hypervisor.
            unsafe { cpu::write_cr3(self.boot_cr3) };
            self.cur_cr3 = self.boot_cr3;
        }
    }

    fn flush_tlb(&mut self, _key: VcpuKey) {
        // Reload CR3 before the next run (a CR3 write flushes non-global entries).
        self.cur_cr3 = 0;
    }

    fn switch_tables(&mut self, _key: VcpuKey, cr3: u64) {
        // The hypervisor runs on the guest's tables (its slots are in every validated L4): move
        // to the vCPU's new base now, before the core may devalidate the one we are on. With
        // several CPUs the hypervisor stays on the boot tables (smp.rs).
        if self.cur_cr3 != cr3 && !self.smp {
            // SAFETY: `cr3` is the vCPU's base pointer, a validated L4 holding a type reference,
            // so it carries the hypervisor slots (the core writes them on validation).
            unsafe { cpu::write_cr3(cr3) };
            self.cur_cr3 = cr3;
        }
    }

    fn code_changed(&mut self, _first: u64, _len: u64) {}

    fn idle(&mut self, ns: u64) -> u64 {
        let ns = ns.min(1_000_000_000);
        let t0 = cpu::rdtsc();
        while cpu::rdtsc().wrapping_sub(t0) < ns {
            core::hint::spin_loop();
        }
        ns
    }

    fn trace(&mut self, line: &str) {
        cpu::debugcon(line.as_bytes());
        cpu::debugcon(b"\n");
    }

    /// The guest's `rdtsc` runs natively here (the image's virtual time counts TSC cycles as
    /// nanoseconds, and bench guests time hypercalls with it): vcpu_time_info's tsc_timestamp is
    /// the hardware TSC now.
    fn guest_tsc(&mut self, _now: u64) -> u64 {
        cpu::rdtsc()
    }

    fn console(&mut self, dom: DomId, _name: &str, bytes: &[u8]) {
        // With tracing on, console lines are in the trace (`dN console "..."`).
        if self.raw_console {
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                cpu::debugcon(alloc::format!("# console d{dom}: ").as_bytes());
                cpu::debugcon(line);
                cpu::debugcon(b"\n");
            }
        }
    }
}

/// The `iretq` frame that enters the guest at `c` (RPL 3 selectors, IOPL 0, IF set): one CPU's
/// `run` and every CPU of the SMP loop (smp.rs) enter guests with it.
pub(super) fn entry_frame(c: &CpuState) -> Frame {
    Frame {
        r15: c.r15,
        r14: c.r14,
        r13: c.r13,
        r12: c.r12,
        r11: c.r11,
        r10: c.r10,
        r9: c.r9,
        r8: c.r8,
        rbp: c.rbp,
        rdi: c.rdi,
        rsi: c.rsi,
        rdx: c.rdx,
        rcx: c.rcx,
        rbx: c.rbx,
        rax: c.rax,
        vector: 0,
        error: 0,
        rip: c.rip,
        cs: (c.cs | 3) as u64,
        rflags: (c.rflags & !0x3000) | 0x202,
        rsp: c.rsp,
        ss: (c.ss | 3) as u64,
    }
}
