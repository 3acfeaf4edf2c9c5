//! The simulator's side of `cargo xtask boot-hw`: packing a scenario's domains for the bootable
//! image, and comparing the image's trace with the simulator's snapshot, domain by domain.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hv::domain::{Action, DomainConfig};

use crate::input;
use crate::{runner, scenario};

/// Write the boot pack for a scenario, or for one kernel.
pub fn write_pack(
    sc: Option<&Path>,
    kernel: Option<&Path>,
    memory: u64,
    cmdline: &str,
    initrd: Option<&Path>,
    guests: &Path,
    out: &Path,
) -> Result<(), String> {
    write_pack_vcpus(sc, kernel, memory, 1, cmdline, initrd, guests, out)
}

/// [`write_pack`] with `vcpus` vCPUs for the `--kernel` domain (an xl.cfg's `vcpus`).
#[allow(clippy::too_many_arguments)]
pub fn write_pack_vcpus(
    sc: Option<&Path>,
    kernel: Option<&Path>,
    memory: u64,
    vcpus: u32,
    cmdline: &str,
    initrd: Option<&Path>,
    guests: &Path,
    out: &Path,
) -> Result<(), String> {
    let (run_for, domains, steps) = match (sc, kernel) {
        (Some(p), _) => {
            let s = scenario::load(p).map_err(|e| e.to_string())?;
            let d = s.domains.iter().map(|d| runner::domain_config(d, guests)).collect::<Result<Vec<_>, _>>()?;
            let steps: Vec<hv::driver::Step> =
                s.steps.iter().map(|st| hv::driver::Step { at_ns: st.at_ns, action: runner::core_action(&st.action) }).collect();
            // The image keeps the scenario's clock (virtual time = TSC cycles there) where the
            // scenario needs it: timed steps, a domain that never ends, CPU shares. Otherwise it
            // runs until every domain is done, and QEMU's timeout bounds it (virtual time on
            // the image runs faster than the simulator's for the same guest work).
            (if needs_clock(&s) { s.run_for_ns } else { 0 }, d, steps)
        }
        (None, Some(k)) => {
            let bytes = crate::kernel::read_kernel(k)?;
            // Refuse what the image could not load here, as bad input, not as the image's failure.
            hv::elf::parse(&bytes).map_err(|e| format!("{}: not a Xen PV64 kernel: {e}", k.display()))?;
            let name = k.file_stem().and_then(|s| s.to_str()).unwrap_or("guest");
            let mut c = DomainConfig::new(name, &k.display().to_string(), Arc::from(bytes));
            c.memory_mib = memory;
            c.vcpus = vcpus;
            c.cmdline = cmdline.into();
            c.on_reboot = Action::Destroy;
            if let Some(r) = initrd {
                c.initrd = Some(Arc::from(input::read_input(r, input::InputKind::Ramdisk).map_err(|e| e.to_string())?));
            }
            (0, vec![c], vec![])
        }
        (None, None) => return Err("pack: give --scenario or --kernel".into()),
    };
    std::fs::write(out, hv::pack::write(run_for, &domains, &steps)).map_err(|e| format!("{}: {e}", out.display()))
}

/// Split trace lines by domain (`d1 …` and `d1v0 …` both belong to d1); other lines are dropped.
pub fn by_domain(lines: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines.lines() {
        let Some(first) = l.split_whitespace().next() else { continue };
        let Some(rest) = first.strip_prefix('d') else { continue };
        let id: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let after = &rest[id.len()..];
        if id.is_empty() || !(after.is_empty() || after.starts_with('v')) {
            continue;
        }
        m.entry(format!("d{id}")).or_default().push(l.to_string());
    }
    m
}

/// The trace body of an insta snapshot file (after its `---` header).
pub fn snapshot_body(text: &str) -> String {
    let mut parts = text.splitn(3, "---\n");
    let _ = parts.next();
    let _ = parts.next();
    parts.next().unwrap_or(text).to_string()
}

/// Compare per-domain event sequences; returns a readable diff, or None when they match.
pub fn compare(expected: &str, got: &str) -> Option<String> {
    let (a, b) = (by_domain(expected), by_domain(got));
    let mut out = String::new();
    for dom in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        let (x, y) = (a.get(dom).cloned().unwrap_or_default(), b.get(dom).cloned().unwrap_or_default());
        if x == y {
            continue;
        }
        let i = x.iter().zip(&y).take_while(|(p, q)| p == q).count();
        out.push_str(&format!("{dom}: traces differ at event {} (simulator {} events, image {} events)\n", i + 1, x.len(), y.len()));
        for l in x.iter().skip(i.saturating_sub(2)).take(2.min(i)) {
            out.push_str(&format!("    {l}\n"));
        }
        for l in x.iter().skip(i).take(4) {
            out.push_str(&format!("  - {l}\n"));
        }
        for l in y.iter().skip(i).take(4) {
            out.push_str(&format!("  + {l}\n"));
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Which accelerator QEMU uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Can this process use /dev/kvm?
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

/// Accelerators named by `--accel kvm|tcg|auto|all` (`all`: TCG, and KVM where it works).
pub fn accels(spec: &str) -> Result<Vec<Accel>, String> {
    Ok(match spec {
        "kvm" => vec![Accel::Kvm],
        "tcg" => vec![Accel::Tcg],
        "auto" => vec![if kvm_usable() { Accel::Kvm } else { Accel::Tcg }],
        "all" => {
            let mut v = vec![Accel::Tcg];
            if kvm_usable() {
                v.push(Accel::Kvm);
            }
            v
        }
        o => return Err(format!("--accel {o:?}: expected kvm, tcg, auto or all")),
    })
}

/// One QEMU run of the image.
pub struct QemuRun {
    /// Everything the image wrote to the debug console.
    pub output: String,
    /// QEMU's exit status (`None` if killed at the timeout).
    pub status: Option<i32>,
    pub wall: std::time::Duration,
    pub stderr: String,
}

impl QemuRun {
    /// The image reached its end and reported through isa-debug-exit (0x10 -> 33).
    pub fn completed(&self) -> bool {
        self.status == Some(33)
    }
    /// Why the run did not complete, if it did not.
    pub fn problem(&self) -> Option<String> {
        match self.status {
            Some(33) => None,
            Some(35) => Some(format!("the image failed: {}", self.output.lines().rev().find(|l| l.starts_with('#')).unwrap_or(""))),
            Some(0) => Some(format!(
                "the machine reset (a triple fault in the hypervisor){}",
                self.output.lines().rev().find(|l| l.starts_with('#')).map(|l| format!("; last line: {l}")).unwrap_or_default()
            )),
            Some(c) => Some(format!("QEMU exited with status {c}: {}", self.stderr.trim())),
            None => Some(format!("timed out after {:.1} s (QEMU killed)", self.wall.as_secs_f64())),
        }
    }
}

/// How a `boot-hw --kernel` run ended, as `xenolith boot`'s exit codes where they apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelEnd {
    /// The guest powered off: exit 0.
    Poweroff,
    /// The guest crashed: exit 1.
    Crash,
    /// Still running when the image stopped it, or QEMU was killed at the timeout: exit 3.
    Timeout,
    /// Shut down otherwise (reboot) or destroyed: exit 4.
    OtherShutdown(String),
    /// The image itself failed — it reset, reported an error or panic, never created the domain,
    /// or gave no result — or QEMU did not run: exit 5.
    ImageFailed(String),
}

impl KernelEnd {
    /// The process exit code (see the README's "Limits and exit codes").
    pub fn code(&self) -> u8 {
        match self {
            KernelEnd::Poweroff => 0,
            KernelEnd::Crash => 1,
            KernelEnd::Timeout => 3,
            KernelEnd::OtherShutdown(_) => 4,
            KernelEnd::ImageFailed(_) => 5,
        }
    }
}

/// How the image's run of the one domain `name` ended (see [`KernelEnd`]).
pub fn kernel_end(run: &QemuRun, name: &str) -> KernelEnd {
    if run.status.is_none() {
        return KernelEnd::Timeout;
    }
    if let Some(p) = run.problem() {
        return KernelEnd::ImageFailed(p);
    }
    // A reset reboots the image: it would run again from the start, with a second header.
    let starts = run.output.lines().filter(|l| l.starts_with("# xenolith image")).count();
    if starts > 1 {
        return KernelEnd::ImageFailed(format!("the image reset ({starts} starts)"));
    }
    let Some(done) = run.output.lines().find(|l| l.starts_with("# done")) else {
        return KernelEnd::ImageFailed("the image gave no result (no \"# done\" line)".into());
    };
    let key = format!("{name}=");
    let state = done.split_whitespace().find_map(|w| w.strip_prefix(key.as_str()));
    match state {
        Some("poweroff") => KernelEnd::Poweroff,
        Some("crash") => KernelEnd::Crash,
        Some("running") => KernelEnd::Timeout,
        Some(s @ ("reboot" | "destroyed" | "suspend" | "watchdog")) => KernelEnd::OtherShutdown(s.to_string()),
        Some("not-created") => KernelEnd::ImageFailed(format!("the image did not create domain {}", input::quote(name))),
        Some(other) => KernelEnd::ImageFailed(format!("domain {} ended as {}", input::quote(name), input::quote(other))),
        None => KernelEnd::ImageFailed(format!("no result for domain {} in {}", input::quote(name), input::quote(done))),
    }
}

/// Boot `image` with `pack` as its module under `accel`, always under `timeout`.
pub fn qemu(image: &Path, pack: &Path, accel: Accel, mem_mib: u64, append: &str, timeout: std::time::Duration) -> Result<QemuRun, String> {
    qemu_with(image, pack, accel, mem_mib, append, timeout, &[])
}

/// [`qemu`] with more QEMU arguments (`boot-hw --gdb`: QEMU's own gdbstub, `-gdb tcp:ADDR -S`).
pub fn qemu_with(
    image: &Path,
    pack: &Path,
    accel: Accel,
    mem_mib: u64,
    append: &str,
    timeout: std::time::Duration,
    extra: &[String],
) -> Result<QemuRun, String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-M",
        "microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=off,acpi=off",
        "-nodefaults",
        "-no-user-config",
        // A reset (a triple fault in the hypervisor) ends QEMU at once instead of booting the
        // image again and again until the timeout.
        "-no-reboot",
        "-display",
        "none",
        "-debugcon",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-m",
    ]);
    cmd.arg(format!("{mem_mib}M"));
    match accel {
        Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host,-arch-capabilities"]),
        Accel::Tcg => cmd.args(["-accel", "tcg", "-cpu", "max"]),
    };
    cmd.arg("-kernel").arg(image).arg("-initrd").arg(pack);
    if !append.is_empty() {
        cmd.args(["-append", append]);
    }
    cmd.args(extra);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = std::time::Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot run qemu-system-x86_64 (cargo xtask setup installs it): {e}"))?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut err = child.stderr.take().ok_or("no stderr")?;
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.code(),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(2)),
            Err(e) => return Err(format!("waiting for QEMU: {e}")),
        }
    };
    let wall = start.elapsed();
    let output = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    Ok(QemuRun { output, status, wall, stderr })
}

/// Memory to give QEMU for a pack's domains: the image's heap (48 MiB) and tables, plus theirs.
pub fn qemu_memory(domain_mib: u64) -> u64 {
    (domain_mib + 128).max(192)
}

/// The image maps and manages 1 GiB of machine memory (`hv/src/arch/x86_64`: MAX_RAM), of
/// which its own heap, tables and the M2P take up to 128 MiB: what is left for domains (MiB).
pub const IMAGE_DOMAIN_MIB: u64 = 1024 - 128;

/// Refuse domains that the image could not hold, before QEMU starts.
pub fn check_image_memory(domain_mib: u64) -> Result<(), String> {
    if domain_mib > IMAGE_DOMAIN_MIB {
        return Err(format!(
            "the domains need {domain_mib} MiB; the image manages 1 GiB of machine memory and can give domains at most {IMAGE_DOMAIN_MIB} MiB in all"
        ));
    }
    Ok(())
}

/// Does the scenario need its clock on the image (see [`write_pack`])?
pub fn needs_clock(s: &scenario::Scenario) -> bool {
    !s.steps.is_empty()
        || s.expect.shutdown.values().any(|e| *e == scenario::DomainEnd::Running)
        || !s.expect.share_within.is_empty()
        || !s.expect.cpu_percent.is_empty()
}

/// Why a scenario's shape cannot be cross-checked on the image, if it cannot. None today: the
/// image runs timed steps on several CPUs too (its SMP loop runs to each step's time and the boot
/// CPU carries the step out). Kept as the one place such a limit goes (`hw_unsupported` in the
/// scenario is for a platform's limits).
pub fn hw_skip_reason(_s: &scenario::Scenario) -> Option<String> {
    None
}

/// Why the scenario is not run on the image under `accel`, if it is not: [`hw_skip_reason`], or
/// the scenario's own `hw_unsupported` entry for that accelerator.
pub fn hw_unsupported_reason(s: &scenario::Scenario, accel: Accel) -> Option<String> {
    hw_skip_reason(s).or_else(|| s.hw_unsupported.iter().find(|(k, _)| k == accel.name()).map(|(_, why)| why.clone()))
}

/// How far the image may be from the credit target: the simulator's tolerance plus 2 points
/// (±1 there is ±3 here; real time and interrupt latency blur the image's accounting).
pub const HW_SHARE_SLACK: f64 = 2.0;

/// One domain's share as the image reported it (`# share NAME measured=M target=T|-`).
pub fn parse_shares(output: &str) -> Vec<(String, f64, Option<f64>)> {
    output
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("# share ")?.split_whitespace();
            let name = w.next()?.to_string();
            let m = w.next()?.strip_prefix("measured=")?.parse().ok()?;
            let t = w.next()?.strip_prefix("target=")?;
            Some((name, m, t.parse().ok()))
        })
        .collect()
}

/// Are these expectation failures only measured shares off their target or range (not a
/// domain that reported no share or did not run to the end)? Only such a miss is timing noise
/// of a shared host worth a second run (`boot-hw` runs the scenario once more, saying so).
pub fn only_share_misses(fails: &[String]) -> bool {
    !fails.is_empty()
        && fails.iter().all(|f| {
            (f.starts_with("share_within.") && f.contains("% is not within ")) || (f.starts_with("cpu_percent.") && f.contains("% not in "))
        })
}

/// The scenario's expectations the image can check besides the per-domain trace: shutdown
/// states (the `# done` line), shares within the tolerance + [`HW_SHARE_SLACK`], CPU % within
/// the range widened by as much. Returns the failures and a summary of the shares.
pub fn check_expectations(s: &scenario::Scenario, output: &str) -> (Vec<String>, String) {
    let mut fails = Vec::new();
    let done = output.lines().find(|l| l.starts_with("# done")).unwrap_or("");
    for (name, want) in &s.expect.shutdown {
        let key = format!("{name}=");
        let got = done.split_whitespace().find_map(|w| w.strip_prefix(key.as_str())).unwrap_or("?");
        let got = if got == "watchdog" { "crash" } else { got };
        if got != want.as_str() {
            fails.push(format!("shutdown.{name}: expected {want}, got {got}"));
        }
    }
    let shares = parse_shares(output);
    let mut summary = Vec::new();
    for (name, m, t) in &shares {
        if s.expect.share_within.contains_key(name) || s.expect.cpu_percent.contains_key(name) {
            summary.push(match t {
                Some(t) => format!("{name} {m:.1}% (target {t:.1})"),
                None => format!("{name} {m:.1}%"),
            });
        }
    }
    for (name, tol) in &s.expect.share_within {
        let tol = *tol as f64 + HW_SHARE_SLACK;
        match shares.iter().find(|(n, _, _)| n == name) {
            Some((_, m, Some(t))) if (m - t).abs() <= tol => {}
            Some((_, m, Some(t))) => fails.push(format!("share_within.{name}: {m:.2}% is not within {tol} points of the target {t:.2}%")),
            Some(_) => fails.push(format!("share_within.{name}: no target (the domain did not run to the end)")),
            None => fails.push(format!("share_within.{name}: the image reported no share")),
        }
    }
    for (name, (lo, hi)) in &s.expect.cpu_percent {
        let (lo, hi) = (*lo as f64 - HW_SHARE_SLACK, *hi as f64 + HW_SHARE_SLACK);
        match shares.iter().find(|(n, _, _)| n == name) {
            Some((_, m, _)) if *m >= lo && *m <= hi => {}
            Some((_, m, _)) => fails.push(format!("cpu_percent.{name}: {m:.2}% not in {lo}..={hi}")),
            None => fails.push(format!("cpu_percent.{name}: the image reported no share")),
        }
    }
    (fails, summary.join(", "))
}

/// Unescape the Rust-debug string of a `dN console "..."` trace line.
pub fn console_text(line: &str) -> Option<String> {
    let q = line.find(" console \"")?;
    let s = &line[q + 10..line.len().checked_sub(1)?];
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('u') => {
                let hex: String = it.by_ref().skip(1).take_while(|&c| c != '}').collect();
                out.push(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).unwrap_or('?'));
            }
            Some(o) => out.push(o),
            None => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIM: &str = "d1 create name=a\nd1v0 xen_version(version) = 0x40011\nd2 create name=b\nd2v0 sched_op(yield) = 0\nd1 destroy\n";

    #[test]
    fn interleaving_does_not_matter_per_domain_order_does() {
        let hw = "# xenolith image\n# gate=int3\nd2 create name=b\nd1 create name=a\nd2v0 sched_op(yield) = 0\nd1v0 xen_version(version) = 0x40011\nd1 destroy\n# done\n";
        assert_eq!(compare(SIM, hw), None);
    }

    #[test]
    fn a_changed_hypercall_result_is_reported() {
        let hw = SIM.replace("= 0x40011", "= 0x40012");
        let diff = compare(SIM, &hw).expect("a difference");
        assert!(diff.contains("d1: traces differ at event 2"), "{diff}");
        assert!(diff.contains("- d1v0 xen_version(version) = 0x40011"), "{diff}");
        assert!(diff.contains("+ d1v0 xen_version(version) = 0x40012"), "{diff}");
        assert!(!diff.contains("d2:"), "{diff}");
    }

    #[test]
    fn missing_events_are_reported() {
        let hw = "d1 create name=a\nd1v0 xen_version(version) = 0x40011\nd2 create name=b\n";
        let diff = compare(SIM, hw).expect("a difference");
        assert!(diff.contains("d2: traces differ at event 2 (simulator 2 events, image 1 events)"), "{diff}");
        assert!(diff.contains("d1: traces differ at event 3"), "{diff}");
    }

    #[test]
    fn lines_are_grouped_by_domain_id_not_prefix() {
        let m = by_domain("d1 a\nd10v0 b\nd1v2 c\ndone d1\nd1x nope\n");
        assert_eq!(m["d1"], vec!["d1 a", "d1v2 c"]);
        assert_eq!(m["d10"], vec!["d10v0 b"]);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn snapshot_header_is_stripped() {
        let snap = "---\nsource: sim/tests/scenarios.rs\ndescription: x\n---\nd1 create\n";
        assert_eq!(snapshot_body(snap), "d1 create\n");
    }

    #[test]
    fn console_lines_are_unescaped() {
        assert_eq!(console_text(r#"d1 console "say \"hi\"\tnow \u{1b}""#).as_deref(), Some("say \"hi\"\tnow \u{1b}"));
        assert_eq!(console_text("d1v0 sched_op(yield) = 0"), None);
    }

    fn run(status: Option<i32>, output: &str) -> QemuRun {
        QemuRun { output: output.into(), status, wall: std::time::Duration::from_millis(40), stderr: String::new() }
    }

    #[test]
    fn every_image_outcome_but_poweroff_is_a_failure_code() {
        let done = |st: &str| format!("# xenolith image\n# gate=syscall\n# done hello={st} exits=3 hypercalls=9\n");
        let end = |r: &QemuRun| kernel_end(r, "hello");
        assert_eq!(end(&run(Some(33), &done("poweroff"))), KernelEnd::Poweroff);
        assert_eq!(end(&run(Some(33), &done("poweroff"))).code(), 0);
        assert_eq!(end(&run(Some(33), &done("crash"))).code(), 1);
        assert_eq!(end(&run(Some(33), &done("running"))).code(), 3);
        assert_eq!(end(&run(None, "# xenolith image\n")).code(), 3);
        assert_eq!(end(&run(Some(33), &done("reboot"))), KernelEnd::OtherShutdown("reboot".into()));
        assert_eq!(end(&run(Some(33), &done("destroyed"))).code(), 4);
        // The bug: the image reset, came back and reported the domain not created; exit 0.
        let reset = format!("# xenolith image\n# gate=syscall\n{}", done("not-created"));
        assert_eq!(end(&run(Some(33), &reset)), KernelEnd::ImageFailed("the image reset (2 starts)".into()));
        assert_eq!(end(&run(Some(33), &done("not-created"))), KernelEnd::ImageFailed("the image did not create domain \"hello\"".into()));
        let twice = format!("# xenolith image\n# gate=syscall\n{}", done("poweroff"));
        assert_eq!(end(&run(Some(33), &twice)).code(), 5, "a reset, even if the second start powered off");
        assert_eq!(end(&run(Some(33), "# xenolith image\n")).code(), 5, "no result");
        assert_eq!(end(&run(Some(33), "# done other=poweroff\n")).code(), 5, "no result for this domain");
        assert_eq!(end(&run(Some(35), "# xenolith image\n# error: panic\n")).code(), 5, "the image failed");
        assert_eq!(end(&run(Some(1), "")).code(), 5, "QEMU did not run");
        // A name that is a prefix of another is not confused with it.
        assert_eq!(end(&run(Some(33), "# done hello2=poweroff hello=crash\n")).code(), 1);
    }

    #[test]
    fn steps_run_on_the_image_several_pcpus_without_steps_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(
            &p,
            "run_for = \"10ms\"\n[[domain]]\nname = \"a\"\nkernel = \"hello\"\n[[step]]\nat = \"1ms\"\ndo = \"sched-credit -d a -w 5\"\n",
        )
        .unwrap();
        let s = scenario::load(&p).unwrap();
        assert!(hw_skip_reason(&s).is_none());
        assert!(needs_clock(&s));
        std::fs::write(&p, "run_for = \"10ms\"\n[[domain]]\nname = \"a\"\nkernel = \"hello\"\n[[step]]\nat = \"1ms\"\ndo = \"pause a\"\n")
            .unwrap();
        let s = scenario::load(&p).unwrap();
        assert!(hw_skip_reason(&s).is_none());
        std::fs::write(&p, "run_for = \"10ms\"\npcpus = 2\n[[domain]]\nname = \"a\"\nkernel = \"hello\"\n").unwrap();
        let s = scenario::load(&p).unwrap();
        assert!(hw_skip_reason(&s).is_none());
        assert!(!needs_clock(&s));
        std::fs::write(
            &p,
            "run_for = \"10ms\"\npcpus = 2\n[[domain]]\nname = \"a\"\nkernel = \"hello\"\n[[step]]\nat = \"1ms\"\ndo = \"pause a\"\n",
        )
        .unwrap();
        let s = scenario::load(&p).unwrap();
        assert!(hw_skip_reason(&s).is_none());
        assert!(needs_clock(&s));
    }

    #[test]
    fn hw_unsupported_is_per_accelerator() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(
            &p,
            "hw_unsupported = { kvm = \"no breakpoints\" }\nrun_for = \"10ms\"\n[[domain]]\nname = \"a\"\nkernel = \"hello\"\n",
        )
        .unwrap();
        let s = scenario::load(&p).unwrap();
        assert_eq!(hw_unsupported_reason(&s, Accel::Kvm).as_deref(), Some("no breakpoints"));
        assert_eq!(hw_unsupported_reason(&s, Accel::Tcg), None);
    }

    #[test]
    fn shares_are_checked_with_the_image_slack() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        let text = "run_for = \"3s\"\n[[domain]]\nname = \"a\"\nkernel = \"spin\"\n[[domain]]\nname = \"b\"\nkernel = \"spin\"\n\
                    [expect]\nshutdown.a = \"running\"\nshare_within.a = 1\nshare_within.b = 1\ncpu_percent.b = [49, 51]\n";
        std::fs::write(&p, text).unwrap();
        let s = scenario::load(&p).unwrap();
        let out = |a: f64, b: f64| {
            format!("# share a measured={a:.2} target=50.00\n# share b measured={b:.2} target=50.00\n# done a=running b=running exits=1 hypercalls=2\n")
        };
        assert_eq!(check_expectations(&s, &out(52.9, 47.1)).0, Vec::<String>::new());
        let (f, summary) = check_expectations(&s, &out(53.5, 46.5));
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f[0].starts_with("share_within.a: 53.50% is not within 3 points"), "{f:?}");
        assert!(only_share_misses(&f), "{f:?}");
        assert!(!only_share_misses(&[]));
        assert!(!only_share_misses(&["share_within.a: the image reported no share".to_string()]));
        assert!(!only_share_misses(&["shutdown.a: running, expected poweroff".to_string(), f[0].clone()]));
        assert!(f[2].starts_with("cpu_percent.b: 46.50% not in 47..=53"), "{f:?}");
        assert_eq!(summary, "a 53.5% (target 50.0), b 46.5% (target 50.0)");
        let (f, _) = check_expectations(&s, "# share a measured=50.00 target=-\n# done a=poweroff\n");
        assert!(f.iter().any(|l| l == "shutdown.a: expected running, got poweroff"), "{f:?}");
        assert!(f.iter().any(|l| l.starts_with("share_within.a: no target")), "{f:?}");
        assert!(f.iter().any(|l| l == "share_within.b: the image reported no share"), "{f:?}");
    }
}
