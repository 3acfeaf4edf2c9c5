//! `xenolith create FILE.cfg` (like `xl create -c`), run as the built binary: the console streamed
//! to stdout, `boot`'s exit codes, the kernel path relative to the config's directory, bad configs
//! named by file:line: field, and XTF's own configs accepted as they are.

#[allow(dead_code)] // run_scenario is for the scenario tests
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn xenolith(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xenolith"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run xenolith")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A temp dir with `kernels/<guest>` copied from guests/ and `cfg/<name>.cfg` holding `cfg`.
fn setup(guest: &str, cfg: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("kernels")).unwrap();
    std::fs::create_dir_all(dir.path().join("cfg")).unwrap();
    std::fs::copy(
        common::guests().join(guest),
        dir.path().join("kernels").join(guest),
    )
    .expect("copy guest");
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
    let out = xenolith(
        &[
            "create",
            path.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
        ],
        &std::env::temp_dir(),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("Hello from xenolith"), "{stdout}");
    assert!(stdout.contains("cmdline: vmassist"), "{stdout}");
    assert!(
        stderr.contains("xenolith: hello~1: powered off"),
        "{stderr}"
    );
    // The key xenolith does not know is ignored as xl does, with a warning naming it.
    assert!(
        stderr.contains("dom.cfg:10: on_watchdog: unknown key \"on_watchdog\" ignored"),
        "{stderr}"
    );
    let t = std::fs::read_to_string(&trace).expect("trace written");
    assert!(t.contains("d1 create name=hello~1"), "{t}");
    assert!(t.contains("sched_op(shutdown, poweroff) = 0"), "{t}");
}

#[test]
fn crash_and_budget_exit_like_boot() {
    let (_dir, path) = setup("crash", "name=\"c\"\nkernel=\"../kernels/crash\"\n");
    let out = xenolith(&["create", path.to_str().unwrap()], &std::env::temp_dir());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("xenolith: c: crashed"),
        "{}",
        text(&out.stderr)
    );

    let (_dir, path) = setup(
        "counter",
        "name=\"n\"\nkernel=\"../kernels/counter\"\nextra=\"ticks=1000\"\n",
    );
    let out = xenolith(
        &["create", path.to_str().unwrap(), "--max-insns", "2000000"],
        &std::env::temp_dir(),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("tick 0"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("still running after 2000000 instructions"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_configs_exit_2_naming_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "name=\"a\"\nkernel=\"../kernels/hello\"\nmemory=5000\n",
            "dom.cfg:3: memory: 5000 is out of range 1..=4096",
        ),
        (
            "name=\"a\"\nkernel=\"../kernels/hello\"\ntype=\"hvm\"\n",
            "dom.cfg:3: type: type \"hvm\" is not supported",
        ),
        (
            "name=\"a\"\nkernel=\"../kernels/hello\"\nvcpus=\n",
            "dom.cfg:3: vcpus: syntax error: expected a value",
        ),
        ("name=\"a\"\n", "dom.cfg:1: kernel: missing kernel"),
        ("name=\"a\"\nkernel=\"hello\"\n", "kernels/../cfg/hello"),
    ];
    for (cfg, want) in cases {
        let (dir, path) = setup("hello", cfg);
        let out = xenolith(&["create", path.to_str().unwrap()], dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cfg:?}: {stderr}");
        let want = want.replace(
            "kernels/../cfg/hello",
            &format!("{}", path.with_file_name("hello").display()),
        );
        assert!(
            stderr.contains(&want),
            "{cfg:?}\n got: {stderr}\nwant: {want}"
        );
        assert!(text(&out.stdout).is_empty());
    }
    let out = xenolith(&["create", "/nonexistent/x.cfg"], &std::env::temp_dir());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent/x.cfg: cannot read xl.cfg file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn dry_run_prints_the_domain() {
    let (_dir, path) = setup("hello", "name=\"h\"\nkernel=\"../kernels/hello\"\nmemory=32\nvcpus=2\nroot=\"/dev/x\"\nextra=\"a=1\"\n");
    let out = xenolith(
        &["create", path.to_str().unwrap(), "--dry-run"],
        &std::env::temp_dir(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let kernel = path.parent().unwrap().join("../kernels/hello");
    assert_eq!(
        text(&out.stdout),
        format!(
            "name=h\nkernel={}\nmemory=32\nvcpus=2\ncmdline=root=/dev/x a=1\n",
            kernel.display()
        )
    );
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
            let out = xenolith(
                &["create", p.to_str().unwrap(), "--dry-run"],
                &std::env::temp_dir(),
            );
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                p.display(),
                text(&out.stderr)
            );
            assert!(
                text(&out.stdout).contains("\nmemory=128\n"),
                "{}",
                text(&out.stdout)
            );
            n += 1;
        }
    }
    assert!(n > 0, "no .cfg in {}", dir.display());
}
