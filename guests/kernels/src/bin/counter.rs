//! `counter`: prints `tick 0`, `tick 1`, … `tick N-1` (N = cmdline `ticks=N`, default 20) with a
//! busy loop of [`SPIN`] iterations between ticks, then `counter: done` and powers off.
//! Used by the pause/unpause/destroy scenarios.
#![no_std]
#![no_main]

use xenrt::{abi::SHUTDOWN_POWEROFF, println, StartInfo};

xenrt::entry!(main);

pub const DEFAULT_TICKS: u64 = 20;
/// Busy-loop iterations (2 instructions each) between ticks.
pub const SPIN: u64 = 1_000_000;

fn main(_si: &'static StartInfo) -> ! {
    let ticks = xenrt::cmdline::arg_u64("ticks").unwrap_or(DEFAULT_TICKS);
    for n in 0..ticks {
        println!("tick {}", n);
        // SAFETY: register-only countdown loop.
        unsafe {
            core::arch::asm!("2:", "dec rcx", "jnz 2b", inout("rcx") SPIN => _, options(nomem, nostack));
        }
    }
    println!("counter: done");
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
