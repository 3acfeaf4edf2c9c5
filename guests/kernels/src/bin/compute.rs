//! `compute`: a deterministic register-only loop (xorshift64 plus a running sum; 11 instructions
//! per iteration, no memory access) for [`DEFAULT_ITERS`] iterations (cmdline `iters=N`
//! overrides), then prints `compute: 0x<sum as 16 hex digits>` and powers off.
#![no_std]
#![no_main]

use xenrt::{abi::SHUTDOWN_POWEROFF, println, StartInfo};

xenrt::entry!(main);

/// Iterations when the cmdline has no `iters=N`.
pub const DEFAULT_ITERS: u64 = 50_000_000;
/// xorshift64 seed.
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

fn main(_si: &'static StartInfo) -> ! {
    let iters = xenrt::cmdline::arg_u64("iters").unwrap_or(DEFAULT_ITERS);
    let mut x = SEED;
    let mut sum: u64 = 0;
    if iters > 0 {
        // SAFETY: pure register arithmetic; no memory or stack access.
        unsafe {
            core::arch::asm!(
                "2:",
                "mov rdx, rax",
                "shl rdx, 13",
                "xor rax, rdx",
                "mov rdx, rax",
                "shr rdx, 7",
                "xor rax, rdx",
                "mov rdx, rax",
                "shl rdx, 17",
                "xor rax, rdx",
                "add rsi, rax",
                "dec rcx",
                "jnz 2b",
                inout("rax") x,
                inout("rsi") sum,
                inout("rcx") iters => _,
                out("rdx") _,
                options(nomem, nostack),
            );
        }
    }
    core::hint::black_box(x);
    println!("compute: {:#018x}", sum);
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
