//! `xenolith create FILE.cfg` (like `xl create -c`), run as the built binary: the console streamed
//! to stdout, `boot`'s exit codes, the kernel path relative to the config's directory, bad configs
//! named by file:line: field, and XTF's own configs accepted as they are.

#[allow(dead_code)] // run_scenario is for the scenario tests
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn xenolith(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xenolith")).args(args).current_dir(cwd).stdin(Stdio::null()).output().expect("run xenolith")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A temp dir with `kernels/<guest>` copied from guests/ and `cfg/<name>.cfg` holding `cfg`.
fn setup(guest: &str, cfg: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("kernels")).unwrap();
    std::fs::create_dir_all(dir.path().join("cfg")).unwrap();
    std::fs::copy(common::guests().join(guest), dir.path().join("kernels").join(guest)).expect("copy guest");
    let path = dir.path().join("cfg/dom.cfg");
    std::fs::write(&path, cfg).unwrap();
    (dir, path)
}

#[test]
fn poweroff_exits_0_with_the_console_streamed_and_the_kernel_relative_to_the_cfg() {
    let cfg = "# like XTF's configs\nname=\"hello~1\"\n\nvcpus=1 \ntype=\"pv\"\nloader=\"generic\" # legacy\nmemory=16\nkernel=\"../kernels/hello\"\ncmdline=\"vmassist\"\non_watchdog=\"destroy\"\n";
    let (_dir, path) = setup("hello", cfg);
    // Run from elsewhere: the kernel is found relative to the config, not the working directory.
    let trace = path.with_extension("trace");
    let out = xenolith(&["create", path.to_str().unwrap(), "--trace", trace.to_str().unwrap()], &std::env::temp_dir());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("Hello from xenolith"), "{stdout}");
    assert!(stdout.contains("cmdline: vmassist"), "{stdout}");
    assert!(stderr.contains("xenolith: hello~1: powered off"), "{stderr}");
    // The key xenolith does not know is ignored as xl does, with a warning naming it.
    assert!(stderr.contains("dom.cfg:10: on_watchdog: unknown key \"on_watchdog\" ignored"), "{stderr}");
    let t = std::fs::read_to_string(&trace).expect("trace written");
    assert!(t.contains("d1 create name=hello~1"), "{t}");
    assert!(t.contains("sched_op(shutdown, poweroff) = 0"), "{t}");
}

#[test]
fn crash_and_budget_exit_like_boot() {
    let (_dir, path) = setup("crash", "name=\"c\"\nkernel=\"../kernels/crash\"\n");
    let out = xenolith(&["create", path.to_str().unwrap()], &std::env::temp_dir());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("xenolith: c: crashed"), "{}", text(&out.stderr));

    let (_dir, path) = setup("counter", "name=\"n\"\nkernel=\"../kernels/counter\"\nextra=\"ticks=1000\"\n");
    let out = xenolith(&["create", path.to_str().unwrap(), "--max-insns", "2000000"], &std::env::temp_dir());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("tick 0"), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("still running after 2000000 instructions"), "{}", text(&out.stderr));
}

#[test]
fn bad_configs_exit_2_naming_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        ("name=\"a\"\nkernel=\"../kernels/hello\"\nmemory=5000\n", "dom.cfg:3: memory: 5000 is out of range 1..=4096"),
        ("name=\"a\"\nkernel=\"../kernels/hello\"\ntype=\"hvm\"\n", "dom.cfg:3: type: type \"hvm\" is not supported"),
        ("name=\"a\"\nkernel=\"../kernels/hello\"\nvcpus=\n", "dom.cfg:3: vcpus: syntax error: expected a value"),
        ("name=\"a\"\n", "dom.cfg:1: kernel: missing kernel"),
        ("name=\"a\"\nkernel=\"hello\"\n", "kernels/../cfg/hello"),
    ];
    for (cfg, want) in cases {
        let (dir, path) = setup("hello", cfg);
        let out = xenolith(&["create", path.to_str().unwrap()], dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cfg:?}: {stderr}");
        let want = want.replace("kernels/../cfg/hello", &format!("{}", path.with_file_name("hello").display()));
        assert!(stderr.contains(&want), "{cfg:?}\n got: {stderr}\nwant: {want}");
        assert!(text(&out.stdout).is_empty());
    }
    let out = xenolith(&["create", "/nonexistent/x.cfg"], &std::env::temp_dir());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/x.cfg: cannot read xl.cfg file"), "{}", text(&out.stderr));
}

#[test]
fn dry_run_prints_the_domain() {
    let (_dir, path) = setup("hello", "name=\"h\"\nkernel=\"../kernels/hello\"\nmemory=32\nvcpus=2\nroot=\"/dev/x\"\nextra=\"a=1\"\n");
    let out = xenolith(&["create", path.to_str().unwrap(), "--dry-run"], &std::env::temp_dir());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let kernel = path.parent().unwrap().join("../kernels/hello");
    assert_eq!(text(&out.stdout), format!("name=h\nkernel={}\nmemory=32\nvcpus=2\ncmdline=root=/dev/x a=1\n", kernel.display()));
}

/// XTF's configs (`shared/xtf/bin`, beside the repository, when it is there) are accepted as they
/// are: `type="pv"`, `loader="generic"`, comments, variation cmdlines.
#[test]
fn xtf_configs_are_accepted() {
    let dir = common::repo().join("../shared/xtf/bin");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("{} not found: skipped", dir.display());
        return;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "cfg") {
            let out = xenolith(&["create", p.to_str().unwrap(), "--dry-run"], &std::env::temp_dir());
            assert_eq!(out.status.code(), Some(0), "{}: {}", p.display(), text(&out.stderr));
            assert!(text(&out.stdout).contains("\nmemory=128\n"), "{}", text(&out.stdout));
            n += 1;
        }
    }
    assert!(n > 0, "no .cfg in {}", dir.display());
}

/// Runs xenolith with `input` written to its stdin through a pipe (then closed).
fn xenolith_piped(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_xenolith"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xenolith");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("xenolith output")
}

/// `boot -c` and `create -c`: stdin reaches the guest's console ring (the echo guest answers
/// each line), the guest's poweroff ends the session with exit 0; Ctrl-] ends it at once (the
/// bytes before it still delivered, the ones after it not), exit 4 (destroyed).
#[test]
fn dash_c_sends_stdin_to_the_console_ring_and_ctrl_bracket_detaches() {
    let echo = common::guests().join("echo");
    let trace = tempfile::NamedTempFile::new().unwrap();
    let out = xenolith_piped(
        &["boot", echo.to_str().unwrap(), "-c", "--trace", trace.path().to_str().unwrap()],
        b"hello over a pipe\nsecond line\npoweroff\n",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("echo: hello over a pipe\necho: second line\necho: bye after 39 bytes"), "{stdout}");
    let t = std::fs::read_to_string(trace.path()).unwrap();
    assert!(t.contains("d1 console input \"hello over a pipe\\n"), "{t}");

    let out = xenolith_piped(&["boot", echo.to_str().unwrap(), "-c"], b"before\n\x1dafter\npoweroff\n");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(4), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("echo: before") && !stdout.contains("after") && !stdout.contains("bye"), "{stdout}");
    assert!(stderr.contains("Ctrl-]"), "{stderr}");

    // Without -c stdin is not read: the guest waits for input until the budget runs out (exit 3).
    let out = xenolith_piped(&["boot", echo.to_str().unwrap(), "--max-insns", "50000000"], b"poweroff\n");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // create -c, from an xl.cfg.
    let (_dir, path) = setup("echo", "name=\"echo\"\nmemory=16\nkernel=\"../kernels/echo\"\n");
    let out = xenolith_piped(&["create", "-c", path.to_str().unwrap()], b"via create\npoweroff\n");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("echo: via create"), "{stdout}");
}
