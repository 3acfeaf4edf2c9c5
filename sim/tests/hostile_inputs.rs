//! The `xenolith` binary against hostile inputs: devices, FIFOs and huge files given as kernels,
//! configs or scenarios; bad kernels in `run`; huge user strings; an address-space limit. Each must
//! end quickly with the documented exit code and a message naming the file (or scenario and domain).

#[allow(dead_code)] // run_scenario is for the scenario tests
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longer than any of these runs needs; a FIFO or /dev/zero read used to hang or eat memory.
const QUICK: Duration = Duration::from_secs(20);

/// Run `xenolith ARGS`, killing it if it takes longer than [`QUICK`].
fn xenolith_with(args: &[&str], limit_as: Option<u64>) -> (Output, Duration) {
    let mut cmd = match limit_as {
        Some(bytes) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--as={bytes}")).arg(env!("CARGO_BIN_EXE_xenolith"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_xenolith")),
    };
    cmd.args(args).current_dir(common::repo()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("run xenolith");
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > QUICK {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xenolith {args:?} still running after {QUICK:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("output");
    (out, start.elapsed())
}

fn xenolith(args: &[&str]) -> (Output, Duration) {
    xenolith_with(args, None)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Address space for the refusals below: far less than the inputs they refuse, so a command
/// that read `/dev/zero` or a 2 GiB file before refusing it fails here (no wall-clock limit).
const REFUSAL_AS: u64 = 512 << 20;

/// Expect exit `code` with `needle` in stderr, under [`REFUSAL_AS`] of address space.
fn expect(args: &[&str], code: i32, needle: &str) -> String {
    let (o, _) = xenolith_with(args, Some(REFUSAL_AS));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "xenolith {args:?}: {err}");
    assert!(err.contains(needle), "xenolith {args:?}: stderr lacks {needle:?}:\n{err}");
    err
}

fn mkfifo(p: &Path) {
    let ok = Command::new("mkfifo").arg(p).status().expect("run mkfifo").success();
    assert!(ok, "mkfifo {}", p.display());
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn boot_refuses_dev_zero_as_kernel() {
    expect(&["boot", "/dev/zero"], 2, "/dev/zero: kernel is a character device, not a regular file");
}

#[test]
fn boot_refuses_a_fifo_as_kernel_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("kernel.fifo");
    mkfifo(&fifo);
    expect(&["boot", s(&fifo)], 2, "kernel.fifo: kernel is a FIFO, not a regular file");
}

#[test]
fn boot_refuses_a_sparse_kernel_over_the_limit_before_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("huge.elf");
    std::fs::File::create(&big).unwrap().set_len(2 << 30).unwrap();
    expect(&["boot", s(&big)], 2, "huge.elf: kernel is too large: 2147483648 bytes (the limit is 128 MiB)");
}

#[test]
fn run_refuses_dev_zero_and_fifos_as_scenario_config_and_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    expect(&["run", "/dev/zero"], 2, "/dev/zero: scenario file is a character device");
    let fifo = d.join("s.fifo");
    mkfifo(&fifo);
    expect(&["run", s(&fifo)], 2, "s.fifo: scenario file is a FIFO");

    let cfg = write(d, "cfg.toml", "run_for = \"1ms\"\n[[domain]]\nconfig = \"/dev/zero\"\n");
    expect(&["run", s(&cfg)], 2, "cfg.toml:3: domain[0].config: /dev/zero: xl.cfg file is a character device");
    let cfg = write(d, "cfgfifo.toml", "run_for = \"1ms\"\n[[domain]]\nconfig = \"s.fifo\"\n");
    expect(&["run", s(&cfg)], 2, "s.fifo: xl.cfg file is a FIFO");

    let k = write(d, "k.toml", "run_for = \"1ms\"\n[[domain]]\nname = \"zero\"\nkernel = \"/dev/zero\"\n");
    expect(&["run", s(&k)], 2, "k.toml: domain \"zero\": /dev/zero: kernel is a character device");

    // xl.cfg's kernel=: named with the scenario, the xl.cfg and the domain.
    write(d, "z.cfg", "name = \"z\"\nkernel = \"/dev/zero\"\n");
    let x = write(d, "x.toml", "run_for = \"1ms\"\n[[domain]]\nconfig = \"z.cfg\"\n");
    let err = expect(&["run", s(&x)], 2, "z.cfg: domain \"z\": /dev/zero: kernel is a character device");
    assert!(err.contains("x.toml: "), "{err}");
}

#[test]
fn run_refuses_a_scenario_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::File::create(&big).unwrap().set_len((1 << 20) + 1).unwrap();
    expect(&["run", s(&big)], 2, "big.toml: scenario file is too large: 1048577 bytes (the limit is 1 MiB)");
}

#[test]
fn run_exits_2_naming_scenario_and_domain_for_a_missing_or_non_elf_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let guests = common::guests();
    let m = write(d, "missing.toml", "run_for = \"1ms\"\n[[domain]]\nname = \"gone\"\nkernel = \"./no-such-kernel\"\n");
    expect(&["run", "--guests", s(&guests), s(&m)], 2, "missing.toml: domain \"gone\": ");
    write(d, "text.elf", "not an ELF at all\n");
    let t = write(d, "text.toml", "run_for = \"1ms\"\n[[domain]]\nname = \"txt\"\nkernel = \"./text.elf\"\n");
    let err = expect(&["run", "--guests", s(&guests), s(&t)], 2, "text.toml: domain \"txt\": ");
    assert!(err.contains("text.elf: not a Xen PV64 kernel"), "{err}");
    // Nothing ran: bad input ends the command before any scenario starts.
    let (o, _) = xenolith(&["run", "--guests", s(&guests), s(&t)]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("passed"), "a scenario ran");
}

#[test]
fn huge_user_strings_are_cut_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let name = "n".repeat(512 << 10);
    let p = write(dir.path(), "long.toml", &format!("run_for = \"1ms\"\n[[domain]]\nname = \"{name}\"\nkernel = \"hello\"\n"));
    let err = expect(&["run", s(&p)], 2, "long.toml:3: domain[0].name: domain name \"nnnn");
    assert!(err.contains(&format!("…\" ({} bytes) must be 1 to 64 characters", 512 << 10)), "{err}");
    assert!(err.len() < 1024, "{} bytes of stderr", err.len());

    let key = "k".repeat(512 << 10);
    let p = write(dir.path(), "key.toml", &format!("run_for = \"1ms\"\n[[domain]]\nname = \"a\"\nkernel = \"hello\"\n{key} = 1\n"));
    let err = expect(&["run", s(&p)], 2, "unknown key \"kkkk");
    assert!(err.len() < 1024, "{} bytes of stderr", err.len());
}

/// Each vCPU's unicorn instance used to reserve 1 GiB of address space (the default translation
/// buffer): under this limit `boot hello` died with unicorn's "Could not allocate dynamic
/// translator buffer" and exit 1.
#[test]
fn boot_works_under_an_address_space_limit() {
    let hello = common::guests().join("hello");
    let (o, _) = xenolith_with(&["boot", s(&hello)], Some(512 << 20));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("hello: powered off"), "{}", stderr(&o));
}

#[test]
fn a_vcpu_the_host_cannot_give_is_exit_5_naming_the_domain() {
    let hello = common::guests().join("hello");
    // Enough for the machine memory, not for a unicorn instance (debug and release builds).
    let (o, _) = xenolith_with(&["boot", s(&hello)], Some(64 << 20));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("domain \"hello\": cannot create vCPU 0: the host cannot give a unicorn instance"), "{err}");
    assert!(!err.contains("Could not allocate dynamic translator buffer"), "{err}");
    // Lower still, the machine memory itself: the same code, the domain named too.
    let (o, _) = xenolith_with(&["boot", s(&hello)], Some(24 << 20));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("domain \"hello\": cannot start the simulator: the host cannot give"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "limited.toml", "run_for = \"1ms\"\n[[domain]]\nname = \"small\"\nkernel = \"hello\"\n");
    let (o, _) = xenolith_with(&["run", "-q", "--guests", s(&common::guests()), s(&p)], Some(64 << 20));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("limited.toml: domain \"small\": cannot create vCPU 0"), "{err}");
}
