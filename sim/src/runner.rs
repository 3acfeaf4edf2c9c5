//! Runs a scenario in the simulator: builds its domains, executes its timed steps on the
//! virtual clock, collects the trace and checks the expectations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hv::abi::ShutdownReason;
use hv::domain::{Action as HvAction, DomainConfig};
use hv::hv::ControlError;
use hv::{Record, RecordState};

use crate::input;
use crate::scenario::{self, Action, DomainEnd, DomainSpec, Scenario, ShutdownKind, StepAction};

/// The result of one scenario run.
pub struct Outcome {
    pub name: String,
    pub path: PathBuf,
    pub trace: Vec<String>,
    /// Expectation failures and setup errors; empty = pass.
    pub failures: Vec<String>,
    pub records: BTreeMap<String, Record>,
    pub instructions: u64,
    pub hypercalls: u64,
    pub virtual_ns: u64,
    pub wall: Duration,
    /// Bad input among `failures`: a kernel that cannot be read or is refused (`run` exits 2).
    pub input_errors: Vec<String>,
    /// The host could not run the scenario among `failures`: no machine memory, no unicorn
    /// instance for a vCPU (`run` exits 5).
    pub host_errors: Vec<String>,
    /// Each domain's measured CPU share beside the credit scheduler's target.
    pub shares: Vec<Share>,
    /// Physical CPUs the scenario ran on.
    pub pcpus: u32,
    /// Which vCPU ran on which pCPU when (recorded when asked, see [`Options`]).
    pub spans: Vec<Span>,
    /// The scenario's steps: virtual time and the `do` text (timelines mark them).
    pub marks: Vec<(u64, String)>,
}

pub use hv::driver::{target_shares, Share};

/// A stretch of time a vCPU ran on a pCPU, with its domain's name.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub pcpu: u32,
    pub domain: String,
    pub vcpu: u32,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// How to run a scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Record which vCPU ran on which pCPU when (timelines).
    pub spans: bool,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
    /// The trace as one string, one event per line.
    pub fn trace_text(&self) -> String {
        let mut s = self.trace.join("\n");
        s.push('\n');
        s
    }
}

/// Where the guests of `guests/` are built.
pub fn guests_dir(repo: &Path) -> PathBuf {
    repo.join("guests/target/x86_64-unknown-none/release")
}

fn action(a: Action) -> HvAction {
    match a {
        Action::Destroy => HvAction::Destroy,
        Action::Restart => HvAction::Restart,
        Action::Preserve => HvAction::Preserve,
        Action::RenameRestart => HvAction::RenameRestart,
        Action::CoredumpDestroy => HvAction::CoredumpDestroy,
        Action::CoredumpRestart => HvAction::CoredumpRestart,
    }
}

/// Build the core's config for a domain spec, reading its kernel (bounded, see [`crate::input`])
/// and checking that it is an ELF the core can load. Errors start with the domain's source file
/// (the scenario, or its xl.cfg) and name the domain and the kernel.
pub fn domain_config(spec: &DomainSpec, guests: &Path) -> Result<DomainConfig, String> {
    let path = scenario::resolve_kernel(spec, guests);
    domain_config_at(spec, &path).map_err(|e| {
        if !path.exists() && !spec.kernel.contains('/') {
            format!("{e} (build the guests: cargo xtask guests)")
        } else {
            e
        }
    })
}

/// [`domain_config`] with the kernel read from `path` (`xenolith create` resolves it itself).
pub fn domain_config_at(spec: &DomainSpec, path: &Path) -> Result<DomainConfig, String> {
    let path = path.to_path_buf();
    let whose = format!("{}: domain {}", spec.source.display(), input::quote(&spec.name));
    let bytes = crate::kernel::read_kernel(&path).map_err(|e| format!("{whose}: {e}"))?;
    if let Err(e) = hv::elf::parse(&bytes) {
        return Err(format!("{whose}: {}: not a Xen PV64 kernel: {e}", path.display()));
    }
    let mut c = DomainConfig::new(&spec.name, &spec.kernel, Arc::from(bytes));
    c.memory_mib = spec.memory_mib;
    c.vcpus = spec.vcpus;
    c.cmdline = spec.cmdline.clone();
    if let Some(r) = &spec.ramdisk {
        let bytes = input::read_input(r, input::InputKind::Ramdisk).map_err(|e| format!("{whose}: {e}"))?;
        c.initrd = Some(Arc::from(bytes));
    }
    c.on_poweroff = action(spec.on_poweroff);
    c.on_reboot = action(spec.on_reboot);
    c.on_crash = action(spec.on_crash);
    if let Some(w) = spec.weight {
        c.weight = w;
    }
    if let Some(cap) = spec.cap {
        c.cap = cap;
    }
    c.privileged = spec.privileged;
    Ok(c)
}

/// Every domain's config (see [`domain_config`]), in scenario order.
pub fn domain_configs(sc: &Scenario, guests: &Path) -> Vec<Result<DomainConfig, String>> {
    sc.domains.iter().map(|spec| domain_config(spec, guests)).collect()
}

/// Run one scenario in a fresh simulator.
pub fn run(sc: &Scenario, guests: &Path) -> Outcome {
    run_configs(sc, domain_configs(sc, guests))
}

/// Run one scenario in a fresh simulator, with its domains' configs already built (one per
/// domain, see [`domain_configs`]); a domain whose config is an error is not created.
pub fn run_configs(sc: &Scenario, configs: Vec<Result<DomainConfig, String>>) -> Outcome {
    run_with(sc, configs, Options::default())
}

/// [`run_configs`] with [`Options`].
pub fn run_with(sc: &Scenario, configs: Vec<Result<DomainConfig, String>>, opts: Options) -> Outcome {
    let started = Instant::now();
    let mut failures = Vec::new();
    let (mut input_errors, mut host_errors) = (Vec::new(), Vec::new());
    let mem: u64 = sc.domains.iter().map(|d| d.memory_mib + 2).sum::<u64>() + 16;
    let mut hv = match crate::new_hypervisor(mem) {
        Ok(h) => h,
        Err(e) => {
            let mut names: Vec<String> = sc.domains.iter().take(4).map(|d| input::quote(&d.name)).collect();
            if sc.domains.len() > 4 {
                names.push(format!("and {} more", sc.domains.len() - 4));
            }
            let which = if sc.domains.len() == 1 { "domain" } else { "domains" };
            let msg = format!("{}: {which} {}: cannot start the simulator: {e}", sc.path.display(), names.join(", "));
            return Outcome {
                name: sc.name.clone(),
                path: sc.path.clone(),
                trace: vec![],
                failures: vec![msg.clone()],
                records: BTreeMap::new(),
                instructions: 0,
                hypercalls: 0,
                virtual_ns: 0,
                wall: started.elapsed(),
                input_errors,
                host_errors: vec![msg],
                shares: vec![],
                pcpus: sc.pcpus,
                spans: vec![],
                marks: vec![],
            };
        }
    };
    hv.set_pcpus(sc.pcpus as usize);
    if opts.spans {
        hv.sched.record();
    }
    for (spec, config) in sc.domains.iter().zip(configs) {
        match config {
            Ok(c) => match hv.create_domain(c) {
                Ok(_) => {}
                Err(e @ ControlError::Platform(_)) => {
                    let why = hv.platform.vcpu_error.take().unwrap_or_else(|| e.to_string());
                    host_errors.push(format!("{}: domain {}: {why}", sc.path.display(), input::quote(&spec.name)));
                }
                Err(e) => input_errors.push(format!("{}: domain {}: {e}", sc.path.display(), input::quote(&spec.name))),
            },
            // Errors name the domain's source file; name the scenario too when that is an xl.cfg.
            Err(e) if spec.source == sc.path => input_errors.push(e),
            Err(e) => input_errors.push(format!("{}: {e}", sc.path.display())),
        }
    }
    failures.extend(input_errors.iter().chain(&host_errors).cloned());
    // The core's scenario driver, as on the image: each step at its time, then to run_for.
    let steps: Vec<hv::driver::Step> =
        sc.steps.iter().map(|s| hv::driver::Step { at_ns: s.at_ns, action: core_action(&s.action) }).collect();
    let params = hv.drive(&steps, sc.run_for_ns, |i, e| {
        let step = &sc.steps[i];
        failures.push(format!("{}:{}: step at {} ns: {e}", sc.path.display(), step.line, step.at_ns));
    });
    let records = hv.records.clone();
    check(sc, &hv.platform.trace, &records, &mut failures);
    let names: Vec<String> = sc.domains.iter().map(|d| d.name.clone()).collect();
    let shares = hv.shares(&names, sc.run_for_ns, &params);
    for (name, tol) in &sc.expect.share_within {
        match shares.iter().find(|s| s.name == *name) {
            Some(Share { measured, target: Some(t), .. }) if (measured - t).abs() <= *tol as f64 => {}
            Some(Share { measured, target: Some(t), .. }) => {
                failures.push(format!("share_within.{name}: {measured:.2}% is not within {tol} points of the target {t:.2}%"))
            }
            _ => failures.push(format!("share_within.{name}: no target (the domain did not run to the end)")),
        }
    }
    hv.sched.flush_spans();
    let names: BTreeMap<hv::DomId, String> = hv.doms.values().map(|d| (d.id, d.config.name.clone())).collect();
    let spans = hv
        .sched
        .spans
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|s| Span {
            pcpu: s.pcpu,
            domain: names.get(&s.unit.0).cloned().unwrap_or_else(|| format!("d{}", s.unit.0)),
            vcpu: s.unit.1,
            start_ns: s.start,
            end_ns: s.end.min(sc.run_for_ns.max(s.start)),
        })
        .collect();
    check_store(sc, &hv.store, &records, &mut failures);
    Outcome {
        name: sc.name.clone(),
        path: sc.path.clone(),
        instructions: hv.platform.instructions,
        hypercalls: hv.hypercalls,
        virtual_ns: hv.now,
        trace: std::mem::take(&mut hv.platform.trace),
        failures,
        records,
        wall: started.elapsed(),
        input_errors,
        host_errors,
        shares,
        pcpus: sc.pcpus,
        spans,
        marks: sc.steps.iter().map(|s| (s.at_ns, s.text.clone())).collect(),
    }
}

/// A scenario step's command as the core's driver takes it.
pub fn core_action(a: &StepAction) -> hv::driver::StepAction {
    use hv::driver::StepAction as C;
    match a {
        StepAction::Pause(d) => C::Pause(d.clone()),
        StepAction::Unpause(d) => C::Unpause(d.clone()),
        StepAction::Shutdown { domain, reason } => C::Shutdown {
            domain: domain.clone(),
            reason: if *reason == ShutdownKind::Reboot { ShutdownReason::Reboot } else { ShutdownReason::Poweroff },
        },
        StepAction::Reboot(d) => C::Shutdown { domain: d.clone(), reason: ShutdownReason::Reboot },
        StepAction::Destroy(d) => C::Destroy(d.clone()),
        StepAction::SchedCredit { domain, weight, cap } => C::SchedCredit { domain: domain.clone(), weight: *weight, cap: *cap },
        StepAction::Console(d) => C::Console(d.clone()),
        StepAction::Input { domain, bytes } => C::Input { domain: domain.clone(), bytes: bytes.clone() },
    }
}

/// `expect.store`: each PATH=VALUE against the store as the run left it.
fn check_store(sc: &Scenario, store: &hv::store::Store, records: &BTreeMap<String, Record>, failures: &mut Vec<String>) {
    for (name, pairs) in &sc.expect.store {
        let Some(r) = records.get(name) else { continue };
        for (path, want) in pairs {
            let full = if path.starts_with('/') { path.clone() } else { format!("/local/domain/{}/{path}", r.id) };
            match store.read(&full) {
                Some(v) if v == want.as_bytes() => {}
                Some(v) => failures.push(format!("store.{name}: {full} is {:?}, expected {want:?}", String::from_utf8_lossy(v))),
                None => failures.push(format!(
                    "store.{name}: no node {full} (a domain's paths go when it is destroyed: on_poweroff = \"preserve\" keeps them)"
                )),
            }
        }
    }
}

fn end_of(r: &Record) -> DomainEnd {
    match (r.state, r.shutdowns.last()) {
        (RecordState::Running | RecordState::Paused, _) => DomainEnd::Running,
        (_, Some(ShutdownReason::Poweroff)) => DomainEnd::Poweroff,
        (_, Some(ShutdownReason::Reboot)) => DomainEnd::Reboot,
        (_, Some(ShutdownReason::Crash | ShutdownReason::Watchdog)) => DomainEnd::Crash,
        _ => DomainEnd::Destroyed,
    }
}

fn check(sc: &Scenario, trace: &[String], records: &BTreeMap<String, Record>, failures: &mut Vec<String>) {
    for (name, want) in &sc.expect.console {
        let text = records.get(name).map(|r| r.console.join("\n")).unwrap_or_default();
        if let Some(missing) = scenario::first_missing(want, &text) {
            failures.push(format!("console.{name}: no line containing {missing:?} (in order)"));
        }
    }
    for (name, want) in &sc.expect.shutdown {
        let got = records.get(name).map(end_of);
        if got != Some(*want) {
            let got = got.map(|g| g.to_string()).unwrap_or_else(|| "never created".into());
            failures.push(format!("shutdown.{name}: expected {want}, got {got}"));
        }
    }
    for (name, want) in &sc.expect.trace {
        let text = match records.get(name) {
            Some(r) => {
                let p1 = format!("d{} ", r.id);
                let p2 = format!("d{}v", r.id);
                trace.iter().filter(|l| l.starts_with(&p1) || l.starts_with(&p2)).cloned().collect::<Vec<_>>().join("\n")
            }
            None => String::new(),
        };
        if let Some(missing) = scenario::first_missing(want, &text) {
            failures.push(format!("trace.{name}: no line containing {missing:?} (in order)"));
        }
    }
    for (name, (lo, hi)) in &sc.expect.cpu_percent {
        // Exact: lo <= cpu_ns * 100 / run_for <= hi, without rounding.
        let (ns, run) = (records.get(name).map_or(0, |r| r.cpu_ns) as u128, sc.run_for_ns.max(1) as u128);
        if ns * 100 < *lo as u128 * run || ns * 100 > *hi as u128 * run {
            let pct = ns as f64 * 100.0 / run as f64;
            failures.push(format!("cpu_percent.{name}: {pct:.2}% not in {lo}..={hi}"));
        }
    }
}
