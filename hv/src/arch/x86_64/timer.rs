//! The preemption timer: each CPU's local APIC timer, interrupting a guest at the end of its
//! time budget on vector [`TIMER_VECTOR`].
//!
//! Two ways to drive it, chosen once at boot ([`init`]):
//! - **x2APIC, TSC-deadline mode** (MSRs), where the CPU has both (KVM here, real hardware);
//! - **xAPIC, one-shot mode** through the APIC's MMIO page, where it does not: QEMU 7.2's TCG has
//!   no x2APIC (nor TSC-deadline) but emulates an xAPIC at 0xFEE00000 on `-M microvm` too (measured:
//!   `-cpu max` under TCG reports CPUID.1:EDX.APIC, not ECX.x2APIC/TSC_DEADLINE). Its counter's
//!   rate is calibrated against the TSC at boot, so deadlines stay in TSC cycles (the image's time).
//!
//! The LAPIC's registers are per CPU but sit at the same address (MMIO page, or MSRs) on every
//! CPU: [`init`] chooses and calibrates on the boot CPU, [`init_local`] programs the calling
//! CPU's own LAPIC (the boot CPU's at [`init`]; an application processor calls it itself), and
//! [`arm`]/[`eoi`] act on the calling CPU's.
//!
//! Register offsets and bits: Intel SDM vol. 3A, 11.4 (Table 11-1: local APIC register address
//! map) and 11.5.4 (APIC timer); the same names in Xen's xen/arch/x86/include/asm/apicdef.h
//! (APIC_EOI 0xB0, APIC_SPIV 0xF0, APIC_LVTT 0x320, APIC_TMICT 0x380, APIC_TMCCT 0x390,
//! APIC_TDCR 0x3E0, APIC_TDR_DIV_1 0xB, APIC_LVT_TIMER_TSCDEADLINE 2 << 17).

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use super::cpu::{rdmsr, rdtsc, wrmsr};
use super::pvh::DIRECTMAP;

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u64 = 0x20;

const MSR_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const MSR_TSC_DEADLINE: u32 = 0x6e0;
const X2APIC_EOI: u32 = 0x80b;
const X2APIC_SVR: u32 = 0x80f;
const X2APIC_LVT_TIMER: u32 = 0x832;

/// The xAPIC's default physical base (APIC_DEFAULT_PHYS_BASE), and where the image maps it:
/// uncached (PCD|PWT), supervisor-only, at the direct-map address it would have, in the boot
/// page tables (boot.rs) and in every guest address space (mod.rs maps it there).
pub const XAPIC_PHYS: u64 = 0xFEE0_0000;
pub const XAPIC_VA: u64 = DIRECTMAP + XAPIC_PHYS;
const APIC_EOI: u64 = 0xB0;
const APIC_SVR: u64 = 0xF0;
const APIC_LVT_TIMER: u64 = 0x320;
const APIC_TMICT: u64 = 0x380;
const APIC_TMCCT: u64 = 0x390;
const APIC_TDCR: u64 = 0x3E0;
/// Divide configuration 0b1011: divide by 1.
const APIC_TDR_DIV_1: u32 = 0xB;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
/// SVR: APIC software enable (bit 8), spurious vector 0xFF.
const SVR_ENABLE: u32 = 0x1ff;

/// Which timer the image preempts guests with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// No timer: a guest that never traps is never preempted.
    None,
    X2apicTscDeadline,
    XapicOneShot,
}

impl Kind {
    /// As the boot line prints it (`preemption=...`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::None => "none",
            Kind::X2apicTscDeadline => "x2apic-tsc-deadline",
            Kind::XapicOneShot => "xapic-oneshot",
        }
    }
}

static KIND: AtomicU8 = AtomicU8::new(0);
/// xAPIC timer ticks per TSC cycle, 32.32 fixed point (calibrated by [`init`]).
static TICKS_PER_TSC_Q32: AtomicU64 = AtomicU64::new(0);

/// The timer chosen at boot.
pub fn kind() -> Kind {
    match KIND.load(Ordering::Relaxed) {
        1 => Kind::X2apicTscDeadline,
        2 => Kind::XapicOneShot,
        _ => Kind::None,
    }
}

fn cpuid1() -> (u32, u32) {
    let r = core::arch::x86_64::__cpuid(1);
    (r.ecx, r.edx)
}

fn xapic_read(reg: u64) -> u32 {
    // SAFETY: XAPIC_VA maps the APIC page uncached in every page table the hypervisor runs
    // on (only used once `init` chose the xAPIC, which checked the base); a 32-bit aligned
    // read of an APIC register has no memory effects.
    unsafe { core::ptr::read_volatile((XAPIC_VA + reg) as *const u32) }
}

fn xapic_write(reg: u64, v: u32) {
    // SAFETY: as for `xapic_read`; the registers written are the timer's, SVR and EOI.
    unsafe { core::ptr::write_volatile((XAPIC_VA + reg) as *mut u32, v) }
}

/// What the boot CPU asks for: `timer=x2apic|xapic|0` on the image's command line, or the best
/// one the CPU has (None).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Choice {
    Auto,
    X2apic,
    Xapic,
    Off,
}

/// The xAPIC calibration: APIC ticks counted and TSC cycles elapsed over the measurement.
#[derive(Clone, Copy, Debug, Default)]
pub struct Calibration {
    pub ticks: u64,
    pub tsc: u64,
}

/// Choose the timer on the boot CPU, calibrate it (xAPIC) and program the boot CPU's LAPIC.
pub fn init(choice: Choice) -> (Kind, Option<Calibration>) {
    let (ecx, edx) = cpuid1();
    let x2 = ecx & (1 << 21) != 0 && ecx & (1 << 24) != 0; // x2APIC, TSC_DEADLINE
    let apic = edx & (1 << 9) != 0;
    let k = match choice {
        Choice::Off => Kind::None,
        Choice::Auto | Choice::X2apic if x2 => Kind::X2apicTscDeadline,
        Choice::X2apic => Kind::None,
        Choice::Auto | Choice::Xapic if apic && xapic_base_ok() => Kind::XapicOneShot,
        _ => Kind::None,
    };
    KIND.store(
        match k {
            Kind::None => 0,
            Kind::X2apicTscDeadline => 1,
            Kind::XapicOneShot => 2,
        },
        Ordering::Relaxed,
    );
    init_local();
    let cal = (k == Kind::XapicOneShot).then(calibrate);
    if let Some(c) = cal {
        if c.ticks == 0 || c.tsc == 0 {
            // The counter did not move: no usable timer.
            KIND.store(0, Ordering::Relaxed);
            return (Kind::None, cal);
        }
        TICKS_PER_TSC_Q32.store(((c.ticks as u128) << 32).div_euclid(c.tsc as u128) as u64, Ordering::Relaxed);
    }
    (kind(), cal)
}

/// Is the APIC at its default base (where the boot tables map it), in xAPIC mode or enableable?
fn xapic_base_ok() -> bool {
    // SAFETY: CPUID.1:EDX.APIC is set (checked by the caller): IA32_APIC_BASE exists.
    let base = unsafe { rdmsr(MSR_APIC_BASE) };
    base & 0x000f_ffff_ffff_f000 == XAPIC_PHYS && base & APIC_BASE_X2APIC == 0
}

/// Program the calling CPU's LAPIC for the chosen timer (the boot CPU's is done by [`init`];
/// each application processor calls this once, before it runs guests). Interrupts stay masked
/// in ring 0; the timer starts disarmed.
pub fn init_local() {
    match kind() {
        Kind::None => {}
        // SAFETY: x2APIC and TSC-deadline are present (checked by `init`).
        Kind::X2apicTscDeadline => unsafe {
            wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
            wrmsr(X2APIC_SVR, SVR_ENABLE as u64);
            wrmsr(X2APIC_LVT_TIMER, TIMER_VECTOR | LVT_TSC_DEADLINE as u64);
        },
        Kind::XapicOneShot => {
            // SAFETY: the APIC exists at its default base (checked by `init`); setting the
            // global enable only makes its MMIO registers live.
            unsafe { wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_ENABLE) };
            xapic_write(APIC_SVR, SVR_ENABLE);
            xapic_write(APIC_TDCR, APIC_TDR_DIV_1);
            xapic_write(APIC_TMICT, 0);
            // One-shot mode (bits 18:17 = 00).
            xapic_write(APIC_LVT_TIMER, TIMER_VECTOR as u32);
        }
    }
}

/// Measure the xAPIC counter against the TSC: a masked one-shot count from 0xffffffff, read
/// back after at least 2^22 TSC cycles (1–2 ms at these machines' rates).
fn calibrate() -> Calibration {
    xapic_write(APIC_LVT_TIMER, TIMER_VECTOR as u32 | LVT_MASKED);
    xapic_write(APIC_TMICT, u32::MAX);
    let c0 = xapic_read(APIC_TMCCT);
    let t0 = rdtsc();
    let mut spins = 0u64;
    let (c1, t1) = loop {
        let t = rdtsc();
        let c = xapic_read(APIC_TMCCT);
        spins += 1;
        // Also stop if the counter nears its end or the TSC stands still (bounded either way).
        if t.wrapping_sub(t0) >= 1 << 22 || c < (1 << 30) || spins > 50_000_000 {
            break (c, t);
        }
    };
    xapic_write(APIC_TMICT, 0);
    xapic_write(APIC_LVT_TIMER, TIMER_VECTOR as u32);
    Calibration { ticks: c0.saturating_sub(c1) as u64, tsc: t1.wrapping_sub(t0) }
}

/// Arm the calling CPU's timer to fire at TSC value `deadline` (0 disarms).
pub fn arm(deadline: u64) {
    match kind() {
        Kind::None => {}
        // SAFETY: only reached after `init` found x2APIC with TSC-deadline.
        Kind::X2apicTscDeadline => unsafe { wrmsr(MSR_TSC_DEADLINE, deadline) },
        Kind::XapicOneShot => {
            if deadline == 0 {
                xapic_write(APIC_TMICT, 0);
                return;
            }
            let delta = deadline.saturating_sub(rdtsc()).max(1);
            let q = TICKS_PER_TSC_Q32.load(Ordering::Relaxed) as u128;
            let ticks = ((delta as u128 * q) >> 32).clamp(1, u32::MAX as u128) as u32;
            xapic_write(APIC_TMICT, ticks);
        }
    }
}

/// Acknowledge a timer interrupt on the calling CPU.
pub fn eoi() {
    match kind() {
        Kind::None => {}
        // SAFETY: only reached after `init` enabled the x2APIC.
        Kind::X2apicTscDeadline => unsafe { wrmsr(X2APIC_EOI, 0) },
        Kind::XapicOneShot => xapic_write(APIC_EOI, 0),
    }
}
