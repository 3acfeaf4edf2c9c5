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

scenarios!(hello, faults, crash, badcalls, lifecycle, reboot, ptswitch, badiret, fpu, xenstore, xl_shutdown);

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
    for name in ["faults", "lifecycle"] {
        let a = common::run_scenario(name).trace_text();
        let b = common::run_scenario(name).trace_text();
        assert_eq!(a, b, "scenario {name} is not deterministic");
    }
}
