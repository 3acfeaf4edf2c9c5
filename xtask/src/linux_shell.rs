//! `cargo xtask linux --shell`: a person's session with Debian's Linux, automated. The
//! initramfs's `/init` starts busybox's shell on the console (hvc0) and nothing else; the
//! release `xenolith boot … -c` gets the commands on its stdin through a pipe, as a person would
//! type them, and they reach the shell through the console ring (`xenolith boot -c`, see
//! `sim/src/console.rs`). It passes when the console shows the shell's answer ([`ANSWER`]) and
//! the shell's `poweroff -f` ends the run with exit 0.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::linux::Cpio;
use super::Result;

/// `/init`: busybox's applets, /proc, then the shell on the console, as its only process.
pub const SHELL_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
echo "xenolith-linux: shell on $(cat /sys/class/tty/console/active 2>/dev/null || echo console)"
exec /bin/sh </dev/console >/dev/console 2>&1
"#;

/// What is typed: arithmetic the shell must do, then a poweroff.
pub const TYPED: &str = "echo \"hi from the shell: $((6 * 7))\"; poweroff -f\n";
/// The answer to [`TYPED`] (the echo of the command line itself does not contain it).
pub const ANSWER: &str = "hi from the shell: 42";

/// The initramfs: busybox, /dev/console and [`SHELL_INIT`].
pub fn initramfs(busybox: &[u8]) -> Vec<u8> {
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys"] {
        c.dir(d);
    }
    c.char_dev("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, busybox);
    c.file("init", 0o755, SHELL_INIT.as_bytes());
    c.finish()
}

/// Boot `vmlinuz` with the shell initramfs in the simulator and type [`TYPED`] on its console.
pub fn check(xenolith: &Path, dir: &Path, vmlinuz: &Path, busybox: &[u8], memory: u64, cmdline: &str, max_insns: u64) -> Result {
    let initrd = dir.join("initrd-shell.cpio");
    std::fs::write(&initrd, initramfs(busybox)).map_err(|e| format!("{}: {e}", initrd.display()))?;
    let mut cmd = Command::new(xenolith);
    cmd.arg("boot").arg(vmlinuz).arg("--initrd").arg(&initrd).arg("-c");
    cmd.args(["--memory", &memory.to_string(), "--cmdline", cmdline, "--max-insns", &max_insns.to_string()]);
    cmd.arg("--trace").arg(dir.join("sim-shell.trace"));
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    eprintln!("xtask linux: shell: echo {TYPED:?} | {cmd:?}");
    let t = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(TYPED.as_bytes()).map_err(|e| format!("writing to xenolith's stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    let console = String::from_utf8_lossy(&out.stdout);
    let answered = console.lines().any(|l| l.contains(ANSWER));
    for l in console.lines().filter(|l| l.contains("xenolith-linux:") || l.contains(ANSWER)) {
        eprintln!("  sim: {l}");
    }
    if out.status.success() && answered {
        eprintln!("xtask linux: shell: PASS in {secs:.1}s (the typed command ran in the shell, which powered off)");
        return Ok(());
    }
    eprintln!("xtask linux: shell: FAIL after {secs:.1}s ({}); the console's last lines:", out.status);
    let lines: Vec<&str> = console.lines().collect();
    for l in &lines[lines.len().saturating_sub(25)..] {
        eprintln!("  | {l}");
    }
    for l in String::from_utf8_lossy(&out.stderr).lines().rev().take(5).collect::<Vec<_>>().into_iter().rev() {
        eprintln!("  ! {l}");
    }
    Err("Linux's shell did not answer on the console (xenolith boot -c)".into())
}
