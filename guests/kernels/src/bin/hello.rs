//! `hello`: maps shared_info, prints three lines through the console ring
//! (`Hello from xenolith`, `xen_version <major>.<minor>`, `cmdline: <cmdline>`), one through
//! console_io (`hello via console_io`), then powers off.
#![no_std]
#![no_main]

use xenrt::{abi::*, cio_println, println, StartInfo};

xenrt::entry!(main);

fn main(_si: &'static StartInfo) -> ! {
    let rc = xenrt::mm::map_shared_info();
    if rc != 0 {
        cio_println!("hello: map_shared_info failed: {}", rc);
        xenrt::shutdown(SHUTDOWN_CRASH);
    }
    println!("Hello from xenolith");
    let v = xenrt::hypercall::version();
    println!("xen_version {}.{}", v >> 16, v & 0xffff);
    println!("cmdline: {}", xenrt::cmdline::cmdline());
    cio_println!("hello via console_io");
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
