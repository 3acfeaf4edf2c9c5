//! The scenario driver: a scenario's timed control steps (`pause`, `sched-credit -d NAME -w W -c C`,
//! …) carried out on the virtual clock over `run_for`, and each domain's CPU share beside the
//! credit scheduler's target. One copy for both runs of a scenario: the simulator's runner and the
//! bootable image (which gets the steps in its boot pack, `pack.rs`) call the same code.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::abi::ShutdownReason;
use crate::domain::VcpuState;
use crate::hv::{ControlError, Hypervisor, RecordState};
use crate::platform::Platform;

/// A control command of a scenario step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepAction {
    Pause(String),
    Unpause(String),
    Shutdown {
        domain: String,
        reason: ShutdownReason,
    },
    Destroy(String),
    /// `sched-credit -d DOMAIN [-w WEIGHT] [-c CAP]`; neither given: trace the values in force.
    SchedCredit {
        domain: String,
        weight: Option<u16>,
        cap: Option<u16>,
    },
    /// Trace a `console DOMAIN` marker.
    Console(String),
    /// `input DOMAIN TEXT`: bytes typed into the domain's console ring (xenconsoled's part).
    Input {
        domain: String,
        bytes: Vec<u8>,
    },
}

/// A step: `action` at virtual time `at_ns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at_ns: u64,
    pub action: StepAction,
}

/// One domain's CPU share over the run, in % of one pCPU (xentop's CPU(%)).
#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    pub name: String,
    pub measured: f64,
    /// What the credit scheduler should give it if it and the other domains still running at
    /// the end were CPU-bound all along (weights, caps and vCPUs as the steps set them); None
    /// for a domain that did not run to the end.
    pub target: Option<f64>,
}

/// From this virtual time on, each domain's (weight, cap).
pub type ParamsFrom = (u64, BTreeMap<String, (u16, u16)>);

/// The credit scheduler's share targets (% of one pCPU) for CPU-bound domains
/// `(weight, cap, running vCPUs)` on `pcpus` pCPUs: the pCPUs' time is shared in proportion to
/// weight × vCPUs (Xen's weight is per active vCPU, credit.c: csched_acct), no domain getting
/// more than its cap (0 = none) or 100 % per vCPU, what one cannot use going to the others.
pub fn target_shares(pcpus: u32, doms: &[(u16, u16, u32)]) -> Vec<f64> {
    let limit: Vec<f64> = doms
        .iter()
        .map(|&(_, cap, v)| {
            let full = 100.0 * v as f64;
            if cap == 0 {
                full
            } else {
                full.min(cap as f64)
            }
        })
        .collect();
    let mut share = vec![0.0; doms.len()];
    let mut fixed = vec![false; doms.len()];
    let mut left = 100.0 * pcpus as f64;
    loop {
        let w: f64 = doms.iter().zip(&fixed).filter(|(_, f)| !**f).map(|(d, _)| d.0 as f64 * d.2 as f64).sum();
        if w <= 0.0 || left <= 1e-9 {
            break;
        }
        let mut capped = false;
        for i in 0..doms.len() {
            if !fixed[i] && left * doms[i].0 as f64 * doms[i].2 as f64 / w >= limit[i] {
                share[i] = limit[i];
                fixed[i] = true;
                left -= limit[i];
                capped = true;
            }
        }
        if !capped {
            for i in 0..doms.len() {
                if !fixed[i] {
                    share[i] = left * doms[i].0 as f64 * doms[i].2 as f64 / w;
                }
            }
            break;
        }
    }
    share
}

impl<P: Platform> Hypervisor<P> {
    /// Carry out one step's command now (with its trace lines).
    pub fn step(&mut self, action: &StepAction) -> Result<(), ControlError> {
        match action {
            StepAction::Pause(d) => self.pause(d),
            StepAction::Unpause(d) => self.unpause(d),
            StepAction::Shutdown { domain, reason } => self.shutdown(domain, *reason),
            StepAction::Destroy(d) => self.destroy(d),
            StepAction::SchedCredit { domain, weight: None, cap: None } => self.sched_credit_get(domain).map(|(w, c)| {
                let id = self.domid(domain).unwrap_or(0);
                self.trace(&alloc::format!("d{id} sched-credit weight={w} cap={c}"));
            }),
            StepAction::SchedCredit { domain, weight, cap } => self.sched_credit(domain, *weight, *cap).map(|_| ()),
            StepAction::Console(d) => {
                self.trace(&alloc::format!("console {d}"));
                Ok(())
            }
            // The console ring's `in` holds 1024 bytes: what does not fit is a failed step (a
            // scenario types no faster than its guest reads), never silently dropped.
            StepAction::Input { domain, bytes } => self.console_input(domain, bytes).and_then(|n| {
                if n == bytes.len() {
                    Ok(())
                } else {
                    Err(ControlError::Invalid(alloc::format!("console ring full: {n} of {} bytes taken", bytes.len())))
                }
            }),
        }
    }

    /// Each domain's (weight, cap) now.
    pub fn credit_params(&self) -> BTreeMap<String, (u16, u16)> {
        self.doms.values().map(|d| (d.config.name.clone(), (d.config.weight, d.config.cap))).collect()
    }

    /// Run a scenario from now to `run_for`: each step (in order) at its time, then to the end.
    /// A failed step is traced (`step failed: ...`) and reported to `failed` with its index.
    /// Returns the (weight, cap) timeline for [`Hypervisor::shares`].
    pub fn drive(&mut self, steps: &[Step], run_for: u64, failed: impl FnMut(usize, &ControlError)) -> Vec<ParamsFrom> {
        self.drive_with(steps, run_for, |h, t| h.run_until(t), failed)
    }

    /// [`Hypervisor::drive`] with the machine advanced to each time by `run` (the image's loop
    /// on several CPUs runs them all to that time, then the steps are carried out on one).
    pub fn drive_with(
        &mut self,
        steps: &[Step],
        run_for: u64,
        mut run: impl FnMut(&mut Self, u64),
        mut failed: impl FnMut(usize, &ControlError),
    ) -> Vec<ParamsFrom> {
        let mut params: Vec<ParamsFrom> = vec![(0, self.credit_params())];
        for (i, step) in steps.iter().enumerate() {
            run(self, step.at_ns);
            if let Err(e) = self.step(&step.action) {
                self.trace(&alloc::format!("step failed: {e}"));
                failed(i, &e);
            }
            params.push((self.now.min(run_for), self.credit_params()));
        }
        run(self, run_for);
        // What a control domain changed through domctl, at the time it did (the steps were
        // sampled above): each change holds from its time until the next sample or change.
        let mut changes: Vec<(u64, String, u16, u16)> = self
            .doms
            .values()
            .flat_map(|d| d.credit_changes.iter().map(move |&(t, w, c)| (t, d.config.name.clone(), w, c)))
            .filter(|c| c.0 <= run_for)
            .collect();
        changes.sort_by_key(|c| c.0);
        for (t, name, w, c) in changes {
            let i = params.partition_point(|p| p.0 <= t).max(1);
            let mut m = params[i - 1].1.clone();
            m.insert(name, (w, c));
            params.insert(i, (t, m));
        }
        params
    }

    /// Measured shares over `run_for` and targets (see [`Share`]) of the domains `names`, in
    /// that order: the target is the time-weighted mean of [`target_shares`] over the stretches
    /// between steps (`params`, from [`Hypervisor::drive`]).
    pub fn shares(&self, names: &[String], run_for: u64, params: &[ParamsFrom]) -> Vec<Share> {
        let run = run_for.max(1) as f64;
        let pcpus = self.sched.pcpus.len() as u32;
        // Domains still running at the end, with the vCPUs they brought up.
        let alive: BTreeMap<String, u32> = self
            .doms
            .values()
            .filter(|d| self.records.get(&d.config.name).is_some_and(|r| r.state == RecordState::Running))
            .map(|d| (d.config.name.clone(), d.vcpus.iter().filter(|v| v.state != VcpuState::Down).count() as u32))
            .collect();
        let mut target: BTreeMap<String, f64> = BTreeMap::new();
        for (i, (from, p)) in params.iter().enumerate() {
            let to = params.get(i + 1).map_or(run_for, |n| n.0);
            let len = to.saturating_sub(*from) as f64;
            let names: Vec<&String> = p.keys().filter(|n| alive.contains_key(*n)).collect();
            let input: Vec<(u16, u16, u32)> = names.iter().map(|n| (p[*n].0, p[*n].1, alive[*n])).collect();
            for (n, t) in names.iter().zip(target_shares(pcpus, &input)) {
                *target.entry((*n).clone()).or_default() += t * len / run;
            }
        }
        names
            .iter()
            .map(|n| Share {
                name: n.clone(),
                measured: self.records.get(n).map_or(0.0, |r| r.cpu_ns as f64 * 100.0 / run),
                target: target.get(n).copied(),
            })
            .collect()
    }
}
