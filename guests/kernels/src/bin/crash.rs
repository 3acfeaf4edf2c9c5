//! `crash`: reads an unmapped address with no trap table installed, so the hypervisor must
//! crash the domain. Prints `crash: about to fault`; if the read returns it prints
//! `crash: survived?!` and powers off.
#![no_std]
#![no_main]

use xenrt::{abi::SHUTDOWN_POWEROFF, println, StartInfo};

xenrt::entry!(main);

/// Unmapped, canonical, below the kernel area.
const UNMAPPED: u64 = 0x0000_4000_0000_0000;

fn main(_si: &'static StartInfo) -> ! {
    println!("crash: about to fault");
    // SAFETY: deliberately faulting load; with no trap table the hypervisor kills the domain.
    let v = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    core::hint::black_box(v);
    println!("crash: survived?!");
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
