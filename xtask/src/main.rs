//! `cargo xtask …`: the project's entry points, in plain std.
//!
//! - `setup`   install what a fresh Debian 12 machine lacks (apt: cmake, libclang-dev, qemu-system-x86, gdb,
//!   and build-essential if there is no `cc`/`make`; rustup: the x86_64-unknown-none target; cargo:
//!   cargo-fuzz), then build the guests. Idempotent, and quick when everything is there.
//! - `guests`  build the guests only (`guests/` is its own workspace, with its own target and flags).
//! - `test [ARGS]`   setup, then `cargo test --workspace ARGS`.
//! - `run [ARGS]`    setup, then the release `xenolith` CLI with ARGS (default: `run scenarios/`).
//! - `bench [ARGS]`  setup, then `cargo bench -p benches ARGS`.
//! - `ci`      setup, workspace tests, the release CLI over `scenarios/`, then boot-hw (TCG, and KVM
//!   where /dev/kvm works), then a 20 s smoke run of each fuzz target, timing each step.
//! - `image`   build the bootable image (hv's `xenolith-image`, target x86_64-unknown-none).
//! - `boot-hw [SCENARIO...] [--accel kvm|tcg|auto|all] [--kernel ELF] [...]`  build the image and
//!   guests, run the scenarios on the image under QEMU and compare each domain's trace with the
//!   simulator's snapshot (`xenolith boot-hw --help` for every option).
//! - `bench-hw`  hardware benches: hello launch-to-result under TCG/KVM, hypercall cycles per gate.
//! - `bench-shares [SCENARIO...] [--accel sim|tcg|kvm|auto|all|LIST] [--runs N]`  each domain's CPU
//!   share against the credit target in the simulator and on the image (the image is built only
//!   when an image accelerator is asked; `xenolith bench-shares --help`).
//! - `fuzz-guest --seeds A..B [--accel sim|tcg|kvm] [--calls N] [--mode calls|pt|mixed]`  run the
//!   `hostile` guest once per seed and fail on any run that does not end in its poweroff and
//!   summary line (see `fuzz_guest`).
//! - `fuzz [TARGET...] [--time SECONDS]`  setup, then build the cargo-fuzz targets of `fuzz/` and run
//!   each for SECONDS (default 20); fails, naming the crash files, if any target crashes (`fuzz.rs`).
//! - `xtf [DIR] [--accel sim|tcg|kvm|all] [--bless]`  Xen's own test kernels (XTF) in the simulator
//!   and/or on the image, a result table compared with `tests/xtf/expected.txt` (see `xtf.rs`).
//! - `linux [--accel sim|tcg|kvm|all] [--vcpus N]`  Debian's stock kernel with a busybox initramfs (`linux.rs`).

use std::env;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

mod fuzz;
mod linux;
mod linux_shell;
mod xtf;

const USAGE: &str = "usage: cargo xtask <command> [args]

commands:
  setup          install missing system packages, the x86_64-unknown-none target and rustfmt, build the guests
  fmt [--check]  cargo fmt in the three workspaces (root, guests/, fuzz/); --check fails on any difference
  guests         build the guests
  test [ARGS]    setup, then cargo test --workspace ARGS
  run [ARGS]     setup, then the release xenolith CLI with ARGS (default: run scenarios/)
  bench [ARGS]   setup, then cargo bench -p benches ARGS
  image          build the bootable image
  boot-hw [ARGS] build image and guests, run scenarios on the image under QEMU, compare traces
                 (ARGS: [SCENARIO...] [--accel kvm|tcg|auto|all] [--kernel ELF] [--gate syscall|int3])
  bench-hw       hardware benches (launch-to-result, hypercall cycles per gate)
  bench-shares [SCENARIO...] [--accel sim|tcg|kvm|auto|all|sim,tcg] [--runs N]
                 each domain's CPU share vs the credit target, simulator and image (default:
                 the scenarios with share_within, --accel auto: sim, TCG, KVM where it works)
  fuzz-guest --seeds A..B [--accel sim|tcg|kvm] [--calls N] [--mode calls|pt|mixed] [--timeout S]
                 run the hostile guest once per seed (A..B half-open, A..=B inclusive, or N)
  fuzz [TARGET...] [--time SECONDS]
                 setup, then run the cargo-fuzz targets (default: all, 20 s each); fails on a crash
                 (targets: elf pack xlcfg scenario rings hypercall)
  xtf [DIR] [--accel sim|tcg|kvm|all|sim,tcg] [--bless] [--jobs N] [--max-insns N] [--timeout S]
                 run XTF's tests (default DIR ../shared/xtf/bin; skipped when absent), compare
                 with tests/xtf/expected.txt, fail on a regression; --bless rewrites it
  linux [--accel sim|tcg|kvm|all] [--vcpus N] [--memory MIB] [--max-insns N] [--timeout S] [--once] [--shell]
                 fetch Debian's kernel and busybox-static (apt-get download), build an initramfs,
                 boot the bzImage with it and check that /init ran and powered off
  ci             setup, tests, the release CLI over scenarios/, boot-hw under TCG and KVM, fuzz smoke run";

/// Debian packages `setup` installs when missing.
const APT_PACKAGES: [&str; 4] = ["cmake", "libclang-dev", "qemu-system-x86", "gdb"];
const GUEST_TARGET: &str = "x86_64-unknown-none";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let root = repo_root();
    let result = match cmd.as_str() {
        "setup" => setup(&root),
        "guests" => build_guests(&root),
        "test" => setup(&root).and_then(|()| cargo(&root, ["test", "--workspace"], rest)),
        "run" => setup(&root).and_then(|()| run_cli(&root, rest)),
        "bench" => setup(&root).and_then(|()| cargo(&root, ["bench", "-p", "benches"], rest)),
        "ci" => ci(&root),
        "image" => build_image(&root).map(|_| ()),
        "fmt" => install_rustfmt().and_then(|()| fmt(&root, rest)),
        "boot-hw" => setup(&root).and_then(|()| hw(&root, "boot-hw", rest)),
        "bench-hw" => setup(&root).and_then(|()| hw(&root, "bench-hw", rest)),
        "bench-shares" => setup(&root).and_then(|()| bench_shares(&root, rest)),
        "fuzz-guest" => setup(&root).and_then(|()| fuzz_guest(&root, rest)),
        "fuzz" => setup(&root).and_then(|()| fuzz::fuzz(&root, rest)),
        "xtf" => setup(&root).and_then(|()| xtf::xtf(&root, rest)),
        "linux" => setup(&root).and_then(|()| linux::linux(&root, rest)),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("xtask: unknown command \"{other}\"\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: error: {e}");
            // `xenolith boot-hw`'s exit code says how the run ended (README: "Limits and exit codes").
            match CHILD_CODE.load(Ordering::Relaxed) {
                c if cmd == "boot-hw" && c != 0 => ExitCode::from(c),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// The exit code of the last command that failed with one (see `run`).
static CHILD_CODE: AtomicU8 = AtomicU8::new(0);

/// The workspace root: the parent of this crate's directory.
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Runs `cmd`, failing with its command line if it cannot start or exits non-zero.
fn run(cmd: &mut Command) -> Result {
    let line = format!("{cmd:?}").replace('"', "");
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            CHILD_CODE.store(s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1), Ordering::Relaxed);
            Err(format!("`{line}` failed ({s})"))
        }
        Err(e) => Err(format!("cannot run `{line}`: {e}")),
    }
}

/// Whether `cmd` runs and exits 0, quietly.
fn succeeds<S: AsRef<OsStr>>(program: &str, args: &[S]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
}

/// Whether `program` is on PATH.
fn have(program: &str) -> bool {
    env::var_os("PATH").is_some_and(|p| env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The cargo that runs us (so the workspace builds with the same toolchain).
fn cargo_bin() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo <fixed> <extra>` in the repo root.
fn cargo<const N: usize>(root: &Path, fixed: [&str; N], extra: &[String]) -> Result {
    run(Command::new(cargo_bin()).current_dir(root).args(fixed).args(extra))
}

/// The release `xenolith` CLI with `args`, by default `run scenarios/`.
fn run_cli(root: &Path, args: &[String]) -> Result {
    let default = ["run".to_string(), "scenarios/".to_string()];
    let args = if args.is_empty() { &default[..] } else { args };
    cargo(root, ["run", "--release", "-p", "sim", "--bin", "xenolith", "--"], args)
}

fn setup(root: &Path) -> Result {
    install_packages()?;
    install_target()?;
    install_rustfmt()?;
    install_cargo_fuzz()?;
    build_guests(root)
}

/// Whether `cargo NAME` is an installed cargo subcommand.
fn have_cargo_subcommand(name: &str) -> bool {
    succeeds("cargo", &[name, "--version"])
}

/// `cargo install cargo-fuzz --locked` when it is missing (the fuzz targets' driver; ~2-3 min once).
fn install_cargo_fuzz() -> Result {
    if have_cargo_subcommand("fuzz") {
        return Ok(());
    }
    eprintln!("xtask setup: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

/// apt-get installs whatever is missing, non-interactively; nothing is run when all is present.
fn install_packages() -> Result {
    if !have("dpkg") || !have("apt-get") {
        eprintln!("xtask setup: no dpkg/apt-get; make sure {} (or equivalents) are installed", APT_PACKAGES.join(", "));
        return Ok(());
    }
    let mut missing: Vec<&str> = APT_PACKAGES
        .into_iter()
        .filter(|p| {
            let out = Command::new("dpkg").args(["-s", p]).output();
            !out.is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Status: install ok installed"))
        })
        .collect();
    if !have("cc") || !have("make") {
        missing.push("build-essential");
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask setup: installing {}", missing.join(" "));
    let root_user = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let apt = |args: &[&str]| -> Result {
        let mut cmd = if root_user {
            Command::new("apt-get")
        } else if have("sudo") {
            let mut c = Command::new("sudo");
            c.args(["--preserve-env=DEBIAN_FRONTEND", "apt-get"]);
            c
        } else {
            return Err(format!("need root (or sudo) to install {}", missing.join(" ")));
        };
        run(cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args))
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install)
}

/// rustup adds the guests' target when it is not installed.
fn install_target() -> Result {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match out {
        Ok(o) if o.status.success() => {
            if String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == GUEST_TARGET) {
                return Ok(());
            }
            eprintln!("xtask setup: adding rust target {GUEST_TARGET}");
            run(Command::new("rustup").args(["target", "add", GUEST_TARGET]))
        }
        _ if succeeds("rustc", &["--print", "target-libdir", "--target", GUEST_TARGET]) => {
            eprintln!("xtask setup: no rustup; assuming rustc's {GUEST_TARGET} target is usable");
            Ok(())
        }
        _ => Err(format!("no rustup to add the {GUEST_TARGET} target; install rustup from https://rustup.rs")),
    }
}

/// rustup adds rustfmt (`cargo xtask fmt`) when `cargo fmt` is missing.
fn install_rustfmt() -> Result {
    if have_cargo_subcommand("fmt") {
        return Ok(());
    }
    eprintln!("xtask setup: adding the rustfmt component");
    run(Command::new("rustup").args(["component", "add", "rustfmt"]))
}

/// `cargo fmt --all [--check]` in each of the three workspaces (the root, `guests/`, `fuzz/`),
/// with the root's rustfmt.toml.
fn fmt(root: &Path, rest: &[String]) -> Result {
    for dir in [root.to_path_buf(), root.join("guests"), root.join("fuzz")] {
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&dir).args(["fmt", "--all"]);
        if !rest.is_empty() {
            cmd.arg("--").args(rest);
        }
        run(&mut cmd).map_err(|e| format!("{}: {e} (run `cargo xtask fmt` to format)", dir.display()))?;
    }
    Ok(())
}

/// `cargo build --release` in `guests/`, from there so `guests/.cargo/config.toml` applies, with none
/// of the outer build's target settings leaking in.
fn build_guests(root: &Path) -> Result {
    let dir = root.join("guests");
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!("{} not found: no guests to build", manifest.display()));
    }
    let mut cmd = Command::new("cargo"); // the rustup proxy, so a guests/rust-toolchain.toml would apply
    cmd.current_dir(&dir).arg("build").arg("--release").arg("--manifest-path").arg(&manifest);
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR"] {
        cmd.env_remove(var);
    }
    if dir.join("rust-toolchain.toml").is_file() || dir.join("rust-toolchain").is_file() {
        cmd.env_remove("RUSTUP_TOOLCHAIN");
    }
    run(&mut cmd)
}

/// Build the bootable image; returns its path. Its own target dir keeps the image's RUSTFLAGS
/// (linker script, no PIE) away from the host build's fingerprints.
fn build_image(root: &Path) -> Result<PathBuf> {
    let ld = root.join("hv/image.ld");
    let target_dir = root.join("target/image");
    run(Command::new(cargo_bin())
        .current_dir(root)
        .args(["build", "--release", "-p", "hv", "--bin", "xenolith-image", "--features", "image"])
        .args(["--target", GUEST_TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", format!("-C link-arg=-T{} -C link-arg=--no-pie", ld.display())))?;
    Ok(target_dir.join(GUEST_TARGET).join("release/xenolith-image"))
}

/// `xenolith boot-hw|bench-hw --image IMAGE ARGS` with a freshly built image.
fn hw(root: &Path, what: &str, args: &[String]) -> Result {
    let image = build_image(root)?;
    let mut all = vec![what.to_string(), "--image".to_string(), image.display().to_string()];
    all.extend(args.iter().cloned());
    run_cli(root, &all)
}

/// `xenolith bench-shares ARGS`, with a freshly built image (`--image`) unless only the simulator
/// is asked (`--accel sim`).
fn bench_shares(root: &Path, args: &[String]) -> Result {
    let accel = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--accel") {
            Some("") => args.get(i + 1).cloned(),
            Some(v) => v.strip_prefix('=').map(str::to_string),
            None => None,
        })
        .unwrap_or_else(|| "auto".to_string());
    if accel.split(',').all(|a| a == "sim") {
        let mut all = vec!["bench-shares".to_string()];
        all.extend(args.iter().cloned());
        run_cli(root, &all)
    } else {
        hw(root, "bench-shares", args)
    }
}

/// Every CI step in order, each timed; stops at the first failure.
fn ci(root: &Path) -> Result {
    let no_args: &[String] = &[];
    let hw_args = ["--accel".to_string(), "all".to_string()];
    let fuzz_args = ["--time".to_string(), "20".to_string()];
    let steps: [(&str, &dyn Fn() -> Result); 5] = [
        ("setup", &|| setup(root)),
        ("cargo test --workspace", &|| cargo(root, ["test", "--workspace"], no_args)),
        ("xenolith run scenarios/ (release)", &|| run_cli(root, no_args)),
        ("boot-hw: scenarios on the image, TCG and KVM where it works", &|| hw(root, "boot-hw", &hw_args)),
        ("fuzz: every cargo-fuzz target for 20 s", &|| fuzz::fuzz(root, &fuzz_args)),
    ];
    let total = Instant::now();
    for (name, step) in steps {
        eprintln!("==> ci: {name}");
        let t = Instant::now();
        let r = step();
        let secs = t.elapsed().as_secs_f64();
        match r {
            Ok(()) => eprintln!("==> ci: {name}: ok in {secs:.1}s"),
            Err(e) => return Err(format!("step \"{name}\" failed after {secs:.1}s: {e}")),
        }
    }
    eprintln!("==> ci: all steps passed in {:.1}s", total.elapsed().as_secs_f64());
    Ok(())
}

/// `fuzz-guest`: the `hostile` guest once per seed, in the simulator (the release `xenolith boot`)
/// or on the image under QEMU (`xenolith boot-hw --kernel`). A seed passes only when its run ends
/// in the guest's own poweroff *and* its `hostile: seed=N ... invariants held` line; a hypervisor
/// panic or trap, a reset, a crash of the guest (a broken invariant), a hang or a timeout fail it.
fn fuzz_guest(root: &Path, args: &[String]) -> Result {
    let mut seeds: Option<(u64, u64)> = None;
    let (mut accel, mut mode, mut calls, mut timeout) = ("sim".to_string(), "mixed".to_string(), None::<u64>, 300u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("fuzz-guest: {a} needs a value"));
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("fuzz-guest: {a} {v}: not a number"));
        match a.as_str() {
            "--seeds" => {
                let v = val()?;
                seeds = Some(if let Some((x, y)) = v.split_once("..=") {
                    (num(x)?, num(y)?.saturating_add(1))
                } else if let Some((x, y)) = v.split_once("..") {
                    (num(x)?, num(y)?)
                } else {
                    let n = num(&v)?;
                    (n, n + 1)
                });
            }
            "--accel" => accel = val()?,
            "--mode" => mode = val()?,
            "--calls" => calls = Some(num(&val()?)?),
            "--timeout" => timeout = num(&val()?)?,
            o => return Err(format!("fuzz-guest: unknown argument {o:?}")),
        }
    }
    let (lo, hi) = seeds.ok_or("fuzz-guest: give --seeds A..B")?;
    if !["calls", "pt", "mixed"].contains(&mode.as_str()) {
        return Err(format!("fuzz-guest: --mode {mode}: expected calls, pt or mixed"));
    }
    // kvm_pvm pays millions of cycles per exit: far fewer calls there by default.
    let calls = calls.unwrap_or(match accel.as_str() {
        "kvm" => 300,
        "tcg" => 5000,
        _ => 20000,
    });
    cargo(root, ["build", "--release", "-p", "sim", "--bin", "xenolith"], &[])?;
    let cli = root.join("target/release/xenolith");
    let kernel = root.join("guests/target").join(GUEST_TARGET).join("release/hostile");
    let image = match accel.as_str() {
        "sim" => None,
        "tcg" | "kvm" => Some(build_image(root)?),
        o => return Err(format!("fuzz-guest: --accel {o}: expected sim, tcg or kvm")),
    };
    println!("fuzz-guest: hostile, seeds {lo}..{hi}, mode {mode}, {calls} calls each, {accel}");
    println!("{:>6}  {:<6} {:>11} {:>8}  detail", "seed", "result", "hypercalls", "wall");
    let total = Instant::now();
    let (mut failed, mut hypercalls) = (Vec::new(), 0u64);
    for seed in lo..hi {
        let cmdline = format!("seed={seed} calls={calls} mode={mode}");
        let mut cmd = Command::new(&cli);
        match &image {
            None => cmd.arg("boot").arg(&kernel).args(["--cmdline", &cmdline, "--max-insns", "50000000000"]),
            Some(img) => cmd
                .arg("boot-hw")
                .arg("--image")
                .arg(img)
                .args(["--accel", &accel, "--timeout", &timeout.to_string()])
                .arg("--kernel")
                .arg(&kernel)
                .args(["--cmdline", &cmdline]),
        };
        let t = Instant::now();
        let (status, out, err) = run_with_timeout(&mut cmd, std::time::Duration::from_secs(timeout + 10))?;
        let wall = t.elapsed().as_secs_f64();
        let summary = out.lines().find(|l| l.starts_with(&format!("hostile: seed={seed} ")) && l.ends_with("invariants held"));
        let issued =
            summary.and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("hypercalls="))).and_then(|n| n.parse::<u64>().ok());
        let verdict = match (status, summary) {
            (Some(0), Some(_)) => Ok(()),
            (None, _) => Err(format!("no end after {timeout} s (killed)")),
            (Some(c), _) => {
                // The guest's own verdict if it gave one, else the runner's (hypervisor trap,
                // crash reason, budget, QEMU status).
                let why = out
                    .lines()
                    .find_map(|l| l.find("hostile: INVARIANT").map(|i| l[i..].to_string()))
                    .or_else(|| err.lines().rev().find(|l| l.starts_with("xenolith:")).map(str::to_string))
                    .unwrap_or_default();
                Err(format!("exit status {c}{}: {why}", if summary.is_none() { ", no summary line" } else { "" }))
            }
        };
        hypercalls += issued.unwrap_or(0);
        let calls_col = issued.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        match verdict {
            Ok(()) => println!("{seed:>6}  {:<6} {calls_col:>11} {wall:>7.2}s", "pass"),
            Err(e) => {
                println!("{seed:>6}  {:<6} {calls_col:>11} {wall:>7.2}s  {}", "FAIL", e.trim());
                println!("        reproduce: {cmd:?}");
                failed.push(seed);
            }
        }
    }
    let secs = total.elapsed().as_secs_f64();
    println!(
        "fuzz-guest: {} seeds, {} passed, {} failed; {hypercalls} hypercalls in {secs:.1} s ({:.0}/s)",
        hi.saturating_sub(lo),
        hi.saturating_sub(lo) - failed.len() as u64,
        failed.len(),
        hypercalls as f64 / secs.max(1e-9)
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("seeds {failed:?} failed ({accel}, mode {mode})"))
    }
}

/// Runs `cmd` with its output captured; kills it after `timeout` (status None then).
fn run_with_timeout(cmd: &mut Command, timeout: std::time::Duration) -> Result<(Option<i32>, String, String)> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let mut pipes = (child.stdout.take(), child.stderr.take());
    let reader = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut v);
            }
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let t_out = reader(pipes.0.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let t_err = reader(pipes.1.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.code(),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    Ok((status, t_out.join().unwrap_or_default(), t_err.join().unwrap_or_default()))
}
