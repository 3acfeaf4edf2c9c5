//! `nullcall`: performs N `xen_version(XENVER_version)` hypercalls (default 100000, cmdline
//! `calls=N`), prints `nullcall: done N` and powers off (crashes if a call fails).
#![no_std]
#![no_main]

use xenrt::{abi::*, println, StartInfo};

xenrt::entry!(main);

pub const DEFAULT_CALLS: u64 = 100_000;

fn main(_si: &'static StartInfo) -> ! {
    let calls = xenrt::cmdline::arg_u64("calls").unwrap_or(DEFAULT_CALLS);
    for i in 0..calls {
        let v = xenrt::hypercall::version();
        if v < 0 {
            println!("nullcall: call {} failed: {}", i, v);
            xenrt::shutdown(SHUTDOWN_CRASH);
        }
    }
    println!("nullcall: done {}", calls);
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
