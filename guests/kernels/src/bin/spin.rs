//! `spin`: a CPU hog that never traps. Prints `spin: start` and then loops on registers only
//! (256 instructions per iteration), forever: no hypercall, no fault, no memory access, so only the scheduler's preemption takes
//! the CPU away from it. Used by the credit-scheduler scenarios (weights, caps, shares).
#![no_std]
#![no_main]

use xenrt::{println, StartInfo};

xenrt::entry!(main);

fn main(_si: &'static StartInfo) -> ! {
    println!("spin: start");
    // SAFETY: a register-only endless loop. Its body is 256 instructions long, so the
    // simulator (which charges time per translated block) spends little per guest instruction.
    unsafe {
        core::arch::asm!("2:", ".rept 255", "add rax, 1", ".endr", "jmp 2b", options(nomem, nostack, noreturn));
    }
}
