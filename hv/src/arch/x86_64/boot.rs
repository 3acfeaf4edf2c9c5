//! PVH entry: 32-bit protected mode, paging off, `ebx` = hvm_start_info. Static boot page
//! tables (building them at run time is slow under an emulated ring 0) identity-map the first
//! GiB and alias it at the direct map (L4 slot 262, 0xFFFF830000000000), where the image runs;
//! the xAPIC page is mapped (uncached) at its own address in both.

/// From 32-bit protected mode (flat data segments loaded) to long mode on the boot page tables:
/// CR4.PAE|OSFXSR|OSXMMEXCPT (0x620), CR3 = `boot_pml4`, EFER.SCE|LME|NXE (0x901), CR0.PG|WP|NE|
/// MP|PE (0x80010023). The caller's far jump to a 64-bit code segment follows. Shared by the boot
/// CPU's PVH entry (below) and the APs' trampoline (smp.rs), as an AT&T-syntax text for
/// `global_asm!`.
macro_rules! enter_long_mode {
    () => {
        r#"
    mov %cr4, %eax
    or $0x620, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x901, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010023, %eax
    mov %eax, %cr0
"#
    };
}
pub(crate) use enter_long_mode;

core::arch::global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32
    .balign 4
    .popsection

    .pushsection .boot.text, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi
    lgdt boot_gdtr
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
"#,
    enter_long_mode!(),
    r#"
    ljmp $0x08, $boot64
    .code64
boot64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    movabs $xen_boot_stack_top, %rsp
    mov %esi, %edi
    movabs $xenolith_rust_entry, %rax
    call *%rax
1:  hlt
    jmp 1b
    .popsection

    .pushsection .boot.data, "aw"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdtr:
    .word 23
    .long boot_gdt
    .balign 4096
    .global boot_pml4
boot_pml4:
    .quad boot_pdpt + 0x3
    .fill 261, 8, 0
    .quad boot_pdpt + 0x3
    .fill 249, 8, 0
    .global boot_pdpt
boot_pdpt:
    .quad boot_pd + 0x3
    .fill 2, 8, 0
    .quad boot_pd_apic + 0x3
    .fill 508, 8, 0
    // The xAPIC's MMIO page (timer.rs: XAPIC_PHYS), one uncached 2 MiB page
    // (P|RW|PWT|PCD|PS = 0x9b) at 0xFEE00000 and its direct-map alias.
boot_pd_apic:
    .fill 0x1f7, 8, 0
    .quad 0xfee00000 + 0x9b
    .fill 8, 8, 0
    .global boot_pd
boot_pd:
    .set i, 0
    .rept 512
    .quad (i << 21) + 0x83
    .set i, i + 1
    .endr
    .popsection

    .pushsection .bss.xen_stacks, "aw", @nobits
    .balign 16
    .skip 65536
    .global xen_boot_stack_top
xen_boot_stack_top:
    .popsection
"#,
    options(att_syntax)
);

unsafe extern "C" {
    /// The boot L4 table (physical = its link address, below 4 GiB).
    pub static boot_pml4: u8;
    pub static boot_pdpt: u8;
    pub static boot_pd: u8;
}
