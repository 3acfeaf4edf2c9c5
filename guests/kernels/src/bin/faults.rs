//! `faults`: takes and recovers from a series of faults/traps in a row, checking the vector, the
//! error code, the reported rip and (for #PF) cr2 from `vcpu_info[0].arch.cr2`.
//!
//! Every provoking instruction is written in asm between two labels: `8:` (the instruction) and
//! `9:` (the resume point). Their addresses are stored in FAULT_RIP / RESUME_RIP before the
//! instruction runs; the handler checks `frame.rip` (== FAULT_RIP for faults, == RESUME_RIP for
//! traps) and then resumes at RESUME_RIP. Any unexpected trap or mismatch prints a `FAIL ...` line
//! and crashes the domain. Output: one `fault ... recovered` line per fault, `cpuid: XenVMMXenVMM`,
//! and finally `faults: 12 recovered`.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use xenrt::{abi::*, mm::Page, println, traps::TrapFrame, StartInfo};

xenrt::entry!(main);

/// Canonical, unmapped (below the kernel area).
const UNMAPPED: u64 = 0x0000_4000_0000_0000;

static FAULT_RIP: AtomicU64 = AtomicU64::new(0);
static RESUME_RIP: AtomicU64 = AtomicU64::new(0);
/// Expected vector (u64::MAX: no trap expected).
static EXPECT_VECTOR: AtomicU64 = AtomicU64::new(u64::MAX);
/// 1: trap-style (rip after the instruction), 0: fault-style (rip at it).
static EXPECT_TRAP_STYLE: AtomicU64 = AtomicU64::new(0);
static HITS: AtomicU64 = AtomicU64::new(0);
static LAST_ERR: AtomicU64 = AtomicU64::new(0);
static LAST_CR2: AtomicU64 = AtomicU64::new(0);

/// Page remapped read-only for the write-protection #PF.
static RO_PAGE: Page = Page::new();

fn fail(what: core::fmt::Arguments) -> ! {
    println!("FAIL {}", what);
    xenrt::shutdown(SHUTDOWN_CRASH)
}

fn on_trap(f: &mut TrapFrame) {
    let want = EXPECT_VECTOR.load(SeqCst);
    if f.vector != want {
        fail(format_args!(
            "unexpected trap: vector {} err {:#x} rip {:#x} cr2 {:#x} (expected vector {})",
            f.vector,
            f.error_code,
            f.rip,
            xenrt::mm::vcpu0_cr2(),
            want as i64
        ));
    }
    let (fault_rip, resume) = (FAULT_RIP.load(SeqCst), RESUME_RIP.load(SeqCst));
    let want_rip = if EXPECT_TRAP_STYLE.load(SeqCst) != 0 { resume } else { fault_rip };
    if f.rip != want_rip {
        fail(format_args!("vector {}: rip {:#x}, expected {:#x}", f.vector, f.rip, want_rip));
    }
    // Xen clears the RPL bits of the saved CS when the guest kernel was interrupted
    // ("indicate kernel context to guest"); bits 32..39 carry the saved upcall mask.
    if f.cs & 0xfffc != FLAT_KERNEL_CS64 as u64 & 0xfffc {
        fail(format_args!("vector {}: cs {:#x}", f.vector, f.cs));
    }
    LAST_ERR.store(f.error_code, SeqCst);
    LAST_CR2.store(if f.vector == 14 { xenrt::mm::vcpu0_cr2() } else { 0 }, SeqCst);
    HITS.fetch_add(1, SeqCst);
    EXPECT_VECTOR.store(u64::MAX, SeqCst);
    f.rip = resume;
}

/// Runs `$insn` (AT&T syntax) at label 8 with `rcx = $arg`, resume label 9 right after it.
macro_rules! provoke {
    ($arg:expr, $($insn:literal),+) => {
        // SAFETY: the instruction faults/traps on purpose; the handler resumes at label 9 and
        // the trap path restores every register, so only the declared ones change.
        unsafe {
            core::arch::asm!(
                "lea 8f(%rip), %rax",
                "mov %rax, {f}(%rip)",
                "lea 9f(%rip), %rax",
                "mov %rax, {r}(%rip)",
                "xor %edx, %edx",
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

/// Arms the handler for `vector` and checks that exactly one trap was taken.
fn expect(vector: u64, trap_style: bool, name: &str, run: impl FnOnce()) -> (u64, u64) {
    let before = HITS.load(SeqCst);
    EXPECT_TRAP_STYLE.store(trap_style as u64, SeqCst);
    EXPECT_VECTOR.store(vector, SeqCst);
    run();
    if HITS.load(SeqCst) != before + 1 {
        fail(format_args!("{}: no trap taken", name));
    }
    (LAST_ERR.load(SeqCst), LAST_CR2.load(SeqCst))
}

fn page_fault_unmapped(tag: &str) {
    let (err, cr2) = expect(14, false, "#PF read", || provoke!(UNMAPPED, "mov (%rcx), %rax"));
    if cr2 != UNMAPPED || err & 3 != 0 {
        fail(format_args!("#PF read: cr2 {:#x} err {:#x}", cr2, err));
    }
    println!("fault #PF cr2={:#x} (read, not-present) recovered{}", cr2, tag);
}

fn main(_si: &'static StartInfo) -> ! {
    let rc = xenrt::mm::map_shared_info();
    if rc != 0 {
        fail(format_args!("map_shared_info: {}", rc));
    }
    let gates = [(0, 0), (3, 3), (6, 0), (13, 0), (14, 0), (0x80, 3), (0x81, 0)];
    let rc = xenrt::traps::install(&gates, on_trap);
    if rc != 0 {
        fail(format_args!("set_trap_table: {}", rc));
    }
    println!("faults: start");

    // (a) #DE: div by a zero register.
    expect(0, false, "#DE", || provoke!(0u64, "div %rcx"));
    println!("fault #DE recovered");

    // (b) #BP: int3 is a trap, rip already after it.
    expect(3, true, "#BP", || provoke!(0u64, "int3"));
    println!("fault #BP recovered");

    // (c) #UD: a plain ud2.
    expect(6, false, "#UD", || provoke!(0u64, "ud2"));
    println!("fault #UD recovered");

    // (d) #PF: load from an unmapped address.
    page_fault_unmapped("");

    // (e) #PF: store to a page remapped read-only (P|U, no RW).
    let ro = RO_PAGE.va();
    // SAFETY: RO_PAGE is used only by this test; it keeps its own frame, just without RW.
    let rc = unsafe { xenrt::hypercall::update_va_mapping(ro, (RO_PAGE.mfn() << 12) | PTE_P | PTE_U, UVMF_INVLPG) };
    if rc != 0 {
        fail(format_args!("update_va_mapping read-only: {}", rc));
    }
    let (err, cr2) = expect(14, false, "#PF write", || provoke!(ro, "movb $1, (%rcx)"));
    if cr2 != ro || err & 3 != 3 {
        fail(format_args!("#PF write: cr2 {:#x} err {:#x}", cr2, err));
    }
    println!("fault #PF cr2={:#x} (write, protection) recovered", cr2);

    // (f) #GP: hlt is privileged in ring 3.
    let (err, _) = expect(13, false, "#GP hlt", || provoke!(0u64, "hlt"));
    if err != 0 {
        fail(format_args!("#GP hlt: err {:#x}", err));
    }
    println!("fault #GP err={:#x} (hlt) recovered", err);

    // (f2) #GP: port I/O with the virtual IOPL at 0 (no physdev_op(set_iopl)): Xen emulates
    // `out` only with enough vIOPL, so the guest gets the #GP hardware raised.
    let (err, _) = expect(13, false, "#GP outb", || provoke!(0u64, "outb %al, $0x80"));
    if err != 0 {
        fail(format_args!("#GP outb: err {:#x}", err));
    }
    println!("fault #GP err={:#x} (outb) recovered", err);

    // (g) int $0x80 through a DPL-3 gate: trap-style, handler for vector 0x80.
    expect(0x80, true, "int $0x80", || provoke!(0u64, "int $0x80"));
    println!("fault int $0x80 recovered");

    // (h) int $0x81 through a DPL-0 gate: #GP with error code 0x81*8+2.
    let (err, _) = expect(13, false, "#GP int $0x81", || provoke!(0u64, "int $0x81"));
    if err != 0x81 * 8 + 2 {
        fail(format_args!("#GP int $0x81: err {:#x}, expected {:#x}", err, 0x81 * 8 + 2));
    }
    println!("fault #GP err={:#x} (int $0x81) recovered", err);

    // (i) forced-emulation CPUID (no trap expected).
    let [eax, ebx, ecx, edx] = xenrt::xen_cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&ecx.to_le_bytes());
    sig[8..12].copy_from_slice(&edx.to_le_bytes());
    let sig = core::str::from_utf8(&sig).unwrap_or("<non-utf8>");
    if sig != "XenVMMXenVMM" || eax < 0x4000_0002 {
        fail(format_args!("cpuid 0x40000000: eax {:#x} sig {:?}", eax, sig));
    }
    println!("cpuid: {}", sig);

    // Repeated identical faults.
    for i in 1..=3 {
        page_fault_unmapped(match i {
            1 => " (repeat 1)",
            2 => " (repeat 2)",
            _ => " (repeat 3)",
        });
    }

    println!("faults: {} recovered", HITS.load(SeqCst));
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
