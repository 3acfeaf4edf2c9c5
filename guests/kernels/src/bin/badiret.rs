//! `badiret`: `HYPERVISOR_iret` to a context the CPU cannot enter (cmdline `what=cs|ss|rip`):
//! a code or stack selector that is not one of Xen's flat ring-3 selectors, or a non-canonical
//! rip. On bare metal the hypervisor's own `iretq` would fault. The hypervisor must crash this
//! domain alone (Xen would call the failsafe callback, which this guest does not register) and
//! keep running the others. Prints `badiret: <what>` first; anything printed after the iret is a
//! bug.
#![no_std]
#![no_main]

use core::arch::asm;
use xenrt::{abi::*, println, StartInfo};

xenrt::entry!(main);

fn main(_si: &'static StartInfo) -> ! {
    let what = xenrt::cmdline::arg("what").unwrap_or("cs");
    // xen-public/arch-x86/xen-x86_64.h: FLAT_RING3_CS64 0xe033, FLAT_RING3_SS64 0xe02b. A
    // return to guest kernel mode carries RPL 0 in the saved cs (iret.c: RPL 3 means user mode);
    // Xen forces RPL 3 on both selectors.
    let (mut cs, mut ss, mut rip) = (0xe030u64, 0xe02bu64, after_iret as *const () as u64);
    match what {
        "cs" => cs = 0x1230,
        "ss" => ss = 0x0000,
        "rip" => rip = 0x8000_0000_0000_1000,
        _ => {}
    }
    println!("badiret: {}", what);
    let stub = xenrt::hypercall::stub_address(HYPERVISOR_IRET);
    // SAFETY: builds the iret_context of xen-public/arch-x86/xen-x86_64.h (rax, r11, rcx pushed
    // by the stub; flags, rip, cs, rflags, rsp, ss by us, lowest address first) and jumps to the
    // iret stub, which does not return here.
    unsafe {
        asm!(
            "mov r8, rsp",
            "push rdi",
            "push r8",
            "push 0x202",
            "push rsi",
            "push rdx",
            "push 0",
            "jmp rcx",
            in("rdi") ss,
            in("rsi") cs,
            in("rdx") rip,
            in("rcx") stub,
            options(noreturn)
        )
    }
}

extern "C" fn after_iret() -> ! {
    println!("badiret: FAIL the hypervisor entered the bad context");
    xenrt::shutdown(SHUTDOWN_CRASH)
}
