//! `parallel`: two vCPUs of one domain that can only finish if they run at the same time (or
//! are preempted). vCPU 0 brings up vCPU 1 (VCPUOP_initialise + up, as `smp`), then the two hand
//! a counter back and forth through shared memory, without any hypercall, ROUNDS times each:
//! vCPU 0 moves it from even to odd, vCPU 1 from odd to even. Each handoff needs the other vCPU
//! to run; with both on pCPUs of their own (`pcpus = 2`) every handoff takes a few hundred
//! cycles, on one pCPU each needs a preemption. vCPU 0 then prints the count and powers off;
//! vCPU 1 spins until the domain is destroyed. Only vCPU 0 makes hypercalls after vCPU 1
//! started, so the trace is the same on every platform. Needs `vcpus = 2`.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use xenrt::{abi::*, hypercall as hc, println, StartInfo};

xenrt::entry!(main);

/// Handoffs each way.
const ROUNDS: u64 = 10;

// xen-public/vcpu.h
const VCPUOP_INITIALISE: u64 = 0;
const VCPUOP_UP: u64 = 1;
// xen-public/arch-x86/xen.h
const VGCF_IN_KERNEL: u64 = 1 << 2;
const FLAT_KERNEL_SS: u64 = 0xe02b; // xen-public/arch-x86/xen-x86_64.h (FLAT_RING3_SS64)

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

fn vcpu_op(cmd: u64, id: u64, arg: *mut u8) -> i64 {
    // SAFETY: every argument points at our own memory of the size the command expects.
    unsafe { hc::vcpu_op(cmd, id, arg) }
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
extern "C" fn ap_main() -> ! {
    STARTED.store(1, Ordering::Release);
    for _ in 0..ROUNDS {
        take_turn(1);
    }
    loop {
        core::hint::spin_loop();
    }
}

fn main(si: &'static StartInfo) -> ! {
    check("map shared_info", xenrt::mm::map_shared_info(), 0);
    println!("parallel: starting vCPU 1");
    let l4 = xenrt::mm::va_to_mfn(si.pt_base);
    // SAFETY: CTX and AP_STACK are used by this code only, before vCPU 1 exists.
    let ctx = unsafe {
        let c = &mut *core::ptr::addr_of_mut!(CTX);
        let top = core::ptr::addr_of!(AP_STACK) as u64 + 16384;
        c[W_FLAGS] = VGCF_IN_KERNEL;
        c[W_RIP] = ap_main as *const () as u64;
        c[W_CS] = FLAT_KERNEL_CS64 as u64;
        c[W_RFLAGS] = 0x2;
        c[W_RSP] = top - 8;
        c[W_SS] = FLAT_KERNEL_SS;
        c[W_KERNEL_SS] = FLAT_KERNEL_SS;
        c[W_KERNEL_SP] = top;
        c[W_CR3] = l4 << 12;
        c.as_mut_ptr() as *mut u8
    };
    check("initialise(1)", vcpu_op(VCPUOP_INITIALISE, 1, ctx), 0);
    check("up(1)", vcpu_op(VCPUOP_UP, 1, core::ptr::null_mut()), 0);
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
