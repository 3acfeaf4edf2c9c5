//! `cargo xtask xtf [DIR] [--accel sim|tcg|kvm|all|LIST] [--bless]`: Xen's own test kernels (XTF).
//!
//! Every `*.cfg` in DIR (default `<repo>/../shared/xtf/bin`) runs once per platform: in the
//! simulator through the release `xenolith create CFG --max-insns N`, and on the bootable image
//! through `xenolith boot-hw --kernel K --memory M --cmdline C --vcpus N --accel tcg|kvm --timeout S` with
//! the kernel, memory and cmdline that `xenolith create CFG --dry-run` reads from the config (one
//! xl.cfg parser for both). Runs go two at a time (two cores).
//!
//! Each run is classified by its last `Test result: SUCCESS|SKIP|FAILURE|ERROR` console line; no
//! such line is CRASH, with the PANIC line (or xenolith's own last word, or the last console
//! line) as detail. The table is compared with [`EXPECTED`], one `test platform result` line per
//! run: a regression (expected SUCCESS, or SKIP, and now anything worse) fails the command;
//! improvements and other changes are printed, and `--bless` writes the file from this run
//! (keeping the lines of platforms not run). When DIR does not exist the command says so and
//! succeeds ("skipped"): CI clones may lack `shared/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{build_image, cargo, run_with_timeout, Result};

/// The expected results, relative to the repository root.
pub const EXPECTED: &str = "tests/xtf/expected.txt";

/// The simulator's budget per test: guest instructions (virtual ns). A passing XTF test needs a
/// few million; a hung one ends here.
const SIM_MAX_INSNS: u64 = 1_000_000_000;
/// QEMU's timeout per test (seconds) under TCG: a test that ends takes a second or two (QEMU's
/// start included), so this only bounds a hung one.
const TCG_TIMEOUT: u64 = 10;
/// Under KVM: kvm_pvm makes every exit to the hypervisor cost millions of cycles, and the image's
/// own start takes seconds there (a crashing test: about 7 s). How long a test takes depends on
/// the host's load: test-pv64-xsa-231 (256 memory_ops) took 11 s on an idle machine, 33 s while two
/// builds ran, and over 60 s (then this limit, reported as CRASH) under heavier load.
const KVM_TIMEOUT: u64 = 150;

/// How a test run ended, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Success,
    Skip,
    Failure,
    Error,
    Crash,
}

impl Verdict {
    const ALL: [Verdict; 5] = [Verdict::Success, Verdict::Skip, Verdict::Failure, Verdict::Error, Verdict::Crash];

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Success => "SUCCESS",
            Verdict::Skip => "SKIP",
            Verdict::Failure => "FAILURE",
            Verdict::Error => "ERROR",
            Verdict::Crash => "CRASH",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.name() == s)
    }

    /// SUCCESS and SKIP are the results a test may rely on: losing one is a regression.
    fn good(self) -> bool {
        matches!(self, Verdict::Success | Verdict::Skip)
    }
}

/// What a change from `expected` to `got` is.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Same,
    /// SUCCESS or SKIP became something worse.
    Regression,
    /// Something became SUCCESS, or a failing result became SKIP.
    Improvement,
    /// One failing result became another (CRASH → FAILURE, …): worth a `--bless`, not a failure.
    Other,
}

pub fn compare(expected: Verdict, got: Verdict) -> Change {
    if expected == got {
        Change::Same
    } else if expected.good() && got > expected {
        Change::Regression
    } else if got.good() && got < expected {
        Change::Improvement
    } else {
        Change::Other
    }
}

/// The verdict of one run from its console (stdout) and xenolith's messages (stderr), with a
/// detail line for anything but SUCCESS.
pub fn classify(stdout: &str, stderr: &str) -> (Verdict, String) {
    let result = stdout.lines().rev().find_map(|l| {
        let word = l.split("Test result: ").nth(1)?.split_whitespace().next()?;
        Verdict::parse(word).map(|v| (v, l))
    });
    let last =
        |text: &str, pred: &dyn Fn(&str) -> bool| text.lines().rev().map(str::trim).find(|l| !l.is_empty() && pred(l)).map(str::to_string);
    match result {
        Some((Verdict::Success, _)) => (Verdict::Success, String::new()),
        Some((v, line)) => {
            // The line before the result usually says why (XTF prints its reason, then the result).
            let before = stdout.lines().map(str::trim).filter(|l| !l.is_empty()).take_while(|l| *l != line.trim()).last();
            (v, before.unwrap_or("").to_string())
        }
        None => {
            let detail = last(stdout, &|l| l.contains("PANIC"))
                // xenolith's last word (crash reason, budget, timeout), not boot-hw's summary line.
                .or_else(|| last(stderr, &|l| l.starts_with("xenolith:") && !l.contains("): done ") && !l.ends_with(": powered off")))
                .or_else(|| last(stdout, &|_| true))
                .unwrap_or_else(|| "no output".into());
            (Verdict::Crash, detail)
        }
    }
}

/// One test's config, as `xenolith create --dry-run` reads it.
#[derive(Clone, Debug)]
struct Test {
    /// The config's file stem: `test-pv64-pv-iopl~vmassist`.
    name: String,
    cfg: PathBuf,
    /// Kernel, memory (MiB), cmdline, vCPUs; or why the config is unusable.
    domain: std::result::Result<(PathBuf, u64, String, u32), String>,
}

struct Options {
    dir: PathBuf,
    platforms: Vec<String>,
    bless: bool,
    expected: PathBuf,
    jobs: usize,
    max_insns: u64,
    /// QEMU's timeout in seconds (default: [`TCG_TIMEOUT`], [`KVM_TIMEOUT`]).
    timeout: Option<u64>,
}

fn parse_args(root: &Path, args: &[String]) -> Result<Options> {
    let mut o = Options {
        dir: root.join("../shared/xtf/bin"),
        platforms: vec!["sim".into()],
        bless: false,
        expected: root.join(EXPECTED),
        jobs: 2,
        max_insns: SIM_MAX_INSNS,
        timeout: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("xtf: {a} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("xtf: {a} {v}: not a number"));
        match a.as_str() {
            "--accel" => {
                let v = val()?;
                o.platforms = Vec::new();
                for p in v.split(',') {
                    let add: &[&str] = match p {
                        "sim" | "tcg" | "kvm" => &[p],
                        "all" if kvm_usable() => &["sim", "tcg", "kvm"],
                        "all" => &["sim", "tcg"],
                        _ => return Err(format!("xtf: --accel {v}: expected sim, tcg, kvm or all (or a list: sim,tcg)")),
                    };
                    for a in add {
                        if !o.platforms.iter().any(|x| x == a) {
                            o.platforms.push(a.to_string());
                        }
                    }
                }
            }
            "--bless" => o.bless = true,
            "--expected" => o.expected = PathBuf::from(val()?),
            "--jobs" | "-j" => o.jobs = num(val()?)?.clamp(1, 64) as usize,
            "--max-insns" => o.max_insns = num(val()?)?,
            "--timeout" => o.timeout = Some(num(val()?)?),
            s if s.starts_with('-') => return Err(format!("xtf: unknown option {s:?}")),
            d => o.dir = PathBuf::from(d),
        }
    }
    Ok(o)
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

/// Reads `path` as `test platform result` lines (`#` comments).
fn read_expected(path: &Path) -> Result<BTreeMap<(String, String), Verdict>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut m = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[..] {
            [test, platform, result] => {
                let v = Verdict::parse(result).ok_or_else(|| {
                    format!("{}:{}: unknown result {result:?} (expected SUCCESS, SKIP, FAILURE, ERROR or CRASH)", path.display(), i + 1)
                })?;
                m.insert((test.to_string(), platform.to_string()), v);
            }
            _ => return Err(format!("{}:{}: expected \"TEST PLATFORM RESULT\"", path.display(), i + 1)),
        }
    }
    Ok(m)
}

fn write_expected(path: &Path, m: &BTreeMap<(String, String), Verdict>) -> Result {
    let mut text = String::from(
        "# Expected results of Xen's own tests (XTF) on xenolith: TEST PLATFORM RESULT, one run per line.\n\
         # `cargo xtask xtf --accel all` fails when a SUCCESS or SKIP here becomes anything worse;\n\
         # after a fix, `cargo xtask xtf --accel all --bless` rewrites this file from the run.\n",
    );
    for ((t, p), v) in m {
        text.push_str(&format!("{t} {p} {}\n", v.name()));
    }
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The tests of `dir`, each config read by `xenolith create --dry-run`.
fn load_tests(cli: &Path, dir: &Path) -> Result<Vec<Test>> {
    let mut cfgs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    cfgs.sort();
    Ok(cfgs
        .into_iter()
        .map(|cfg| {
            let name = cfg.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let out = Command::new(cli).arg("create").arg(&cfg).arg("--dry-run").output();
            let domain = match out {
                Ok(o) if o.status.success() => {
                    let text = String::from_utf8_lossy(&o.stdout).into_owned();
                    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("").to_string();
                    match get("memory=").parse::<u64>() {
                        Ok(m) => Ok((PathBuf::from(get("kernel=")), m, get("cmdline="), get("vcpus=").parse::<u32>().unwrap_or(1))),
                        Err(_) => Err(format!("xenolith create --dry-run gave no memory: {text:?}")),
                    }
                }
                Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
                Err(e) => Err(format!("cannot run {}: {e}", cli.display())),
            };
            Test { name, cfg, domain }
        })
        .collect())
}

/// One finished run.
struct Run {
    verdict: Verdict,
    detail: String,
    wall: Duration,
    reproduce: String,
}

fn run_one(cli: &Path, image: Option<&Path>, t: &Test, platform: &str, o: &Options) -> Run {
    let (kernel, memory, cmdline, vcpus) = match &t.domain {
        Ok(d) => d,
        Err(e) => {
            let detail = format!("bad config: {}", e.lines().last().unwrap_or(""));
            return Run { verdict: Verdict::Crash, detail, wall: Duration::ZERO, reproduce: String::new() };
        }
    };
    let mut cmd = Command::new(cli);
    let limit = match (platform, image) {
        ("sim", _) => {
            cmd.arg("create").arg(&t.cfg).args(["--max-insns", &o.max_insns.to_string()]);
            // A backstop only: the instruction budget ends a hung test long before.
            Duration::from_secs(600)
        }
        (accel, Some(img)) => {
            let timeout = o.timeout.unwrap_or(if accel == "kvm" { KVM_TIMEOUT } else { TCG_TIMEOUT });
            cmd.arg("boot-hw")
                .arg("--image")
                .arg(img)
                .args(["--accel", accel, "--timeout", &timeout.to_string()])
                .arg("--kernel")
                .arg(kernel)
                .args(["--memory", &memory.to_string(), "--cmdline", cmdline, "--vcpus", &vcpus.to_string()]);
            Duration::from_secs(timeout + 60)
        }
        (accel, None) => unreachable!("no image for {accel}"),
    };
    let reproduce = format!("{cmd:?}").replace('"', "");
    let start = Instant::now();
    let (verdict, mut detail) = match run_with_timeout(&mut cmd, limit) {
        Ok((Some(_), out, err)) => classify(&out, &err),
        Ok((None, out, err)) => {
            let (v, d) = classify(&out, &err);
            if v == Verdict::Crash {
                (v, format!("killed after {} s; {d}", limit.as_secs()))
            } else {
                (v, d)
            }
        }
        Err(e) => (Verdict::Crash, e),
    };
    if detail.chars().count() > 110 {
        detail = detail.chars().take(109).collect::<String>() + "…";
    }
    Run { verdict, detail, wall: start.elapsed(), reproduce }
}

/// `cargo xtask xtf ...` (see the module docs).
pub fn xtf(root: &Path, args: &[String]) -> Result {
    let mut o = parse_args(root, args)?;
    if let Ok(d) = o.dir.canonicalize() {
        o.dir = d;
    }
    if !o.dir.is_dir() {
        println!("xtf: {} does not exist (XTF's test kernels are not here): skipped", o.dir.display());
        return Ok(());
    }
    let total = Instant::now();
    cargo(root, ["build", "--release", "-p", "sim", "--bin", "xenolith"], &[])?;
    let cli = root.join("target/release/xenolith");
    let image = if o.platforms.iter().any(|p| p != "sim") { Some(build_image(root)?) } else { None };
    let tests = load_tests(&cli, &o.dir)?;
    if tests.is_empty() {
        println!("xtf: no *.cfg in {}: skipped", o.dir.display());
        return Ok(());
    }
    let expected = read_expected(&o.expected)?;
    println!(
        "xtf: {} tests from {} on {}, {} at a time (sim: {} instructions each; QEMU timeout: {})",
        tests.len(),
        o.dir.display(),
        o.platforms.join(", "),
        o.jobs,
        o.max_insns,
        o.timeout.map_or(format!("{TCG_TIMEOUT} s under TCG, {KVM_TIMEOUT} s under KVM"), |t| format!("{t} s")),
    );
    // Every (test, platform) run, two at a time; QEMU's and the simulator's alike take one core.
    let jobs: Vec<(usize, &str)> = tests.iter().enumerate().flat_map(|(i, _)| o.platforms.iter().map(move |p| (i, p.as_str()))).collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<(usize, String), Run>> = Mutex::new(BTreeMap::new());
    let run_start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..o.jobs.min(jobs.len()) {
            s.spawn(|| {
                while let Some(&(i, p)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let r = run_one(&cli, image.as_deref(), &tests[i], p, &o);
                    eprintln!("xtf: {:<32} {:<4} {:<8} {:>6.2}s", tests[i].name, p, r.verdict.name(), r.wall.as_secs_f64());
                    results.lock().unwrap_or_else(|e| e.into_inner()).insert((i, p.to_string()), r);
                }
            });
        }
    });
    let runs_wall = run_start.elapsed();
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());

    // The table: one row per test, one column per platform.
    let width = tests.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let mut head = format!("{:<width$}", "test");
    for p in &o.platforms {
        head.push_str(&format!("  {:<17}", p));
    }
    println!("\n{head}");
    let mut details = Vec::new();
    let (mut regressions, mut improvements, mut others, mut new) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut counts: BTreeMap<(&str, Verdict), usize> = BTreeMap::new();
    let mut current = expected.clone();
    for (i, t) in tests.iter().enumerate() {
        let mut row = format!("{:<width$}", t.name);
        for p in &o.platforms {
            let Some(r) = results.get(&(i, p.clone())) else {
                continue;
            };
            row.push_str(&format!("  {:<8} {:>7.2}s", r.verdict.name(), r.wall.as_secs_f64()));
            *counts.entry((p.as_str(), r.verdict)).or_default() += 1;
            if !r.detail.is_empty() {
                details.push(format!("  {} {p} {}: {}", t.name, r.verdict.name(), r.detail));
            }
            let key = (t.name.clone(), p.clone());
            let what = format!("{} {p}", t.name);
            match expected.get(&key) {
                None => new.push(format!("  {what}: {}", r.verdict.name())),
                Some(&e) => {
                    let line = format!("  {what}: {} -> {}", e.name(), r.verdict.name());
                    match compare(e, r.verdict) {
                        Change::Same => {}
                        Change::Regression => regressions.push(format!("{line}\n      reproduce: {}", r.reproduce)),
                        Change::Improvement => improvements.push(line),
                        Change::Other => others.push(line),
                    }
                }
            }
            current.insert(key, r.verdict);
        }
        println!("{row}");
    }
    if !details.is_empty() {
        println!("\ndetails (first line of why, for each run short of SUCCESS):");
        for d in &details {
            println!("{d}");
        }
    }
    println!();
    for p in &o.platforms {
        let summary: Vec<String> =
            Verdict::ALL.iter().filter_map(|v| counts.get(&(p.as_str(), *v)).map(|n| format!("{n} {}", v.name()))).collect();
        println!("xtf {p}: {}", summary.join(", "));
    }
    let missing: Vec<String> = expected
        .keys()
        .filter(|(t, p)| o.platforms.contains(p) && !tests.iter().any(|x| &x.name == t))
        .map(|(t, p)| format!("  {t} {p}"))
        .collect();
    for (title, list) in [
        ("improvements (run `cargo xtask xtf --accel all --bless` to keep them)", &improvements),
        ("changed, neither better nor a regression", &others),
        ("new (not in the expected file; --bless adds them)", &new),
        ("in the expected file but not in the directory", &missing),
        ("REGRESSIONS", &regressions),
    ] {
        if !list.is_empty() {
            println!("{title}:");
            for l in list {
                println!("{l}");
            }
        }
    }
    println!("xtf: {} runs in {:.1} s ({:.1} s with the builds)", results.len(), runs_wall.as_secs_f64(), total.elapsed().as_secs_f64());
    if o.bless {
        write_expected(&o.expected, &current)?;
        println!("xtf: wrote {}", o.expected.display());
        return Ok(());
    }
    if regressions.is_empty() {
        Ok(())
    } else {
        Err(format!("{} regressions against {}", regressions.len(), o.expected.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_by_the_last_result_line() {
        let out = "--- Xen Test Framework ---\nEnvironment: PV 64bit\nTest result: SUCCESS\n";
        assert_eq!(classify(out, ""), (Verdict::Success, String::new()));
        let out = "Environment: PV 64bit\nFail: IOPL 1 not honoured\nTest result: FAILURE\n";
        assert_eq!(classify(out, ""), (Verdict::Failure, "Fail: IOPL 1 not honoured".into()));
        let out = "Test result: SKIP\n";
        assert_eq!(classify(out, "").0, Verdict::Skip);
        let out = "Environment: PV 64bit\n******************************\nPANIC: Failed to register callback[2]: -22\n******************************\n";
        let err = "xenolith: test-pv64-example: crashed (the guest asked)\n";
        assert_eq!(classify(out, err), (Verdict::Crash, "PANIC: Failed to register callback[2]: -22".into()));
        let err = "xenolith: t: crashed (unhandled #GP at 0x1234)\n";
        assert_eq!(classify("Environment: PV 64bit\n", err), (Verdict::Crash, "xenolith: t: crashed (unhandled #GP at 0x1234)".into()));
        assert_eq!(classify("", ""), (Verdict::Crash, "no output".into()));
        assert_eq!(classify("Test result: BOGUS\n", "").0, Verdict::Crash);
    }

    #[test]
    fn regressions_are_losses_of_success_or_skip() {
        use Verdict::*;
        assert_eq!(compare(Success, Success), Change::Same);
        assert_eq!(compare(Success, Skip), Change::Regression);
        assert_eq!(compare(Success, Crash), Change::Regression);
        assert_eq!(compare(Skip, Failure), Change::Regression);
        assert_eq!(compare(Skip, Success), Change::Improvement);
        assert_eq!(compare(Crash, Success), Change::Improvement);
        assert_eq!(compare(Failure, Skip), Change::Improvement);
        assert_eq!(compare(Crash, Failure), Change::Other);
        assert_eq!(compare(Failure, Crash), Change::Other);
    }

    #[test]
    fn expected_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("xtf-expected-{}", std::process::id()));
        let path = dir.join("expected.txt");
        let mut m = BTreeMap::new();
        m.insert(("test-pv64-example".to_string(), "sim".to_string()), Verdict::Crash);
        m.insert(("test-pv64-pv-iopl~vmassist".to_string(), "tcg".to_string()), Verdict::Success);
        write_expected(&path, &m).unwrap();
        assert_eq!(read_expected(&path).unwrap(), m);
        std::fs::write(&path, "a sim MAYBE\n").unwrap();
        assert!(read_expected(&path).unwrap_err().contains("expected.txt:1: unknown result \"MAYBE\""));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
