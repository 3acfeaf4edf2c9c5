//! Several physical CPUs on the image: finding the application processors (APs), starting them,
//! and giving each its own CPU state.
//!
//! **Finding the APs.** The image boots on QEMU's `microvm` with `acpi=off`, so there is no MADT;
//! `cargo xtask boot-hw` passes `-smp M` and the same count on the command line (`cpus=M`), and
//! the image starts that many CPUs. The start-up IPIs are broadcast ("all excluding self"
//! shorthand, Intel SDM vol. 3A 10.6.1 and the MP initialisation example of 8.4.4.1), so no APIC
//! ID has to be known in advance: each AP takes the next CPU number from a counter in the
//! trampoline and reports its APIC ID once in long mode. An AP beyond `cpus=M` (QEMU given more
//! CPUs than the command line says) finds no per-CPU block and stays halted.
//!
//! **INIT-SIPI-SIPI.** Through the x2APIC (ICR = MSR 0x830) where the boot CPU switched to it
//! (`cpu::timer_init`, KVM), else through the xAPIC's MMIO page at 0xFEE00000 (QEMU 7.2's TCG
//! has no x2APIC), mapped uncached in the boot page tables for the bring-up. INIT, 10 ms, SIPI,
//! 200 µs, SIPI (SDM 8.4.4.1), then up to ~1 s (TSC cycles) for the APs to check in.
//!
//! **Trampoline.** A real-mode stub copied to [`TRAMP`] (0x8000, below 1 MiB, 4 KiB aligned:
//! SIPI vector 0x08) loads its own GDT, enters protected mode, turns on PAE, EFER.LME/NXE/SCE
//! and paging on the static boot page tables (`boot.rs`, which identity-map the first GiB and
//! alias it at the direct map), far-jumps to 64-bit code, takes a CPU number with `lock xadd`,
//! loads that CPU's stack (filled in by the boot CPU) and calls [`xenolith_ap_entry`]. Frames
//! below the heap are never given to domains, so the stub's page stays the hypervisor's.
//!
//! **Per-CPU state.** Each CPU has a [`PerCpu`] block (allocated by the boot CPU before the
//! SIPIs, so APs never allocate concurrently): its own GDT (the hypervisor and flat ring-3
//! selectors as on the boot CPU, and its own TSS descriptor — a busy TSS cannot be shared), its
//! own TSS with its own ring-0, NMI/#DF/#MC (IST 1) and #DB (IST 2) stacks, the shared
//! read-only IDT, the syscall MSRs (STAR, LSTAR, CSTAR, FMASK as the boot CPU's), and the block's
//! address in GS base and KERNEL_GS_BASE (for `swapgs`, which a PV guest cannot execute, so the
//! MSR is the hypervisor's).
//!
//! What runs where today: the boot CPU runs the core's loop; the APs are brought up, counted and
//! reported, then parked (`cli; hlt`). Running vCPUs on them (one hypervisor lock, guests in
//! parallel) is not done yet: see the README.

use core::arch::asm;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use super::cpu;
use super::pvh::DIRECTMAP;

/// Most CPUs the image starts (the boot CPU included).
pub const MAX_CPUS: usize = 16;
/// Physical address of the real-mode trampoline (SIPI vector `TRAMP >> 12`).
pub const TRAMP: u64 = 0x8000;
const STACK_BYTES: usize = 64 * 1024;
const IST_BYTES: usize = 8 * 1024;

const GDT_ENTRIES: usize = (0xe050 >> 3) as usize;

/// The 64-bit TSS (SDM vol. 3A 7.7).
#[repr(C, packed)]
struct Tss {
    _r0: u32,
    rsp: [u64; 3],
    _r1: u64,
    ist: [u64; 7],
    _r2: u64,
    _r3: u16,
    iomap: u16,
}

/// One CPU's own state. GS base and KERNEL_GS_BASE point at it.
#[repr(C, align(16))]
pub struct PerCpu {
    /// Its own address (offset 0: `mov %gs:0, reg` gives the block).
    pub self_ptr: u64,
    /// CPU number: 0 is the boot CPU.
    pub index: u64,
    /// Local APIC ID.
    pub apic_id: u32,
    gdt: [u64; GDT_ENTRIES],
    tss: Tss,
    stack: [u8; STACK_BYTES],
    ist: [u8; IST_BYTES],
    db: [u8; IST_BYTES],
}

/// Per-CPU blocks by CPU number (null: not started).
static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
/// APs that reached long mode and loaded their own state.
static ONLINE: AtomicU32 = AtomicU32::new(0);
/// The boot CPU's IDTR base and syscall MSRs, copied by every AP.
static IDT_BASE: AtomicU64 = AtomicU64::new(0);
static X2APIC: AtomicU32 = AtomicU32::new(0);

const MSR_APIC_BASE: u32 = 0x1b;
const MSR_GS_BASE: u32 = 0xC000_0101;
const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;
const SYSCALL_MSRS: [u32; 4] = [0xC000_0081, 0xC000_0082, 0xC000_0083, 0xC000_0084];
static SYSCALL_VALUES: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// xAPIC MMIO page (SDM vol. 3A 10.4.1, the default IA32_APIC_BASE).
const XAPIC_BASE: u64 = 0xFEE0_0000;
const XAPIC_ID: u64 = 0x20;
const XAPIC_SVR: u64 = 0xf0;
const XAPIC_ICR_LO: u64 = 0x300;
const XAPIC_ICR_HI: u64 = 0x310;
const X2APIC_ID: u32 = 0x802;
const X2APIC_SVR: u32 = 0x80f;
const X2APIC_ICR: u32 = 0x830;
/// ICR: destination shorthand "all excluding self" (bits 19:18 = 11), level assert (bit 14),
/// delivery mode INIT (101b) / start-up (110b) in bits 10:8 (SDM vol. 3A 10.6.1).
const ICR_ALL_BUT_SELF: u32 = 0b11 << 18;
const ICR_ASSERT: u32 = 1 << 14;
const ICR_INIT: u32 = 0b101 << 8;
const ICR_STARTUP: u32 = 0b110 << 8;
const ICR_PENDING: u32 = 1 << 12;

core::arch::global_asm!(
    r#"
    .set TRAMP, 0x8000
    .pushsection .rodata.ap_tramp, "a"
    .balign 16
    .global ap_tramp_start
ap_tramp_start:
    .code16
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    // lgdtl ap_tramp_gdtr (66 0f 01 16 disp16; DS = CS = TRAMP >> 4)
    .byte 0x66, 0x0f, 0x01, 0x16
    .word ap_tramp_gdtr - ap_tramp_start
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    // ljmpl $0x08, $(TRAMP + ap_tramp_pm32)
    .byte 0x66, 0xea
    .long TRAMP + (ap_tramp_pm32 - ap_tramp_start)
    .word 0x08
    .code32
ap_tramp_pm32:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
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
    // ljmp $0x18, $(TRAMP + ap_tramp_lm64)
    .byte 0xea
    .long TRAMP + (ap_tramp_lm64 - ap_tramp_start)
    .word 0x18
    .code64
ap_tramp_lm64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $1, %eax
    lock xaddl %eax, TRAMP + (ap_tramp_counter - ap_tramp_start)
    // CPU number = 1 + the APs before this one.
    inc %eax
    cmp ${max}, %eax
    jae 2f
    mov %eax, %edi
    mov TRAMP + (ap_tramp_stacks - ap_tramp_start)(,%rdi,8), %rsp
    test %rsp, %rsp
    jz 2f
    movabs $xenolith_ap_entry, %rax
    call *%rax
2:  cli
    hlt
    jmp 2b
    .balign 8
ap_tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
ap_tramp_gdtr:
    .word 31
    .long TRAMP + (ap_tramp_gdt - ap_tramp_start)
    .balign 4
    .global ap_tramp_counter
ap_tramp_counter:
    .long 0
    .balign 8
    .global ap_tramp_stacks
ap_tramp_stacks:
    .fill {max}, 8, 0
    .global ap_tramp_end
ap_tramp_end:
    .popsection
"#,
    max = const MAX_CPUS,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_tramp_start: u8;
    static ap_tramp_counter: u8;
    static ap_tramp_stacks: u8;
    static ap_tramp_end: u8;
}

/// Is the local APIC in x2APIC mode (IA32_APIC_BASE.EXTD)?
fn x2apic() -> bool {
    // SAFETY: IA32_APIC_BASE exists on every CPU with a local APIC (all x86_64 ones).
    unsafe { cpu::rdmsr(MSR_APIC_BASE) & (1 << 10) != 0 }
}

fn xapic_write(reg: u64, v: u32) {
    // SAFETY: the xAPIC page is mapped uncached at DIRECTMAP + XAPIC_BASE while the boot page
    // tables are in use (`map_xapic`); `reg` is an architectural register offset.
    unsafe { core::ptr::write_volatile((DIRECTMAP + XAPIC_BASE + reg) as *mut u32, v) }
}

fn xapic_read(reg: u64) -> u32 {
    // SAFETY: as for `xapic_write`.
    unsafe { core::ptr::read_volatile((DIRECTMAP + XAPIC_BASE + reg) as *const u32) }
}

/// Map the xAPIC page (2 MiB page, PCD|PWT) in the boot tables, which alias the identity map
/// at the direct map (the same PDPT): L3 entry 3 (3..4 GiB) gets a PD of its own.
fn map_xapic() {
    #[repr(C, align(4096))]
    struct Pd([u64; 512]);
    static mut XAPIC_PD: Pd = Pd([0; 512]);
    // SAFETY: boot time, before any AP runs; the boot PDPT's entry 3 is unused (only the first
    // GiB is mapped); the new PD is a static that lives for ever.
    unsafe {
        let pd = core::ptr::addr_of_mut!(XAPIC_PD) as *mut u64;
        let slot = ((XAPIC_BASE >> 21) & 511) as usize;
        *pd.add(slot) = XAPIC_BASE | 0x83 | 0x18;
        let pdpt = (DIRECTMAP + (&super::boot::boot_pdpt as *const u8 as u64)) as *mut u64;
        *pdpt.add(3) = (pd as u64 - DIRECTMAP) | 0x3;
        cpu::write_cr3(cpu::read_cr3());
    }
}

fn wait_cycles(n: u64) {
    let t0 = cpu::rdtsc();
    while cpu::rdtsc().wrapping_sub(t0) < n {
        core::hint::spin_loop();
    }
}

/// Send an IPI with the "all excluding self" shorthand.
fn ipi_all_but_self(low: u32) {
    let v = low | ICR_ALL_BUT_SELF | ICR_ASSERT;
    if X2APIC.load(Ordering::Relaxed) != 0 {
        // SAFETY: x2APIC mode is on (checked at start_aps); the ICR is written as one MSR.
        unsafe { cpu::wrmsr(X2APIC_ICR, v as u64) };
    } else {
        xapic_write(XAPIC_ICR_HI, 0);
        xapic_write(XAPIC_ICR_LO, v);
        let mut spins = 0;
        while xapic_read(XAPIC_ICR_LO) & ICR_PENDING != 0 && spins < 1_000_000 {
            spins += 1;
            core::hint::spin_loop();
        }
    }
}

/// This CPU's APIC ID.
fn apic_id() -> u32 {
    if X2APIC.load(Ordering::Relaxed) != 0 {
        // SAFETY: x2APIC mode is on.
        unsafe { cpu::rdmsr(X2APIC_ID) as u32 }
    } else {
        xapic_read(XAPIC_ID) >> 24
    }
}

/// Software-enable the local APIC (SVR bit 8, spurious vector 0xff), in the mode the boot CPU
/// uses.
fn apic_enable() {
    if X2APIC.load(Ordering::Relaxed) != 0 {
        // SAFETY: the CPU has x2APIC (the boot CPU, the same model, switched to it); enabling
        // it and its SVR touches no memory.
        unsafe {
            cpu::wrmsr(MSR_APIC_BASE, cpu::rdmsr(MSR_APIC_BASE) | (1 << 11) | (1 << 10));
            cpu::wrmsr(X2APIC_SVR, 0x1ff);
        }
    } else {
        xapic_write(XAPIC_SVR, 0x1ff);
    }
}

/// Fill a CPU's GDT and TSS, then load GDT, TSS, IDT, syscall MSRs and GS bases.
///
/// # Safety
/// `pc` is this CPU's block, never freed and never used by another CPU; the IDT base and
/// syscall MSR values were published by the boot CPU.
unsafe fn load_cpu_state(pc: &mut PerCpu) {
    let me = pc as *mut PerCpu as u64;
    pc.self_ptr = me;
    pc.gdt = [0; GDT_ENTRIES];
    pc.gdt[(cpu::HV_CS >> 3) as usize] = 0x00af_9a00_0000_ffff;
    pc.gdt[(cpu::HV_DS >> 3) as usize] = 0x00cf_9200_0000_ffff;
    pc.gdt[0xe020 >> 3] = 0x00cf_fa00_0000_ffff; // FLAT_RING3_CS32
    pc.gdt[0xe028 >> 3] = 0x00cf_f200_0000_ffff; // FLAT_RING3_DS32 / SS
    pc.gdt[0xe030 >> 3] = 0x00af_fa00_0000_ffff; // FLAT_RING3_CS64
    pc.tss = Tss { _r0: 0, rsp: [0; 3], _r1: 0, ist: [0; 7], _r2: 0, _r3: 0, iomap: 104 };
    pc.tss.rsp[0] = pc.stack.as_ptr() as u64 + STACK_BYTES as u64;
    pc.tss.ist[0] = pc.ist.as_ptr() as u64 + IST_BYTES as u64;
    pc.tss.ist[1] = pc.db.as_ptr() as u64 + IST_BYTES as u64;
    let base = core::ptr::addr_of!(pc.tss) as u64;
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    let t = (cpu::TSS_SEL >> 3) as usize;
    pc.gdt[t] = (limit & 0xffff) | ((base & 0xff_ffff) << 16) | (0x89 << 40) | (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    pc.gdt[t + 1] = base >> 32;
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let gdtr = Pointer { limit: (GDT_ENTRIES * 8 - 1) as u16, base: pc.gdt.as_ptr() as u64 };
    let idtr = Pointer { limit: (256 * 16 - 1) as u16, base: IDT_BASE.load(Ordering::Acquire) };
    // SAFETY: per the contract; the selectors loaded match the descriptors written above.
    unsafe {
        asm!(
            "lgdt [{g}]",
            "push {cs}",
            "lea {t}, [rip + 2f]",
            "push {t}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "xor {t:e}, {t:e}",
            "mov fs, {t:x}",
            "mov gs, {t:x}",
            "ltr {tss:x}",
            "lidt [{i}]",
            g = in(reg) &gdtr,
            i = in(reg) &idtr,
            cs = in(reg) cpu::HV_CS as u64,
            ds = in(reg) cpu::HV_DS as u64,
            tss = in(reg) cpu::TSS_SEL as u64,
            t = out(reg) _,
        );
        for (m, v) in SYSCALL_MSRS.iter().zip(&SYSCALL_VALUES) {
            cpu::wrmsr(*m, v.load(Ordering::Acquire));
        }
        cpu::wrmsr(MSR_GS_BASE, me);
        cpu::wrmsr(MSR_KERNEL_GS_BASE, me);
    }
}

/// The first Rust code an AP runs (from the trampoline, on its own stack, boot page tables).
#[unsafe(no_mangle)]
extern "C" fn xenolith_ap_entry(index: u64) -> ! {
    let p = CPUS.get(index as usize).map_or(core::ptr::null_mut(), |c| c.load(Ordering::Acquire));
    if !p.is_null() {
        // SAFETY: the boot CPU allocated this block for CPU `index` alone and published the
        // IDT and MSR values before the SIPIs.
        unsafe {
            let pc = &mut *p;
            load_cpu_state(pc);
            apic_enable();
            pc.apic_id = apic_id();
        }
        ONLINE.fetch_add(1, Ordering::AcqRel);
    }
    park()
}

/// Stop this CPU: interrupts off, halted.
fn park() -> ! {
    loop {
        // SAFETY: halting with interrupts off; only an INIT (or NMI) gets the CPU out.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// A zeroed per-CPU block that lives for ever.
fn new_block() -> *mut PerCpu {
    let layout = core::alloc::Layout::new::<PerCpu>();
    // SAFETY: a non-zero-sized layout; all-zero bytes are a valid PerCpu (integers and arrays).
    let p = unsafe { alloc::alloc::alloc_zeroed(layout) } as *mut PerCpu;
    if p.is_null() {
        alloc::alloc::handle_alloc_error(layout);
    }
    p
}

/// What the bring-up found.
pub struct Started {
    /// CPUs online, the boot CPU included.
    pub online: usize,
    /// APIC IDs by CPU number.
    pub apic_ids: alloc::vec::Vec<u32>,
    pub x2apic: bool,
    /// TSC cycles from the INIT to the last AP checking in (or the timeout).
    pub cycles: u64,
}

/// Give the boot CPU its per-CPU block and start APs until `wanted` CPUs are online in all
/// (the boot CPU is CPU 0). Call on the boot page tables, after the boot information has been
/// read (the trampoline overwrites low memory) and before any guest exists.
pub fn start_aps(wanted: usize) -> Started {
    let wanted = wanted.clamp(1, MAX_CPUS);
    let xa = x2apic();
    X2APIC.store(xa as u32, Ordering::Relaxed);
    // The boot CPU keeps its tables (cpu::init); its block goes in KERNEL_GS_BASE.
    let bsp = new_block();
    // SAFETY: a fresh zeroed block; KERNEL_GS_BASE is the hypervisor's (see the module doc).
    unsafe {
        (*bsp).self_ptr = bsp as u64;
        cpu::wrmsr(MSR_KERNEL_GS_BASE, bsp as u64);
    }
    CPUS[0].store(bsp, Ordering::Release);
    if wanted == 1 {
        // One CPU: the local APIC stays as the timer code left it.
        return Started { online: 1, apic_ids: alloc::vec![0], x2apic: xa, cycles: 0 };
    }
    if !xa {
        map_xapic();
    }
    apic_enable();
    // SAFETY: the block is ours; APs read only their own.
    unsafe { (*bsp).apic_id = apic_id() };
    // SAFETY: IDTR and MSRs are readable in ring 0; the trampoline's bytes are copied to a page
    // below the heap that no domain ever gets; its stack table is filled before the SIPIs.
    unsafe {
        #[repr(C, packed)]
        struct Pointer {
            _limit: u16,
            base: u64,
        }
        let mut idtr = Pointer { _limit: 0, base: 0 };
        asm!("sidt [{}]", in(reg) &mut idtr, options(nostack));
        IDT_BASE.store(idtr.base, Ordering::Release);
        for (m, v) in SYSCALL_MSRS.iter().zip(&SYSCALL_VALUES) {
            v.store(cpu::rdmsr(*m), Ordering::Release);
        }
        let start = &ap_tramp_start as *const u8;
        let len = &ap_tramp_end as *const u8 as usize - start as usize;
        let dst = (DIRECTMAP + TRAMP) as *mut u8;
        core::ptr::copy_nonoverlapping(start, dst, len);
        let stacks = dst.add(&ap_tramp_stacks as *const u8 as usize - start as usize) as *mut u64;
        for i in 1..wanted {
            let pc = new_block();
            core::ptr::addr_of_mut!((*pc).index).write(i as u64);
            core::ptr::addr_of_mut!((*pc).apic_id).write(u32::MAX);
            CPUS[i].store(pc, Ordering::Release);
            // The AP runs on its ring-0 stack until it loads its TSS (then traps use it too;
            // nothing of the AP's start-up is live on it by then).
            stacks.add(i).write((*pc).stack.as_ptr() as u64 + STACK_BYTES as u64);
        }
        let counter = dst.add(&ap_tramp_counter as *const u8 as usize - start as usize) as *mut u32;
        counter.write_volatile(0);
    }
    let t0 = cpu::rdtsc();
    ipi_all_but_self(ICR_INIT);
    wait_cycles(10_000_000);
    ipi_all_but_self(ICR_STARTUP | (TRAMP >> 12) as u32);
    wait_cycles(200_000);
    if ONLINE.load(Ordering::Acquire) as usize + 1 < wanted {
        ipi_all_but_self(ICR_STARTUP | (TRAMP >> 12) as u32);
    }
    while (ONLINE.load(Ordering::Acquire) as usize) + 1 < wanted && cpu::rdtsc().wrapping_sub(t0) < 2_000_000_000 {
        core::hint::spin_loop();
    }
    let cycles = cpu::rdtsc().wrapping_sub(t0);
    let mut apic_ids = alloc::vec::Vec::new();
    for c in CPUS.iter().take(wanted) {
        let p = c.load(Ordering::Acquire);
        // SAFETY: blocks are never freed; an AP wrote its apic_id before counting itself online.
        let id = if p.is_null() { u32::MAX } else { unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*p).apic_id)) } };
        if id != u32::MAX {
            apic_ids.push(id);
        }
    }
    Started { online: ONLINE.load(Ordering::Acquire) as usize + 1, apic_ids, x2apic: xa, cycles }
}

/// CPUs online (the boot CPU included).
pub fn online() -> usize {
    ONLINE.load(Ordering::Acquire) as usize + 1
}
