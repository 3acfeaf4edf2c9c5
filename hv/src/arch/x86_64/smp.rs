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
//! (timer.rs, KVM), else through the xAPIC's MMIO page at 0xFEE00000 (QEMU 7.2's TCG
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
//! **Running.** Every CPU then runs the core's loop under one big hypervisor lock (see the
//! second half of this file and `hv/src/hv/smp.rs`): guests run in parallel, the hypervisor is
//! serialised. One CPU (`cpus=1`, the default) keeps the boot CPU's single-threaded loop.

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

use super::cpu::GDT_ENTRIES;

/// One CPU's own state. KERNEL_GS_BASE (and, on APs before any guest, GS base) points at it;
/// the entry code (entry.rs) reaches the first fields with `swapgs` at fixed offsets.
#[repr(C, align(16))]
pub struct PerCpu {
    /// Its own address (offset 0).
    pub self_ptr: u64,
    /// CPU number: 0 is the boot CPU (offset 8).
    pub index: u64,
    /// The hypervisor stack pointer while a guest runs (offset 16, `xen_enter_guest`).
    host_rsp: u64,
    /// The guest's stack pointer at a `syscall` (offset 24).
    scratch: u64,
    /// The stack the syscall entry switches to: the TSS's rsp0 (offset 32).
    syscall_stack: u64,
    /// Local APIC ID.
    pub apic_id: u32,
    gdt: [u64; GDT_ENTRIES],
    tss: cpu::Tss,
    /// Trap stack (TSS rsp0).
    stack: [u8; STACK_BYTES],
    /// The AP's own hypervisor stack (the trampoline's), apart from its trap stack.
    hv_stack: [u8; STACK_BYTES],
    ist: [u8; IST_BYTES],
    db: [u8; IST_BYTES],
}
const _: () = assert!(core::mem::offset_of!(PerCpu, host_rsp) == 16);
const _: () = assert!(core::mem::offset_of!(PerCpu, scratch) == 24);
const _: () = assert!(core::mem::offset_of!(PerCpu, syscall_stack) == 32);

/// The boot CPU's block (its GDT, TSS and stacks stay cpu.rs's and entry.rs's).
// SAFETY: all-zero bytes are a valid PerCpu (integers and arrays).
static mut BSP_BLOCK: PerCpu = unsafe { core::mem::zeroed() };

/// Give the boot CPU its per-CPU block (KERNEL_GS_BASE), before its first guest entry.
pub fn init_bsp() {
    // SAFETY: boot time, one CPU; the block is a static used only by the boot CPU.
    unsafe {
        let b = core::ptr::addr_of_mut!(BSP_BLOCK);
        (*b).self_ptr = b as u64;
        (*b).index = 0;
        (*b).syscall_stack = &super::entry::xen_trap_stack_top as *const u8 as u64;
        cpu::wrmsr(MSR_KERNEL_GS_BASE, b as u64);
        CPUS[0].store(b, Ordering::Release);
    }
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
"#,
    super::boot::enter_long_mode!(),
    r#"
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
    // tables are in use (boot.rs maps it, uncached); `reg` is an architectural register offset.
    unsafe { core::ptr::write_volatile((DIRECTMAP + XAPIC_BASE + reg) as *mut u32, v) }
}

fn xapic_read(reg: u64) -> u32 {
    // SAFETY: as for `xapic_write`.
    unsafe { core::ptr::read_volatile((DIRECTMAP + XAPIC_BASE + reg) as *const u32) }
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
    let top = |b: &[u8]| b.as_ptr() as u64 + b.len() as u64;
    pc.tss = cpu::Tss::new(top(&pc.stack), top(&pc.ist), top(&pc.db));
    pc.syscall_stack = top(&pc.stack);
    let tss = core::ptr::addr_of!(pc.tss);
    cpu::build_gdt(&mut pc.gdt, tss);
    // SAFETY: per the contract: the block (GDT, TSS, stacks) lives for ever and is this CPU's;
    // the boot CPU published the IDT's base.
    unsafe {
        cpu::load_gdt(&pc.gdt);
        cpu::load_idt(IDT_BASE.load(Ordering::Acquire));
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
    if p.is_null() {
        park();
    }
    // SAFETY: the boot CPU allocated this block for CPU `index` alone and published the IDT
    // and MSR values before the SIPIs.
    unsafe {
        let pc = &mut *p;
        load_cpu_state(pc);
        apic_enable();
        pc.apic_id = apic_id();
    }
    ONLINE.fetch_add(1, Ordering::AcqRel);
    let me = (index as usize).min(MAX_CPUS - 1);
    super::kvm::init_local(me);
    let (mut seen, mut timer_on) = (0, false);
    loop {
        // Wait for the boot CPU to lend the hypervisor out (`run`): halted, woken by its IPI.
        while GEN.load(Ordering::Acquire) == seen {
            idle_halt();
        }
        seen = GEN.load(Ordering::Acquire);
        if !timer_on && TIMER.load(Ordering::Acquire) {
            super::timer::init_local();
            timer_on = true;
        }
        cpu_loop(me);
        AP_DONE[me].store(seen, Ordering::Release);
    }
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
    let bsp = CPUS[0].load(Ordering::Acquire);
    if wanted == 1 || bsp.is_null() {
        // One CPU: the local APIC stays as the timer code left it.
        return Started { online: 1, apic_ids: alloc::vec![0], x2apic: xa, cycles: 0 };
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
            stacks.add(i).write((*pc).hv_stack.as_ptr() as u64 + STACK_BYTES as u64);
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

// ---------------------------------------------------------------------------------------------
// Running the core on every CPU: one big hypervisor lock.
//
// Each CPU loops: take the lock; `Hypervisor::smp_enter` (time, timers, the credit scheduler's
// decision for this pCPU, the vCPU's context copied out); load the vCPU's CPU state (x87/SSE,
// debug registers, CR4.FSGSBASE, its GDT entries into this CPU's GDT, CR3, FS/GS bases); mark
// the CPU as in that domain's guest; release the lock; run the guest; save its x87/SSE and
// FS/GS, return to the boot page tables, mark the CPU out of the guest; take the lock;
// `Hypervisor::smp_exit` (the exit handled). So guests run in parallel and the hypervisor is
// serialised.
//
// Memory safety across CPUs rests on two rules. (1) Out of a guest, a CPU is on the boot page
// tables: no guest table can be freed under it. (2) Before the hypervisor handles an exit of
// domain D, every other CPU running a vCPU of D is kicked out of its guest (an IPI) and waited
// for; before a vCPU is destroyed, every CPU in a guest is. So no CPU runs guest code on
// mappings the hypervisor is changing (an exit that is only an interrupt changes none and
// pauses nobody), and every entry reloads CR3 (a full TLB flush: the
// image uses no global pages), so no stale translation survives a change.
//
// An idle pCPU halts with its TSC-deadline timer armed for the next event (`sti; hlt`, the
// entry code returns after the `hlt` with interrupts off) and is woken by an IPI when the
// scheduler asks it to decide (credit's tickle) or a runnable vCPU waits on no pCPU. Without a
// timer (QEMU TCG has no x2APIC) it polls the clock instead, in stretches of at most 1 ms.

use super::entry::{self, Frame};
use super::platform::{BareMetal, CpuLoaded, FxArea, STEAL_LATE};
use crate::hv::{Hypervisor, SmpStep};
use crate::platform::{CpuState, Exit, VcpuKey};
use core::cell::UnsafeCell;
use core::sync::atomic::AtomicBool;

/// The vector of the hypervisor's own IPIs (kick out of a guest, wake from idle).
pub const IPI_VECTOR: u32 = 0xf0;
const XAPIC_EOI: u64 = 0xb0;
const X2APIC_EOI: u32 = 0x80b;

/// The hypervisor `run` lent the CPUs (null outside a run).
struct HvCell(UnsafeCell<*mut Hypervisor<BareMetal>>);
// SAFETY: the hypervisor is only reached through `hv_locked`, under LOCK, while `run` lends it.
unsafe impl Sync for HvCell {}
static HV: HvCell = HvCell(UnsafeCell::new(core::ptr::null_mut()));
static LOCK: AtomicBool = AtomicBool::new(false);
/// Which run (`run`) the CPUs are in: an AP joins each new one.
static GEN: AtomicU32 = AtomicU32::new(0);
/// The current run is over: every CPU leaves its loop.
static DONE: AtomicBool = AtomicBool::new(false);
/// Per AP: the last run it left the loop of.
static AP_DONE: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// TSC cycles the boot CPU spent in runs (all of them; the `# smp` line's total).
static WALL: AtomicU64 = AtomicU64::new(0);

/// What each CPU keeps loaded, kept from one run to the next (a scenario's steps are carried out
/// between runs): only CPU `q` touches `CTXS[q]`.
struct CtxCell(UnsafeCell<Option<CpuCtx>>);
// SAFETY: each cell is used by its own CPU only.
unsafe impl Sync for CtxCell {}
static CTXS: [CtxCell; MAX_CPUS] = [const { CtxCell(UnsafeCell::new(None)) }; MAX_CPUS];
static TIMER: AtomicBool = AtomicBool::new(false);
static END: AtomicU64 = AtomicU64::new(u64::MAX);
/// Where the core's clock stood when `run` started (`clock`).
static BASE: AtomicU64 = AtomicU64::new(0);
/// The latest value `clock` returned (it never goes back).
static LAST_CLOCK: AtomicU64 = AtomicU64::new(0);
/// Per CPU: its virtual clock, the TSC cycles it spent in a guest or idle (never the
/// hypervisor's own time). Outside such a stretch: the count | FROZEN; inside one: the TSC value
/// at which the count would have read 0 (the count is `rdtsc - value`). One word, so another CPU
/// reads it whole.
static VCLOCK: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(FROZEN) }; MAX_CPUS];
const FROZEN: u64 = 1 << 63;
/// Per CPU: the domain whose guest it runs (+1; 0: none).
static IN_GUEST: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Per CPU: the vCPU it runs in a guest (vcpu in bits 31:16, domain in 15:0).
static IN_VCPU: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Per CPU: idle (halted or polling).
static HALTED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per CPU: an IPI was sent since it last took the lock.
static KICKED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per CPU statistics: guest entries, entries while another CPU ran the same domain, guest time.
static ENTRIES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static PARALLEL: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static GUEST_CYCLES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// TSC cycles each CPU spent idle (no vCPU to run): neither guest nor hypervisor work.
static IDLE_CYCLES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// TSC cycles the timer was late beyond STEAL_LATE: taken by the host, counted nowhere.
static STOLEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Per CPU diagnostics printed in the `# smp` line (where the cycles go; kvm_pvm emulates the
/// image's ring 0): lock acquisitions, contended ones, spin iterations and TSC cycles waiting
/// for the lock; IPIs sent; cycles in pause_domain/kick_guests_and_wait; halts; cycles in
/// smp_enter, smp_exit, wake_others and load_vcpu.
static LOCK_ACQ: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static LOCK_CONT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static LOCK_SPINS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static LOCK_WAIT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static IPIS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static PAUSE_CYCLES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static HALTS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static ENTER_CYCLES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// TSC cycles a CPU waited for the others' clocks ([`keep_in_step`]).
static STEP_WAIT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// How far (virtual ns = TSC cycles) a CPU's clock may run ahead of the slowest other CPU's
/// before it waits for it: 1 ms, the simulator's quantum (it advances the pCPU furthest behind
/// by at most 1 ms).
const SKEW: u64 = 2_600_000;
/// The longest such wait (TSC cycles, 0.1 s here): a bound, so that no CPU can wedge another.
const SKEW_WAIT_MAX: u64 = 260_000_000;

/// Keep CPU `me`'s virtual clock within [`SKEW`] of the slowest other CPU's, as the simulator's
/// pCPUs are: wait (the clock stopped, outside the lock) while it is further ahead. A CPU's clock
/// runs only while it runs a guest or idles; on a loaded host QEMU's thread for one CPU may wait
/// for a host core while another's runs, and without this the guests of the CPU that ran got
/// the others' share (credit_smp_steps under KVM with the host's 2 cores oversubscribed: a 78.7 %
/// for 88.9, c 72.1 for 63.9).
fn keep_in_step(me: usize) {
    let n = online().min(MAX_CPUS);
    if n < 2 {
        return;
    }
    let t0 = cpu::rdtsc();
    loop {
        let t = cpu::rdtsc();
        let mine = vclock_of(me, t);
        let slowest = (0..n).filter(|&q| q != me).map(|q| vclock_of(q, t)).min().unwrap_or(mine);
        if mine <= slowest.saturating_add(SKEW) || DONE.load(Ordering::Acquire) || t.wrapping_sub(t0) > SKEW_WAIT_MAX {
            STEP_WAIT[me].fetch_add(t.wrapping_sub(t0), Ordering::Relaxed);
            return;
        }
        core::hint::spin_loop();
    }
}
static EXIT_CYCLES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static WAKE_CYCLES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static LOAD_CYCLES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// This CPU's number (KERNEL_GS_BASE's block, or GS base before swapgs: both point at it out of a guest).
fn me_index() -> usize {
    // SAFETY: KERNEL_GS_BASE holds this CPU's PerCpu block on every CPU (init_bsp, load_cpu_state).
    let p = unsafe { cpu::rdmsr(MSR_KERNEL_GS_BASE) } as *const PerCpu;
    if p.is_null() {
        return 0;
    }
    // SAFETY: blocks live for ever.
    (unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*p).index)) } as usize).min(MAX_CPUS - 1)
}

fn lock() {
    let me = me_index();
    LOCK_ACQ[me].fetch_add(1, Ordering::Relaxed);
    if LOCK.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
        return;
    }
    let t0 = cpu::rdtsc();
    LOCK_CONT[me].fetch_add(1, Ordering::Relaxed);
    let mut spins = 0u64;
    while LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        while LOCK.load(Ordering::Relaxed) {
            spins += 1;
            core::hint::spin_loop();
        }
    }
    LOCK_SPINS[me].fetch_add(spins, Ordering::Relaxed);
    LOCK_WAIT[me].fetch_add(cpu::rdtsc().wrapping_sub(t0), Ordering::Relaxed);
}

fn unlock() {
    LOCK.store(false, Ordering::Release);
}

/// The hypervisor, for the lock holder.
///
/// # Safety
/// The caller holds LOCK and drops the reference before releasing it.
#[allow(clippy::mut_from_ref)]
unsafe fn hv_locked() -> &'static mut Hypervisor<BareMetal> {
    // SAFETY: per the contract; `run` stored it before any CPU looks and clears it, under
    // the lock, only after every CPU has left its loop.
    match unsafe { (*HV.0.get()).as_mut() } {
        Some(h) => h,
        None => park(),
    }
}

fn eoi() {
    if X2APIC.load(Ordering::Relaxed) != 0 {
        // SAFETY: x2APIC mode is on; EOI takes 0.
        unsafe { cpu::wrmsr(X2APIC_EOI, 0) };
    } else {
        xapic_write(XAPIC_EOI, 0);
    }
}

/// Send the hypervisor's IPI to CPU `q` (fixed delivery, physical destination). Called on the
/// boot page tables (the xAPIC page is mapped there).
fn send_ipi(q: usize) {
    let p = CPUS.get(q).map_or(core::ptr::null_mut(), |c| c.load(Ordering::Acquire));
    if p.is_null() {
        return;
    }
    // SAFETY: blocks are never freed; apic_id was written before the CPU counted itself online.
    let dest = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*p).apic_id)) };
    IPIS[me_index()].fetch_add(1, Ordering::Relaxed);
    KICKED[q].store(true, Ordering::Release);
    if X2APIC.load(Ordering::Relaxed) != 0 {
        // SAFETY: x2APIC ICR: destination in bits 63:32, fixed delivery of IPI_VECTOR.
        unsafe { cpu::wrmsr(X2APIC_ICR, ((dest as u64) << 32) | (IPI_VECTOR | ICR_ASSERT) as u64) };
    } else {
        xapic_write(XAPIC_ICR_HI, dest << 24);
        xapic_write(XAPIC_ICR_LO, IPI_VECTOR | ICR_ASSERT);
        let mut spins = 0;
        while xapic_read(XAPIC_ICR_LO) & ICR_PENDING != 0 && spins < 1_000_000 {
            spins += 1;
            core::hint::spin_loop();
        }
    }
}

/// `sti; hlt` until an interrupt, then acknowledge it.
fn idle_halt() {
    HALTS[me_index()].fetch_add(1, Ordering::Relaxed);
    // SAFETY: the entry code returns from an interrupt taken at this `hlt` with interrupts off.
    unsafe { entry::xen_idle_halt() };
    eoi();
}

/// Kick every other CPU running a guest of domain `dom` out of it and wait until it is out
/// (under the lock; they wait for the lock after leaving the guest).
fn pause_domain(me: usize, dom: u32) {
    let t0 = cpu::rdtsc();
    pause_domain_inner(me, dom);
    PAUSE_CYCLES[me].fetch_add(cpu::rdtsc().wrapping_sub(t0), Ordering::Relaxed);
}

fn pause_domain_inner(me: usize, dom: u32) {
    let n = online();
    for q in (0..n).filter(|&q| q != me) {
        if IN_GUEST[q].load(Ordering::Acquire) == dom + 1 {
            send_ipi(q);
        }
    }
    for q in (0..n).filter(|&q| q != me) {
        while IN_GUEST[q].load(Ordering::Acquire) == dom + 1 {
            core::hint::spin_loop();
        }
    }
}

/// Kick every CPU in a guest out of it and wait (BareMetal::vcpu_destroy, under the lock).
pub fn kick_guests_and_wait() {
    let t0 = cpu::rdtsc();
    kick_guests_and_wait_inner();
    PAUSE_CYCLES[me_index()].fetch_add(cpu::rdtsc().wrapping_sub(t0), Ordering::Relaxed);
}

fn kick_guests_and_wait_inner() {
    let n = online();
    for q in 0..n {
        if IN_GUEST[q].load(Ordering::Acquire) != 0 {
            send_ipi(q);
        }
    }
    for q in 0..n {
        while IN_GUEST[q].load(Ordering::Acquire) != 0 {
            core::hint::spin_loop();
        }
    }
}

/// Under the lock: IPI the CPUs the scheduler asked to decide again, and the idle ones when a
/// runnable vCPU is on no pCPU.
fn wake_others(hv: &mut Hypervisor<BareMetal>, me: usize) {
    let t0 = cpu::rdtsc();
    wake_others_inner(hv, me);
    WAKE_CYCLES[me].fetch_add(cpu::rdtsc().wrapping_sub(t0), Ordering::Relaxed);
}

fn wake_others_inner(hv: &mut Hypervisor<BareMetal>, me: usize) {
    let n = online();
    let mut want = [false; MAX_CPUS];
    for q in hv.smp_resched().filter(|&q| q != me && q < n) {
        want[q] = HALTED[q].load(Ordering::Acquire) || IN_GUEST[q].load(Ordering::Acquire) != 0;
    }
    if (0..n).any(|q| q != me && HALTED[q].load(Ordering::Acquire)) && hv.smp_work_waiting() {
        for q in (0..n).filter(|&q| q != me) {
            want[q] |= HALTED[q].load(Ordering::Acquire);
        }
    }
    // A vCPU running elsewhere with an upcall now due sees it only at its next entry; one that
    // may no longer run (paused, shut down, taken down) leaves its CPU at once.
    for q in 0..n {
        if q != me && !want[q] && IN_GUEST[q].load(Ordering::Acquire) != 0 {
            let v = IN_VCPU[q].load(Ordering::Acquire);
            let (d, vi) = ((v & 0xffff) as crate::DomId, v >> 16);
            want[q] = !hv.smp_may_run(d, vi) || hv.smp_upcall_waiting(d, vi);
        }
    }
    for q in 0..n {
        if want[q] && !KICKED[q].load(Ordering::Acquire) {
            send_ipi(q);
        }
    }
}

/// What one CPU keeps loaded for the vCPUs it runs.
struct CpuCtx {
    on_cpu: Option<(crate::DomId, u32)>,
    loaded: CpuLoaded,
}

const MSR_FS_BASE: u32 = 0xC000_0100;

/// Under the lock: load `key`'s state into this CPU; returns its x87/SSE save area.
fn load_vcpu(plat: &mut BareMetal, ctx: &mut CpuCtx, key: VcpuKey, c: &CpuState) -> *mut FxArea {
    let area: *mut FxArea = &mut **plat.fpu.entry(key).or_insert_with(FxArea::initial);
    // SAFETY: a 512-byte, 16-aligned area fxsave64 wrote or the architectural initial state.
    unsafe { asm!("fxrstor64 [{}]", in(reg) (*area).0.as_ptr(), options(nostack)) };
    ctx.loaded.load(plat, key, c);
    area
}

fn frame_of(c: &CpuState) -> Frame {
    super::platform::entry_frame(c)
}

/// Under the lock: the exit `e` into `c` and what it was (BareMetal::decode_exit, as one CPU's
/// `run` decodes it).
fn decode(plat: &mut BareMetal, c: &mut CpuState, e: &Frame) -> Exit {
    plat.exits += 1;
    if e.cs & 3 == 0 {
        return Exit::Fatal("the CPU refused to enter the guest's context");
    }
    plat.decode_exit(c, e).unwrap_or_else(|| {
        // The timer (end of the budget), our IPI, or another interrupt.
        eoi();
        Exit::Budget
    })
}

/// CPU `me` starts a stretch its virtual clock counts (a guest run or idling) at TSC `t`.
fn vclock_start(me: usize, t: u64) {
    let v = VCLOCK[me].load(Ordering::Relaxed);
    if v & FROZEN != 0 {
        VCLOCK[me].store(t.wrapping_sub(v & !FROZEN) & !FROZEN, Ordering::Release);
    }
}

/// CPU `me` ends that stretch at TSC `t`.
fn vclock_stop(me: usize, t: u64) {
    let v = VCLOCK[me].load(Ordering::Relaxed);
    if v & FROZEN == 0 {
        VCLOCK[me].store(t.wrapping_sub(v) & !FROZEN | FROZEN, Ordering::Release);
    }
}

/// CPU `q`'s virtual clock at TSC `t`.
fn vclock_of(q: usize, t: u64) -> u64 {
    let v = VCLOCK[q].load(Ordering::Acquire);
    if v & FROZEN != 0 {
        v & !FROZEN
    } else {
        t.saturating_sub(v) & !FROZEN
    }
}

/// The core's clock on several CPUs: the mean of the CPUs' virtual clocks (guest and idle
/// time, one TSC cycle counted as one ns), from where the core's clock stood when `run`
/// started. As one CPU's clock (`BareMetal::run` counts only guest and idle time), it leaves
/// the hypervisor's own time out: under kvm_pvm, which emulates ring 0 at ~1000 cycles an
/// instruction, a TSC clock let the hypervisor's time fill the scheduler's ticks, so credit
/// accounting fell due at nearly every entry and the CPUs spent 90 % in the hypervisor. The mean
/// of monotonic counts is monotonic; `LAST_CLOCK` also absorbs the TSCs' skew between CPUs.
fn clock() -> u64 {
    let t = cpu::rdtsc();
    let n = online().clamp(1, MAX_CPUS);
    let sum: u64 = (0..n).map(|q| vclock_of(q, t)).sum();
    let c = BASE.load(Ordering::Relaxed) + sum / n as u64;
    LAST_CLOCK.fetch_max(c, Ordering::AcqRel).max(c)
}

/// Idle until `until` (the core's clock) or an IPI.
fn idle(me: usize, until: u64) {
    let t0 = cpu::rdtsc();
    vclock_start(me, t0);
    idle_until(me, until);
    let t1 = cpu::rdtsc();
    vclock_stop(me, t1);
    IDLE_CYCLES[me].fetch_add(t1.wrapping_sub(t0), Ordering::Relaxed);
}

fn idle_until(me: usize, until: u64) {
    let now = clock();
    if until <= now {
        return;
    }
    if TIMER.load(Ordering::Relaxed) {
        if !KICKED[me].load(Ordering::Acquire) {
            // The mean clock advances at most as fast as this CPU's TSC: wake at the earliest
            // moment it can reach `until`, and look again.
            super::timer::arm(cpu::rdtsc().wrapping_add((until - now).min(50_000_000)));
            idle_halt();
            super::timer::arm(0);
        }
    } else {
        let stop = until.min(now + 1_000_000);
        while clock() < stop && !KICKED[me].load(Ordering::Acquire) && !DONE.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
}

/// One CPU's share of the loop, until the run is done.
fn cpu_loop(me: usize) {
    // SAFETY: CTXS[me] is this CPU's alone.
    let ctx = unsafe { &mut *CTXS[me].0.get() }.get_or_insert_with(|| CpuCtx { on_cpu: None, loaded: CpuLoaded::new() });
    loop {
        if DONE.load(Ordering::Acquire) {
            return;
        }
        keep_in_step(me);
        lock();
        KICKED[me].store(false, Ordering::Release);
        // SAFETY: under the lock; the reference is not used after the unlock below.
        let hv = unsafe { hv_locked() };
        let now = clock();
        if DONE.load(Ordering::Acquire) {
            unlock();
            return;
        }
        if !hv.any_running() || now >= END.load(Ordering::Relaxed) {
            DONE.store(true, Ordering::Release);
            for q in (0..online()).filter(|&q| q != me) {
                send_ipi(q);
            }
            unlock();
            return;
        }
        let t_enter = cpu::rdtsc();
        let step = hv.smp_enter(me, now, &mut ctx.on_cpu);
        ENTER_CYCLES[me].fetch_add(cpu::rdtsc().wrapping_sub(t_enter), Ordering::Relaxed);
        match step {
            SmpStep::Idle { until } => {
                HALTED[me].store(true, Ordering::Release);
                wake_others(hv, me);
                unlock();
                idle(me, until);
                HALTED[me].store(false, Ordering::Release);
            }
            SmpStep::Run(e) => {
                let t_load = cpu::rdtsc();
                let area = load_vcpu(&mut hv.platform, ctx, e.key, &e.cpu);
                LOAD_CYCLES[me].fetch_add(cpu::rdtsc().wrapping_sub(t_load), Ordering::Relaxed);
                let dom = e.dom as u32;
                if (0..online()).any(|q| q != me && IN_GUEST[q].load(Ordering::Acquire) == dom + 1) {
                    PARALLEL[me].fetch_add(1, Ordering::Relaxed);
                }
                wake_others(hv, me);
                let boot_cr3 = hv.platform.boot_cr3;
                let mut c = e.cpu;
                IN_VCPU[me].store((e.vcpu << 16) | (e.dom as u32 & 0xffff), Ordering::Release);
                let (fr, mut ran) = run_guest(me, dom, area, &mut c, e.budget, boot_cr3);
                // SAFETY: run_guest returns with the lock held again.
                let hv = unsafe { hv_locked() };
                let mut exit = decode(&mut hv.platform, &mut c, &fr);
                pause_for(me, dom, &exit);
                if let Exit::Debug { dr6 } = exit {
                    if dr6 & 0xf != 0 && movss_early(&hv.platform, ctx, &c, dr6) {
                        exit = movss_step(me, dom, area, &mut c, e.budget, boot_cr3, dr6, &mut ran);
                    }
                }
                // SAFETY: under the lock (movss_step returns with it held too).
                let hv = unsafe { hv_locked() };
                let t_exit = cpu::rdtsc();
                hv.smp_exit(me, e, c, exit, ran, clock(), &mut ctx.on_cpu);
                EXIT_CYCLES[me].fetch_add(cpu::rdtsc().wrapping_sub(t_exit), Ordering::Relaxed);
                wake_others(hv, me);
                unlock();
            }
        }
    }
}

/// Called with the lock held and the vCPU's state loaded: mark this CPU in `dom`'s guest, load
/// the vCPU's tables and FS/GS bases, release the lock, run the guest until its next exit, save
/// its x87/SSE registers and bases into `area` and `c`, return to the boot tables, mark the CPU
/// out of the guest, and take the lock back (the caller then applies rule 2, `pause_for`).
/// Returns the exit frame and the guest's run time.
fn run_guest(me: usize, dom: u32, area: *mut FxArea, c: &mut CpuState, budget: u64, boot_cr3: u64) -> (Frame, u64) {
    let f = frame_of(c);
    ENTRIES[me].fetch_add(1, Ordering::Relaxed);
    IN_GUEST[me].store(dom + 1, Ordering::Release);
    // The vCPU's tables and bases last, still under the lock (rule 1).
    // SAFETY: every guest L4 carries the hypervisor slots; FS/GS bases are canonical (the core
    // checks them).
    unsafe {
        cpu::write_cr3(c.cr3);
        cpu::wrmsr(MSR_FS_BASE, c.fs_base);
        cpu::wrmsr(MSR_GS_BASE, c.gs_base);
    }
    let timer = TIMER.load(Ordering::Relaxed);
    unlock();
    let steal0 = super::kvm::stolen(me);
    let t0 = cpu::rdtsc();
    vclock_start(me, t0);
    if timer {
        super::timer::arm(t0.wrapping_add(budget.max(1000)));
    }
    // SAFETY: the frame is a ring-3 context (RPL 3, IOPL 0); the entry code returns here at
    // the guest's next trap or syscall.
    let fr: Frame = unsafe { *entry::xen_enter_guest(&f) };
    if timer {
        super::timer::arm(0);
    }
    let mut ran = cpu::rdtsc().wrapping_sub(t0).max(1);
    if let (Some(s0), Some(s1)) = (steal0, super::kvm::stolen(me)) {
        // KVM's steal time: what the host took during the run, whatever ended it.
        let steal = s1.saturating_sub(s0).min(ran - 1);
        ran -= steal;
        STOLEN[me].fetch_add(steal, Ordering::Relaxed);
    } else if timer && fr.vector == super::timer::TIMER_VECTOR {
        // Lateness of the timer beyond STEAL_LATE is time the host took from this CPU (QEMU's
        // thread descheduled on a loaded host): neither run by the guest nor virtual time, as
        // on one CPU (BareMetal::run).
        let late = ran.saturating_sub(budget.max(1000));
        if late > STEAL_LATE {
            let steal = late - STEAL_LATE;
            ran -= steal;
            STOLEN[me].fetch_add(steal, Ordering::Relaxed);
        }
    }
    vclock_stop(me, t0.wrapping_add(ran));
    // SAFETY: the vCPU's own save area: it cannot be freed before this CPU says it left the
    // guest (kick_guests_and_wait); the boot tables map the hypervisor.
    unsafe {
        asm!("fxsave64 [{}]", in(reg) (*area).0.as_mut_ptr(), options(nostack));
        c.fs_base = cpu::rdmsr(MSR_FS_BASE);
        c.gs_base = cpu::rdmsr(MSR_GS_BASE);
        cpu::write_cr3(boot_cr3);
    }
    GUEST_CYCLES[me].fetch_add(ran, Ordering::Relaxed);
    IN_GUEST[me].store(0, Ordering::Release);
    lock();
    KICKED[me].store(false, Ordering::Release);
    (fr, ran)
}

/// Rule 2 for an exit about to be handled: the domain's other CPUs leave their guests first,
/// unless the exit was only an interrupt (the end of the budget, a kick or a wake-up), whose
/// handling changes no mapping. Not pausing for those also keeps a kick that arrives after its
/// target already left (it then fires at that CPU's next entry) from kicking on and on.
fn pause_for(me: usize, dom: u32, exit: &Exit) {
    if !matches!(exit, Exit::Budget) {
        pause_domain(me, dom);
    }
}

/// Is this data-breakpoint #DB one QEMU TCG raised right after a `mov ss`/`pop ss` instead of
/// after the next instruction (BareMetal::movss_early, with this CPU's debug registers)?
fn movss_early(plat: &BareMetal, ctx: &CpuCtx, c: &CpuState, dr6: u64) -> bool {
    let mut b = [0u8; 15];
    let mut n = 15;
    while n > 0 && !plat.read_guest(c.cr3, c.rip.wrapping_sub(n as u64), &mut b[15 - n..]) {
        n -= 1;
    }
    crate::emulate::movss_breakpoint(&b[15 - n..], c, &ctx.loaded.debug, dr6)
}

/// Under the lock: do what the CPU should have for an early `mov ss` #DB (BareMetal::run): run
/// the one instruction the shadow covers with TF, then report the #DB after it, or drop it if
/// the instruction left the guest. Returns with the lock held.
#[allow(clippy::too_many_arguments)]
fn movss_step(me: usize, dom: u32, area: *mut FxArea, c: &mut CpuState, budget: u64, boot_cr3: u64, dr6: u64, ran: &mut u64) -> Exit {
    use crate::privop::dr::DR6_BS;
    const TF: u64 = 1 << 8;
    let guest_tf = c.rflags & TF;
    let at = c.rip;
    c.rflags |= TF;
    let mut tries = 0;
    loop {
        let (fr, r) = run_guest(me, dom, area, c, budget, boot_cr3);
        *ran += r;
        tries += 1;
        // SAFETY: run_guest returns with the lock held.
        let hv = unsafe { hv_locked() };
        let e = decode(&mut hv.platform, c, &fr);
        pause_for(me, dom, &e);
        c.rflags = (c.rflags & !TF) | guest_tf;
        match e {
            Exit::Debug { dr6: d } if d & DR6_BS != 0 => {
                let bs = if guest_tf != 0 { DR6_BS } else { 0 };
                return Exit::Debug { dr6: (d & !DR6_BS) | (dr6 & 0xf) | bs };
            }
            Exit::Budget if c.rip == at && tries < 8 => c.rflags |= TF,
            Exit::Gate => {
                c.r11 = (c.r11 & !TF) | guest_tf;
                hv.platform.db_dropped += 1;
                return e;
            }
            _ => {
                hv.platform.db_dropped += 1;
                return e;
            }
        }
    }
}

/// Run the machine on every online CPU until no domain runs or the core's clock (`hv.now`,
/// going on with the CPUs' virtual clocks, `clock`) reaches `end`, then give the hypervisor back
/// to the boot CPU. Called again for each stretch of a scenario (its steps are carried out on the
/// boot CPU in between, while the APs halt); each CPU keeps what it has loaded (`CTXS`).
pub fn run(hv: &mut Hypervisor<BareMetal>, end: u64) {
    let n = online();
    TIMER.store(hv.platform.timer, Ordering::Release);
    END.store(end, Ordering::Release);
    BASE.store(hv.now, Ordering::Release);
    LAST_CLOCK.store(hv.now, Ordering::Release);
    for v in &VCLOCK {
        v.store(FROZEN, Ordering::Release);
    }
    DONE.store(false, Ordering::Release);
    lock();
    // SAFETY: under the lock, before any AP looks (GEN is not bumped yet); cleared below
    // before `hv` is used again.
    unsafe { *HV.0.get() = hv as *mut _ };
    unlock();
    let gen = GEN.fetch_add(1, Ordering::AcqRel) + 1;
    for q in 1..n {
        send_ipi(q);
    }
    let t0 = cpu::rdtsc();
    cpu_loop(0);
    let wall = cpu::rdtsc().wrapping_sub(t0);
    WALL.fetch_add(wall, Ordering::Relaxed);
    while (1..n).any(|q| AP_DONE[q].load(Ordering::Acquire) != gen) && cpu::rdtsc().wrapping_sub(t0) < wall + 2_000_000_000 {
        for q in 1..n {
            if AP_DONE[q].load(Ordering::Acquire) != gen && !KICKED[q].load(Ordering::Acquire) {
                send_ipi(q);
            }
        }
        core::hint::spin_loop();
    }
    lock();
    // SAFETY: under the lock; every AP has left the loop (or timed out, halted in the idle
    // path or spinning on DONE; it finds HV null and parks if it reaches the hypervisor).
    unsafe { *HV.0.get() = core::ptr::null_mut() };
    unlock();
    if (1..n).any(|q| AP_DONE[q].load(Ordering::Acquire) != gen) {
        cpu::debugcon(b"# smp: an AP did not leave its loop within 2e9 TSC cycles of the run's end\n");
    }
}

/// The `# smp` line: per CPU, where its cycles went over all runs.
pub fn report() {
    let n = online();
    let wall = WALL.load(Ordering::Relaxed);
    let mut line = alloc::format!("# smp: {n} pCPUs, {wall} cycles;");
    for q in 0..n {
        let (guest, idle) = (GUEST_CYCLES[q].load(Ordering::Relaxed), IDLE_CYCLES[q].load(Ordering::Relaxed));
        let stolen = STOLEN[q].load(Ordering::Relaxed);
        let hv_cycles = wall.saturating_sub(guest).saturating_sub(idle).saturating_sub(stolen);
        line.push_str(&alloc::format!(
            " cpu{q}: entries={} parallel={} guest={guest} idle={idle} stolen={stolen} in_step_wait={} hypervisor={hv_cycles} ({:.1}%)",
            ENTRIES[q].load(Ordering::Relaxed),
            PARALLEL[q].load(Ordering::Relaxed),
            STEP_WAIT[q].load(Ordering::Relaxed),
            hv_cycles as f64 * 100.0 / wall.max(1) as f64
        ));
        line.push_str(&alloc::format!(
            " [lock acq={} contended={} spins={} wait={} ipis={} pause={} halts={} enter={} exit={} wake={} load={}]",
            LOCK_ACQ[q].load(Ordering::Relaxed),
            LOCK_CONT[q].load(Ordering::Relaxed),
            LOCK_SPINS[q].load(Ordering::Relaxed),
            LOCK_WAIT[q].load(Ordering::Relaxed),
            IPIS[q].load(Ordering::Relaxed),
            PAUSE_CYCLES[q].load(Ordering::Relaxed),
            HALTS[q].load(Ordering::Relaxed),
            ENTER_CYCLES[q].load(Ordering::Relaxed),
            EXIT_CYCLES[q].load(Ordering::Relaxed),
            WAKE_CYCLES[q].load(Ordering::Relaxed),
            LOAD_CYCLES[q].load(Ordering::Relaxed),
        ));
    }
    cpu::debugcon(line.as_bytes());
    cpu::debugcon(b"\n");
}
