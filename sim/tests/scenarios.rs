//! Every scenario of scenarios/ is one test: it must pass its own expectations, and its trace
//! must match the insta snapshot in snapshots/ (`cargo insta review` to accept a change).

mod common;

fn check(name: &str) {
    let o = common::run_scenario(name);
    assert!(o.passed(), "scenario {name} failed:\n  {}\n--- trace ---\n{}", o.failures.join("\n  "), o.trace_text());
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(common::repo().join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_description(format!("scenarios/{name}.toml"));
    settings.bind(|| insta::assert_snapshot!(name, o.trace_text()));
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { check(stringify!($name)); } )*
        /// The scenarios that have a test above.
        const COVERED: &[&str] = &[$(stringify!($name)),*];
    };
}

scenarios!(
    hello,
    faults,
    crash,
    badcalls,
    lifecycle,
    reboot,
    ptswitch,
    badiret,
    fpu,
    debugregs,
    weights,
    cap,
    sched_credit,
    reweight,
    latency,
    smp,
    credit_smp,
    xenstore,
    xl_shutdown,
    console_input,
    domctl_sched,
    smp_parallel,
    credit_smp_steps,
    cap_smp
);

/// A new scenario file without a test case would silently go untested.
#[test]
fn every_scenario_file_has_a_test() {
    let files = sim::scenario::load_dir_or_file(&common::repo().join("scenarios")).expect("scenarios/");
    for f in files {
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        assert!(COVERED.contains(&stem.as_str()), "scenarios/{stem}.toml has no test: add it to scenarios!(...) in sim/tests/scenarios.rs");
    }
}

/// The same scenario twice gives byte-identical traces (virtual time, no host state).
#[test]
fn traces_are_deterministic() {
    for name in ["faults", "lifecycle", "console_input"] {
        let a = common::run_scenario(name).trace_text();
        let b = common::run_scenario(name).trace_text();
        assert_eq!(a, b, "scenario {name} is not deterministic");
    }
}

/// With several pCPUs the run is still deterministic: the same scenario on 2 pCPUs twice gives
/// identical traces and identical timelines (which vCPU ran on which pCPU when).
#[test]
fn several_pcpus_are_deterministic() {
    let path = common::repo().join("scenarios/lifecycle.toml");
    let mut sc = sim::scenario::load(&path).expect("lifecycle.toml");
    sc.pcpus = 2;
    let guests = common::guests();
    let opts = sim::runner::Options { spans: true };
    let run = || sim::runner::run_with(&sc, sim::runner::domain_configs(&sc, &guests), opts);
    let (a, b) = (run(), run());
    assert!(a.passed(), "lifecycle on 2 pCPUs: {:?}", a.failures);
    assert_eq!(a.trace_text(), b.trace_text());
    assert_eq!(a.spans, b.spans);
    // Both pCPUs were used.
    assert!(a.spans.iter().any(|s| s.pcpu == 1) && a.spans.iter().any(|s| s.pcpu == 0));
}

/// The credit scenarios on 2 pCPUs with domains of several vCPUs (every vCPU of `spin` runs),
/// run twice: the same timelines to the nanosecond and the same shares.
#[test]
fn smp_credit_runs_are_deterministic() {
    let guests = common::guests();
    let opts = sim::runner::Options { spans: true };
    for name in ["credit_smp", "cap_smp", "credit_smp_steps"] {
        let path = common::repo().join(format!("scenarios/{name}.toml"));
        let sc = sim::scenario::load(&path).expect("scenario");
        let run = || sim::runner::run_with(&sc, sim::runner::domain_configs(&sc, &guests), opts);
        let (a, b) = (run(), run());
        assert!(a.passed(), "{name}: {:?}", a.failures);
        assert_eq!(a.spans, b.spans, "{name}: timelines differ");
        let shares = |o: &sim::runner::Outcome| o.shares.iter().map(|s| (s.name.clone(), s.measured.to_bits())).collect::<Vec<_>>();
        assert_eq!(shares(&a), shares(&b), "{name}: shares differ");
        // Some domain ran two vCPUs at once, on the two pCPUs.
        if name != "credit_smp_steps" {
            let parallel = a.spans.iter().any(|x| {
                a.spans
                    .iter()
                    .any(|y| x.domain == y.domain && x.vcpu != y.vcpu && x.pcpu != y.pcpu && x.start_ns < y.end_ns && y.start_ns < x.end_ns)
            });
            assert!(parallel, "{name}: no domain ran two vCPUs at the same time");
        }
    }
}

/// `reweight`: b's weight goes from 256 to 768 at 1.5 s. Two timeslices (60 ms) later b already
/// runs at its new share, 75 %, over the next 300 ms (ten timeslices, so ±10 points is one
/// slice either way); before the change it ran at 50 %.
#[test]
fn a_weight_change_is_effective_within_two_timeslices() {
    let path = common::repo().join("scenarios/reweight.toml");
    let sc = sim::scenario::load(&path).expect("reweight.toml");
    let o = sim::runner::run_with(&sc, sim::runner::domain_configs(&sc, &common::guests()), sim::runner::Options { spans: true });
    assert!(o.passed(), "{:?}", o.failures);
    let share = |t0: u64, t1: u64| {
        let ran: u64 = o.spans.iter().filter(|s| s.domain == "b").map(|s| s.end_ns.min(t1).saturating_sub(s.start_ns.max(t0))).sum();
        ran as f64 * 100.0 / (t1 - t0) as f64
    };
    const MS: u64 = 1_000_000;
    let before = share(1200 * MS, 1500 * MS);
    let after = share(1560 * MS, 1860 * MS);
    assert!((before - 50.0).abs() <= 10.0, "before the change b ran {before:.1} %");
    assert!((after - 75.0).abs() <= 10.0, "from two timeslices after the change b ran {after:.1} %, not about 75");
}
