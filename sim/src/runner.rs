//! Runs a scenario in the simulator: builds its domains, executes its timed steps on the
//! virtual clock, collects the trace and checks the expectations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hv::abi::ShutdownReason;
use hv::domain::{Action as HvAction, DomainConfig};
use hv::{Record, RecordState};

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

/// Build the core's config for a domain spec, reading its kernel.
pub fn domain_config(spec: &DomainSpec, guests: &Path) -> Result<DomainConfig, String> {
    let path = scenario::resolve_kernel(spec, guests);
    let bytes = std::fs::read(&path).map_err(|e| {
        let hint = if spec.kernel.contains('/') { "" } else { " (build the guests: cargo xtask guests)" };
        format!("{}: domain {:?}: kernel {}: {e}{hint}", spec.source.display(), spec.name, path.display())
    })?;
    let mut c = DomainConfig::new(&spec.name, &spec.kernel, Arc::from(bytes));
    c.memory_mib = spec.memory_mib;
    c.vcpus = spec.vcpus;
    c.cmdline = spec.cmdline.clone();
    c.on_poweroff = action(spec.on_poweroff);
    c.on_reboot = action(spec.on_reboot);
    c.on_crash = action(spec.on_crash);
    if let Some(w) = spec.weight {
        c.weight = w;
    }
    if let Some(cap) = spec.cap {
        c.cap = cap;
    }
    Ok(c)
}

/// Run one scenario in a fresh simulator.
pub fn run(sc: &Scenario, guests: &Path) -> Outcome {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mem: u64 = sc.domains.iter().map(|d| d.memory_mib + 2).sum::<u64>() + 16;
    let mut hv = match crate::new_hypervisor(mem) {
        Ok(h) => h,
        Err(e) => {
            return Outcome {
                name: sc.name.clone(),
                path: sc.path.clone(),
                trace: vec![],
                failures: vec![format!("cannot start the simulator: {e}")],
                records: BTreeMap::new(),
                instructions: 0,
                hypercalls: 0,
                virtual_ns: 0,
                wall: started.elapsed(),
            }
        }
    };
    for spec in &sc.domains {
        match domain_config(spec, guests) {
            Ok(c) => {
                if let Err(e) = hv.create_domain(c) {
                    failures.push(format!("domain {:?}: {e}", spec.name));
                }
            }
            Err(e) => failures.push(e),
        }
    }
    for step in &sc.steps {
        hv.run_until(step.at_ns);
        let r = match &step.action {
            StepAction::Pause(d) => hv.pause(d),
            StepAction::Unpause(d) => hv.unpause(d),
            StepAction::Shutdown { domain, reason } => hv.shutdown(
                domain,
                if *reason == ShutdownKind::Reboot { ShutdownReason::Reboot } else { ShutdownReason::Poweroff },
            ),
            StepAction::Reboot(d) => hv.shutdown(d, ShutdownReason::Reboot),
            StepAction::Destroy(d) => hv.destroy(d),
            StepAction::SchedCredit { domain, weight, cap } => {
                hv.trace(&format!("sched-credit {domain} weight={weight:?} cap={cap:?} (not implemented yet)"));
                Ok(())
            }
            StepAction::Console(d) => {
                hv.trace(&format!("console {d}"));
                Ok(())
            }
        };
        if let Err(e) = r {
            let msg = format!("{}:{}: step at {} ns: {e}", sc.path.display(), step.line, step.at_ns);
            hv.trace(&format!("step failed: {e}"));
            failures.push(msg);
        }
    }
    hv.run_until(sc.run_for_ns);
    let records = hv.records.clone();
    check(sc, &hv.platform.trace, &records, &mut failures);
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
        let pct = records.get(name).map(|r| r.cpu_ns * 100 / sc.run_for_ns.max(1)).unwrap_or(0) as u32;
        if pct < *lo || pct > *hi {
            failures.push(format!("cpu_percent.{name}: {pct}% not in {lo}..={hi}"));
        }
    }
}
