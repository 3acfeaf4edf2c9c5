//! `cargo xtask linux [--accel sim|tcg|kvm|all] [--vcpus N] [--memory MIB] [--max-insns N] [--timeout S] [--once] [--shell]`:
//! Debian's stock Linux kernel as a PV domU, with a busybox initramfs whose `/init` prints,
//! computes and powers off.
//!
//! 1. Fetch `linux-image-amd64`'s kernel package (the versioned `linux-image-*-amd64` it depends
//!    on) and `busybox-static` with `apt-get download` into `target/linux/` (once; Debian's
//!    archive is the only network this needs), and unpack them with `dpkg-deb -x`.
//! 2. Build `initrd.cpio` (cpio newc, deterministic: fixed inode numbers, mtime 0): `/bin/busybox`,
//!    `/dev/console`, and [`INIT`] (arithmetic, a file in tmpfs, a pipe, `/sys/hypervisor/type`,
//!    the CPU count against `xenolith.cpus=N` on the command line, a process on each CPU).
//! 3. Boot `/boot/vmlinuz-*` as shipped (a bzImage) with it: in the simulator through the release
//!    `xenolith boot --initrd`, and on the image through `xenolith boot-hw --kernel … --initrd …`,
//!    with `--vcpus N` (default 1) vCPUs.
//!    A run passes when the console shows every line of [`REQUIRED`], [`cpus_line`] and [`MARKER`] and the guest
//!    powers off (exit 0); in the simulator
//!    the boot is then run again and must give the same trace and console, byte for byte
//!    (`--once` skips that).
//!
//! Every step prints what it did; a run that does not pass prints the console's last lines, so the
//! command is also the way to see how far Linux gets.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::{cargo, Result};

/// The line `/init` prints once it has done its work.
pub const MARKER: &str = "xenolith-linux: done";

/// Lines `/init` must print on the way (arithmetic, a file in tmpfs, a pipe of three processes,
/// the Xen sysfs node), each checked.
pub const REQUIRED: [&str; 4] = [
    "xenolith-linux: sum(1..1000) = 500500",
    "xenolith-linux: tmpfs file: written in tmpfs",
    "xenolith-linux: pipe: 3 words",
    "xenolith-linux: /sys/hypervisor/type: xen",
];

/// The initramfs's `/init`: busybox's shell, its applets installed, a little arithmetic.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "xenolith-linux: /init running on $(uname -s) $(uname -r), $(nproc) cpu(s)"
sum=0
i=1
while [ $i -le 1000 ]; do sum=$((sum + i)); i=$((i + 1)); done
echo "xenolith-linux: sum(1..1000) = $sum"
echo "xenolith-linux: $(grep MemTotal /proc/meminfo)"
mount -t tmpfs tmpfs /tmp
echo "written in tmpfs" > /tmp/file
echo "xenolith-linux: tmpfs file: $(cat /tmp/file)"
echo "xenolith-linux: pipe: $(echo one two three | tr ' ' '\n' | wc -l) words"
echo "xenolith-linux: /sys/hypervisor/type: $(cat /sys/hypervisor/type 2>&1)"
want=$(sed -n 's/.*xenolith\.cpus=\([0-9]*\).*/\1/p' /proc/cmdline)
got=$(nproc)
ran=""
c=0
while [ $c -lt $got ]; do ran="$ran $(taskset -c $c cat /proc/self/stat | cut -d' ' -f39)"; c=$((c + 1)); done
if [ -n "$want" ] && [ "$got" = "$want" ]; then
    echo "xenolith-linux: cpus: $got online, as expected; a process ran on each:$ran"
else
    echo "xenolith-linux: FAIL: nproc says $got cpu(s), the command line's xenolith.cpus= says '$want'"
fi
echo "xenolith-linux: done"
poweroff -f
"#;

/// The kernel command line: Xen's console, no waiting for devices that do not exist. `/init`
/// finds the vCPU count it must see as `xenolith.cpus=N` (appended by [`linux`]).
const CMDLINE: &str = "console=hvc0 earlyprintk=xen loglevel=7 rdinit=/init";

/// The line `/init` prints when `nproc` is `cpus` (the `xenolith.cpus=` of its command line) and
/// `taskset -c K cat /proc/self/stat` ran on CPU K (its field 39) for each K.
pub fn cpus_line(cpus: u32) -> String {
    let ran: String = (0..cpus).map(|c| format!(" {c}")).collect();
    format!("xenolith-linux: cpus: {cpus} online, as expected; a process ran on each:{ran}")
}

struct Opts {
    accels: Vec<String>,
    /// In the simulator, boot a second time and require the same trace (`--once` skips it).
    twice: bool,
    memory: u64,
    max_insns: u64,
    timeout: u64,
    /// `--shell`: also type commands into a shell on hvc0 (`linux_shell.rs`).
    shell: bool,
    /// The domain's vCPUs (`--vcpus`), which `/init` must count.
    vcpus: u32,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o =
        Opts { accels: vec!["sim".into()], twice: true, memory: 256, max_insns: 20_000_000_000, timeout: 300, shell: false, vcpus: 1 };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--accel" => {
                let v = val()?;
                o.accels = match v.as_str() {
                    "all" => vec!["sim".into(), "tcg".into(), "kvm".into()],
                    _ => v.split(',').map(str::to_string).collect(),
                };
                if let Some(bad) = o.accels.iter().find(|a| !["sim", "tcg", "kvm"].contains(&a.as_str())) {
                    return Err(format!("--accel {bad}: expected sim, tcg, kvm or all"));
                }
            }
            "--once" => o.twice = false,
            "--shell" => o.shell = true,
            "--vcpus" => {
                o.vcpus = val()?.parse().ok().filter(|n| (1..=32).contains(n)).ok_or_else(|| "--vcpus: expected 1..=32".to_string())?
            }
            "--memory" => o.memory = val()?.parse().map_err(|_| "--memory: expected MiB".to_string())?,
            "--max-insns" => o.max_insns = val()?.parse().map_err(|_| "--max-insns: expected a number".to_string())?,
            "--timeout" => o.timeout = val()?.parse().map_err(|_| "--timeout: expected seconds".to_string())?,
            other => return Err(format!("linux: unknown option {other}")),
        }
    }
    Ok(o)
}

fn run(cmd: &mut Command) -> Result<String> {
    let line = format!("{cmd:?}");
    let o = cmd.output().map_err(|e| format!("cannot run {line}: {e}"))?;
    if !o.status.success() {
        return Err(format!("{line} failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The versioned kernel package `linux-image-amd64` depends on, e.g. `linux-image-6.1.0-57-amd64`.
fn kernel_package() -> Result<String> {
    let out = match run(Command::new("apt-cache").args(["depends", "linux-image-amd64"])) {
        Ok(o) if o.contains("Depends:") => o,
        // A fresh machine may have no package lists yet.
        _ => {
            eprintln!("xtask linux: apt-get update");
            run(Command::new("apt-get").args(["update", "-q"]))?;
            run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?
        }
    };
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(str::to_string)
        .ok_or_else(|| format!("apt-cache depends linux-image-amd64 names no kernel package:\n{out}"))
}

/// Download (once) and unpack `pkg` into `dir/pkg/`; returns that directory.
fn fetch(dir: &Path, pkg: &str) -> Result<PathBuf> {
    let debs = |dir: &Path| -> Vec<PathBuf> {
        fs::read_dir(dir)
            .map(|r| {
                r.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.extension().is_some_and(|e| e == "deb")
                            && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{pkg}_")))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    if debs(dir).is_empty() {
        eprintln!("xtask linux: apt-get download {pkg}");
        run(Command::new("apt-get").arg("download").arg(pkg).current_dir(dir))?;
    }
    let deb = debs(dir).into_iter().max().ok_or_else(|| format!("apt-get download {pkg} left no .deb in {}", dir.display()))?;
    let out = dir.join(pkg);
    if !out.exists() {
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&out))?;
    }
    Ok(out)
}

/// A cpio "newc" archive writer (the format the kernel's initramfs unpacker reads).
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }
    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100000 | mode, (0, 0), data);
    }
    pub fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, (major, minor), &[]);
    }
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

/// The initramfs: busybox, /dev/console and [`INIT`].
pub fn initramfs(busybox: &[u8]) -> Vec<u8> {
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "tmp"] {
        c.dir(d);
    }
    c.char_dev("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, busybox);
    c.file("init", 0o755, INIT.as_bytes());
    c.finish()
}

pub fn linux(root: &Path, args: &[String]) -> Result {
    let o = parse(args)?;
    let dir = root.join("target/linux");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let kpkg = kernel_package()?;
    let kdir = fetch(&dir, &kpkg)?;
    let bdir = fetch(&dir, "busybox-static")?;
    let vmlinuz = fs::read_dir(kdir.join("boot"))
        .map_err(|e| format!("{}: {e}", kdir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
        .ok_or_else(|| format!("{kpkg} has no /boot/vmlinuz-*"))?;
    let busybox = fs::read(bdir.join("bin/busybox")).map_err(|e| format!("busybox-static: bin/busybox: {e}"))?;
    let initrd = dir.join("initrd.cpio");
    fs::write(&initrd, initramfs(&busybox)).map_err(|e| format!("{}: {e}", initrd.display()))?;
    eprintln!(
        "xtask linux: kernel {} ({kpkg}), initramfs {} ({} KiB)",
        vmlinuz.display(),
        initrd.display(),
        fs::metadata(&initrd).map(|m| m.len() >> 10).unwrap_or(0)
    );
    cargo(root, ["build", "--release", "-p", "sim"], &[])?;
    let xenolith = root.join("target/release/xenolith");
    let cmdline = format!("{CMDLINE} xenolith.cpus={}", o.vcpus);
    let vcpus = o.vcpus.to_string();
    let cpus = cpus_line(o.vcpus);
    let mut failed = Vec::new();
    // `xenolith boot` of the kernel in the simulator, its trace into `trace`.
    let sim_boot = |trace: &Path| {
        let mut cmd = Command::new(&xenolith);
        cmd.arg("boot").arg(&vmlinuz).arg("--initrd").arg(&initrd);
        let (memory, max_insns) = (o.memory.to_string(), o.max_insns.to_string());
        cmd.args(["--memory", &memory, "--vcpus", &vcpus, "--cmdline", &cmdline, "--max-insns", &max_insns]);
        cmd.arg("--trace").arg(trace);
        cmd
    };
    for accel in &o.accels {
        let mut cmd = Command::new(&xenolith);
        if accel == "sim" {
            cmd = sim_boot(&dir.join("sim.trace"));
        } else {
            let image = super::build_image(root)?;
            cmd.arg("boot-hw").arg("--image").arg(&image).arg("--kernel").arg(&vmlinuz).arg("--initrd").arg(&initrd);
            cmd.args(["--memory", &o.memory.to_string(), "--vcpus", &vcpus, "--cmdline", &cmdline, "--accel", accel]);
            cmd.args(["--timeout", &o.timeout.to_string()]);
        }
        let t = Instant::now();
        let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
        let secs = t.elapsed().as_secs_f64();
        let console = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ok = out.status.success()
            && [MARKER, cpus.as_str()].iter().chain(REQUIRED.iter()).all(|want| console.lines().any(|l| l.contains(want)));
        for l in console.lines().filter(|l| l.contains("xenolith-linux:")) {
            eprintln!("  {accel}: {l}");
        }
        if ok && accel == "sim" && o.twice {
            // Determinism: the same boot again must give the same trace, byte for byte.
            let again = dir.join("sim-again.trace");
            let mut cmd2 = sim_boot(&again);
            let out2 = cmd2.output().map_err(|e| format!("cannot run {cmd2:?}: {e}"))?;
            let (a, b) = (fs::read(dir.join("sim.trace")).unwrap_or_default(), fs::read(&again).unwrap_or_default());
            if a.is_empty() || a != b || out2.stdout != out.stdout {
                eprintln!(
                    "xtask linux: sim: FAIL: a second boot gave a different trace or console ({} vs {} trace bytes)",
                    a.len(),
                    b.len()
                );
                failed.push("sim (determinism)".into());
                continue;
            }
            let lines = a.iter().filter(|&&c| c == b'\n').count();
            eprintln!("xtask linux: sim: a second boot gave the same trace, byte for byte ({lines} lines) and the same console");
        }
        if ok {
            eprintln!(
                "xtask linux: {accel}: PASS in {secs:.1}s with {} vCPU(s) (reached /init, which counted them and powered off)",
                o.vcpus
            );
        } else {
            eprintln!("xtask linux: {accel}: FAIL after {secs:.1}s with {} vCPU(s) ({}); the console's last lines:", o.vcpus, out.status);
            let lines: Vec<&str> = console.lines().collect();
            for l in &lines[lines.len().saturating_sub(25)..] {
                eprintln!("  | {l}");
            }
            for l in stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev() {
                eprintln!("  ! {l}");
            }
            failed.push(accel.clone());
        }
    }
    if o.shell && o.accels.iter().any(|a| a == "sim") {
        if let Err(e) = super::linux_shell::check(&xenolith, &dir, &vmlinuz, &busybox, o.memory, CMDLINE, o.max_insns) {
            failed.push(format!("sim (shell: {e})"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("Linux did not reach /init and power off on: {}", failed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::default();
        c.dir("bin");
        c.file("init", 0o755, b"#!/bin/sh\n");
        let a = c.finish();
        assert!(a.starts_with(b"070701"));
        // Every header starts 4-byte aligned; the archive ends with the trailer.
        let mut at = 0;
        let mut names = Vec::new();
        while at < a.len() {
            assert_eq!(&a[at..at + 6], b"070701", "header at {at}");
            let field =
                |i: usize| u32::from_str_radix(std::str::from_utf8(&a[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap(), 16).unwrap() as usize;
            let (size, namesize) = (field(6), field(11));
            let name = std::str::from_utf8(&a[at + 110..at + 110 + namesize - 1]).unwrap().to_string();
            let data = (at + 110 + namesize).div_ceil(4) * 4;
            at = (data + size).div_ceil(4) * 4;
            names.push(name);
        }
        assert_eq!(names, ["bin", "init", "TRAILER!!!"]);
        assert_eq!(at, a.len());
    }
}
