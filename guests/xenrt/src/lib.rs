//! xenrt: a tiny `no_std` runtime for Xen PV64 guest kernels.
//!
//! It speaks the Xen PV64 ABI exactly as Xen defines it (so the guests also run on real Xen):
//! image layout and ELF notes (`boot`), hypercalls (`hypercall`), the PV console ring and
//! console_io (`console`), address translation and shared_info (`mm`), trap handling through
//! set_trap_table/HYPERVISOR_iret (`traps`), bringing up further vCPUs (`vcpu`), the command
//! line (`cmdline`), Xen's forced-emulation CPUID ([`xen_cpuid`]) and a panic handler that
//! reports via console_io and crashes the domain.
//!
//! A guest is a `#![no_std] #![no_main]` binary that calls `xenrt::entry!(main)` with
//! `fn main(si: &'static StartInfo) -> !`.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod abi;
mod boot;
pub mod cmdline;
pub mod console;
pub mod hypercall;
pub mod mm;
pub mod time;
pub mod traps;
pub mod vcpu;
pub mod xenstore;

pub use abi::StartInfo;
pub use hypercall::shutdown;

use core::sync::atomic::{AtomicPtr, Ordering};

static START_INFO: AtomicPtr<StartInfo> = AtomicPtr::new(core::ptr::null_mut());

/// The start_info page the domain was started with.
pub fn start_info() -> &'static StartInfo {
    let p = START_INFO.load(Ordering::Acquire);
    assert!(!p.is_null(), "start_info not set");
    // SAFETY: set once by xenrt_main from the builder-provided pointer; the page stays mapped.
    unsafe { &*p }
}

/// Rust entry, called by `_start` on the boot stack.
#[no_mangle]
extern "C" fn xenrt_main(si: *const StartInfo) -> ! {
    START_INFO.store(si as *mut StartInfo, Ordering::Release);
    console::init(start_info());
    extern "Rust" {
        fn xenrt_guest_main(si: &'static StartInfo) -> !;
    }
    // SAFETY: defined by the guest through `entry!`, with exactly this signature.
    unsafe { xenrt_guest_main(start_info()) }
}

/// Declares the guest's `main(si: &'static StartInfo) -> !`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        fn xenrt_guest_main(si: &'static $crate::StartInfo) -> ! {
            let f: fn(&'static $crate::StartInfo) -> ! = $main;
            f(si)
        }
    };
}

/// Xen's forced-emulation CPUID (`ud2; .ascii "xen"; cpuid`) — returns [eax, ebx, ecx, edx].
pub fn xen_cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u64, u32, u32);
    // SAFETY: the prefix makes the hypervisor emulate cpuid (no fault reaches us if it does);
    // rbx is reserved by LLVM so it is saved/restored around the instruction by hand.
    unsafe {
        core::arch::asm!(
            "mov {t}, rbx",
            ".byte 0x0f, 0x0b, 0x78, 0x65, 0x6e, 0x0f, 0xa2",
            "xchg {t}, rbx",
            t = out(reg) b,
            inout("eax") leaf => a,
            inout("ecx") subleaf => c,
            out("edx") d,
        );
    }
    [a, b as u32, c, d]
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    console::console_io_fmt(format_args!("panic: {}\n", info));
    hypercall::shutdown(abi::SHUTDOWN_CRASH)
}
