//! [`Platform`] on bare metal: guests run natively in ring 3 until a trap or the gate returns
//! control; time is the TSC (one cycle counted as one nanosecond of "virtual" time).

use super::cpu;
use super::entry::{self, Frame, SYSCALL_VECTOR};
use crate::abi::vector;
use crate::mm::paging::walk_slice;
use crate::mm::Mfn;
use crate::platform::{CpuState, Exit, Gate, Platform, VcpuKey};
use crate::DomId;

const MSR_FS_BASE: u32 = 0xC000_0100;
const MSR_GS_BASE: u32 = 0xC000_0101;

/// A vCPU's x87/SSE state, as `fxsave64` writes it.
#[repr(C, align(16))]
struct FxArea([u8; 512]);

impl FxArea {
    /// The state after reset/`fninit`: FCW 0x37f, MXCSR 0x1f80 (masked exceptions), all
    /// registers zero (Intel SDM vol. 1, 10.5.1, FXSAVE area layout).
    fn initial() -> alloc::boxed::Box<FxArea> {
        let mut a = alloc::boxed::Box::new(FxArea([0; 512]));
        a.0[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        a.0[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        a
    }
}

/// The bare-metal platform.
pub struct BareMetal {
    mem: &'static mut [u8],
    pub gate: Gate,
    boot_cr3: u64,
    cur_cr3: u64,
    fs: u64,
    gs: u64,
    /// Guest exits taken (for the summary).
    pub exits: u64,
    /// Tracing is off (`trace=0`): print console output itself, as `# console dN: ...` lines.
    pub raw_console: bool,
    /// The APIC timer preempts guests at the end of their budget.
    pub timer: bool,
    /// Each vCPU's x87/SSE registers while another vCPU owns the CPU's (the hypervisor is
    /// soft-float and never touches them, so they are switched only between vCPUs).
    fpu: alloc::collections::BTreeMap<VcpuKey, alloc::boxed::Box<FxArea>>,
    fpu_owner: Option<VcpuKey>,
    /// Ring 3 may change its own FS/GS base (`wrfsbase` works): read them back after each exit.
    /// True unless our CR4.FSGSBASE is clear and ring 3 runs on our CR4 (not under kvm_pvm,
    /// where it runs on the host's; `new` decides).
    pub bases_writable: bool,
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
            fpu: alloc::collections::BTreeMap::new(),
            fpu_owner: None,
            bases_writable: true,
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

    fn read_guest(&self, cr3: u64, va: u64, out: &mut [u8]) -> bool {
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
    fn stack_fault_at(&self, cpu: &CpuState) -> bool {
        let n = (4096 - (cpu.rip & 4095)).min(15) as usize;
        let mut b = [0u8; 15];
        self.read_guest(cpu.cr3, cpu.rip, &mut b[..n]) && crate::emulate::is_stack_fault(&b[..n], cpu)
    }

    /// An `int n` that the CPU turned into #GP (gate DPL 0) or, under kvm_pvm, #UD: decode the
    /// instruction instead of trusting the error code (QEMU 7.2 TCG reports n*16+2).
    fn soft_int_at(&self, cpu: &CpuState) -> Option<u8> {
        let mut b = [0u8; 2];
        (self.read_guest(cpu.cr3, cpu.rip, &mut b) && b[0] == 0xcd).then_some(b[1])
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

    fn vcpu_destroy(&mut self, key: VcpuKey) {
        self.fpu.remove(&key);
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

    fn run(&mut self, key: VcpuKey, c: &mut CpuState, budget_ns: u64) -> (Exit, u64) {
        self.switch_fpu(key);
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
        let f = Frame {
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
        };
        let t0 = cpu::rdtsc();
        if self.timer {
            cpu::timer_arm(t0.wrapping_add(budget_ns.max(1000)));
        }
        // SAFETY: the frame describes a ring-3 context (CS/SS RPL 3, IOPL 0); the entry code
        // returns here on the guest's next trap or syscall.
        let e: Frame = unsafe {
            entry::xen_enter_guest(&f);
            *entry::XEN_EXIT_FRAME
        };
        if self.timer {
            cpu::timer_arm(0);
        }
        let ran = cpu::rdtsc().wrapping_sub(t0).max(1);
        self.exits += 1;
        // The guest may have changed its FS/GS base itself: with FSGSBASE enabled in the CR4 it
        // runs under (kvm_pvm runs ring 3 on the host's CR4, where Linux enables it),
        // `wrfsbase`/`wrgsbase` work in ring 3. Read them back so the core's view, and the next
        // vCPU's, never inherit another guest's bases.
        let (fs, gs) = if self.bases_writable {
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
        c.fs_base = fs;
        c.gs_base = gs;
        let v = e.vector;
        let exit = if v == SYSCALL_VECTOR {
            Exit::Gate
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
            // The APIC timer (end of the budget) or another interrupt while the guest ran.
            if v == cpu::TIMER_VECTOR && self.timer {
                cpu::timer_eoi();
            }
            Exit::Budget
        };
        (exit, ran)
    }

    fn flush_tlb(&mut self, _key: VcpuKey) {
        // Reload CR3 before the next run (a CR3 write flushes non-global entries).
        self.cur_cr3 = 0;
    }

    fn switch_tables(&mut self, _key: VcpuKey, cr3: u64) {
        // The hypervisor runs on the guest's tables (its slots are in every validated L4): move
        // to the vCPU's new base now, before the core may devalidate the one we are on.
        if self.cur_cr3 != cr3 {
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
