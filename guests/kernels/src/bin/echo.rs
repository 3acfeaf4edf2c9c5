//! `echo`: reads its console (the ring's `in` buffer, as Linux's hvc_xen does) and answers each
//! line it receives with `echo: <line>`; the line `poweroff` powers it off. It waits for input in
//! `SCHEDOP_poll` on the console event channel, so it costs nothing while nobody types. It
//! prints `echo: ready` first. `xenolith boot echo -c` is an interactive session with it;
//! `scenarios/console_input.toml` feeds it input at fixed virtual times.
#![no_std]
#![no_main]

use xenrt::{abi::*, println, StartInfo};

xenrt::entry!(main);

fn main(_si: &'static StartInfo) -> ! {
    if xenrt::mm::map_shared_info() != 0 {
        println!("echo: cannot map shared_info");
        xenrt::shutdown(SHUTDOWN_CRASH);
    }
    println!("echo: ready");
    let mut line = [0u8; 256];
    let mut len = 0;
    let mut total = 0u64;
    loop {
        let mut buf = [0u8; 64];
        let n = xenrt::console::ring_read(&mut buf);
        if n == 0 {
            xenrt::console::wait_input();
            continue;
        }
        total += n as u64;
        for &b in &buf[..n] {
            match b {
                b'\r' | b'\n' => {
                    let text = core::str::from_utf8(&line[..len]).unwrap_or("<not utf-8>");
                    if text == "poweroff" {
                        println!("echo: bye after {} bytes", total);
                        xenrt::shutdown(SHUTDOWN_POWEROFF);
                    }
                    println!("echo: {}", text);
                    len = 0;
                }
                _ if len < line.len() => {
                    line[len] = b;
                    len += 1;
                }
                _ => {}
            }
        }
    }
}
