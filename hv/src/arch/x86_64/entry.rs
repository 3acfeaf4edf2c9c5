//! Trap and syscall entry, and the switch into a guest and back.
//!
//! `enter_guest` saves the hypervisor's callee-saved registers and stack pointer, loads the
//! guest's registers and `iretq`s to ring 3. Any trap or `syscall` from ring 3 lands on the trap
//! stack (TSS.rsp0), pushes a [`Frame`], and jumps back to the saved hypervisor stack, so
//! `enter_guest` returns the exit frame. The hypervisor stack pointer and the syscall entry's
//! scratch slot are per CPU, reached through KERNEL_GS_BASE with `swapgs` (smp.rs: `PerCpu`). A trap taken in ring 0 is a
//! hypervisor bug: it is reported and the machine stops, with one exception: a fault on the
//! `iretq` that enters the guest (the CPU refused the guest's selectors or rip) returns from
//! `enter_guest` like an exit, with a ring-0 `cs` in the frame, so the platform can crash that
//! domain alone (Xen's entry code has the same fixup for its return to a PV guest).

/// Guest registers at an exit, in the order the entry code pushes them.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Frame {
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
    /// Vector, or [`SYSCALL_VECTOR`].
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(core::mem::offset_of!(Frame, rax) == 112);
const _: () = assert!(core::mem::offset_of!(Frame, cs) == 144);
const _: () = assert!(core::mem::size_of::<Frame>() == 176);

/// Pseudo-vector for an exit through `syscall`.
pub const SYSCALL_VECTOR: u64 = 256;

core::arch::global_asm!(
    r#"
    .pushsection .text.xen_entry, "ax"
    .balign 16
    .global xen_isr_table
xen_isr_table:
    .set i, 0
    .rept 256
    .balign 16
    .if (i == 8) || ((i >= 10) && (i <= 14)) || (i == 17) || (i == 21) || (i == 29) || (i == 30)
    .else
    pushq $0
    .endif
    pushq $i
    jmp xen_trap_common
    .set i, i + 1
    .endr

xen_trap_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    cld
    testb $3, 144(%rsp)
    jnz 3f
    lea xen_guest_iretq(%rip), %rax
    cmp %rax, 136(%rsp)
    jne 1f
    // Back to enter_guest's caller on this CPU's stack (per-CPU block, smp.rs, through
    // KERNEL_GS_BASE: the GS base is still the guest's), with the frame's address in rax.
3:  mov %rsp, %rax
    swapgs
    mov %gs:16, %rsp
    swapgs
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret
1:  cmpq $1, 120(%rsp)
    je 4f
    // An interrupt that woke an idle CPU halted in xen_idle_halt (smp.rs): return after the
    // `hlt` with interrupts off again; the caller acknowledges it.
    lea xen_idle_wake(%rip), %rax
    cmp %rax, 136(%rsp)
    je 5f
    lea xen_idle_hlt(%rip), %rax
    cmp %rax, 136(%rsp)
    jne 6f
5:  cmpq $32, 120(%rsp)
    jb 6f
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    andq $~0x200, 16(%rsp)
    iretq
6:
    mov %rsp, %rdi
    call xenolith_ring0_trap
2:  hlt
    jmp 2b

    // A #DB taken in hypervisor context (it comes on its own IST stack): a breakpoint held by
    // the guest's `mov ss`/`pop ss` shadow over a `syscall`, `int` or faulting instruction lands
    // on our entry code. As Xen's do_debug ("Hit #DB in Xen context", the XSA-260 fix): note it,
    // reset DR6 and carry on; the guest never sees it.
4:  incq XEN_DB_IN_XEN(%rip)
    mov $0xffff0ff0, %eax
    mov %rax, %dr6
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    // RF: an instruction breakpoint (a fault) on the instruction we return to is not taken
    // again, so none can livelock the hypervisor (Xen's do_debug clears DR7 for that case).
    orl $0x10000, 16(%rsp)
    iretq

    .global xen_syscall_entry
xen_syscall_entry:
    swapgs
    mov %rsp, %gs:24
    mov %gs:32, %rsp
    pushq $0xe02b
    pushq %gs:24
    swapgs
    pushq %r11
    pushq $0xe033
    pushq %rcx
    pushq $0
    pushq $256
    jmp xen_trap_common

    // SYSCALL from compatibility mode (MSR_CSTAR): as Xen's cstar_enter, the frame says
    // FLAT_USER_CS32 / FLAT_USER_SS32, so the core bounces to the syscall32 callback.
    .global xen_syscall32_entry
xen_syscall32_entry:
    swapgs
    mov %rsp, %gs:24
    mov %gs:32, %rsp
    pushq $0xe02b
    pushq %gs:24
    swapgs
    pushq %r11
    pushq $0xe023
    pushq %rcx
    pushq $0
    pushq $256
    jmp xen_trap_common

    // Halt until an interrupt (smp.rs idle); returns with interrupts off.
    .global xen_idle_halt
xen_idle_halt:
    sti
xen_idle_hlt:
    hlt
xen_idle_wake:
    cli
    ret

    .global xen_enter_guest
xen_enter_guest:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    swapgs
    mov %rsp, %gs:16
    swapgs
    pushq 168(%rdi)
    pushq 160(%rdi)
    pushq 152(%rdi)
    pushq 144(%rdi)
    pushq 136(%rdi)
    mov 0(%rdi), %r15
    mov 8(%rdi), %r14
    mov 16(%rdi), %r13
    mov 24(%rdi), %r12
    mov 32(%rdi), %r11
    mov 40(%rdi), %r10
    mov 48(%rdi), %r9
    mov 56(%rdi), %r8
    mov 64(%rdi), %rbp
    mov 80(%rdi), %rsi
    mov 88(%rdi), %rdx
    mov 96(%rdi), %rcx
    mov 104(%rdi), %rbx
    mov 112(%rdi), %rax
    mov 72(%rdi), %rdi
    .global xen_guest_iretq
xen_guest_iretq:
    iretq
    .popsection

    .pushsection .data.xen_entry, "aw"
    .balign 8
    .global XEN_DB_IN_XEN
XEN_DB_IN_XEN: .quad 0
    .popsection

    .pushsection .bss.xen_stacks, "aw", @nobits
    .balign 16
    .skip 16384
    .global xen_trap_stack_top
xen_trap_stack_top:
    .skip 8192
    .global xen_ist_stack_top
xen_ist_stack_top:
    .skip 4096
    .global xen_db_stack_top
xen_db_stack_top:
    .popsection
"#,
    options(att_syntax)
);

unsafe extern "C" {
    /// Enter the guest; returns the exit frame (on this CPU's trap stack).
    pub fn xen_enter_guest(frame: *const Frame) -> *const Frame;
    pub fn xen_syscall_entry();
    /// `sti; hlt; cli`: an interrupt taken at the `hlt` returns after it with interrupts off.
    pub fn xen_idle_halt();
    pub fn xen_syscall32_entry();
    pub static xen_isr_table: u8;
    pub static xen_trap_stack_top: u8;
    pub static xen_ist_stack_top: u8;
    pub static xen_db_stack_top: u8;
    /// #DBs taken (and dropped) in hypervisor context.
    pub static XEN_DB_IN_XEN: u64;
}
