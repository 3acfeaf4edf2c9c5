//! `smp`: brings up a second vCPU the way a PV kernel does (Linux's cpu_initialize_context):
//! VCPUOP_initialise with a `vcpu_guest_context` (kernel mode, the running page tables, its own
//! stack), then VCPUOP_up. vCPU 1 prints `smp: hello from vCPU 1`, registers its runstate area,
//! and takes itself down (VCPUOP_down); vCPU 0 waits for it (SCHEDOP_poll on an IPI port that
//! vCPU 1 signals), checks what Xen guarantees
//! (initialise twice is -EEXIST, up before initialise is -EINVAL, is_up, the runstate of the
//! stopped vCPU is offline with running time counted), prints `smp: vCPU 1 up, ran, down` and
//! powers off. Needs `vcpus = 2`.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use xenrt::{abi::*, cio_println, hypercall as hc, println, StartInfo};

xenrt::entry!(main);

// xen-public/vcpu.h
const VCPUOP_INITIALISE: u64 = 0;
const VCPUOP_UP: u64 = 1;
const VCPUOP_DOWN: u64 = 2;
const VCPUOP_IS_UP: u64 = 3;
const VCPUOP_GET_RUNSTATE_INFO: u64 = 4;
const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5;
const RUNSTATE_RUNNING: u64 = 0; // xen-public/vcpu.h
const RUNSTATE_OFFLINE: u64 = 3; // xen-public/vcpu.h
// xen-public/arch-x86/xen.h
const VGCF_IN_KERNEL: u64 = 1 << 2;
const FLAT_KERNEL_SS: u64 = 0xe02b; // xen-public/arch-x86/xen-x86_64.h (FLAT_RING3_SS64)
const EEXIST: i64 = -17; // xen-public/errno.h
const EINVAL: i64 = -22; // xen-public/errno.h
const ENOENT: i64 = -2; // xen-public/errno.h

/// `struct vcpu_guest_context` (xen-public/arch-x86/xen.h), 5168 bytes, as 8-byte words.
/// Word indexes of the fields used (byte offset / 8).
const CTX_WORDS: usize = 5168 / 8;
const W_FLAGS: usize = 512 / 8;
const W_RIP: usize = (520 + 128) / 8;
const W_CS: usize = (520 + 136) / 8;
const W_RFLAGS: usize = (520 + 144) / 8;
const W_RSP: usize = (520 + 152) / 8;
const W_SS: usize = (520 + 160) / 8;
const W_KERNEL_SS: usize = 4968 / 8;
const W_KERNEL_SP: usize = 4976 / 8;
const W_CR3: usize = (4984 + 3 * 8) / 8;

#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut AP_STACK: Stack = Stack([0; 16384]);
static mut CTX: [u64; CTX_WORDS] = [0; CTX_WORDS];
/// `vcpu_runstate_info` (48 bytes) of vCPU 1, kept up to date by the hypervisor.
static mut AP_RUNSTATE: [u64; 6] = [0; 6];
/// vCPU 1's progress: 1 = printed.
static AP_DONE: AtomicU64 = AtomicU64::new(0);
/// The IPI port vCPU 1 signals vCPU 0 on.
static IPI: AtomicU64 = AtomicU64::new(0);

const HYPERVISOR_VCPU_OP: u64 = 24; // xen-public/xen.h
const HYPERVISOR_SCHED_OP: u64 = 29; // xen-public/xen.h
const HYPERVISOR_EVENT_CHANNEL_OP: u64 = 32; // xen-public/xen.h
const EVTCHNOP_SEND_: u64 = 4; // xen-public/event_channel.h
const EVTCHNOP_BIND_IPI: u64 = 7; // xen-public/event_channel.h
const SCHEDOP_POLL: u64 = 3; // xen-public/sched.h

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

fn vcpu_op(cmd: u64, id: u64, arg: *mut u8) -> i64 {
    // SAFETY: every argument points at our own memory of the size the command expects.
    unsafe { hc::vcpu_op(cmd, id, arg) }
}

/// vCPU 1 starts here, on AP_STACK, in kernel mode, events masked.
extern "C" fn ap_main() -> ! {
    let area = core::ptr::addr_of_mut!(AP_RUNSTATE) as *mut u8;
    let rc = vcpu_op(VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 1, core::ptr::addr_of!(area) as *mut u8);
    // SAFETY: the hypervisor wrote our own runstate there; volatile, it keeps changing.
    let state = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(AP_RUNSTATE[0])) } & 0xffff_ffff;
    cio_println!("smp: hello from vCPU 1 (runstate area rc={} state={})", rc, state);
    AP_DONE.store(1, Ordering::Release);
    // Wake vCPU 0 and go down in one step.
    let mut send = [0u32; 1];
    send[0] = IPI.load(Ordering::Acquire) as u32;
    let mut calls = [
        MulticallEntry { op: HYPERVISOR_EVENT_CHANNEL_OP, result: 0, args: [EVTCHNOP_SEND_, send.as_mut_ptr() as u64, 0, 0, 0, 0] },
        MulticallEntry { op: HYPERVISOR_VCPU_OP, result: 0, args: [VCPUOP_DOWN, 1, 0, 0, 0, 0] },
    ];
    batch(&mut calls);
    // Never runs again unless brought up.
    loop {
        hc::sched_yield();
    }
}

fn main(si: &'static StartInfo) -> ! {
    check("map shared_info", xenrt::mm::map_shared_info(), 0);
    println!("smp: bringing up vCPU 1");
    // Not a vCPU of this domain.
    check("is_up(2)", vcpu_op(VCPUOP_IS_UP, 2, core::ptr::null_mut()), ENOENT);
    check("is_up(1) before", vcpu_op(VCPUOP_IS_UP, 1, core::ptr::null_mut()), 0);
    check("up(1) before initialise", vcpu_op(VCPUOP_UP, 1, core::ptr::null_mut()), EINVAL);
    let l4 = xenrt::mm::va_to_mfn(si.pt_base);
    // SAFETY: CTX and AP_STACK are used by this code only, before vCPU 1 exists.
    let ctx = unsafe {
        let c = &mut *core::ptr::addr_of_mut!(CTX);
        let top = core::ptr::addr_of!(AP_STACK) as u64 + 16384;
        c[W_FLAGS] = VGCF_IN_KERNEL;
        c[W_RIP] = ap_main as *const () as u64;
        c[W_CS] = FLAT_KERNEL_CS64 as u64;
        c[W_RFLAGS] = 0x2;
        // As after a call: rsp + 8 is 16-byte aligned at a function's first instruction.
        c[W_RSP] = top - 8;
        c[W_SS] = FLAT_KERNEL_SS;
        c[W_KERNEL_SS] = FLAT_KERNEL_SS;
        c[W_KERNEL_SP] = top;
        c[W_CR3] = l4 << 12;
        c.as_mut_ptr() as *mut u8
    };
    check("initialise(1)", vcpu_op(VCPUOP_INITIALISE, 1, ctx), 0);
    check("initialise(1) again", vcpu_op(VCPUOP_INITIALISE, 1, ctx), EEXIST);
    check("is_up(1) initialised", vcpu_op(VCPUOP_IS_UP, 1, core::ptr::null_mut()), 0);
    // An IPI port on vCPU 0 (evtchn_bind_ipi {vcpu, port}); polled with events masked.
    let mut bind = [0u32, 0u32];
    // SAFETY: `bind` is the 8-byte struct the command takes.
    check("bind_ipi", unsafe { hc::event_channel_op(EVTCHNOP_BIND_IPI, bind.as_mut_ptr() as *mut u8) }, 0);
    IPI.store(bind[1] as u64, Ordering::Release);
    // Up, and wait for vCPU 1 in the same step (sched_poll {ports, nr_ports, timeout}).
    let mut port = [bind[1]];
    let poll = [port.as_mut_ptr() as u64, 1, 0];
    let mut calls = [
        MulticallEntry { op: HYPERVISOR_VCPU_OP, result: 0, args: [VCPUOP_UP, 1, 0, 0, 0, 0] },
        MulticallEntry { op: HYPERVISOR_SCHED_OP, result: 0, args: [SCHEDOP_POLL, poll.as_ptr() as u64, 0, 0, 0, 0] },
    ];
    batch(&mut calls);
    let mut waits = 0u64;
    while AP_DONE.load(Ordering::Acquire) == 0 || vcpu_op(VCPUOP_IS_UP, 1, core::ptr::null_mut()) != 0 {
        hc::sched_yield();
        waits += 1;
        if waits > 100_000 {
            fail("vCPU 1 never finished", waits as i64);
        }
    }
    let mut info = [0u64; 6];
    check("get_runstate_info(1)", vcpu_op(VCPUOP_GET_RUNSTATE_INFO, 1, info.as_mut_ptr() as *mut u8), 0);
    if info[0] & 0xffff_ffff != RUNSTATE_OFFLINE || info[2 + RUNSTATE_RUNNING as usize] == 0 {
        fail("runstate of vCPU 1 (state, running ns)", ((info[0] & 0xffff) << 32 | info[2]) as i64);
    }
    // The area vCPU 1 registered was updated when it went down.
    // SAFETY: written by the hypervisor only, read volatile.
    let area_state = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(AP_RUNSTATE[0])) } & 0xffff_ffff;
    if area_state != RUNSTATE_OFFLINE {
        fail("runstate area of vCPU 1", area_state as i64);
    }
    println!("smp: vCPU 1 up, ran, down");
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
