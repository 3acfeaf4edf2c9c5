//! `nullcall`: performs N `xen_version(XENVER_version)` hypercalls (default 100000, cmdline
//! `calls=N`), prints `nullcall: done N` and powers off (crashes if a call fails). With `tsc=1`
//! it also prints `nullcall: cycles/call C`, the guest-measured round trip in TSC cycles (not
//! deterministic: scenarios leave it off).
#![no_std]
#![no_main]

use xenrt::{abi::*, println, StartInfo};

xenrt::entry!(main);

pub const DEFAULT_CALLS: u64 = 100_000;

fn main(_si: &'static StartInfo) -> ! {
    let calls = xenrt::cmdline::arg_u64("calls").unwrap_or(DEFAULT_CALLS);
    let tsc = xenrt::cmdline::arg_u64("tsc").unwrap_or(0) != 0;
    let t0 = if tsc { rdtsc() } else { 0 };
    for i in 0..calls {
        let v = xenrt::hypercall::version();
        if v < 0 {
            println!("nullcall: call {} failed: {}", i, v);
            xenrt::shutdown(SHUTDOWN_CRASH);
        }
    }
    if tsc {
        let t1 = rdtsc();
        println!("nullcall: cycles/call {}", (t1 - t0) / calls.max(1));
    }
    println!("nullcall: done {}", calls);
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the time-stamp counter (CR4.TSD is clear for PV guests).
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    ((hi as u64) << 32) | lo as u64
}
