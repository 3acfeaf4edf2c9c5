//! `waker`: a latency probe for the credit scheduler's BOOST. `rounds=N` times (default 20) it
//! blocks in SCHEDOP_poll with no ports and a timeout `period_us` (default 7000) ahead, and on
//! waking reads the system time (pvclock, vcpu_info's record and rdtsc): the
//! difference from the timeout is the wake-to-run latency. Then it prints
//! `waker: max latency N us over R rounds` and `waker: ok` when the maximum is at most
//! `bound_us` (default 1000), `waker: late` otherwise, and powers off.
#![no_std]
#![no_main]

use xenrt::{abi::SHUTDOWN_POWEROFF, println, StartInfo};

xenrt::entry!(main);

/// SCHEDOP_poll (xen-public/sched.h).
const SCHEDOP_POLL: u64 = 3;

#[repr(C)]
struct SchedPoll {
    ports: u64,
    nr_ports: u32,
    _pad: u32,
    timeout: u64,
}

/// System time now (ns), as a PV guest reads it (pvclock: vcpu_info's time record and rdtsc).
fn system_time() -> u64 {
    xenrt::time::now()
}

fn main(_si: &'static StartInfo) -> ! {
    let rounds = xenrt::cmdline::arg_u64("rounds").unwrap_or(20);
    let period = xenrt::cmdline::arg_u64("period_us").unwrap_or(7000) * 1000;
    let bound = xenrt::cmdline::arg_u64("bound_us").unwrap_or(1000) * 1000;
    if xenrt::mm::map_shared_info() != 0 {
        println!("waker: cannot map shared_info");
        xenrt::shutdown(SHUTDOWN_POWEROFF);
    }
    let mut worst = 0;
    for _ in 0..rounds {
        let deadline = system_time() + period;
        let p = SchedPoll { ports: 0, nr_ports: 0, _pad: 0, timeout: deadline };
        // SAFETY: `p` is a valid sched_poll with no ports.
        unsafe { xenrt::hypercall::sched_op(SCHEDOP_POLL, core::ptr::addr_of!(p).cast()) };
        worst = worst.max(system_time().saturating_sub(deadline));
    }
    println!("waker: max latency {} us over {} rounds", worst / 1000, rounds);
    println!("waker: {}", if worst <= bound { "ok" } else { "late" });
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
