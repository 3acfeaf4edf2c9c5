//! The hostile guest (guests/kernels/src/bin/hostile.rs) survives a few seeds in each mode: its
//! own poweroff and its `invariants held` line, nothing else. Bigger batches: `cargo xtask
//! fuzz-guest`. (No snapshot: its trace is large and says nothing a reviewer would read.)

#[allow(dead_code)] // run_scenario is for scenarios.rs
mod common;

use std::sync::Arc;

use hv::abi::ShutdownReason;
use hv::domain::{Action, DomainConfig};

fn run_hostile(cmdline: &str) {
    let elf = std::fs::read(common::guests().join("hostile")).expect("hostile guest built");
    let mut hv = sim::new_hypervisor(32).expect("hypervisor");
    let mut c = DomainConfig::new("hostile", "hostile", Arc::from(elf));
    c.memory_mib = 16;
    c.cmdline = cmdline.into();
    c.on_reboot = Action::Destroy;
    hv.create_domain(c).expect("domain built");
    let budget = 5_000_000_000;
    while hv.any_running() && hv.now < budget {
        let next = (hv.now + 10_000_000).min(budget);
        hv.run_until(next);
    }
    let r = hv.record("hostile").expect("record").clone();
    let console = r.console.join("\n");
    let held = r.console.iter().any(|l| l.starts_with("hostile: seed=") && l.ends_with("invariants held"));
    assert!(
        held && r.shutdowns.last() == Some(&ShutdownReason::Poweroff),
        "{cmdline}: ended {:?} ({:?}); console tail:\n{}",
        r.shutdowns.last(),
        r.crash_reason,
        &console[console.len().saturating_sub(1500)..]
    );
}

#[test]
fn hostile_calls_mode_survives() {
    for seed in 1..=2 {
        run_hostile(&format!("seed={seed} calls=1500 mode=calls"));
    }
}

#[test]
fn hostile_page_table_mode_survives() {
    run_hostile("seed=3 calls=300 mode=pt");
}

#[test]
fn hostile_mixed_mode_survives() {
    run_hostile("seed=4 calls=1500 mode=mixed");
}
