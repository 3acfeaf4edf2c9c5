//! `spin`: a CPU hog that never traps. Prints `spin: start`, brings up every further vCPU the
//! domain has (`xenrt::vcpu::bring_up`: VCPUOP_initialise and up for vCPU 1, 2, … until Xen
//! answers -ENOENT), and then every vCPU loops on registers only (256 instructions per
//! iteration), forever: no hypercall, no fault, no memory access, so only the scheduler's
//! preemption takes a CPU away from it. Used by the credit-scheduler scenarios (weights, caps,
//! shares; `vcpus = N` gives N hogs in one domain).
#![no_std]
#![no_main]

use xenrt::vcpu::{self, Stack};
use xenrt::{println, StartInfo};

xenrt::entry!(main);

/// One stack for each further vCPU a domain can have (xl's `vcpus` is at most
/// XEN_LEGACY_MAX_VCPUS = 32 here). A spinning vCPU hardly uses its stack; 4 KiB leaves room
/// for a panic message.
static STACKS: [Stack<4096>; 31] = [const { Stack::new() }; 31];

fn main(_si: &'static StartInfo) -> ! {
    println!("spin: start");
    if let Err(e) = vcpu::bring_up(ap, &STACKS) {
        panic!("spin: bringing up vCPU {}: {} = {}", e.id, e.what, e.rc);
    }
    spin()
}

/// vCPUs 1.. start here.
extern "C" fn ap(_id: u32) -> ! {
    spin()
}

fn spin() -> ! {
    // SAFETY: a register-only endless loop. Its body is 256 instructions long, so the
    // simulator (which charges time per translated block) spends little per guest instruction.
    unsafe {
        core::arch::asm!("2:", ".rept 255", "add rax, 1", ".endr", "jmp 2b", options(nomem, nostack, noreturn));
    }
}
