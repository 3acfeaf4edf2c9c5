//! `debugregs`: arms each kind of hardware breakpoint through Xen's PV interface and checks the
//! #DB it gets and the DR6 it reads back: set_debugreg/get_debugreg errnos, an instruction
//! breakpoint (a fault, resumed with RF), data breakpoints (write-only, read/write; lengths 1, 2,
//! 4, 8), an I/O breakpoint (CR4.DE, emulated `out`), single step (TF, DR6.BS) and a
//! data breakpoint hit by `mov ss`, held by the shadow over the next instruction.
//!
//! Each provoking instruction sits between labels `8:` and `9:`; the handler checks the vector
//! and rip (`9:` for traps, `8:` for the instruction breakpoint), records DR6 (read with `mov
//! %dr6`, emulated by the hypervisor) and resets it, as a debugger does. Output: one line per
//! case with the DR6 seen, then `debugregs: N checks passed`.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use xenrt::{abi::*, println, traps::TrapFrame, StartInfo};

xenrt::entry!(main);

// xen-public/xen.h
const HYPERVISOR_SET_DEBUGREG: usize = 8;
const HYPERVISOR_GET_DEBUGREG: usize = 9;
const HYPERVISOR_PHYSDEV_OP: usize = 33;
// xen-public/physdev.h
const PHYSDEVOP_SET_IOPL: u64 = 6;
// xen-public/errno.h
const EPERM: i64 = 1;
const ENODEV: i64 = 19;
const EINVAL: i64 = 22;

// XTF arch/x86/include/arch/x86-dbg-reg.h
const DR6_DEFAULT: u64 = 0xffff_0ff0;
const DR6_BS: u64 = 1 << 14;
const DR7_DEFAULT: u64 = 0x400;
const DR7_GD: u64 = 1 << 13;
const RF: u64 = 1 << 16;
const TF: u64 = 1 << 8;
const CR4_DE: u64 = 1 << 3;

/// DR7 bits for breakpoint `n`: local enable, R/W field, LEN field.
const fn bp(n: u32, rw: u64, len: u64) -> u64 {
    let len = match len {
        1 => 0,
        2 => 1,
        8 => 2,
        _ => 3,
    };
    (1 << (2 * n)) | (rw << (16 + 4 * n)) | (len << (18 + 4 * n))
}
const RW_X: u64 = 0;
const RW_W: u64 = 1;
const RW_IO: u64 = 2;
const RW_RW: u64 = 3;

#[repr(C, align(16))]
struct Data([u64; 4]);
static mut DATA: Data = Data([0; 4]);
static SS_SEL: AtomicU64 = AtomicU64::new(0);

static FAULT_RIP: AtomicU64 = AtomicU64::new(0);
static RESUME_RIP: AtomicU64 = AtomicU64::new(0);
/// 0: a trap (rip at `9:`), 1: a fault (rip at `8:`, resume there with RF).
static EXPECT_FAULT: AtomicU64 = AtomicU64::new(0);
static HITS: AtomicU64 = AtomicU64::new(0);
static LAST_DR6: AtomicU64 = AtomicU64::new(0);
static CHECKS: AtomicU64 = AtomicU64::new(0);

fn fail(what: core::fmt::Arguments) -> ! {
    println!("FAIL {}", what);
    xenrt::shutdown(SHUTDOWN_CRASH)
}

fn set_dr(reg: u64, v: u64) -> i64 {
    // SAFETY: a hypercall with plain integer arguments.
    unsafe { xenrt::hypercall::hypercall2(HYPERVISOR_SET_DEBUGREG, reg, v) }
}

fn get_dr(reg: u64) -> i64 {
    // SAFETY: as above.
    unsafe { xenrt::hypercall::hypercall1(HYPERVISOR_GET_DEBUGREG, reg) }
}

fn read_dr6() -> u64 {
    let v: u64;
    // SAFETY: privileged in ring 3, emulated by the hypervisor (Xen's x86emul_read_dr).
    unsafe { core::arch::asm!("mov %dr6, {}", out(reg) v, options(att_syntax, nostack)) };
    v
}

fn check(what: &str, got: i64, want: i64) {
    if got != want {
        fail(format_args!("{}: {} (expected {})", what, got, want));
    }
    CHECKS.fetch_add(1, SeqCst);
}

fn on_trap(f: &mut TrapFrame) {
    if f.vector != 1 {
        fail(format_args!("unexpected trap: vector {} err {:#x} rip {:#x}", f.vector, f.error_code, f.rip));
    }
    let fault = EXPECT_FAULT.load(SeqCst) != 0;
    let want = if fault { FAULT_RIP.load(SeqCst) } else { RESUME_RIP.load(SeqCst) };
    if f.rip != want {
        fail(format_args!("#DB at {:#x}, expected {:#x} (dr6 {:#x})", f.rip, want, read_dr6()));
    }
    LAST_DR6.store(read_dr6(), SeqCst);
    if set_dr(6, DR6_DEFAULT) != 0 {
        fail(format_args!("reset dr6"));
    }
    HITS.fetch_add(1, SeqCst);
    // An instruction breakpoint is a fault: resume at the instruction with RF so that it runs.
    // Single step: stop stepping.
    f.rflags = (f.rflags & !TF) | if fault { RF } else { 0 };
    EXPECT_FAULT.store(0, SeqCst);
}

/// Runs `$insn` at label 8 with `rcx = $arg`, `rax = 1`; label 9 right after it.
macro_rules! provoke {
    ($arg:expr, $($insn:literal),+) => {
        // SAFETY: the instruction touches only DATA or an I/O port, or traps on purpose; the
        // handler resumes and the trap path restores every register.
        unsafe {
            core::arch::asm!(
                "lea 8f(%rip), %rax",
                "mov %rax, {f}(%rip)",
                "lea 9f(%rip), %rax",
                "mov %rax, {r}(%rip)",
                "mov $1, %eax",
                "8:",
                $($insn,)+
                "9:",
                f = sym FAULT_RIP,
                r = sym RESUME_RIP,
                inout("rcx") $arg => _,
                out("rax") _,
                out("rdx") _,
                options(att_syntax),
            );
        }
    };
}

#[inline(never)]
fn nop_site() {
    provoke!(0u64, "nop");
}

/// Runs `run` with breakpoints `dr7` armed; expects `hits` #DBs, the last with `dr6`.
fn case(name: &str, dr7: u64, fault: bool, hits: u64, dr6: u64, run: impl FnOnce()) {
    check("set dr7", set_dr(7, DR7_DEFAULT | dr7), 0);
    let before = HITS.load(SeqCst);
    LAST_DR6.store(0, SeqCst);
    EXPECT_FAULT.store(fault as u64, SeqCst);
    run();
    check("clear dr7", set_dr(7, 0), 0);
    let n = HITS.load(SeqCst) - before;
    if n != hits {
        fail(format_args!("{}: {} #DB taken, expected {}", name, n, hits));
    }
    if hits > 0 {
        let got = LAST_DR6.load(SeqCst);
        if got != dr6 {
            fail(format_args!("{}: dr6 {:#x}, expected {:#x}", name, got, dr6));
        }
        println!("debugregs: {} dr6={:#x}", name, got);
    } else {
        println!("debugregs: {} no #DB", name);
    }
    CHECKS.fetch_add(1, SeqCst);
}

fn main(_si: &'static StartInfo) -> ! {
    if xenrt::traps::install(&[(1, 0)], on_trap) != 0 {
        fail(format_args!("set_trap_table"));
    }
    println!("debugregs: start");

    // Initial state and Xen's errnos (pv/misc-hypercalls.c: set_debugreg, do_get_debugreg).
    check("get dr6", get_dr(6), DR6_DEFAULT as i64);
    check("get dr7", get_dr(7), DR7_DEFAULT as i64);
    check("get dr8", get_dr(8), -ENODEV);
    check("set dr8", set_dr(8, 0), -ENODEV);
    check("set dr0 in Xen's range", set_dr(0, 0xffff_8000_0000_0000), -EPERM);
    check("set dr1 non-canonical", set_dr(1, 0x8000_0000_0000_0000), -EPERM);
    check("set dr7 upper half", set_dr(7, 1 << 32), -EINVAL);
    check("set dr6 upper half", set_dr(6, 1 << 32), -EINVAL);
    check("set dr7 GD", set_dr(7, DR7_GD), -EPERM);
    check("set dr7 IO without CR4.DE", set_dr(7, bp(0, RW_IO, 1)), -EPERM);
    check("dr7 unchanged", get_dr(7), DR7_DEFAULT as i64);
    check("set dr6 fixed bits", set_dr(6, 0), 0);
    check("dr6 reads its fixed bits", get_dr(6), DR6_DEFAULT as i64);
    println!("debugregs: set_debugreg/get_debugreg errnos as Xen");

    let data = core::ptr::addr_of_mut!(DATA) as u64;

    // Instruction breakpoint: a fault at the instruction; RF lets it run on the way back.
    // The breakpoint goes on the provoking instruction: a first call records its address, the
    // second runs it with DR0 armed there.
    nop_site();
    check("set dr0 insn", set_dr(0, FAULT_RIP.load(SeqCst)), 0);
    case("instruction breakpoint", bp(0, RW_X, 1), true, 1, DR6_DEFAULT | 1, nop_site);

    // Data breakpoints: a write-only one ignores reads.
    check("set dr1", set_dr(1, data), 0);
    case("write breakpoint (read)", bp(1, RW_W, 4), false, 0, 0, || provoke!(data, "mov (%rcx), %edx"));
    case("write breakpoint len 4", bp(1, RW_W, 4), false, 1, DR6_DEFAULT | 2, || provoke!(data, "movl $5, (%rcx)"));
    check("set dr2", set_dr(2, data + 8 + 2), 0);
    case("read/write breakpoint len 2", bp(2, RW_RW, 2), false, 1, DR6_DEFAULT | 4, || provoke!(data + 8, "mov (%rcx), %rdx"));
    case("len 2 misses the byte after", bp(2, RW_RW, 2), false, 0, 0, || provoke!(data + 8 + 4, "movb (%rcx), %dl"));
    check("set dr3", set_dr(3, data + 16), 0);
    case("read/write breakpoint len 8", bp(3, RW_RW, 8), false, 1, DR6_DEFAULT | 8, || provoke!(data + 16 + 7, "movb $1, (%rcx)"));
    case("len 1", bp(3, RW_RW, 1), false, 0, 0, || provoke!(data + 16 + 1, "movb (%rcx), %dl"));
    // (Two breakpoints matching one access set both status bits on hardware and in the
    // simulator; QEMU 7.2's TCG reports only the first, so this guest, which must give the same
    // trace everywhere, does not arm two at once.)

    // I/O breakpoint: needs CR4.DE, and an `out` the hypervisor emulates (virtual IOPL 1).
    let iopl: u32 = 1;
    // SAFETY: physdev_op reads one u32.
    let rc = unsafe { xenrt::hypercall::hypercall2(HYPERVISOR_PHYSDEV_OP, PHYSDEVOP_SET_IOPL, &iopl as *const u32 as u64) };
    check("set_iopl", rc, 0);
    let cr4: u64;
    // SAFETY: emulated control-register accesses (Xen's PV CR4 view).
    unsafe {
        core::arch::asm!("mov %cr4, {}", out(reg) cr4, options(att_syntax, nostack));
        core::arch::asm!("mov {}, %cr4", in(reg) cr4 | CR4_DE, options(att_syntax, nostack));
    }
    check("set dr3 port", set_dr(3, 0x80), 0);
    case("I/O breakpoint", bp(3, RW_IO, 1), false, 1, DR6_DEFAULT | 8, || provoke!(0u64, "outb %al, $0x80"));
    case("I/O breakpoint other port", bp(3, RW_IO, 1), false, 0, 0, || provoke!(0u64, "outb %al, $0x84"));
    check(
        "dr7 keeps the I/O enable",
        {
            set_dr(7, DR7_DEFAULT | bp(3, RW_IO, 1));
            let v = get_dr(7);
            set_dr(7, 0);
            v
        },
        (DR7_DEFAULT | bp(3, RW_IO, 1)) as i64,
    );
    // SAFETY: as above.
    unsafe { core::arch::asm!("mov {}, %cr4", in(reg) cr4, options(att_syntax, nostack)) };

    // Single step: TF set by popf traps after the next instruction, DR6.BS.
    case("single step", 0, false, 1, DR6_DEFAULT | DR6_BS, || provoke!(0u64, "pushfq", "orq $0x100, (%rsp)", "popfq", "nop"));

    // mov ss: the data breakpoint it hits is held over the next instruction.
    let ss: u64;
    // SAFETY: reads the stack selector.
    unsafe { core::arch::asm!("mov %ss, {:r}", out(reg) ss, options(att_syntax, nostack)) };
    SS_SEL.store(ss, SeqCst);
    let ss_addr = SS_SEL.as_ptr() as u64;
    check("set dr0 ss", set_dr(0, ss_addr), 0);
    case("mov ss shadow", bp(0, RW_RW, 2), false, 1, DR6_DEFAULT | 1, || provoke!(ss_addr, "mov (%rcx), %ss", "nop"));

    let checks = CHECKS.load(SeqCst);
    println!("debugregs: {} checks passed", checks);
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
