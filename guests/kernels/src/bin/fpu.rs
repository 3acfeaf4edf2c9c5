//! `fpu`: the x87/SSE registers are the vCPU's own. Loads a pattern derived from `seed=N`
//! (cmdline) into xmm0..xmm15 and MXCSR's rounding mode, yields `yields=N` times (default 40)
//! so that other domains run in between, and checks after each yield that every register still
//! holds its pattern. Two of these with different seeds in one scenario catch a hypervisor that
//! does not switch the state between vCPUs. Prints `fpu: seed N kept over M yields` and powers
//! off, or `fpu: FAIL ...` and crashes.
#![no_std]
#![no_main]

use core::arch::asm;
use xenrt::{abi::*, println, StartInfo};

xenrt::entry!(main);

#[repr(C, align(16))]
struct Regs([u64; 32]);

fn load(r: &Regs) {
    // SAFETY: reads 256 bytes of `r` into xmm0..xmm15. This guest is built soft-float
    // (x86_64-unknown-none), so the compiler never keeps values in xmm registers.
    unsafe {
        asm!(
            "movdqa xmm0, [{p}]", "movdqa xmm1, [{p} + 16]", "movdqa xmm2, [{p} + 32]", "movdqa xmm3, [{p} + 48]",
            "movdqa xmm4, [{p} + 64]", "movdqa xmm5, [{p} + 80]", "movdqa xmm6, [{p} + 96]", "movdqa xmm7, [{p} + 112]",
            "movdqa xmm8, [{p} + 128]", "movdqa xmm9, [{p} + 144]", "movdqa xmm10, [{p} + 160]", "movdqa xmm11, [{p} + 176]",
            "movdqa xmm12, [{p} + 192]", "movdqa xmm13, [{p} + 208]", "movdqa xmm14, [{p} + 224]", "movdqa xmm15, [{p} + 240]",
            p = in(reg) r.0.as_ptr(),
            options(nostack, readonly)
        )
    }
}

fn store(r: &mut Regs) {
    // SAFETY: writes xmm0..xmm15 into the 256 bytes of `r`.
    unsafe {
        asm!(
            "movdqa [{p}], xmm0", "movdqa [{p} + 16], xmm1", "movdqa [{p} + 32], xmm2", "movdqa [{p} + 48], xmm3",
            "movdqa [{p} + 64], xmm4", "movdqa [{p} + 80], xmm5", "movdqa [{p} + 96], xmm6", "movdqa [{p} + 112], xmm7",
            "movdqa [{p} + 128], xmm8", "movdqa [{p} + 144], xmm9", "movdqa [{p} + 160], xmm10", "movdqa [{p} + 176], xmm11",
            "movdqa [{p} + 192], xmm12", "movdqa [{p} + 208], xmm13", "movdqa [{p} + 224], xmm14", "movdqa [{p} + 240], xmm15",
            p = in(reg) r.0.as_mut_ptr(),
            options(nostack)
        )
    }
}

fn mxcsr() -> u32 {
    let mut v = 0u32;
    // SAFETY: stores MXCSR into a local.
    unsafe { asm!("stmxcsr [{}]", in(reg) &mut v as *mut u32, options(nostack)) };
    v
}

fn set_mxcsr(v: u32) {
    // SAFETY: `v` has only architectural MXCSR bits (masks and rounding control).
    unsafe { asm!("ldmxcsr [{}]", in(reg) &v as *const u32, options(nostack, readonly)) };
}

fn main(_si: &'static StartInfo) -> ! {
    let seed = xenrt::cmdline::arg_u64("seed").unwrap_or(1);
    let yields = xenrt::cmdline::arg_u64("yields").unwrap_or(40);
    let mut want = Regs([0; 32]);
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for w in want.0.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *w = x;
    }
    // Masked exceptions (0x1f80) with the rounding mode taken from the seed (bits 13..14).
    let want_mxcsr = 0x1f80 | (((seed & 3) as u32) << 13);
    load(&want);
    set_mxcsr(want_mxcsr);
    for i in 0..yields {
        xenrt::hypercall::sched_yield();
        let mut got = Regs([0; 32]);
        store(&mut got);
        let m = mxcsr();
        if let Some(r) = (0..16).find(|&r| got.0[2 * r..2 * r + 2] != want.0[2 * r..2 * r + 2]) {
            println!(
                "fpu: FAIL seed {} yield {}: xmm{} = {:#x}:{:#x}, want {:#x}:{:#x}",
                seed,
                i,
                r,
                got.0[2 * r + 1],
                got.0[2 * r],
                want.0[2 * r + 1],
                want.0[2 * r]
            );
            xenrt::shutdown(SHUTDOWN_CRASH);
        }
        if m & 0xffbf != want_mxcsr {
            println!("fpu: FAIL seed {} yield {}: mxcsr = {:#x}, want {:#x}", seed, i, m, want_mxcsr);
            xenrt::shutdown(SHUTDOWN_CRASH);
        }
    }
    println!("fpu: seed {} kept over {} yields", seed, yields);
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
