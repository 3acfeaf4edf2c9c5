//! A real gdb (Debian's `gdb`, which `cargo xtask setup` installs) drives `xenolith boot --gdb` in
//! batch mode: the first stop at the kernel's entry, a breakpoint on a symbol, registers and a
//! variable, single-step, a watchpoint, reverse-stepi, `monitor` commands, and the end of the run.
//! Every answer is checked against the ELF's symbols and the run's trace, and the trace of the
//! run under gdb must be the trace of the same run without it.
//!
//! Skipped (with a message) only when there is no `gdb` on the PATH. No wall-clock asserts: the
//! timeouts below only keep a broken run from hanging the suite.

#[allow(dead_code)] // run_scenario is for the scenario tests
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn have_gdb() -> bool {
    Command::new("gdb").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Symbol name (substring) -> address, from the ELF's symbol table.
fn symbol(elf: &[u8], part: &str) -> u64 {
    let e = goblin::elf::Elf::parse(elf).expect("parse the guest ELF");
    e.syms
        .iter()
        .find(|s| e.strtab.get_at(s.st_name).is_some_and(|n| n.contains(part)))
        .unwrap_or_else(|| panic!("no symbol containing {part:?}"))
        .st_value
}

/// Start `xenolith ARGS --gdb 127.0.0.1:0` and read the port it listens on from its stderr
/// (the kernel picks a free port: tests never collide).
fn start(args: &[&str]) -> (Child, u16, std::thread::JoinHandle<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xenolith"))
        .args(args)
        .args(["--gdb", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xenolith");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let port = loop {
        line.clear();
        assert!(err.read_line(&mut line).expect("read xenolith's stderr") > 0, "xenolith ended before listening");
        if let Some(rest) = line.split("waiting on 127.0.0.1:").nth(1) {
            break rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse::<u16>().expect("port");
        }
    };
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    (child, port, rest)
}

/// Wait for `child` at most `secs` (a hang is a failure, not a timing assert), killing it then.
fn wait(child: &mut Child, secs: u64) -> Option<i32> {
    for _ in 0..secs * 10 {
        if let Some(s) = child.try_wait().expect("wait") {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    None
}

/// Run gdb in batch mode with `script` against `kernel`; its whole output.
fn gdb(kernel: &Path, script: &str, dir: &Path) -> String {
    let path = dir.join("cmds.gdb");
    std::fs::write(&path, script).unwrap();
    let mut child = Command::new("gdb")
        .args(["-nx", "-batch", "-x"])
        .arg(&path)
        .arg(kernel)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gdb");
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(out), &mut s);
        s
    });
    let code = wait(&mut child, 300);
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    let text = reader.join().unwrap();
    assert!(code.is_some(), "gdb hung:\n{text}\n{err}");
    format!("{text}\n{err}")
}

/// `KEY=hex` lines printed by the script's `printf`s.
fn values(out: &str) -> BTreeMap<String, Vec<u64>> {
    let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for l in out.lines() {
        if let Some((k, v)) = l.split_once('=') {
            if k.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !k.is_empty() {
                if let Ok(v) = u64::from_str_radix(v.trim(), 16) {
                    m.entry(k.to_string()).or_default().push(v);
                }
            }
        }
    }
    m
}

/// `monitor position` answers, in order.
fn positions(out: &str) -> Vec<u64> {
    out.lines().filter_map(|l| l.strip_prefix("instruction ").and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok())).collect()
}

fn hex_after(trace: &str, key: &str) -> u64 {
    let i = trace.find(key).unwrap_or_else(|| panic!("no {key:?} in the trace:\n{trace}")) + key.len();
    let s: String = trace[i..].trim_start_matches("0x").chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    u64::from_str_radix(&s, 16).unwrap()
}

#[test]
fn gdb_drives_a_guest_forwards_and_backwards() {
    if !have_gdb() {
        eprintln!("SKIPPED gdb_drives_a_guest_forwards_and_backwards: no `gdb` on the PATH (cargo xtask setup installs Debian's gdb)");
        return;
    }
    let kernel = common::guests().join("hello");
    let elf = std::fs::read(&kernel).unwrap();
    let main = symbol(&elf, "xenrt_guest_main");
    let start_info = symbol(&elf, "10START_INFO17h");
    let shared_info = symbol(&elf, "11SHARED_INFO17h");
    let dir = tempfile::tempdir().unwrap();
    let k = kernel.to_str().unwrap();

    // The same run without gdb: its trace is the reference.
    let plain = dir.path().join("plain.trace");
    let st = Command::new(env!("CARGO_BIN_EXE_xenolith"))
        .args(["boot", k, "--trace", plain.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    let plain = std::fs::read_to_string(&plain).unwrap();

    let traced = dir.path().join("gdb.trace");
    let (mut child, port, stderr) = start(&["boot", k, "--trace", traced.to_str().unwrap()]);
    let script = format!(
        "set pagination off
set confirm off
target remote 127.0.0.1:{port}
printf \"ENTRY_RIP=%lx\\n\", $pc
monitor position
break xenrt_guest_main
continue
printf \"BREAK_RIP=%lx\\n\", $pc
printf \"START_INFO=%lx\\n\", *(unsigned long *){start_info:#x}
monitor position
stepi
printf \"STEP_RIP=%lx\\n\", $pc
monitor position
reverse-stepi
printf \"BACK_RIP=%lx\\n\", $pc
monitor position
stepi
watch *(unsigned long *){shared_info:#x}
continue
printf \"WATCH_RIP=%lx\\n\", $pc
printf \"WATCHED=%lx\\n\", *(unsigned long *){shared_info:#x}
monitor position
monitor trace 2
reverse-stepi
printf \"BEFORE_RIP=%lx\\n\", $pc
printf \"BEFORE=%lx\\n\", *(unsigned long *){shared_info:#x}
monitor position
monitor domains
monitor evtchn
monitor pagewalk {main:#x}
reverse-continue
printf \"RC_RIP=%lx\\n\", $pc
monitor position
delete
continue
monitor position
"
    );
    let out = gdb(&kernel, &script, dir.path());
    let code = wait(&mut child, 120);
    let stderr = stderr.join().unwrap();
    let ctx = format!("gdb:\n{out}\nxenolith:\n{stderr}");
    assert_eq!(code, Some(0), "xenolith's exit code\n{ctx}");
    let v = values(&out);
    let one = |k: &str| -> u64 { *v.get(k).and_then(|x| x.last()).unwrap_or_else(|| panic!("no {k}\n{ctx}")) };
    let pos = positions(&out);
    assert_eq!(pos.len(), 7, "{ctx}");

    // First stop: the kernel's entry point, before any instruction.
    assert_eq!(one("ENTRY_RIP"), hex_after(&plain, "start entry="), "{ctx}");
    assert_eq!(pos[0], 1, "the entry is the first guest instruction (after the ring-0 stub's iretq)\n{ctx}");
    // The breakpoint: the ELF's symbol; the variable: the start_info address of the trace.
    assert_eq!(one("BREAK_RIP"), main, "{ctx}");
    assert_eq!(one("START_INFO"), hex_after(&plain, "start_info="), "{ctx}");
    // stepi is one instruction on; reverse-stepi one back, to the same place.
    assert_ne!(one("STEP_RIP"), main, "{ctx}");
    assert_eq!(pos[2], pos[1] + 1, "{ctx}");
    assert_eq!(one("BACK_RIP"), main, "{ctx}");
    assert_eq!(pos[3], pos[1], "{ctx}");
    // The watchpoint: stops once xenrt stored the shared_info mapping the trace shows.
    assert!(out.contains("Hardware watchpoint 2"), "{ctx}");
    let mapped = hex_after(&plain, "update_va_mapping(");
    assert_eq!(one("WATCHED"), mapped, "{ctx}");
    assert!(pos[4] > pos[3], "{ctx}");
    // The hypercall that mapped it is already in the trace at that stop.
    assert!(out.contains("update_va_mapping("), "monitor trace\n{ctx}");
    // One instruction back the store has not happened yet.
    assert_eq!(one("BEFORE"), 0, "{ctx}");
    assert_eq!(pos[5], pos[4] - 1, "{ctx}");
    assert_ne!(one("BEFORE_RIP"), one("WATCH_RIP"), "{ctx}");
    // monitor commands show the hypervisor's side.
    assert!(out.contains("d1 \"hello\" running"), "monitor domains\n{ctx}");
    assert!(out.contains("backend console"), "monitor evtchn\n{ctx}");
    assert!(out.contains("L4[") && out.contains("L1["), "monitor pagewalk\n{ctx}");
    // reverse-continue: back to the previous hit, the breakpoint (the watched store is later).
    assert_eq!(one("RC_RIP"), main, "{ctx}");
    assert_eq!(pos[6], pos[1], "{ctx}");
    // The end of the run, then the same trace as without gdb.
    assert!(out.contains("end of the run:"), "{ctx}");
    assert!(out.contains("No more reverse-execution history"), "{ctx}");
    let traced = std::fs::read_to_string(&traced).unwrap();
    assert_eq!(traced, plain, "the run under gdb must be the run without it\n{ctx}");
}
