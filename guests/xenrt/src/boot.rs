//! Image-level assembly: the hypercall page, the Xen ELF notes, the boot stack and `_start`.
//!
//! Entry contract (Xen PV64): ring 3, events masked, rsi = VA of start_info, rsp = a stack the
//! builder set up (we switch to our own). `_start` zeroes .bss (defensively; the builder must do
//! it too), loads the boot stack and calls `xenrt_main(start_info)`.

core::arch::global_asm!(
    r#"
    /* ---- hypercall page: filled in by the hypervisor (XEN_ELFNOTE_HYPERCALL_PAGE) ---- */
    .pushsection .text.hypercall_page, "ax", @progbits
    .balign 4096
    .globl hypercall_page
    .type hypercall_page, @object
hypercall_page:
    .fill 4096, 1, 0xcc
    .size hypercall_page, 4096
    .popsection

    /* ---- entry point ---- */
    .pushsection .text.xenrt_start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cld
    movq %rsi, %r12                 /* start_info VA (callee-saved) */
    leaq __bss_start(%rip), %rdi
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    xorl %eax, %eax
    rep stosb                       /* zero .bss (includes the boot stack) */
    leaq xenrt_boot_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    movq %r12, %rdi
    call xenrt_main
1:  ud2
    jmp 1b
    .size _start, . - _start
    .popsection

    /* ---- boot stack: 16 KiB, page-aligned, in .bss ---- */
    .pushsection .bss.xenrt_boot_stack, "aw", @nobits
    .balign 4096
    .globl xenrt_boot_stack
xenrt_boot_stack:
    .skip 16384
    .globl xenrt_boot_stack_top
xenrt_boot_stack_top:
    .popsection

    /* ---- Xen ELF notes (name "Xen", xen/include/public/elfnote.h) ---- */
    .pushsection .note.Xen, "a", @note

    .balign 4                       /* XEN_ELFNOTE_XEN_VERSION = 5 */
    .long 4, 2f - 1f, 5
    .asciz "Xen"
1:  .asciz "xen-3.0"
2:  .balign 4

    .long 4, 2f - 1f, 6             /* XEN_ELFNOTE_GUEST_OS = 6 */
    .asciz "Xen"
1:  .asciz "xenolith-test"
2:  .balign 4

    .long 4, 2f - 1f, 8             /* XEN_ELFNOTE_LOADER = 8 */
    .asciz "Xen"
1:  .asciz "generic"
2:  .balign 4

    .long 4, 2f - 1f, 1             /* XEN_ELFNOTE_ENTRY = 1 */
    .asciz "Xen"
1:  .quad _start
2:  .balign 4

    .long 4, 2f - 1f, 2             /* XEN_ELFNOTE_HYPERCALL_PAGE = 2 */
    .asciz "Xen"
1:  .quad hypercall_page
2:  .balign 4

    .long 4, 2f - 1f, 3             /* XEN_ELFNOTE_VIRT_BASE = 3 */
    .asciz "Xen"
1:  .quad 0xffffffff80000000
2:  .balign 4

    .long 4, 2f - 1f, 4             /* XEN_ELFNOTE_PADDR_OFFSET = 4 */
    .asciz "Xen"
1:  .quad 0
2:  .balign 4

    .long 4, 2f - 1f, 10            /* XEN_ELFNOTE_FEATURES = 10 */
    .asciz "Xen"
1:  .asciz "!writable_page_tables"
2:  .balign 4

    .popsection
    "#,
    options(att_syntax)
);
