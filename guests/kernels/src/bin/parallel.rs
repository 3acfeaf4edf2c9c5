//! `parallel`: two vCPUs of one domain that can only finish if they run at the same time (or
//! are preempted). vCPU 0 brings up vCPU 1 (VCPUOP_initialise + up, `xenrt::vcpu`), then the
//! two hand a counter back and forth through shared memory, without any hypercall, ROUNDS times
//! each:
//! vCPU 0 moves it from even to odd, vCPU 1 from odd to even. Each handoff needs the other vCPU
//! to run; with both on pCPUs of their own (`pcpus = 2`) every handoff takes a few hundred
//! cycles, on one pCPU each needs a preemption. vCPU 0 then prints the count and powers off;
//! vCPU 1 spins until the domain is destroyed. Only vCPU 0 makes hypercalls after vCPU 1
//! started, so the trace is the same on every platform. Needs `vcpus = 2`.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use xenrt::vcpu::{self, Stack};
use xenrt::{abi::*, println, StartInfo};

xenrt::entry!(main);

/// Handoffs each way.
const ROUNDS: u64 = 10;

static AP_STACK: Stack<16384> = Stack::new();
/// vCPU 1 is running.
static STARTED: AtomicU64 = AtomicU64::new(0);
/// The counter the vCPUs hand over (even: vCPU 0's turn, odd: vCPU 1's).
static TURN: AtomicU64 = AtomicU64::new(0);

fn check(what: &str, rc: i64, want: i64) {
    if rc != want {
        println!("parallel: FAIL {} = {} (want {})", what, rc, want);
        xenrt::shutdown(SHUTDOWN_CRASH);
    }
}

/// Wait until TURN has the parity `odd`, then advance it.
fn take_turn(odd: u64) {
    loop {
        let t = TURN.load(Ordering::Acquire);
        if t & 1 == odd {
            TURN.store(t + 1, Ordering::Release);
            return;
        }
        core::hint::spin_loop();
    }
}

/// vCPU 1 starts here, on AP_STACK, in kernel mode, events masked. No hypercalls.
extern "C" fn ap_main(_id: u32) -> ! {
    STARTED.store(1, Ordering::Release);
    for _ in 0..ROUNDS {
        take_turn(1);
    }
    loop {
        core::hint::spin_loop();
    }
}

fn main(_si: &'static StartInfo) -> ! {
    check("map shared_info", xenrt::mm::map_shared_info(), 0);
    println!("parallel: starting vCPU 1");
    check("initialise(1)", vcpu::initialise(1, ap_main, AP_STACK.top()), 0);
    check("up(1)", vcpu::up(1), 0);
    while STARTED.load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    for _ in 0..ROUNDS {
        take_turn(0);
    }
    // vCPU 1's last handoff.
    while TURN.load(Ordering::Acquire) != 2 * ROUNDS {
        core::hint::spin_loop();
    }
    println!("parallel: {} handoffs between vCPU 0 and vCPU 1 through shared memory", 2 * ROUNDS);
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
