//! The core's loop split for several real pCPUs running at once (the bootable image with
//! `cpus=M`; `arch/x86_64/smp.rs` drives it).
//!
//! The simulator's [`Hypervisor::run_until`] advances M virtual pCPUs in a fixed order, one at a
//! time. On hardware the M CPUs run at the same time, so the loop is cut where the guest runs:
//! each CPU takes one big hypervisor lock (the caller's), calls [`Hypervisor::smp_enter`]
//! (time keeping, timers, the credit scheduler's decision for *its* pCPU queue, event delivery,
//! the vCPU's context copied out), releases the lock, runs the guest natively, takes the lock
//! again and calls [`Hypervisor::smp_exit`] (the context written back, the exit handled). The
//! hypervisor is serialised; guests run in parallel. Virtual time is one clock shared by the
//! CPUs: the mean of their guest and idle time (the platform's; the hypervisor's own time is left
//! out, as on one CPU), and credit burns each unit's guest time (`smp_charge`).
//!
//! While a vCPU runs without the lock its context lives in the [`SmpEntry`]; the copy in its
//! domain is stale until `smp_exit`. `smp_exit` drops an exit whose vCPU was destroyed
//! meanwhile (the platform waits for every CPU to leave a destroyed vCPU's guest first).

use super::*;
use crate::platform::{CpuState, VcpuKey};

/// A vCPU chosen to run on a pCPU, its context copied out of its domain.
#[derive(Clone, Debug)]
pub struct SmpEntry {
    pub dom: DomId,
    pub vcpu: u32,
    pub key: VcpuKey,
    pub cpu: CpuState,
    /// How long it may run (ns = TSC cycles) before its pCPU must decide again.
    pub budget: u64,
}

/// What a pCPU does next.
#[derive(Clone, Debug)]
pub enum SmpStep {
    Run(SmpEntry),
    /// Nothing to run: wait until this time (or a wake-up), then ask again.
    Idle {
        until: u64,
    },
}

impl<P: Platform> Hypervisor<P> {
    /// Under the big lock, at clock `now` on pCPU `p`: keep time, fire timers, let the credit
    /// scheduler decide for `p`, and prepare its vCPU's entry. `on_cpu` is the pCPU's own
    /// running vCPU (for runstates; one per pCPU).
    pub fn smp_enter(&mut self, p: usize, now: u64, on_cpu: &mut Option<(DomId, u32)>) -> SmpStep {
        core::mem::swap(&mut self.on_cpu, on_cpu);
        let r = self.smp_enter_inner(p, now);
        core::mem::swap(&mut self.on_cpu, on_cpu);
        r
    }

    fn smp_enter_inner(&mut self, p: usize, now: u64) -> SmpStep {
        let p = p.min(self.sched.pcpus.len() - 1);
        let t = now.max(self.now);
        self.now = t;
        self.sched.pcpus[p].now = t;
        self.smp_charge(p, t);
        self.sched_account(p, t);
        self.fire_timers();
        self.store_deadlines();
        let doms = &self.doms;
        let runnable = |u: UnitId| vcpu_runnable(doms, u);
        if self.sched.must_decide(p, runnable) {
            self.sched.schedule(p, runnable);
        }
        let mut limit = self.sched.next_acct;
        if let Some(n) = self.smp_next_timer(p).filter(|&n| n > t) {
            limit = limit.min(n);
        }
        let pc = &self.sched.pcpus[p];
        match pc.curr {
            Some(u) if self.sched.ready_at(u) <= t => {
                let limit = limit.min(pc.slice_end).min(pc.next_tick).max(t + 1);
                match self.smp_prepare(u.0, u.1, limit - t) {
                    Some(e) => {
                        self.smp_runs[p] = Some((u, t, 0));
                        SmpStep::Run(e)
                    }
                    None => {
                        self.sched.pcpus[p].resched = true;
                        SmpStep::Idle { until: t }
                    }
                }
            }
            Some(u) => SmpStep::Idle { until: self.sched.ready_at(u).min(limit) },
            None => SmpStep::Idle { until: limit },
        }
    }

    /// Credit burns the clock's stretch since a unit started (`burn`). On several real CPUs the
    /// clock is their mean guest and idle time: while this CPU's guest runs, another CPU's
    /// hypervisor work slows the clock, and this CPU's own hypervisor work and lock waits
    /// advance it while no guest runs here. So before pCPU `p` burns at `t`, the unit it last
    /// entered has its burn start moved by the clock's stretch since that entry less the guest
    /// time it ran, and credit charges each unit the guest time it had (the shares measure that
    /// too). Without it, units on one CPU were charged less than they ran and took 52-53 % of
    /// `credit_smp`'s 50.
    fn smp_charge(&mut self, p: usize, t: u64) {
        if self.smp_runs.len() < self.sched.pcpus.len() {
            self.smp_runs.resize(self.sched.pcpus.len(), None);
        }
        if let Some((u, t0, ran)) = self.smp_runs[p].take() {
            if self.sched.pcpus[p].curr == Some(u) {
                let by = (t.saturating_sub(t0) as i64).saturating_sub(ran as i64);
                self.sched.shift_start(u, by);
            }
        }
    }

    /// The next timer pCPU `p` must stop its guest for ([`Hypervisor::next_timer`] without the
    /// timers that need no CPU here). A vCPU another pCPU runs is that pCPU's to stop for (its own
    /// `smp_enter` counts it). A singleshot or periodic timer whose vCPU has no VIRQ_TIMER bound
    /// raises nothing when it fires (Xen's `send_timer_event` to an unbound virq), so it can
    /// wait until the next entry's `fire_timers`. Under kvm_pvm every exit costs milliseconds of
    /// emulated ring 0, and eight vCPUs' 10 ms periodic timers (Xen's default, on while a
    /// vCPU is on a CPU) cut every CPU's runs to about a millisecond.
    fn smp_next_timer(&self, p: usize) -> Option<u64> {
        let elsewhere = |u: UnitId| self.sched.pcpus.iter().enumerate().any(|(q, pc)| q != p && pc.curr == Some(u));
        self.doms
            .values()
            .filter(|d| d.state == DomState::Running)
            .flat_map(|d| {
                d.vcpus.iter().filter(move |v| !elsewhere((d.id, v.id))).flat_map(move |v| {
                    let bound = d.evtchn.virq_port(abi::hypercall::virq::TIMER, v.id).is_some();
                    let timers = [v.timer, crate::vcpu::periodic_deadline(v)].into_iter().flatten().filter(move |_| bound);
                    v.poll.and_then(|p| p.deadline).into_iter().chain(timers)
                })
            })
            .chain(self.store.next_deadline())
            .min()
    }

    /// Everything before the guest runs (`prepare_entry`, as one CPU's `run_once` does).
    fn smp_prepare(&mut self, id: DomId, vi: u32, budget: u64) -> Option<SmpEntry> {
        let key = self.prepare_entry(id, vi)?;
        let cpu = self.doms.get(&id)?.vcpus.get(vi as usize)?.cpu;
        Some(SmpEntry { dom: id, vcpu: vi, key, cpu, budget })
    }

    /// Under the big lock again after `e` ran for `ran` ns and left with `exit`, its context
    /// now `cpu`, at clock `now`: write the context back and handle the exit (the second half
    /// of `run_once`).
    pub fn smp_exit(&mut self, p: usize, e: SmpEntry, cpu: CpuState, exit: Exit, ran: u64, now: u64, on_cpu: &mut Option<(DomId, u32)>) {
        core::mem::swap(&mut self.on_cpu, on_cpu);
        self.smp_exit_inner(p, e, cpu, exit, ran, now);
        core::mem::swap(&mut self.on_cpu, on_cpu);
    }

    fn smp_exit_inner(&mut self, p: usize, e: SmpEntry, cpu: CpuState, exit: Exit, ran: u64, now: u64) {
        let p = p.min(self.sched.pcpus.len() - 1);
        self.now = self.now.max(now);
        self.sched.pcpus[p].now = self.now;
        let v = e.vcpu as usize;
        let Some(vc) = self.doms.get_mut(&e.dom).and_then(|d| d.vcpus.get_mut(v)).filter(|vc| vc.key == e.key) else {
            // Destroyed while it ran (the platform waited for it to leave the guest).
            self.sched.pcpus[p].resched = true;
            return;
        };
        vc.cpu = cpu;
        if let Some(Some((u, _, r))) = self.smp_runs.get_mut(p) {
            if *u == (e.dom, e.vcpu) {
                *r += ran;
            }
        }
        self.yielded = false;
        if !self.handle_vcpu_exit(e.dom, v, exit, ran) {
            self.sched.pcpus[p].resched = true;
            if self.yielded {
                self.sched.yield_(p);
            }
        }
    }

    /// Is some vCPU runnable but on no pCPU (an idle pCPU should look at the queues)?
    pub fn smp_work_waiting(&self) -> bool {
        let running: Vec<UnitId> = self.sched.pcpus.iter().filter_map(|p| p.curr).collect();
        self.doms.values().any(|d| {
            d.vcpus
                .iter()
                .any(|v| !running.contains(&(d.id, v.id)) && vcpu_runnable(&self.doms, (d.id, v.id)) && !self.sched.parked((d.id, v.id)))
        })
    }

    /// Which pCPUs the scheduler asked to decide again (credit's tickle), clearing nothing.
    pub fn smp_resched(&self) -> impl Iterator<Item = usize> + '_ {
        self.sched.pcpus.iter().enumerate().filter(|(_, p)| p.resched).map(|(i, _)| i)
    }

    /// May vCPU `vcpu` of `dom` go on running (its domain running and not paused, the vCPU up
    /// and not blocked)? A CPU running one that may not is kicked out of it, as Xen's
    /// `domain_pause`/`vcpu_sleep_sync` take a running vCPU off its pCPU at once (a control
    /// domain's pause, a shutdown or VCPUOP_down handled on another CPU).
    pub fn smp_may_run(&self, dom: DomId, vcpu: u32) -> bool {
        vcpu_runnable(&self.doms, (dom, vcpu))
    }

    /// Would vCPU `vcpu` of `dom` take an event upcall at its next entry (a callback set and an
    /// unmasked pending upcall)? A CPU running it is then kicked, as Xen's `vcpu_kick`.
    pub fn smp_upcall_waiting(&mut self, dom: DomId, vcpu: u32) -> bool {
        let Some(vc) = self.doms.get(&dom).and_then(|d| d.vcpus.get(vcpu as usize)) else { return false };
        let (cb, vi) = (vc.callbacks.event, vc.vcpu_info);
        cb != 0 && evtchn::upcall_deliverable(&MachineMemory::new(self.platform.memory()), vi)
    }
}
