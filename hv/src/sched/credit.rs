//! Xen's credit scheduler (credit1) on the virtual clock.
//!
//! Behaviour follows Xen 4.17's `xen/common/sched/credit.c` (cited per function below):
//! - every vCPU ("unit") has a credit balance and a priority: BOOST (woken from block), UNDER
//!   (credit ≥ 0), OVER (credit < 0); idle is below them all;
//! - a running unit burns [`CREDITS_PER_MSEC`] credits per ms (`burn_credits`);
//! - every [`TICK_NS`] (10 ms) each busy pCPU accounts its current unit: a BOOST ends, credits
//!   burn, an idle-accounted unit becomes active again (`csched_tick`, `csched_unit_acct`);
//! - every [`TSLICE_NS`] (30 ms) the accounting master shares `300 × pCPUs` credits between the
//!   active domains by weight, caps them (`cap` % of one pCPU), parks the units of a capped
//!   domain that overspent and unparks them when their credit is positive again, lets units that
//!   have saved more than one timeslice of credit stop earning (`csched_acct`);
//! - a decision picks the head of the pCPU's queue — highest priority first, FIFO within a
//!   priority — and gives it one 30 ms timeslice; when that head is OVER (or there is none) it
//!   steals a better unit from another pCPU's queue (`csched_schedule`, `csched_load_balance`,
//!   `csched_runq_steal`): work-conserving except for parked units;
//! - a waking unit that is UNDER (and not parked) is BOOSTed and preempts a lower-priority
//!   current unit at once (`csched_unit_wake`, `__runq_tickle`); a yielding unit goes behind the
//!   others (`__runq_insert`).
//!
//! Differences from Xen, all deliberate, each for accuracy of the shares over a few seconds
//! (30 ms slices would make one slice one percentage point of a 3 s run):
//! - a new domain's vCPU 0 starts on its domain's active list, so it earns credit from the
//!   first accounting (Xen puts it there at its first tick; the first 100 ms then go
//!   round-robin). Its other vCPUs, offline until the guest brings them up (VCPUOP_up), join
//!   the list at their first tick, as in Xen: counted from the start, a vCPU that never runs
//!   would take half of a 2-vCPU domain's credit and cap (a cap of 150 % then parked the one
//!   running vCPU at 225 credits);
//! - at a tick, a unit whose credit has gone negative becomes OVER at once (Xen waits for the
//!   next accounting) and yields the pCPU to a waiting UNDER or BOOST unit;
//! - at a tick, a unit of a capped domain that has overspent is parked (Xen parks at the next
//!   accounting, up to 30 ms later).
//!
//! Simplifications: queues are implicit (each unit has a pCPU and a FIFO
//! sequence number; the queue of pCPU p is its runnable, not running units, ordered by
//! (priority, sequence)), so the 30 ms re-sort of `csched_runq_sort` is continuous; the
//! running-unit migration check of `csched_unit_acct` is left to the stealing of idle pCPUs;
//! there is no context-switch rate limit (Xen's default `sched_ratelimit_us` is 1 ms, which
//! only matters for a wake within 1 ms of a switch); weights and caps are read at accounting
//! time, as `csched_acct` reads them.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::DomId;

/// Default weight of a domain (credit.c: `CSCHED_DEFAULT_WEIGHT`).
pub const DEFAULT_WEIGHT: u16 = 256;
/// The timeslice and accounting period (credit.c: `CSCHED_DEFAULT_TSLICE_MS` = 30).
pub const TSLICE_NS: u64 = 30_000_000;
/// Ticks per timeslice (credit.c: `CSCHED_TICKS_PER_TSLICE` = 3): a 10 ms tick.
pub const TICK_NS: u64 = TSLICE_NS / 3;
/// credit.c: `CSCHED_CREDITS_PER_MSEC`.
pub const CREDITS_PER_MSEC: i64 = 10;
/// credit.c: `credits_per_tslice = CSCHED_CREDITS_PER_MSEC * timeslice_ms`.
pub const CREDITS_PER_TSLICE: i64 = CREDITS_PER_MSEC * (TSLICE_NS / 1_000_000) as i64;
const NS_PER_MS: u64 = 1_000_000;

/// A unit's priority (credit.c: `CSCHED_PRI_*`); greater runs first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Pri {
    Idle = -64,
    Over = -2,
    Under = -1,
    Boost = 0,
}

impl Pri {
    pub fn name(self) -> &'static str {
        match self {
            Pri::Idle => "idle",
            Pri::Over => "over",
            Pri::Under => "under",
            Pri::Boost => "boost",
        }
    }
}

/// A vCPU: (domain, vcpu id).
pub type UnitId = (DomId, u32);

/// One stretch of time a unit ran on a pCPU (for timelines).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RunSpan {
    pub pcpu: u32,
    pub unit: UnitId,
    pub start: u64,
    pub end: u64,
}

#[derive(Clone, Debug)]
struct Unit {
    credit: i64,
    /// Sub-credit remainder of burnt time, in credit·ns units (credit.c: `residual`).
    residual: u64,
    pri: Pri,
    /// The pCPU whose queue holds this unit (credit.c: `sched_unit_master`).
    processor: usize,
    /// FIFO position within its priority: smaller is earlier.
    seq: u64,
    /// On its domain's active list: earning credits.
    active: bool,
    /// Capped out: paused until its credit is positive (credit.c: `CSCHED_FLAG_UNIT_PARKED`).
    parked: bool,
    /// Yielded: goes behind the others at the next decision.
    yielded: bool,
    /// Credits burnt up to here (credit.c: `start_time`).
    start_time: u64,
    /// When it last stopped running: another pCPU whose clock is behind must not run it before.
    ready_at: u64,
}

#[derive(Clone, Debug)]
struct SDom {
    weight: u16,
    cap: u16,
}

/// One physical CPU's scheduling state.
#[derive(Clone, Debug)]
pub struct Pcpu {
    /// This pCPU's virtual clock (ns).
    pub now: u64,
    /// The unit it runs, if not idle.
    pub curr: Option<UnitId>,
    /// When the current unit's timeslice ends.
    pub slice_end: u64,
    /// Next accounting tick (only while busy, as Xen stops the tick when idle).
    pub next_tick: u64,
    /// A decision is due before running on (a wake-up with higher priority, a park).
    pub resched: bool,
    /// Where the current run (for the timeline) started.
    span_start: u64,
}

/// The credit scheduler over a fixed set of pCPUs.
#[derive(Clone, Debug)]
pub struct Credit {
    pub pcpus: Vec<Pcpu>,
    units: BTreeMap<UnitId, Unit>,
    doms: BTreeMap<DomId, SDom>,
    /// Active domains, in Xen's list order (credit.c: `prv->active_sdom`).
    active_doms: Vec<DomId>,
    /// credit.c: `prv->credit_balance`.
    credit_balance: i64,
    /// Next accounting (credit.c: the master ticker).
    pub next_acct: u64,
    seq: u64,
    /// Run spans, when recording (see [`Credit::record`]).
    pub spans: Option<Vec<RunSpan>>,
    /// Decisions taken (for reports and benches).
    pub decisions: u64,
}

impl Credit {
    /// A scheduler over `npcpus` pCPUs (at least one), all idle at time 0.
    pub fn new(npcpus: usize) -> Self {
        let n = npcpus.max(1);
        Self {
            pcpus: (0..n).map(|_| Pcpu { now: 0, curr: None, slice_end: 0, next_tick: TICK_NS, resched: false, span_start: 0 }).collect(),
            units: BTreeMap::new(),
            doms: BTreeMap::new(),
            active_doms: Vec::new(),
            credit_balance: 0,
            next_acct: TSLICE_NS,
            seq: 0,
            spans: None,
            decisions: 0,
        }
    }

    /// Start recording which unit ran where and when ([`Credit::spans`]).
    pub fn record(&mut self) {
        self.spans.get_or_insert_with(Vec::new);
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A new domain with `vcpus` units (credit.c: `csched_alloc_domdata`, `csched_unit_insert`):
    /// units start with no credit, UNDER, spread over the pCPUs in order.
    pub fn add_domain(&mut self, dom: DomId, vcpus: u32, weight: u16, cap: u16) {
        self.remove_domain(dom);
        self.doms.insert(dom, SDom { weight: weight.max(1), cap });
        if vcpus > 0 {
            self.active_doms.insert(0, dom);
        }
        let n = self.pcpus.len();
        for v in 0..vcpus {
            let seq = self.next_seq();
            // Spread a domain's vCPUs: vCPU v starts on the pCPU after the least loaded one.
            let processor = (self.least_loaded() + v as usize) % n;
            self.units.insert(
                (dom, v),
                Unit {
                    credit: 0,
                    residual: 0,
                    pri: Pri::Under,
                    processor,
                    seq,
                    active: v == 0,
                    parked: false,
                    yielded: false,
                    start_time: 0,
                    ready_at: 0,
                },
            );
        }
    }

    fn least_loaded(&self) -> usize {
        let mut load = alloc::vec![0usize; self.pcpus.len()];
        for u in self.units.values() {
            load[u.processor] += 1;
        }
        (0..load.len()).min_by_key(|&i| (load[i], i)).unwrap_or(0)
    }

    /// A domain is gone (credit.c: `csched_unit_remove`, `csched_free_domdata`).
    pub fn remove_domain(&mut self, dom: DomId) {
        for (i, p) in self.pcpus.iter_mut().enumerate() {
            if p.curr.is_some_and(|(d, _)| d == dom) {
                let (span_start, now) = (p.span_start, p.now);
                if let (Some(s), Some(u)) = (self.spans.as_mut(), p.curr) {
                    if now > span_start {
                        s.push(RunSpan { pcpu: i as u32, unit: u, start: span_start, end: now });
                    }
                }
                p.curr = None;
                p.resched = true;
            }
        }
        self.units.retain(|&(d, _), _| d != dom);
        self.doms.remove(&dom);
        self.active_doms.retain(|&d| d != dom);
    }

    /// Current weight and cap of a domain.
    pub fn params(&self, dom: DomId) -> Option<(u16, u16)> {
        self.doms.get(&dom).map(|s| (s.weight, s.cap))
    }

    /// Set a domain's weight and cap (credit.c: `csched_dom_cntl`, putinfo): they take effect at
    /// the next accounting, at most one timeslice away. Weight 0 is ignored, as Xen ignores it.
    pub fn set_params(&mut self, dom: DomId, weight: u16, cap: u16) {
        if let Some(s) = self.doms.get_mut(&dom) {
            if weight != 0 {
                s.weight = weight;
            }
            s.cap = cap;
        }
    }

    /// A unit's priority and credit (for traces and tests).
    pub fn unit_state(&self, u: UnitId) -> Option<(Pri, i64, bool)> {
        self.units.get(&u).map(|x| (x.pri, x.credit, x.parked))
    }

    /// Is this unit parked by its cap?
    pub fn parked(&self, u: UnitId) -> bool {
        self.units.get(&u).is_some_and(|x| x.parked)
    }

    /// Which pCPU runs `u`, if one does.
    fn running_on(&self, u: UnitId) -> Option<usize> {
        self.pcpus.iter().position(|p| p.curr == Some(u))
    }

    /// The pCPU to advance next: the one whose clock is furthest behind, the lowest index on a
    /// tie. This fixed order keeps runs with several pCPUs deterministic.
    pub fn next_pcpu(&self) -> usize {
        (0..self.pcpus.len()).min_by_key(|&i| (self.pcpus[i].now, i)).unwrap_or(0)
    }

    /// How far an idle pCPU `p` may let time pass: up to the clock of the busy pCPU furthest
    /// behind (whose next decision may queue work for it to steal), never past `limit`; without
    /// a busy pCPU, `limit`. (Xen tickles an idle pCPU at once; this is the same on a clock
    /// shared out in stretches.) Always more than its clock.
    pub fn idle_until(&self, p: usize, limit: u64) -> u64 {
        let now = self.pcpus[p].now;
        let busy = self.pcpus.iter().enumerate().filter(|&(i, q)| i != p && q.curr.is_some()).map(|(_, q)| q.now).min();
        busy.map_or(limit, |b| limit.min(b)).max(now + 1)
    }

    /// Move where the running unit's next burn starts by `by` ns: the image's several CPUs
    /// share one clock (the mean of their guest and idle time), so a unit's stretch of that
    /// clock is not the guest time it ran; the caller corrects it so credit burns what ran.
    pub fn shift_start(&mut self, u: UnitId, by: i64) {
        if let Some(x) = self.units.get_mut(&u) {
            x.start_time = x.start_time.saturating_add_signed(by);
        }
    }

    /// Burn the running unit's credits up to `now` (credit.c: `burn_credits`).
    fn burn(&mut self, u: UnitId, now: u64) {
        let Some(x) = self.units.get_mut(&u) else { return };
        if now <= x.start_time {
            return;
        }
        let val = (now - x.start_time) * CREDITS_PER_MSEC as u64 + x.residual;
        let credits = val / NS_PER_MS;
        x.residual = val % NS_PER_MS;
        x.credit -= credits as i64;
        x.start_time += credits * NS_PER_MS / CREDITS_PER_MSEC as u64;
    }

    /// Put a unit on its domain's active list (credit.c: `__csched_unit_acct_start`).
    fn acct_start(&mut self, u: UnitId) {
        let Some(x) = self.units.get_mut(&u) else { return };
        if x.active {
            return;
        }
        x.active = true;
        if !self.active_doms.contains(&u.0) {
            self.active_doms.insert(0, u.0);
        }
    }

    /// Take a unit off its domain's active list (credit.c: `__csched_unit_acct_stop_locked`).
    fn acct_stop(&mut self, u: UnitId) {
        if let Some(x) = self.units.get_mut(&u) {
            x.active = false;
        }
        if !self.units.iter().any(|(&(d, _), x)| d == u.0 && x.active) {
            self.active_doms.retain(|&d| d != u.0);
        }
    }

    /// The per-pCPU tick (credit.c: `csched_tick`, `csched_unit_acct`): end a BOOST, burn
    /// credits, and put an idle-accounted unit back on the active list.
    pub fn tick(&mut self, p: usize, now: u64) {
        let Some(u) = self.pcpus[p].curr else { return };
        if let Some(x) = self.units.get_mut(&u) {
            if x.pri == Pri::Boost {
                x.pri = Pri::Under;
            }
        }
        self.burn(u, now);
        self.acct_start(u);
        // Deviations (see the module doc): a unit of a capped domain that has overspent is
        // parked at the tick, not only at the next accounting; a unit that has spent its credit
        // is OVER from now, and gives the pCPU up at once to a waiting UNDER or BOOST unit.
        let cap = self.doms.get(&u.0).map_or(0, |s| s.cap as i64);
        if cap != 0 {
            let active = self.units.range((u.0, 0)..=(u.0, u32::MAX)).filter(|(_, x)| x.active).count().max(1) as i64;
            let credit_cap = ((cap * CREDITS_PER_TSLICE + 99) / 100 + (active - 1)) / active;
            if let Some(x) = self.units.get_mut(&u).filter(|x| x.credit < -credit_cap && !x.parked) {
                x.parked = true;
                x.pri = Pri::Over;
                self.pcpus[p].resched = true;
                return;
            }
        }
        let over = self.units.get(&u).is_some_and(|x| x.credit < 0);
        if over {
            if let Some(x) = self.units.get_mut(&u) {
                x.pri = Pri::Over;
            }
            self.over_tick_preempt(p);
        }
    }

    fn over_tick_preempt(&mut self, p: usize) {
        let waiting = self.units.iter().any(|(&u, x)| x.pri > Pri::Over && !x.parked && x.processor == p && self.running_on(u).is_none());
        if waiting {
            self.pcpus[p].resched = true;
        }
    }

    /// The accounting master (credit.c: `csched_acct`): share out one timeslice of credit per
    /// pCPU by weight among the active domains, apply caps, park and unpark.
    pub fn acct(&mut self) {
        let npcpus = self.pcpus.len() as i64;
        let active_count =
            |units: &BTreeMap<UnitId, Unit>, d: DomId| units.range((d, 0)..=(d, u32::MAX)).filter(|(_, x)| x.active).count() as i64;
        let weight_total: i64 =
            self.active_doms.iter().map(|&d| self.doms.get(&d).map_or(0, |s| s.weight as i64) * active_count(&self.units, d)).sum();
        let mut credit_total = CREDITS_PER_TSLICE * npcpus;
        // Converge the balance towards 0 when it drops negative.
        if self.credit_balance < 0 {
            credit_total -= self.credit_balance;
        }
        if weight_total == 0 {
            self.credit_balance = 0;
            return;
        }
        let mut weight_left = weight_total;
        let mut credit_balance = 0i64;
        let mut credit_xtra = false;
        let order = self.active_doms.clone();
        for d in order {
            let Some(&SDom { weight, cap }) = self.doms.get(&d) else { continue };
            let (weight, cap) = (weight as i64, cap as i64);
            let active = active_count(&self.units, d);
            if active == 0 {
                continue;
            }
            weight_left -= weight * active;
            // At most one timeslice of credit per active unit, more only to pay back a
            // negative system-wide balance.
            let mut credit_peak = active * CREDITS_PER_TSLICE;
            if self.credit_balance < 0 {
                credit_peak += (-self.credit_balance * weight * active + (weight_total - 1)) / weight_total;
            }
            let mut credit_cap = 0;
            if cap != 0 {
                credit_cap = (cap * CREDITS_PER_TSLICE + 99) / 100;
                if credit_cap < credit_peak {
                    credit_peak = credit_cap;
                }
                credit_cap = (credit_cap + (active - 1)) / active;
            }
            let mut credit_fair = (credit_total * weight * active + (weight_total - 1)) / weight_total;
            if credit_fair < credit_peak {
                credit_xtra = true;
            } else {
                if weight_left != 0 {
                    // Give the other domains a chance at the unused credits.
                    credit_total += ((credit_fair - credit_peak) * weight_total + (weight_left - 1)) / weight_left;
                }
                if credit_xtra {
                    // Keep domains with extra credits at the head of the list.
                    self.active_doms.retain(|&x| x != d);
                    self.active_doms.insert(0, d);
                }
                credit_fair = credit_peak;
            }
            // Fair share per unit.
            let credit_fair = (credit_fair + (active - 1)) / active;
            let units: Vec<UnitId> = self.units.range((d, 0)..=(d, u32::MAX)).filter(|(_, x)| x.active).map(|(&k, _)| k).collect();
            for u in units {
                let running = self.running_on(u);
                let Some(x) = self.units.get_mut(&u) else { continue };
                x.credit += credit_fair;
                let mut stop = false;
                let mut unpark = false;
                if x.credit < 0 {
                    x.pri = Pri::Over;
                    // Park running units of capped-out domains.
                    if cap != 0 && x.credit < -credit_cap && !x.parked {
                        x.parked = true;
                        if let Some(p) = running {
                            self.pcpus[p].resched = true;
                        }
                    }
                    // Lower bound on credits.
                    if x.credit < -CREDITS_PER_TSLICE {
                        x.credit = -CREDITS_PER_TSLICE;
                    }
                } else {
                    x.pri = Pri::Under;
                    if x.parked {
                        // Unparked: woken without a boost (the flag is cleared after the wake).
                        x.parked = false;
                        unpark = true;
                    }
                    // Upper bound: the unit stops earning, keeping half of its credit.
                    if x.credit > CREDITS_PER_TSLICE {
                        stop = true;
                        x.credit /= 2;
                    }
                }
                credit_balance += x.credit;
                if stop {
                    self.acct_stop(u);
                }
                if unpark && running.is_none() {
                    let s = self.next_seq();
                    if let Some(x) = self.units.get_mut(&u) {
                        x.seq = s;
                    }
                    self.tickle(u);
                }
            }
        }
        self.credit_balance = credit_balance;
    }

    /// A unit woke up (credit.c: `csched_unit_wake`): BOOST it if it is UNDER and not parked,
    /// queue it at the tail of its priority, and preempt its pCPU if it beats what runs there.
    pub fn wake(&mut self, u: UnitId) {
        if self.running_on(u).is_some() {
            return;
        }
        let s = self.next_seq();
        let Some(x) = self.units.get_mut(&u) else { return };
        if x.pri == Pri::Under && !x.parked {
            x.pri = Pri::Boost;
        }
        x.seq = s;
        self.tickle(u);
    }

    /// credit.c: `__runq_tickle`: its pCPU reschedules when idle, or when no pCPU is idle and
    /// the new unit beats the current one; otherwise an idle pCPU steals it at its next decision.
    fn tickle(&mut self, u: UnitId) {
        let Some(x) = self.units.get(&u) else { return };
        let (p, pri) = (x.processor, x.pri);
        let cur = self.pcpus[p].curr.and_then(|c| self.units.get(&c)).map_or(Pri::Idle, |c| c.pri);
        let idlers = self.pcpus.iter().any(|q| q.curr.is_none());
        if cur == Pri::Idle || (!idlers && pri > cur) {
            self.pcpus[p].resched = true;
        }
    }

    /// The current unit of `p` yields (credit.c: `csched_unit_yield`).
    pub fn yield_(&mut self, p: usize) {
        if let Some(x) = self.pcpus[p].curr.and_then(|u| self.units.get_mut(&u)) {
            x.yielded = true;
        }
    }

    /// Is a decision due on `p` before it runs on?
    pub fn must_decide(&self, p: usize, runnable: impl Fn(UnitId) -> bool) -> bool {
        let pc = &self.pcpus[p];
        match pc.curr {
            None => true,
            Some(u) => pc.resched || pc.now >= pc.slice_end || !runnable(u) || self.parked(u),
        }
    }

    fn eligible(&self, u: UnitId, x: &Unit, runnable: &impl Fn(UnitId) -> bool) -> bool {
        !x.parked && self.running_on(u).is_none() && runnable(u)
    }

    /// The head of pCPU `q`'s queue: (priority, then FIFO), skipping `skip`. One pass over the
    /// units; the runnable check (the caller's) only for units that would beat the best so far.
    fn queue_head(&self, q: usize, skip: Option<UnitId>, runnable: &impl Fn(UnitId) -> bool) -> Option<(UnitId, Pri)> {
        let running: Vec<UnitId> = self.pcpus.iter().filter_map(|p| p.curr).collect();
        let mut best: Option<(UnitId, Pri, u64)> = None;
        for (&u, x) in &self.units {
            if x.processor != q || x.parked || Some(u) == skip {
                continue;
            }
            if best.is_some_and(|(_, pri, seq)| (core::cmp::Reverse(x.pri), x.seq) >= (core::cmp::Reverse(pri), seq)) {
                continue;
            }
            if running.contains(&u) || !runnable(u) {
                continue;
            }
            best = Some((u, x.pri, x.seq));
        }
        best.map(|(u, pri, _)| (u, pri))
    }

    /// Decide what pCPU `p` runs next, at its clock (credit.c: `csched_schedule`). Returns the
    /// unit (None: idle); its timeslice ends at `pcpus[p].slice_end`.
    pub fn schedule(&mut self, p: usize, runnable: impl Fn(UnitId) -> bool) -> Option<UnitId> {
        self.decisions += 1;
        let now = self.pcpus[p].now;
        let prev = self.pcpus[p].curr.take();
        let mut yielder = None;
        if let Some(u) = prev {
            self.burn(u, now);
            let s = self.next_seq();
            if let Some(x) = self.units.get_mut(&u) {
                // Back to the tail of its priority (credit.c: `__runq_insert`).
                x.seq = s;
                x.ready_at = now;
                if core::mem::take(&mut x.yielded) {
                    yielder = Some(u);
                }
            }
        }
        self.pcpus[p].resched = false;
        // The local head; a yielder only when nothing else is there.
        let mut next = self.queue_head(p, yielder, &runnable);
        if next.is_none() {
            if let Some(y) = yielder.filter(|&y| self.units.get(&y).is_some_and(|x| self.eligible(y, x, &runnable))) {
                next = self.units.get(&y).map(|x| (y, x.pri));
            }
        }
        // SMP load balance (credit.c: `csched_load_balance`): an OVER head or an idle pCPU looks
        // at the other pCPUs' queues, in order from the next one, for strictly better work.
        // A peer that is idle is skipped: it is about to pick its own queue up.
        let floor = next.map_or(Pri::Idle, |(_, pri)| pri);
        if floor <= Pri::Over {
            let n = self.pcpus.len();
            for k in 1..n {
                let q = (p + k) % n;
                if self.pcpus[q].curr.is_none() {
                    continue;
                }
                if let Some((u, pri)) = self.queue_head(q, None, &runnable).filter(|&(_, pri)| pri > floor) {
                    if let Some(x) = self.units.get_mut(&u) {
                        x.processor = p;
                    }
                    next = Some((u, pri));
                    break;
                }
            }
        }
        let next = next.map(|(u, _)| u);
        if prev != next {
            self.close_span(p, prev, now);
        }
        let pc = &mut self.pcpus[p];
        if let Some(u) = next {
            if prev.is_none() {
                // Coming out of idle restarts the tick.
                pc.next_tick = now + TICK_NS;
            }
            if prev != next {
                pc.span_start = now;
            }
            pc.curr = Some(u);
            pc.slice_end = now + TSLICE_NS;
            if let Some(x) = self.units.get_mut(&u) {
                x.processor = p;
                x.start_time = now;
            }
        }
        next
    }

    fn close_span(&mut self, p: usize, prev: Option<UnitId>, now: u64) {
        if let (Some(s), Some(u)) = (self.spans.as_mut(), prev) {
            let start = self.pcpus[p].span_start;
            if now > start {
                s.push(RunSpan { pcpu: p as u32, unit: u, start, end: now });
            }
        }
    }

    /// When a unit may start on another pCPU (the clock at which it last stopped).
    pub fn ready_at(&self, u: UnitId) -> u64 {
        self.units.get(&u).map_or(0, |x| x.ready_at)
    }

    /// Close every open run span at the pCPUs' clocks (end of a run, for timelines).
    pub fn flush_spans(&mut self) {
        for p in 0..self.pcpus.len() {
            let (curr, now) = (self.pcpus[p].curr, self.pcpus[p].now);
            self.close_span(p, curr, now);
            self.pcpus[p].span_start = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;

    /// CPU-bound units on `npcpus` pCPUs for `ns`: the loop of `hv.rs` without guests.
    pub(super) fn simulate(s: &mut Credit, ns: u64, blocked: &BTreeSet<UnitId>) -> BTreeMap<UnitId, u64> {
        let mut ran: BTreeMap<UnitId, u64> = BTreeMap::new();
        let runnable = |u: UnitId| !blocked.contains(&u);
        loop {
            let p = s.next_pcpu();
            let now = s.pcpus[p].now;
            if now >= ns {
                break;
            }
            if now >= s.next_acct {
                s.acct();
                s.next_acct += TSLICE_NS;
            }
            if s.pcpus[p].curr.is_some() && now >= s.pcpus[p].next_tick {
                s.tick(p, now);
                s.pcpus[p].next_tick += TICK_NS;
            }
            if s.must_decide(p, runnable) {
                s.schedule(p, runnable);
            }
            let pc = &s.pcpus[p];
            let limit = pc.slice_end.min(pc.next_tick).min(s.next_acct).min(ns).min(now + 1_000_000);
            match pc.curr {
                Some(u) => {
                    *ran.entry(u).or_default() += limit - now;
                    s.pcpus[p].now = limit;
                }
                None => s.pcpus[p].now = s.idle_until(p, (now + 1_000_000).min(ns)),
            }
        }
        ran
    }

    pub(super) fn share(ran: &BTreeMap<UnitId, u64>, d: DomId, ns: u64) -> f64 {
        ran.iter().filter(|(u, _)| u.0 == d).map(|(_, &t)| t).sum::<u64>() as f64 * 100.0 / ns as f64
    }

    #[test]
    fn weights_share_one_pcpu() {
        let mut s = Credit::new(1);
        s.add_domain(1, 1, 256, 0);
        s.add_domain(2, 1, 512, 0);
        s.add_domain(3, 1, 1024, 0);
        let ns = 3_000_000_000;
        let ran = simulate(&mut s, ns, &BTreeSet::new());
        for (d, want) in [(1, 100.0 / 7.0), (2, 200.0 / 7.0), (3, 400.0 / 7.0)] {
            let got = share(&ran, d, ns);
            assert!((got - want).abs() <= 1.0, "d{d}: {got:.2}% (want {want:.2}%)");
        }
    }

    #[test]
    fn cap_parks() {
        let mut s = Credit::new(1);
        s.add_domain(1, 1, 256, 25);
        s.add_domain(2, 1, 256, 0);
        let ns = 3_000_000_000;
        let ran = simulate(&mut s, ns, &BTreeSet::new());
        let got = share(&ran, 1, ns);
        assert!((24.0..=26.0).contains(&got), "capped d1: {got:.2}%");
    }

    #[test]
    fn cap_alone_leaves_the_pcpu_idle() {
        let mut s = Credit::new(1);
        s.add_domain(1, 1, 256, 25);
        let ns = 3_000_000_000;
        let ran = simulate(&mut s, ns, &BTreeSet::new());
        let got = share(&ran, 1, ns);
        assert!((24.0..=26.0).contains(&got), "capped d1 alone: {got:.2}%");
    }

    #[test]
    fn work_conserving_on_two_pcpus() {
        let mut s = Credit::new(2);
        for d in 1..=4 {
            s.add_domain(d, 2, 256, 0);
        }
        let ns = 3_000_000_000;
        let ran = simulate(&mut s, ns, &BTreeSet::new());
        let total: u64 = ran.values().sum();
        assert_eq!(total, 2 * ns);
        for d in 1..=4 {
            let got = share(&ran, d, ns);
            assert!((got - 50.0).abs() <= 1.0, "d{d}: {got:.2}%");
        }
    }

    #[test]
    fn weight_change_is_effective_within_two_timeslices() {
        let mut s = Credit::new(1);
        s.add_domain(1, 1, 256, 0);
        s.add_domain(2, 1, 256, 0);
        let none = BTreeSet::new();
        simulate(&mut s, 1_500_000_000, &none);
        s.set_params(2, 768, 0);
        simulate(&mut s, 1_500_000_000 + 2 * TSLICE_NS, &none);
        // From two timeslices on, 25/75 in every 120 ms window.
        for k in 0..5u64 {
            let from = 1_500_000_000 + 2 * TSLICE_NS + k * 120_000_000;
            let ran = simulate(&mut s, from + 120_000_000, &none);
            let b = ran.get(&(2, 0)).copied().unwrap_or(0);
            assert_eq!(b, 90_000_000, "window {k}: {ran:?}");
        }
    }

    #[test]
    fn boost_on_wake_preempts() {
        let mut s = Credit::new(1);
        s.add_domain(1, 1, 256, 0);
        s.add_domain(2, 1, 256, 0);
        let r = |_: UnitId| true;
        assert_eq!(s.schedule(0, r), Some((1, 0)));
        s.pcpus[0].now = 5_000_000;
        s.wake((2, 0));
        assert_eq!(s.unit_state((2, 0)).map(|x| x.0), Some(Pri::Boost));
        assert!(s.must_decide(0, r));
        assert_eq!(s.schedule(0, r), Some((2, 0)));
    }
}
