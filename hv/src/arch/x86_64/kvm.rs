//! KVM's steal time: how long the host kept each of the image's CPUs from running while it had
//! work (QEMU's vCPU thread runnable but descheduled on a loaded host). The image's clock runs on
//! the TSC, which goes on while the host holds the thread; a guest's run that contains such a
//! stretch would be charged time it never had, so the run is shortened by the steal it contains
//! (as Xen's and Linux's runstate accounting leave steal out of a vCPU's running time).
//!
//! Under TCG (no KVM leaves) the timer's lateness stands in for it (`platform::STEAL_LATE`);
//! on hardware there is no steal.
//!
//! The ABI is KVM's, not Xen's: Linux's arch/x86/include/uapi/asm/kvm_para.h (KVM_CPUID_SIGNATURE
//! 0x40000000 "KVMKVMKVM", KVM_CPUID_FEATURES 0x40000001, KVM_FEATURE_CLOCKSOURCE2 3,
//! KVM_FEATURE_STEAL_TIME 5, MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01, MSR_KVM_STEAL_TIME 0x4b564d03,
//! KVM_MSR_ENABLED 1, `struct kvm_steal_time` of 64 bytes with 64-byte alignment
//! (KVM_STEAL_ALIGNMENT_BITS 5)), Documentation/virt/kvm/x86/msr.rst, and the pvclock structure
//! (arch/x86/include/asm/pvclock-abi.h, the same as Xen's `vcpu_time_info`), whose
//! `tsc_to_system_mul`/`tsc_shift` give the TSC's rate, to turn steal (ns) into TSC cycles.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::cpu;
use super::pvh::DIRECTMAP;
use super::smp::MAX_CPUS;
use crate::abi::structs::VcpuTimeInfo;

const KVM_CPUID_SIGNATURE: u32 = 0x4000_0000;
const KVM_CPUID_FEATURES: u32 = 0x4000_0001;
const KVM_FEATURE_CLOCKSOURCE2: u32 = 3;
const KVM_FEATURE_STEAL_TIME: u32 = 5;
const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
const MSR_KVM_STEAL_TIME: u32 = 0x4b56_4d03;
const KVM_MSR_ENABLED: u64 = 1;

/// `struct kvm_steal_time` (kvm_para.h): steal (ns), version (odd while the host writes),
/// flags, preempted, padding to 64 bytes.
#[repr(C, align(64))]
struct StealTime {
    steal: u64,
    version: u32,
    flags: u32,
    preempted: u8,
    _pad: [u8; 47],
}
const _: () = assert!(core::mem::size_of::<StealTime>() == 64);

static mut AREAS: [StealTime; MAX_CPUS] = [const { StealTime { steal: 0, version: 0, flags: 0, preempted: 0, _pad: [0; 47] } }; MAX_CPUS];

/// Steal time is registered (on the boot CPU; every AP registers its own).
static ON: AtomicBool = AtomicBool::new(false);
/// The TSC's rate as pvclock gives it: ns = ((cycles shifted by SHIFT) × MUL) >> 32.
static MUL: AtomicU64 = AtomicU64::new(0);
static SHIFT: AtomicU64 = AtomicU64::new(0);

/// Does the CPU run under KVM with steal time and kvmclock?
fn available() -> bool {
    let (_, b, c, d) = cpu::cpuid(KVM_CPUID_SIGNATURE);
    let sig = [b.to_le_bytes(), c.to_le_bytes(), d.to_le_bytes()].concat();
    if &sig[..9] != b"KVMKVMKVM" {
        return false;
    }
    let (a, ..) = cpu::cpuid(KVM_CPUID_FEATURES);
    a & (1 << KVM_FEATURE_STEAL_TIME) != 0 && a & (1 << KVM_FEATURE_CLOCKSOURCE2) != 0
}

/// On the boot CPU, before any guest: read the TSC's rate from kvmclock (registered only for
/// that, then switched off again) and register this CPU's steal area. Returns a line for the log.
pub fn init() -> Option<alloc::string::String> {
    if !available() {
        return None;
    }
    static mut CLOCK: VcpuTimeInfo =
        VcpuTimeInfo { version: 0, pad0: 0, tsc_timestamp: 0, system_time: 0, tsc_to_system_mul: 0, tsc_shift: 0, flags: 0, pad1: [0; 2] };
    // SAFETY: boot time, one CPU; CLOCK is a static of the image (direct-mapped, so its machine
    // address is its address less DIRECTMAP), written by the host only while registered.
    let (mul, shift) = unsafe {
        let p = core::ptr::addr_of_mut!(CLOCK);
        cpu::wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (p as u64 - DIRECTMAP) | KVM_MSR_ENABLED);
        let mut got = (0, 0);
        for _ in 0..1000 {
            let v = core::ptr::read_volatile(core::ptr::addr_of!((*p).version));
            let mul = core::ptr::read_volatile(core::ptr::addr_of!((*p).tsc_to_system_mul));
            let shift = core::ptr::read_volatile(core::ptr::addr_of!((*p).tsc_shift));
            if v & 1 == 0 && mul != 0 && v == core::ptr::read_volatile(core::ptr::addr_of!((*p).version)) {
                got = (mul, shift);
                break;
            }
            core::hint::spin_loop();
        }
        cpu::wrmsr(MSR_KVM_SYSTEM_TIME_NEW, 0);
        got
    };
    if mul == 0 {
        return Some(alloc::string::String::from("# kvm: no kvmclock rate; steal time not used"));
    }
    MUL.store(mul as u64, Ordering::Relaxed);
    SHIFT.store(shift as i64 as u64, Ordering::Relaxed);
    ON.store(true, Ordering::Release);
    init_local(0);
    Some(alloc::format!("# kvm: steal time on (TSC {:.3} GHz by kvmclock)", to_cycles(1_000_000_000) as f64 / 1e9))
}

/// Register CPU `me`'s steal area (each CPU writes its own MSR); nothing without KVM.
pub fn init_local(me: usize) {
    if !ON.load(Ordering::Acquire) || me >= MAX_CPUS {
        return;
    }
    // SAFETY: AREAS[me] is this CPU's, 64-byte aligned, direct-mapped (machine address = address
    // less DIRECTMAP); the host writes it from now on, the image only reads it.
    unsafe {
        let p = core::ptr::addr_of_mut!(AREAS[me]);
        cpu::wrmsr(MSR_KVM_STEAL_TIME, (p as u64 - DIRECTMAP) | KVM_MSR_ENABLED);
    }
}

/// Nanoseconds as TSC cycles, by kvmclock's rate (the inverse of pvclock's scaling).
fn to_cycles(ns: u64) -> u64 {
    VcpuTimeInfo::ns_to_tsc(ns, MUL.load(Ordering::Relaxed) as u32, SHIFT.load(Ordering::Relaxed) as i64 as i8)
}

/// CPU `me`'s steal so far, in TSC cycles; None without KVM's steal time (TCG, hardware).
pub fn stolen(me: usize) -> Option<u64> {
    if !ON.load(Ordering::Relaxed) || me >= MAX_CPUS {
        return None;
    }
    // SAFETY: reads of this CPU's area, which only the host writes (version protocol: odd while
    // it writes, so read until two equal even versions bracket the value).
    let ns = unsafe {
        let p = core::ptr::addr_of!(AREAS[me]);
        loop {
            let v0 = core::ptr::read_volatile(core::ptr::addr_of!((*p).version));
            core::sync::atomic::fence(Ordering::Acquire);
            let s = core::ptr::read_volatile(core::ptr::addr_of!((*p).steal));
            core::sync::atomic::fence(Ordering::Acquire);
            if v0 & 1 == 0 && v0 == core::ptr::read_volatile(core::ptr::addr_of!((*p).version)) {
                break s;
            }
            core::hint::spin_loop();
        }
    };
    Some(to_cycles(ns))
}
