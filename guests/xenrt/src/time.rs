//! System time as a Xen PV guest reads it (pvclock): the vCPU's `vcpu_time_info` gives
//! `system_time` at the TSC value `tsc_timestamp` and the TSC's scale; now is
//! `system_time + ((rdtsc - tsc_timestamp) scaled by tsc_to_system_mul/tsc_shift)`, read under
//! the version protocol (odd: being written; changed: read again). xen-public/xen.h documents it.

use crate::abi::VcpuTimeInfo;

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc has no side effects (the hypervisor may emulate it).
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    ((hi as u64) << 32) | lo as u64
}

/// The scaled TSC delta (xen-public/xen.h: "(tsc - tsc_timestamp) << tsc_shift (or >> -shift),
/// times tsc_to_system_mul, >> 32").
fn scale(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift >= 0 { delta << shift } else { delta >> (-shift) };
    ((d as u128 * mul as u128) >> 32) as u64
}

/// Nanoseconds of system time now, from vCPU 0's time info in shared_info (which must be mapped).
pub fn now() -> u64 {
    let si = crate::mm::shared_info().expect("shared_info mapped");
    // SAFETY: shared_info is mapped; the fields are read volatile, as the hypervisor writes them.
    let t: *const VcpuTimeInfo = unsafe { core::ptr::addr_of!((*si).vcpu_info[0].time) };
    loop {
        // SAFETY: as above.
        unsafe {
            let v = core::ptr::read_volatile(core::ptr::addr_of!((*t).version));
            if v & 1 != 0 {
                continue;
            }
            let stamp = core::ptr::read_volatile(core::ptr::addr_of!((*t).tsc_timestamp));
            let st = core::ptr::read_volatile(core::ptr::addr_of!((*t).system_time));
            let mul = core::ptr::read_volatile(core::ptr::addr_of!((*t).tsc_to_system_mul));
            let shift = core::ptr::read_volatile(core::ptr::addr_of!((*t).tsc_shift));
            let tsc = rdtsc();
            if core::ptr::read_volatile(core::ptr::addr_of!((*t).version)) == v {
                return st.wrapping_add(scale(tsc.wrapping_sub(stamp), mul, shift));
            }
        }
    }
}
