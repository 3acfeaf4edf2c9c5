//! `xsclient`: talks to xenstore as Linux's xenbus driver does (header and each argument as
//! separate ring writes, see `xenrt::xenstore`) and prints what it sees, one `xs:` line per
//! check: its domid, name, memory target and vm path as the toolstack wrote them, its home path,
//! a write read back, mkdir/directory/get_perms, the errors a domU gets (EACCES on a read-only
//! node, ENOENT, EINVAL), a value longer than the ring, a committed transaction and one that
//! fails with EAGAIN, and a watch with its initial event and an event for a change below it.
//!
//! With `wait_shutdown=1` on the command line it then does what a PV kernel does for
//! `xl shutdown`: watches `control/shutdown`, and when the toolstack writes "poweroff" or
//! "reboot" there, acknowledges by writing "" and shuts down with that reason. Otherwise it
//! powers off.
#![no_std]
#![no_main]

use xenrt::abi::*;
use xenrt::xenstore::{self as xs, Reply};
use xenrt::{println, StartInfo};

xenrt::entry!(main);

static mut REPLY: Reply = Reply::new();

fn ask(ty: u32, tx: u32, strings: &[&str], raw: &[u8]) -> &'static Reply {
    // SAFETY: the one flow of control uses REPLY; each result is used before the next call.
    let r = unsafe { &mut *core::ptr::addr_of_mut!(REPLY) };
    xs::call(ty, tx, strings, raw, r);
    r
}

fn read(path: &str) -> &'static str {
    ask(XS_READ, 0, &[path], &[]).text()
}

fn write(tx: u32, path: &str, value: &[u8]) -> &'static str {
    ask(XS_WRITE, tx, &[path], value).text()
}

/// The strings of a reply, space-separated into `out`.
fn list(r: &Reply, out: &mut [u8; 256]) -> usize {
    let mut n = 0;
    for (i, s) in r.bytes().split(|&b| b == 0).filter(|s| !s.is_empty()).enumerate() {
        if i > 0 && n < out.len() {
            out[n] = b' ';
            n += 1;
        }
        for &b in s {
            if n < out.len() {
                out[n] = b;
                n += 1;
            }
        }
    }
    n
}

fn main(_si: &'static StartInfo) -> ! {
    if !xs::init() {
        println!("xs: no store");
        xenrt::shutdown(SHUTDOWN_CRASH);
    }
    let domid = read("domid");
    println!("xs: domid {}", domid);
    let mut home = [0u8; 32];
    let hl = {
        let r = ask(XS_GET_DOMAIN_PATH, 0, &[domid], &[]);
        home[..r.len.min(32)].copy_from_slice(&r.bytes()[..r.len.min(32)]);
        r.len.min(32)
    };
    println!("xs: home {}", core::str::from_utf8(&home[..hl.saturating_sub(1)]).unwrap_or("?"));
    println!("xs: name {}", read("name"));
    println!("xs: memory/target {}", read("memory/target"));
    println!("xs: vm {}", read("vm"));
    println!("xs: console/type {}", read("console/type"));

    println!("xs: write data/greeting {}", write(0, "data/greeting", b"hello"));
    println!("xs: read data/greeting {}", read("data/greeting"));
    println!("xs: mkdir data/dir {}", ask(XS_MKDIR, 0, &["data/dir"], &[]).text());
    let mut buf = [0u8; 256];
    let n = list(ask(XS_DIRECTORY, 0, &["data"], &[]), &mut buf);
    println!("xs: directory data [{}]", core::str::from_utf8(&buf[..n]).unwrap_or("?"));
    let n = list(ask(XS_GET_PERMS, 0, &["data/greeting"], &[]), &mut buf);
    println!("xs: get_perms data/greeting [{}]", core::str::from_utf8(&buf[..n]).unwrap_or("?"));
    println!("xs: write domid {}", write(0, "domid", b"99"));
    println!("xs: read /local/domain/0/name {}", read("/local/domain/0/name"));
    println!("xs: read nothing {}", read("nothing"));
    println!("xs: read bad//path {}", read("bad//path"));
    println!("xs: rm data/dir {}", ask(XS_RM, 0, &["data/dir"], &[]).text());

    // A value longer than the ring: the request and the reply each wrap it several times.
    let mut big = [0u8; 1500];
    for (i, b) in big.iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    println!("xs: write data/big {}", write(0, "data/big", &big));
    let r = ask(XS_READ, 0, &["data/big"], &[]);
    println!("xs: read data/big {} bytes, same {}", r.len, r.bytes() == &big[..]);

    // Transactions: one commits; one sees its read node change and gets EAGAIN.
    let tx: u32 = ask(XS_TRANSACTION_START, 0, &[""], &[]).text().parse().unwrap_or(0);
    println!("xs: transaction_start {}", tx);
    println!("xs: tx write data/tx {}", write(tx, "data/tx", b"committed"));
    println!("xs: read data/tx outside {}", read("data/tx"));
    println!("xs: transaction_end T {}", ask(XS_TRANSACTION_END, tx, &["T"], &[]).text());
    println!("xs: read data/tx {}", read("data/tx"));
    let tx: u32 = ask(XS_TRANSACTION_START, 0, &[""], &[]).text().parse().unwrap_or(0);
    println!("xs: tx read data/greeting {}", ask(XS_READ, tx, &["data/greeting"], &[]).text());
    println!("xs: write data/greeting {}", write(0, "data/greeting", b"changed"));
    println!("xs: transaction_end T {}", ask(XS_TRANSACTION_END, tx, &["T"], &[]).text());

    // A watch: its first event at once, then one for a change below it.
    println!("xs: watch data/w {}", ask(XS_WATCH, 0, &["data/w", "tok"], &[]).text());
    let mut ev = Reply::new();
    xs::next_event(&mut ev);
    let (p, t) = xs::event_parts(&ev);
    println!("xs: event {} {}", p, t);
    println!("xs: write data/w/x {}", write(0, "data/w/x", b"1"));
    xs::next_event(&mut ev);
    let (p, t) = xs::event_parts(&ev);
    println!("xs: event {} {}", p, t);
    println!("xs: unwatch data/w {}", ask(XS_UNWATCH, 0, &["data/w", "tok"], &[]).text());

    if xenrt::cmdline::arg_u64("wait_shutdown") == Some(1) {
        // What Linux's drivers/xen/manage.c does: watch control/shutdown; on a request,
        // acknowledge by writing "" and shut down.
        println!("xs: watch control/shutdown {}", ask(XS_WATCH, 0, &["control/shutdown", "shutdown"], &[]).text());
        loop {
            xs::next_event(&mut ev);
            let what = read("control/shutdown");
            let reason = match what {
                "poweroff" | "halt" => SHUTDOWN_POWEROFF,
                "reboot" => SHUTDOWN_REBOOT,
                _ => continue,
            };
            println!("xs: control/shutdown {}", what);
            println!("xs: write control/shutdown {}", write(0, "control/shutdown", b""));
            xenrt::shutdown(reason);
        }
    }
    println!("xs: done");
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
