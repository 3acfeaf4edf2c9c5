//! `smp`: brings up a second vCPU the way a PV kernel does (Linux's cpu_initialize_context):
//! VCPUOP_initialise with a `vcpu_guest_context` (`xenrt::vcpu`: kernel mode, the domain's initial
//! page tables, its own stack), then VCPUOP_up. vCPU 1 prints `smp: hello from vCPU 1`, registers its runstate area,
//! and takes itself down (VCPUOP_down); vCPU 0 waits for it (SCHEDOP_poll on an IPI port that
//! vCPU 1 signals), checks what Xen guarantees
//! (initialise twice is -EEXIST, up before initialise is -EINVAL, is_up, the runstate of the
//! stopped vCPU is offline with running time counted), prints `smp: vCPU 1 up, ran, down` and
//! powers off. Needs `vcpus = 2`.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use xenrt::vcpu::{self, Stack};
use xenrt::{abi::*, cio_println, hypercall as hc, println, StartInfo};

xenrt::entry!(main);

static AP_STACK: Stack<16384> = Stack::new();
/// `vcpu_runstate_info` of vCPU 1, kept up to date by the hypervisor.
static mut AP_RUNSTATE: VcpuRunstateInfo = VcpuRunstateInfo { state: 0, pad: 0, state_entry_time: 0, time: [0; 4] };
/// vCPU 1's progress: 1 = printed.
static AP_DONE: AtomicU64 = AtomicU64::new(0);
/// The IPI port vCPU 1 signals vCPU 0 on.
static IPI: AtomicU64 = AtomicU64::new(0);

/// Calls batched in one multicall, so that no other vCPU runs between them (the trace is then
/// the same on every platform, whatever preempts when).
fn batch(calls: &mut [MulticallEntry]) {
    // SAFETY: `calls` is our own array of entries.
    let rc = unsafe { hc::multicall(calls.as_mut_ptr(), calls.len() as u64) };
    if rc != 0 {
        fail("multicall", rc);
    }
    for (i, c) in calls.iter().enumerate() {
        if c.result != 0 {
            fail(if i == 0 { "batched call 0" } else { "batched call 1" }, c.result as i64);
        }
    }
}

fn fail(what: &str, rc: i64) -> ! {
    println!("smp: FAIL {} = {}", what, rc);
    xenrt::shutdown(SHUTDOWN_CRASH)
}

fn check(what: &str, rc: i64, want: i64) {
    if rc != want {
        println!("smp: FAIL {} = {} (want {})", what, rc, want);
        xenrt::shutdown(SHUTDOWN_CRASH);
    }
}

fn vcpu_op(cmd: u64, id: u32, arg: *mut u8) -> i64 {
    // SAFETY: every argument points at our own memory of the size the command expects.
    unsafe { vcpu::op(cmd, id, arg) }
}

/// The runstate state of vCPU 1's registered area (the hypervisor keeps writing it).
fn area_state() -> u64 {
    // SAFETY: a volatile read of our own static; only the hypervisor writes it.
    (unsafe { core::ptr::read_volatile(core::ptr::addr_of!(AP_RUNSTATE.state)) }) as u32 as u64
}

/// vCPU 1 starts here, on AP_STACK, in kernel mode, events masked.
extern "C" fn ap_main(_id: u32) -> ! {
    let area = core::ptr::addr_of_mut!(AP_RUNSTATE) as *mut u8;
    let rc = vcpu_op(VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 1, core::ptr::addr_of!(area) as *mut u8);
    let state = area_state();
    cio_println!("smp: hello from vCPU 1 (runstate area rc={} state={})", rc, state);
    AP_DONE.store(1, Ordering::Release);
    // Wake vCPU 0 and go down in one step.
    let mut send = [0u32; 1];
    send[0] = IPI.load(Ordering::Acquire) as u32;
    let mut calls = [
        MulticallEntry { op: HYPERVISOR_EVENT_CHANNEL_OP as u64, result: 0, args: [EVTCHNOP_SEND, send.as_mut_ptr() as u64, 0, 0, 0, 0] },
        MulticallEntry { op: HYPERVISOR_VCPU_OP as u64, result: 0, args: [VCPUOP_DOWN, 1, 0, 0, 0, 0] },
    ];
    batch(&mut calls);
    // Never runs again unless brought up.
    loop {
        hc::sched_yield();
    }
}

fn main(_si: &'static StartInfo) -> ! {
    check("map shared_info", xenrt::mm::map_shared_info(), 0);
    println!("smp: bringing up vCPU 1");
    // Not a vCPU of this domain.
    check("is_up(2)", vcpu::is_up(2), -ENOENT);
    check("is_up(1) before", vcpu::is_up(1), 0);
    check("up(1) before initialise", vcpu::up(1), -EINVAL);
    check("initialise(1)", vcpu::initialise(1, ap_main, AP_STACK.top()), 0);
    check("initialise(1) again", vcpu::initialise(1, ap_main, AP_STACK.top()), -EEXIST);
    check("is_up(1) initialised", vcpu::is_up(1), 0);
    // An IPI port on vCPU 0 (evtchn_bind_ipi {vcpu, port}); polled with events masked.
    let mut bind = [0u32, 0u32];
    // SAFETY: `bind` is the 8-byte struct the command takes.
    check("bind_ipi", unsafe { hc::event_channel_op(EVTCHNOP_BIND_IPI, bind.as_mut_ptr() as *mut u8) }, 0);
    IPI.store(bind[1] as u64, Ordering::Release);
    // Up, and wait for vCPU 1 in the same step (sched_poll {ports, nr_ports, timeout}).
    let mut port = [bind[1]];
    let poll = [port.as_mut_ptr() as u64, 1, 0];
    let mut calls = [
        MulticallEntry { op: HYPERVISOR_VCPU_OP as u64, result: 0, args: [VCPUOP_UP, 1, 0, 0, 0, 0] },
        MulticallEntry { op: HYPERVISOR_SCHED_OP as u64, result: 0, args: [SCHEDOP_POLL, poll.as_ptr() as u64, 0, 0, 0, 0] },
    ];
    batch(&mut calls);
    let mut waits = 0u64;
    while AP_DONE.load(Ordering::Acquire) == 0 || vcpu::is_up(1) != 0 {
        hc::sched_yield();
        waits += 1;
        if waits > 100_000 {
            fail("vCPU 1 never finished", waits as i64);
        }
    }
    let mut info = VcpuRunstateInfo::default();
    check("get_runstate_info(1)", vcpu_op(VCPUOP_GET_RUNSTATE_INFO, 1, core::ptr::addr_of_mut!(info) as *mut u8), 0);
    let running = info.time[RUNSTATE_RUNNING as usize];
    if info.state as u32 as u64 != RUNSTATE_OFFLINE || running == 0 {
        fail("runstate of vCPU 1 (state, running ns)", ((info.state as i64 & 0xffff) << 32) | running as i64);
    }
    // The area vCPU 1 registered was updated when it went down.
    let state = area_state();
    if state != RUNSTATE_OFFLINE {
        fail("runstate area of vCPU 1", state as i64);
    }
    println!("smp: vCPU 1 up, ran, down");
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
