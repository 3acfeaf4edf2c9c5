//! Exception/trap handling for a Xen PV64 guest.
//!
//! Xen delivers a trap on the current (kernel-mode) stack with the frame
//! `[rcx, r11, (error_code), rip, cs, rflags, rsp, ss]` at rsp. Each per-vector stub pops rcx/r11
//! back into their registers, pushes a fake error code (0) when the CPU has none, pushes the vector
//! and jumps to a common path that saves all GPRs into a [`TrapFrame`], calls the registered Rust
//! handler, restores the GPRs and returns through HYPERVISOR_iret: the stack is made to hold
//! `[flags=0, rip, cs, rflags, rsp, ss]` and the iret stub (page entry 23) is *jumped* to; it
//! pushes rcx, r11, rax and enters the hypervisor, which pops the whole iret_context.
//!
//! Stubs exist for vectors 0–31 and 0x80–0x83.

use crate::abi::{TrapInfo, FLAT_KERNEL_CS64};
use core::sync::atomic::{AtomicUsize, Ordering};

/// Saved state of the interrupted context; the handler may change any field (e.g. `rip`).
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    /// Bits 32-39 hold Xen's saved upcall mask; pass through unchanged.
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);
const _: () = assert!(core::mem::offset_of!(TrapFrame, vector) == 15 * 8);
const _: () = assert!(core::mem::offset_of!(TrapFrame, rip) == 17 * 8);

core::arch::global_asm!(
    r#"
    .pushsection .text.xenrt_traps, "ax", @progbits

    .macro XENRT_TRAP_STUB vec
    .balign 16
xenrt_trap_stub_\vec:
    popq %rcx
    popq %r11
    .if (\vec == 8) || (\vec == 10) || (\vec == 11) || (\vec == 12) || (\vec == 13) || (\vec == 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
    .else
    pushq $0                        /* no CPU error code: fake one */
    .endif
    pushq $\vec
    jmp xenrt_trap_common
    .endm

    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,128,129,130,131
    XENRT_TRAP_STUB \v
    .endr

    .balign 16
xenrt_trap_common:
    cld
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi                 /* &mut TrapFrame */
    movq %rsp, %rbx                 /* callee-saved copy */
    andq $-16, %rsp                 /* SysV alignment whatever the frame alignment was */
    call xenrt_trap_dispatch
    movq %rbx, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $8, %rsp                   /* drop vector */
    movq $0, (%rsp)                 /* error-code slot becomes iret_context.flags = 0 */
    /* stack: [flags, rip, cs, rflags, rsp, ss]; the stub pushes rcx, r11, rax */
    jmp hypercall_page + 23 * 32
    .popsection

    .pushsection .rodata.xenrt_trap_stubs, "a", @progbits
    .balign 8
    .globl xenrt_trap_stubs_lo
xenrt_trap_stubs_lo:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad xenrt_trap_stub_\v
    .endr
    .globl xenrt_trap_stubs_hi
xenrt_trap_stubs_hi:
    .irp v, 128,129,130,131
    .quad xenrt_trap_stub_\v
    .endr
    .popsection
    "#,
    options(att_syntax)
);

extern "C" {
    static xenrt_trap_stubs_lo: [u64; 32];
    static xenrt_trap_stubs_hi: [u64; 4];
}

/// Address of the entry stub for `vector`, if xenrt has one.
pub fn stub_address(vector: u8) -> Option<u64> {
    // SAFETY: the tables are immutable, fully initialised by the assembler/linker.
    unsafe {
        match vector {
            0..=31 => Some(xenrt_trap_stubs_lo[vector as usize]),
            0x80..=0x83 => Some(xenrt_trap_stubs_hi[(vector - 0x80) as usize]),
            _ => None,
        }
    }
}

/// The registered handler (a `fn(&mut TrapFrame)` stored as usize; 0 = none).
static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Trap-table flag: mask event delivery on entry.
pub const TI_MASK_EVENTS: u8 = 4;

/// Installs `handler` for every `(vector, dpl)` in `gates` (at most 63) with set_trap_table.
/// Returns the hypercall result. Panics for a vector without a stub.
pub fn install(gates: &[(u8, u8)], handler: fn(&mut TrapFrame)) -> i64 {
    assert!(gates.len() < 64, "too many gates");
    HANDLER.store(handler as usize, Ordering::SeqCst);
    let mut table = [TrapInfo::default(); 64]; // zero entry terminates the table
    for (slot, &(vector, dpl)) in table.iter_mut().zip(gates) {
        *slot = TrapInfo {
            vector,
            flags: (dpl & 3) | TI_MASK_EVENTS,
            cs: FLAT_KERNEL_CS64,
            address: stub_address(vector).expect("no xenrt stub for this vector"),
        };
    }
    // SAFETY: the table is terminated and every address is a stub in this file.
    unsafe { crate::hypercall::set_trap_table(table.as_ptr()) }
}

/// Called by `xenrt_trap_common` with the saved frame.
#[no_mangle]
extern "C" fn xenrt_trap_dispatch(frame: &mut TrapFrame) {
    let h = HANDLER.load(Ordering::SeqCst);
    if h == 0 {
        crate::console::console_io_fmt(format_args!(
            "xenrt: unhandled trap vector {} err {:#x} rip {:#x}\n",
            frame.vector, frame.error_code, frame.rip
        ));
        crate::hypercall::shutdown(crate::abi::SHUTDOWN_CRASH);
    }
    // SAFETY: HANDLER only ever holds a `fn(&mut TrapFrame)` stored by `install`.
    let f: fn(&mut TrapFrame) = unsafe { core::mem::transmute::<usize, fn(&mut TrapFrame)>(h) };
    f(frame);
}
