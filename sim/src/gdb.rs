//! gdb on a simulated vCPU, forwards and backwards (`xenolith boot KERNEL --gdb [ADDR]`).
//!
//! The protocol is the `gdbstub` crate's; this module is the target: one gdb thread per vCPU,
//! registers from the vCPU's unicorn instance, memory through the guest's own page tables
//! (guest-virtual addresses, as gdb expects), breakpoints and watchpoints as unicorn hooks (guest
//! memory is never patched), single-step, Ctrl-C, reverse-stepi and reverse-continue, and
//! `monitor` commands showing the hypervisor's side (see [`MONITOR_HELP`]).
//!
//! # Stops leave the run unchanged
//! A stop happens *inside* a unicorn hook: gdb is served from the hook, and the guest resumes
//! when the hook returns. The hypervisor core never sees a stop (no extra exit, no extra time
//! update), so a run with gdb attached is the run without it, stop for stop.
//!
//! Hooks are chosen per block, outside the guest's instructions: the block hook sees which hooks
//! the next block needs (a code hook on every instruction while stepping or watching, one code
//! hook per breakpoint otherwise, none at all for a plain `continue`) and, when they differ from
//! the installed ones, stops *before* the block runs, uncharged, so [`SimPlatform::run`] installs
//! them and starts the block again (as it already does for I/O instructions). After a stop in
//! the middle of a block that needs other hooks, the rest of the block is restarted the same way
//! and not charged again.
//!
//! # Positions and time travel
//! Virtual time is the count of guest instructions, charged per block when the block starts
//! ([`SimPlatform`]): instruction *k* of a block that starts at charged count *C* is at position
//! *C + k*. Positions are unique, increase along the run, and are the same on every run of the
//! same inputs, so going back is re-running: a fresh simulator replays the domain from its first
//! instruction to the wanted position (at full speed up to the block that holds it). Console
//! output already shown is not shown again during a replay.
//!
//! - `reverse-stepi`: the previous instruction of the same vCPU: position − 1 in the middle of a
//!   block; at a block's first instruction, a first replay records the vCPU's last instruction
//!   before it (every instruction hooked over a window before the position), a second stops there.
//! - `reverse-continue`: a first replay records the breakpoint and watchpoint hits before the
//!   position, a second stops at the last one (or at the first instruction: "no more history").
//! - At the end of the run (the domain powered off, crashed, or the budget ran out) gdb sees the
//!   end of the replay log and can go back from there; `kill` or `detach` ends `xenolith` with the
//!   exit code it would have had without gdb.
//!
//! [`SimPlatform`]: crate::platform::SimPlatform
//! [`SimPlatform::run`]: crate::platform::SimPlatform

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::rc::Rc;

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::ConnectionExt;
use gdbstub::outputln;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStub, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking, MultiThreadSchedulerLockingOps,
    MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::reverse_exec::{ReplayLogPosition, ReverseCont, ReverseContOps, ReverseStep, ReverseStepOps};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps, SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use gdbstub_arch::x86::X86_64_SSE;
use hv::debug::CoreView;
use hv::domain::DomainConfig;
use hv::mm::paging;
use hv::mm::Mfn;
use hv::platform::{CpuState, Platform, VcpuKey};
use unicorn_engine::{HookType, MemType, RegisterX86, UcHookId, Unicorn};

use crate::platform::{Hooked, XEN_PRIV};

/// The address `--gdb` listens on when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:1234";

/// What `monitor help` prints.
pub const MONITOR_HELP: &str = "\
monitor trace [N]       the last N trace lines (default 20)
monitor domains         domains and vCPUs as the hypervisor sees them
monitor evtchn          bound event channels, pending bits
monitor pagewalk ADDR   the walk of a guest-virtual address through the current vCPU's page tables
monitor position        the current position (guest instructions since boot, virtual time)
monitor regs            what gdb's x86-64 register set lacks: fs_base, gs_base, cr3 (machine address)
";

/// `--gdb` value to a socket address: `PORT`, `:PORT`, `HOST:PORT`.
pub fn parse_addr(s: &str) -> String {
    if s.is_empty() {
        DEFAULT_ADDR.into()
    } else if s.bytes().all(|b| b.is_ascii_digit()) {
        format!("127.0.0.1:{s}")
    } else if let Some(p) = s.strip_prefix(':') {
        format!("127.0.0.1:{p}")
    } else {
        s.into()
    }
}

/// The debugger shared by the platform, every vCPU's hooks and the driver.
pub type Shared = Rc<RefCell<Dbg>>;

/// How a stop is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    Trap,
    Interrupt,
    Sw,
    Hw,
    Watch(WatchKind, u64),
    Begin,
}

/// What the guest runs towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Stop at the first guest instruction.
    First(Why),
    Continue,
    /// Stop at the next instruction of this vCPU.
    Step(u32),
    /// Stop exactly at this position (a replay).
    RunTo(u64, Why),
    /// Record the vCPU's last instruction before `until`, hooking every instruction from `from`.
    RecordPrev {
        vcpu: u32,
        until: u64,
        from: u64,
    },
    /// Record the last breakpoint/watchpoint hit before `until`.
    RecordHits {
        until: u64,
    },
    /// gdb is gone: run on, no hooks.
    Detached,
}

/// What a gdb command asked that needs a new run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reverse {
    Step(u32),
    Cont,
}

/// Where the current stop is.
#[derive(Clone, Copy, Debug, Default)]
struct StopAt {
    pos: u64,
    /// Position of the first instruction of its block.
    block: u64,
    vcpu: u32,
    /// The vCPU's previous instruction, when known without a replay.
    prev: Option<u64>,
}

/// The current vCPU at a stop inside a hook.
struct Cur {
    uc: *mut Unicorn<'static, Hooked>,
    vcpu: u32,
}

/// Hooks installed in one vCPU's instance.
#[derive(Default)]
pub(crate) struct Attach {
    shared: Option<Shared>,
    vcpu: u32,
    /// The hooks and what they were installed for.
    hooks: Vec<UcHookId>,
    /// Hooks wanted for the next block, and what the installed ones are for.
    want_slow: bool,
    slow: bool,
    generation: u64,
    /// Charged count before this run (the platform's total).
    base: u64,
    /// Position of the running block's first instruction, its address, instructions hooked so far.
    blk_start: u64,
    blk_addr: u64,
    idx: u64,
    /// A stop in the middle of a block needs other hooks: the rest of the block is restarted
    /// at this address, not charged, still numbered from this block.
    resume_mid: Option<(u64, u64, u64)>,
    resync: bool,
    pending_watch: Option<(WatchKind, u64)>,
    polls: u32,
    /// Blocks that end before this position need nothing from the debugger, while [`EPOCH`] is
    /// `epoch` (the fast path of [`on_block`]).
    skip_below: u64,
    epoch: u64,
    /// This run's number, and (start, instructions, run) of the current and previous charged
    /// blocks: a block followed by another in the same run ran to its end.
    run: u64,
    cur_blk: (u64, u64, u64),
    prev_blk: (u64, u64, u64),
}

thread_local! {
    /// Bumped whenever the debugger's plan, breakpoints or watchpoints change.
    static EPOCH: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn bump_epoch() {
    EPOCH.with(|e| e.set(e.get().wrapping_add(1)));
}

impl Attach {
    pub(crate) fn new(shared: Shared, key: VcpuKey) -> Box<Attach> {
        shared.borrow_mut().tgt.vcpus.insert(key.vcpu);
        Box::new(Attach { shared: Some(shared), vcpu: key.vcpu, generation: u64::MAX, epoch: u64::MAX, ..Default::default() })
    }
}

/// The gdbstub target and the run's debugging state.
pub struct Tgt {
    plan: Plan,
    sw: BTreeSet<u64>,
    hw: BTreeSet<u64>,
    watches: Vec<(u64, u64, WatchKind)>,
    generation: u64,
    step: Option<u32>,
    reverse: Option<Reverse>,
    /// The run is abandoned (a reverse command): every vCPU returns at once.
    pub(crate) abandon: bool,
    at: StopAt,
    cur: Option<Cur>,
    vcpus: BTreeSet<u32>,
    /// Each vCPU's registers at its last exit.
    last: BTreeMap<u32, CpuState>,
    /// Each vCPU's last instruction, when its last exit tells it (see [`after_exit`]).
    last_insn: BTreeMap<u32, Option<u64>>,
    /// The charged count at the last exit.
    clock: u64,
    /// `view` was built for the running vCPU's current run.
    view_fresh: bool,
    /// A Ctrl-C came while the core's view was stale: stop at the next run's first instruction.
    interrupt_pending: bool,
    last_vcpu: u32,
    /// Machine memory.
    ram: *mut u8,
    ram_len: usize,
    /// The platform's trace, valid while the platform lives.
    trace: *const Vec<String>,
    view: CoreView,
    /// Result of a recording run.
    recorded: Option<(u64, Why)>,
    /// Console writes already shown (replays do not show them again), and this run's count.
    console_shown: u64,
    console_seen: u64,
    /// The run reached its end: no live vCPU state.
    ended: bool,
    quit: Option<DisconnectReason>,
}

/// The debugger: target plus protocol state machine.
pub struct Dbg {
    pub(crate) tgt: Tgt,
    sm: Option<GdbStubStateMachine<'static, Tgt, TcpStream>>,
}

fn tid(vcpu: u32) -> Tid {
    Tid::new(vcpu as usize + 1).unwrap_or(Tid::MIN)
}

fn vcpu_of(t: Tid) -> u32 {
    (t.get() - 1) as u32
}

fn is_private(addr: u64) -> bool {
    (XEN_PRIV..XEN_PRIV + 0x10_0000).contains(&addr)
}

impl Tgt {
    fn slow_wanted(&self, blk_start: u64, n: u64) -> bool {
        if !self.watches.is_empty() && !matches!(self.plan, Plan::Detached | Plan::RunTo(..) | Plan::RecordPrev { .. }) {
            return true;
        }
        match self.plan {
            Plan::First(_) | Plan::Step(_) => true,
            Plan::RunTo(p, _) => p < blk_start + n.max(1),
            Plan::RecordPrev { until, from, .. } => blk_start + n >= from && blk_start <= until,
            Plan::RecordHits { until } => blk_start + n > until,
            Plan::Continue | Plan::Detached => false,
        }
    }

    fn bp_hooks_wanted(&self) -> bool {
        matches!(self.plan, Plan::Continue | Plan::Step(_) | Plan::RecordHits { .. })
    }

    fn mem(&self) -> &[u8] {
        if self.ram.is_null() {
            return &[];
        }
        // SAFETY: `ram` is the platform's machine memory (`ram_len` bytes), alive as long as the
        // platform; the debugger touches it only at a stop, when neither the core nor unicorn does.
        unsafe { std::slice::from_raw_parts(self.ram, self.ram_len) }
    }

    fn cr3_of(&self, vcpu: u32) -> Option<u64> {
        if let Some(c) = &self.cur {
            if c.vcpu == vcpu {
                // SAFETY: `cur` is set only while the hook that owns this instance runs.
                let uc = unsafe { &*c.uc };
                return Some(uc.get_data().cr3);
            }
        }
        self.last.get(&vcpu).map(|c| c.cr3).filter(|&c| c != 0)
    }

    /// Copy guest-virtual memory of `vcpu`'s address space; the bytes copied.
    fn access(&mut self, vcpu: u32, va: u64, len: usize, mut f: impl FnMut(&mut [u8], usize, usize)) -> usize {
        let Some(cr3) = self.cr3_of(vcpu) else { return 0 };
        if self.ram.is_null() {
            return 0;
        }
        // SAFETY: as in `mem`; gdb's reads and writes happen at a stop, nothing else touches
        // machine memory then.
        let mem = unsafe { std::slice::from_raw_parts_mut(self.ram, self.ram_len) };
        let mut i = 0;
        while i < len {
            let Ok(w) = paging::walk_slice(mem, Mfn(cr3 >> 12), va.wrapping_add(i as u64)) else { break };
            let n = (4096 - (w.maddr.0 & 4095) as usize).min(len - i);
            let m = w.maddr.0 as usize;
            if m + n > mem.len() {
                break;
            }
            f(&mut mem[m..m + n], i, n);
            i += n;
        }
        i
    }

    fn trace_lines(&self) -> &[String] {
        if self.trace.is_null() {
            return &[];
        }
        // SAFETY: points at the live platform's trace (set by the platform before it runs, and by
        // the driver while it owns the hypervisor); nothing appends to it during a stop.
        unsafe { &*self.trace }
    }

    fn reason(&self, why: Why) -> MultiThreadStopReason<u64> {
        let t = tid(self.at.vcpu);
        match why {
            Why::Trap => MultiThreadStopReason::SignalWithThread { tid: t, signal: Signal::SIGTRAP },
            Why::Interrupt => MultiThreadStopReason::SignalWithThread { tid: t, signal: Signal::SIGINT },
            Why::Sw => MultiThreadStopReason::SwBreak(t),
            Why::Hw => MultiThreadStopReason::HwBreak(t),
            Why::Watch(kind, addr) => MultiThreadStopReason::Watch { tid: t, kind, addr },
            Why::Begin => MultiThreadStopReason::ReplayLog { tid: Some(t), pos: ReplayLogPosition::Begin },
        }
    }
}

impl Dbg {
    fn new(stream: TcpStream) -> Result<Dbg, String> {
        let mut tgt = Tgt {
            plan: Plan::First(Why::Trap),
            sw: BTreeSet::new(),
            hw: BTreeSet::new(),
            watches: Vec::new(),
            generation: 0,
            step: None,
            reverse: None,
            abandon: false,
            at: StopAt::default(),
            cur: None,
            vcpus: BTreeSet::new(),
            last: BTreeMap::new(),
            last_insn: BTreeMap::new(),
            clock: 0,
            view_fresh: false,
            interrupt_pending: false,
            last_vcpu: 0,
            ram: std::ptr::null_mut(),
            ram_len: 0,
            trace: std::ptr::null(),
            view: CoreView::default(),
            recorded: None,
            console_shown: 0,
            console_seen: 0,
            ended: false,
            quit: None,
        };
        let sm = GdbStub::new(stream).run_state_machine(&mut tgt).map_err(|e| format!("gdb: {e}"))?;
        Ok(Dbg { tgt, sm: Some(sm) })
    }

    /// Serve gdb at a stop until it resumes the guest (or goes away). `why` is reported when gdb
    /// is waiting for a stop.
    fn interact(&mut self, why: MultiThreadStopReason<u64>) {
        let tgt = &mut self.tgt;
        tgt.step = None;
        tgt.reverse = None;
        let interrupt = matches!(why, MultiThreadStopReason::SignalWithThread { signal: Signal::SIGINT, .. });
        let mut sm = self.sm.take();
        let mut reported = false;
        loop {
            let Some(cur) = sm.take() else { break };
            let next = match cur {
                GdbStubStateMachine::Running(mut g) if interrupt && !reported => {
                    // The 0x03 is waiting: let the state machine see it, then answer it.
                    match g.borrow_conn().read() {
                        Ok(b) => g.incoming_data(tgt, b).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
                GdbStubStateMachine::Running(g) if !reported => {
                    reported = true;
                    g.report_stop(tgt, why).map_err(|e| e.to_string())
                }
                GdbStubStateMachine::Running(g) => {
                    // gdb resumed the guest.
                    sm = Some(GdbStubStateMachine::Running(g));
                    break;
                }
                GdbStubStateMachine::CtrlCInterrupt(g) => {
                    reported = true;
                    g.interrupt_handled(tgt, Some(why)).map_err(|e| e.to_string())
                }
                GdbStubStateMachine::Idle(mut g) => {
                    reported = true;
                    match g.borrow_conn().read() {
                        Ok(b) => g.incoming_data(tgt, b).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
                GdbStubStateMachine::Disconnected(g) => {
                    tgt.quit = Some(g.get_reason());
                    break;
                }
            };
            match next {
                Ok(n) => sm = Some(n),
                Err(e) => {
                    eprintln!("xenolith: gdb: connection lost: {e}");
                    tgt.quit = Some(DisconnectReason::Disconnect);
                }
            }
        }
        self.sm = sm;
        bump_epoch();
        if let Some(q) = tgt.quit {
            self.sm = None;
            tgt.plan = Plan::Detached;
            tgt.generation += 1;
            if q == DisconnectReason::Kill {
                tgt.abandon = true;
            }
        } else if tgt.reverse.is_some() {
            tgt.abandon = true;
        }
    }

    /// Is there a Ctrl-C waiting (checked now and then while the guest runs)?
    fn interrupted(&mut self) -> bool {
        match self.sm.as_mut() {
            Some(GdbStubStateMachine::Running(g)) => matches!(g.borrow_conn().peek(), Ok(Some(_))),
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hooks (called by the platform)

/// Attach the debugger to a new vCPU instance.
pub(crate) fn attach(uc: &mut Unicorn<'_, Hooked>, shared: &Shared, key: VcpuKey) {
    uc.get_data_mut().gdb = Some(Attach::new(shared.clone(), key));
}

/// Before a run: remember where the charged count starts; false if the run is abandoned.
pub(crate) fn before_run(uc: &mut Unicorn<'_, Hooked>, instructions: u64, trace: *const Vec<String>) -> bool {
    let d = uc.get_data_mut();
    let Some(a) = d.gdb.as_mut() else { return true };
    a.base = instructions;
    a.run += 1;
    let Some(s) = a.shared.clone() else { return true };
    let mut g = s.borrow_mut();
    g.tgt.trace = trace;
    if std::mem::take(&mut g.tgt.interrupt_pending) && g.tgt.plan == Plan::Continue {
        g.tgt.plan = Plan::First(Why::Interrupt);
        bump_epoch();
    }
    !g.tgt.abandon
}

/// After a run: the vCPU's registers at its exit.
pub(crate) fn after_run(uc: &Unicorn<'_, Hooked>, vcpu: u32, cpu: &CpuState) {
    if let Some(s) = uc.get_data().gdb.as_ref().and_then(|a| a.shared.clone()) {
        let mut g = s.borrow_mut();
        g.tgt.last.insert(vcpu, *cpu);
        g.tgt.last_vcpu = vcpu;
    }
}

/// After a run's exit: when the vCPU left through the hypercall gate, its last instruction is the
/// `syscall` that ends its last block (a `syscall` ends a translation block), which lets
/// `reverse-stepi` at the end of the run replay once instead of twice.
pub(crate) fn after_exit(uc: &Unicorn<'_, Hooked>, vcpu: u32, gate: bool) {
    let Some(a) = uc.get_data().gdb.as_ref() else { return };
    let Some(s) = a.shared.clone() else { return };
    let c = a.cur_blk;
    let last = (gate && c.2 == a.run && c.1 > 0).then(|| c.0 + c.1 - 1);
    let clock = a.base + uc.get_data().ran;
    let mut g = s.borrow_mut();
    g.tgt.last_insn.insert(vcpu, last);
    g.tgt.clock = clock;
    g.tgt.view_fresh = false;
}

/// The run stopped to change hooks: install them; true if it must be restarted.
pub(crate) fn take_resync(uc: &mut Unicorn<'_, Hooked>) -> bool {
    let d = uc.get_data_mut();
    let Some(a) = d.gdb.as_mut() else { return false };
    if !std::mem::take(&mut a.resync) {
        return false;
    }
    if d.exit.is_some() {
        return false;
    }
    sync(uc);
    true
}

/// Install the hooks the current plan needs in this instance.
fn sync(uc: &mut Unicorn<'_, Hooked>) {
    let Some(a) = uc.get_data_mut().gdb.as_mut() else { return };
    let old = std::mem::take(&mut a.hooks);
    let Some(s) = a.shared.clone() else { return };
    let slow = a.want_slow;
    for h in old {
        let _ = uc.remove_hook(h);
    }
    let g = s.borrow();
    let t = &g.tgt;
    let mut hooks = Vec::new();
    if slow {
        if let Ok(h) = uc.add_code_hook(1, 0, |uc, addr, _| on_code(uc, addr, None)) {
            hooks.push(h);
        }
    } else if t.bp_hooks_wanted() {
        for &bp in t.sw.iter().chain(&t.hw) {
            if let Ok(h) = uc.add_code_hook(bp, bp, |uc, addr, _| on_bp(uc, addr)) {
                hooks.push(h);
            }
        }
    }
    if slow {
        // unicorn's memory hooks see machine (physical) addresses: hook the frames the watched
        // range maps to now (hooks are set again whenever they change).
        for &(addr, len, kind) in &t.watches {
            let ty = match kind {
                WatchKind::Write => HookType::MEM_WRITE,
                WatchKind::Read => HookType::MEM_READ,
                WatchKind::ReadWrite => HookType::MEM_READ | HookType::MEM_WRITE,
            };
            let d = uc.get_data();
            // SAFETY: see `Tgt::mem`; read-only, outside any guest instruction.
            let mem = unsafe { std::slice::from_raw_parts(d.ram, d.ram_len) };
            let cr3 = d.cr3;
            let len = len.max(1);
            let mut i = 0;
            while i < len {
                let va = addr.wrapping_add(i);
                let n = (4096 - (va & 4095)).min(len - i);
                i += n;
                let Ok(w) = paging::walk_slice(mem, Mfn(cr3 >> 12), va) else { continue };
                let (lo, hi) = (w.maddr.0, w.maddr.0 + n - 1);
                if let Ok(h) = uc.add_mem_hook(ty, lo, hi, move |uc, mt, a, size, _| {
                    on_mem(uc, mt, a, size, lo, hi, addr, kind);
                    true
                }) {
                    hooks.push(h);
                }
            }
        }
    }
    let generation = t.generation;
    drop(g);
    let _ = uc.ctl_flush_tb();
    // Memory hooks are seen only by accesses whose TLB entry is filled after they exist.
    let _ = uc.ctl_flush_tlb();
    if let Some(a) = uc.get_data_mut().gdb.as_mut() {
        a.hooks = hooks;
        a.slow = slow;
        a.generation = generation;
    }
}

/// What the block hook does with a block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BlockAction {
    /// Charge it and run it.
    Charge,
    /// Run it without charging: the rest of a block already charged.
    Free,
    /// Do not run it now: emulation stopped (to change hooks, or the run is given up).
    Hold,
}

/// Block hook, before the block is charged.
pub(crate) fn on_block(uc: &mut Unicorn<'_, Hooked>, addr: u64, n: u64) -> BlockAction {
    let d = uc.get_data_mut();
    let ran = d.ran;
    let Some(a) = d.gdb.as_mut() else { return BlockAction::Charge };
    let Some(s) = a.shared.clone() else { return BlockAction::Charge };
    if let Some((start, k, at)) = a.resume_mid.take() {
        if at == addr {
            // The rest of a block restarted after a stop: already charged.
            a.blk_start = start;
            a.idx = k;
            return BlockAction::Free;
        }
    }
    let blk_start = a.base + ran;
    a.blk_start = blk_start;
    a.blk_addr = addr;
    a.idx = 0;
    a.polls = a.polls.wrapping_add(1);
    let poll = a.polls % 4096 == 0;
    if a.cur_blk.0 != blk_start || a.cur_blk.2 != a.run {
        a.prev_blk = a.cur_blk;
        a.cur_blk = (blk_start, n, a.run);
    }
    if !poll && blk_start.saturating_add(n) < a.skip_below && a.epoch == EPOCH.with(|e| e.get()) {
        return BlockAction::Charge;
    }
    a.skip_below = 0;
    let mut g = s.borrow_mut();
    if let Plan::RecordHits { until } | Plan::RecordPrev { until, .. } = g.tgt.plan {
        if blk_start >= until {
            g.tgt.abandon = true;
        }
    }
    if g.tgt.abandon {
        drop(g);
        abandon(uc);
        return BlockAction::Hold;
    }
    if poll && g.tgt.plan == Plan::Continue && !g.tgt.interrupt_pending && g.interrupted() {
        if g.tgt.view_fresh {
            g.tgt.plan = Plan::First(Why::Interrupt);
            bump_epoch();
        } else {
            // `monitor domains` must show the core as it is: stop when the next run starts.
            g.tgt.interrupt_pending = true;
        }
    }
    let slow = g.tgt.slow_wanted(blk_start, n);
    let generation = g.tgt.generation;
    // How far blocks need nothing from the debugger (see `Tgt::slow_wanted`).
    let skip = match g.tgt.plan {
        _ if slow => 0,
        Plan::Continue | Plan::Detached => u64::MAX,
        Plan::RunTo(p, _) => p.saturating_add(1),
        Plan::RecordPrev { from, .. } => from,
        Plan::RecordHits { until } => until.saturating_add(1),
        Plan::First(_) | Plan::Step(_) => 0,
    };
    drop(g);
    let a = uc.get_data_mut().gdb.as_mut().expect("attached");
    if slow != a.slow || generation != a.generation {
        a.want_slow = slow;
        a.resync = true;
        let _ = uc.emu_stop();
        return BlockAction::Hold;
    }
    a.skip_below = skip;
    a.epoch = EPOCH.with(|e| e.get());
    BlockAction::Charge
}

fn abandon(uc: &mut Unicorn<'_, Hooked>) {
    bump_epoch();
    let d = uc.get_data_mut();
    if d.exit.is_none() {
        d.exit = Some(hv::platform::Exit::Budget);
    }
    let _ = uc.emu_stop();
}

/// Breakpoint hook (fast mode): the instruction's position from the block's start.
fn on_bp(uc: &mut Unicorn<'_, Hooked>, addr: u64) {
    let d = uc.get_data();
    let Some(a) = d.gdb.as_ref() else { return };
    if a.slow || d.exit.is_some() {
        return;
    }
    // Index of `addr` in the block: decode from the block's first instruction.
    let mut k = 0u64;
    let mut pc = a.blk_addr;
    let mut b = [0u8; 15];
    while pc < addr && k < 4096 {
        let n = (4096 - (pc & 4095)).min(15) as usize;
        if !read_virt(d, pc, &mut b[..n]) {
            break;
        }
        let i = iced_x86::Decoder::with_ip(64, &b[..n], pc, iced_x86::DecoderOptions::NONE).decode();
        pc += i.len().max(1) as u64;
        k += 1;
    }
    on_code(uc, addr, Some(k));
}

fn read_virt(d: &Hooked, va: u64, out: &mut [u8]) -> bool {
    // SAFETY: see `Tgt::mem`; read-only while the guest is inside a hook.
    let mem = unsafe { std::slice::from_raw_parts(d.ram, d.ram_len) };
    let mut i = 0;
    while i < out.len() {
        let Ok(w) = paging::walk_slice(mem, Mfn(d.cr3 >> 12), va.wrapping_add(i as u64)) else { return false };
        let n = (4096 - (w.maddr.0 & 4095) as usize).min(out.len() - i);
        let m = w.maddr.0 as usize;
        if m + n > mem.len() {
            return false;
        }
        out[i..i + n].copy_from_slice(&mem[m..m + n]);
        i += n;
    }
    true
}

/// Code hook: every instruction (slow mode, `idx` None) or a breakpoint (fast mode, its index).
fn on_code(uc: &mut Unicorn<'_, Hooked>, addr: u64, fast_idx: Option<u64>) {
    let d = uc.get_data_mut();
    if d.exit.is_some() || is_private(addr) {
        return;
    }
    let Some(a) = d.gdb.as_mut() else { return };
    let pos = match fast_idx {
        Some(k) => a.blk_start + k,
        None => {
            let p = a.blk_start + a.idx;
            a.idx += 1;
            p
        }
    };
    let (vcpu, block, pending) = (a.vcpu, a.blk_start, a.pending_watch.take());
    let (p, c) = (a.prev_blk, a.cur_blk);
    let prev = if pos > block {
        Some(pos - 1)
    } else if c.0 == block && p.2 == c.2 && p.1 > 0 && p.0 + p.1 == block {
        Some(block - 1)
    } else {
        None
    };
    let Some(s) = a.shared.clone() else { return };
    let mut g = s.borrow_mut();
    let t = &mut g.tgt;
    let bp = if t.sw.contains(&addr) {
        Some(Why::Sw)
    } else if t.hw.contains(&addr) {
        Some(Why::Hw)
    } else {
        None
    };
    let fresh = pos > t.at.pos;
    let why = match t.plan {
        Plan::Detached => None,
        Plan::First(w) => Some(w),
        Plan::RunTo(p, w) => (pos >= p).then_some(w),
        Plan::RecordPrev { vcpu: v, until, .. } => {
            if pos >= until {
                t.abandon = true;
                drop(g);
                abandon(uc);
                return;
            }
            if v == vcpu {
                t.recorded = Some((pos, Why::Trap));
            }
            None
        }
        Plan::RecordHits { until } => {
            if pos >= until {
                t.abandon = true;
                drop(g);
                abandon(uc);
                return;
            }
            if let Some(w) = bp {
                t.recorded = Some((pos, w));
            }
            None
        }
        Plan::Step(v) if fresh => pending.map(|(k, a)| Why::Watch(k, a)).or(bp).or((v == vcpu).then_some(Why::Trap)),
        Plan::Continue if fresh => pending.map(|(k, a)| Why::Watch(k, a)).or(bp),
        Plan::Step(_) | Plan::Continue => None,
    };
    let Some(why) = why else { return };
    t.at = StopAt { pos, block, vcpu, prev };
    t.cur = Some(Cur { uc: (uc as *mut Unicorn<'_, Hooked>).cast(), vcpu });
    t.plan = Plan::Continue;
    let reason = t.reason(why);
    g.interact(reason);
    let t = &mut g.tgt;
    t.cur = None;
    if t.abandon {
        drop(g);
        abandon(uc);
        return;
    }
    if let Some(v) = t.step {
        t.plan = Plan::Step(v);
    } else if t.quit.is_none() {
        t.plan = Plan::Continue;
    }
    bump_epoch();
    let slow = t.slow_wanted(block, 1) || matches!(t.plan, Plan::Step(_));
    let generation = t.generation;
    drop(g);
    let a = uc.get_data_mut().gdb.as_mut().expect("attached");
    let k = pos - block;
    if (slow && !a.slow) || generation != a.generation {
        // The rest of this block needs other hooks: restart it here, uncharged.
        a.want_slow = slow;
        a.resync = true;
        a.resume_mid = Some((block, k, addr));
        let _ = uc.emu_stop();
    }
}

/// Memory hook on the machine frames of a watched range (gdb's watchpoint at `watch`): the
/// access stops the guest after this instruction.
#[allow(clippy::too_many_arguments)]
fn on_mem(uc: &mut Unicorn<'_, Hooked>, mt: MemType, maddr: u64, size: usize, lo: u64, hi: u64, watch: u64, want: WatchKind) {
    let last = maddr.wrapping_add(size.max(1) as u64 - 1);
    if last < lo || maddr > hi {
        return;
    }
    let kind = if mt == MemType::WRITE { WatchKind::Write } else { WatchKind::Read };
    if want != WatchKind::ReadWrite && want != kind {
        return;
    }
    let d = uc.get_data_mut();
    let Some(a) = d.gdb.as_mut() else { return };
    let Some(s) = a.shared.clone() else { return };
    let pos = a.blk_start + a.idx.saturating_sub(1);
    let plan = s.borrow().tgt.plan;
    if let Plan::RecordHits { until } = plan {
        if pos < until {
            s.borrow_mut().tgt.recorded = Some((pos, Why::Watch(kind, watch)));
        }
        return;
    }
    a.pending_watch = Some((kind, watch));
}

// ---------------------------------------------------------------------------------------------
// gdbstub target

impl Target for Tgt {
    type Arch = X86_64_SSE;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        true
    }
}

fn regs_from(cpu: &CpuState, regs: &mut X86_64CoreRegs) {
    regs.regs = [
        cpu.rax, cpu.rbx, cpu.rcx, cpu.rdx, cpu.rsi, cpu.rdi, cpu.rbp, cpu.rsp, cpu.r8, cpu.r9, cpu.r10, cpu.r11, cpu.r12, cpu.r13,
        cpu.r14, cpu.r15,
    ];
    regs.rip = cpu.rip;
    regs.eflags = cpu.rflags as u32;
    regs.segments.cs = cpu.cs as u32;
    regs.segments.ss = cpu.ss as u32;
}

const GPRS: [RegisterX86; 16] = {
    use RegisterX86::*;
    [RAX, RBX, RCX, RDX, RSI, RDI, RBP, RSP, R8, R9, R10, R11, R12, R13, R14, R15]
};

impl MultiThreadBase for Tgt {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs, t: Tid) -> TargetResult<(), Self> {
        let v = vcpu_of(t);
        *regs = X86_64CoreRegs::default();
        if let Some(c) = self.cur.as_ref().filter(|c| c.vcpu == v) {
            // SAFETY: `cur` is set only while the hook that owns this instance runs.
            let uc = unsafe { &*c.uc };
            let r = |reg| uc.reg_read(reg).unwrap_or(0);
            for (i, reg) in GPRS.iter().enumerate() {
                regs.regs[i] = r(*reg);
            }
            regs.rip = r(RegisterX86::RIP);
            regs.eflags = r(RegisterX86::RFLAGS) as u32;
            regs.segments.cs = r(RegisterX86::CS) as u32;
            regs.segments.ss = r(RegisterX86::SS) as u32;
            regs.segments.ds = r(RegisterX86::DS) as u32;
            regs.segments.es = r(RegisterX86::ES) as u32;
            regs.segments.fs = r(RegisterX86::FS) as u32;
            regs.segments.gs = r(RegisterX86::GS) as u32;
            for (i, x) in regs.xmm.iter_mut().enumerate() {
                let reg = [
                    RegisterX86::XMM0,
                    RegisterX86::XMM1,
                    RegisterX86::XMM2,
                    RegisterX86::XMM3,
                    RegisterX86::XMM4,
                    RegisterX86::XMM5,
                    RegisterX86::XMM6,
                    RegisterX86::XMM7,
                    RegisterX86::XMM8,
                    RegisterX86::XMM9,
                    RegisterX86::XMM10,
                    RegisterX86::XMM11,
                    RegisterX86::XMM12,
                    RegisterX86::XMM13,
                    RegisterX86::XMM14,
                    RegisterX86::XMM15,
                ][i];
                if let Ok(b) = uc.reg_read_long(reg) {
                    let mut a = [0u8; 16];
                    let n = b.len().min(16);
                    a[..n].copy_from_slice(&b[..n]);
                    *x = u128::from_le_bytes(a);
                }
            }
            regs.mxcsr = r(RegisterX86::MXCSR) as u32;
            return Ok(());
        }
        if let Some(c) = self.last.get(&v) {
            regs_from(c, regs);
        }
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs, t: Tid) -> TargetResult<(), Self> {
        let v = vcpu_of(t);
        let Some(c) = self.cur.as_ref().filter(|c| c.vcpu == v) else {
            return Err(TargetError::NonFatal);
        };
        // SAFETY: `cur` is set only while the hook that owns this instance runs.
        let uc = unsafe { &mut *c.uc };
        if uc.reg_read(RegisterX86::RIP).unwrap_or(0) != regs.rip {
            // Moving rip inside a hook would restart the block behind the clock's back.
            return Err(TargetError::NonFatal);
        }
        for (i, reg) in GPRS.iter().enumerate() {
            if uc.reg_read(*reg).unwrap_or(0) != regs.regs[i] {
                let _ = uc.reg_write(*reg, regs.regs[i]);
            }
        }
        let fl = uc.reg_read(RegisterX86::RFLAGS).unwrap_or(0);
        if fl as u32 != regs.eflags {
            let _ = uc.reg_write(RegisterX86::RFLAGS, (fl & !0xffff_ffff) | regs.eflags as u64);
        }
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], t: Tid) -> TargetResult<usize, Self> {
        let n = self.access(vcpu_of(t), start, data.len(), |m, i, n| data[i..i + n].copy_from_slice(m));
        if n == 0 && !data.is_empty() {
            return Err(TargetError::NonFatal);
        }
        Ok(n)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], t: Tid) -> TargetResult<(), Self> {
        let n = self.access(vcpu_of(t), start, data.len(), |m, i, n| m.copy_from_slice(&data[i..i + n]));
        if n < data.len() {
            return Err(TargetError::NonFatal);
        }
        Ok(())
    }

    fn list_active_threads(&mut self, f: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        for &v in &self.vcpus {
            f(tid(v));
        }
        if self.vcpus.is_empty() {
            f(tid(0));
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadResume for Tgt {
    fn resume(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.step = None;
        Ok(())
    }

    fn set_resume_action_continue(&mut self, _t: Tid, _s: Option<Signal>) -> Result<(), Self::Error> {
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_reverse_step(&mut self) -> Option<ReverseStepOps<'_, Tid, Self>> {
        Some(self)
    }

    fn support_reverse_cont(&mut self) -> Option<ReverseContOps<'_, Tid, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSchedulerLocking for Tgt {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        // gdb steps one thread and wants the others held. The hypervisor's scheduler decides
        // which vCPU runs (holding them would change the run): they run on, and the step ends
        // at the stepped vCPU's next instruction.
        Ok(())
    }
}

impl MultiThreadSingleStep for Tgt {
    fn set_resume_action_step(&mut self, t: Tid, _s: Option<Signal>) -> Result<(), Self::Error> {
        self.step = Some(vcpu_of(t));
        Ok(())
    }
}

impl ReverseStep<Tid> for Tgt {
    fn reverse_step(&mut self, t: Tid) -> Result<(), Self::Error> {
        self.reverse = Some(Reverse::Step(vcpu_of(t)));
        Ok(())
    }
}

impl ReverseCont<Tid> for Tgt {
    fn reverse_cont(&mut self) -> Result<(), Self::Error> {
        self.reverse = Some(Reverse::Cont);
        Ok(())
    }
}

impl Breakpoints for Tgt {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for Tgt {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.generation += 1;
        self.sw.insert(addr);
        Ok(true)
    }
    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.generation += 1;
        Ok(self.sw.remove(&addr))
    }
}

impl HwBreakpoint for Tgt {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.generation += 1;
        self.hw.insert(addr);
        Ok(true)
    }
    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.generation += 1;
        Ok(self.hw.remove(&addr))
    }
}

impl HwWatchpoint for Tgt {
    fn add_hw_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> TargetResult<bool, Self> {
        self.generation += 1;
        self.watches.push((addr, len, kind));
        Ok(true)
    }
    fn remove_hw_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> TargetResult<bool, Self> {
        self.generation += 1;
        let Some(i) = self.watches.iter().position(|&w| w == (addr, len, kind)) else { return Ok(false) };
        self.watches.remove(i);
        Ok(true)
    }
}

impl MonitorCmd for Tgt {
    fn handle_monitor_cmd(&mut self, cmd: &[u8], mut out: ConsoleOutput<'_>) -> Result<(), Self::Error> {
        let cmd = String::from_utf8_lossy(cmd);
        let mut w = cmd.split_whitespace();
        match (w.next(), w.next()) {
            (Some("trace"), n) => {
                let n = n.and_then(|n| n.parse::<usize>().ok()).unwrap_or(20);
                let t = self.trace_lines();
                for l in &t[t.len().saturating_sub(n)..] {
                    outputln!(out, "{l}");
                }
            }
            (Some("domains"), None) => {
                outputln!(out, "(hypervisor state before this vCPU last entered the guest, virtual time {} ns)", self.view.now);
                for l in self.view.domains.lines() {
                    outputln!(out, "{l}");
                }
            }
            (Some("evtchn"), None) => {
                for l in self.view.evtchn.lines() {
                    outputln!(out, "{l}");
                }
                if self.view.evtchn.is_empty() {
                    outputln!(out, "no bound event channels");
                }
            }
            (Some("pagewalk"), Some(a)) => {
                let a = a.trim_start_matches("0x");
                match u64::from_str_radix(a, 16) {
                    Ok(va) => {
                        for l in self.pagewalk(va) {
                            outputln!(out, "{l}");
                        }
                    }
                    Err(_) => outputln!(out, "pagewalk: {a:?} is not a hex address"),
                }
            }
            (Some("regs"), None) => {
                let v = self.cur.as_ref().map(|c| c.vcpu).unwrap_or(self.at.vcpu);
                let (fs, gs, cr3) = match self.cur.as_ref() {
                    Some(c) => {
                        // SAFETY: `cur` is set only while the hook that owns this instance runs.
                        let uc = unsafe { &*c.uc };
                        let r = |reg| uc.reg_read(reg).unwrap_or(0);
                        (r(RegisterX86::FS_BASE), r(RegisterX86::GS_BASE), uc.get_data().cr3)
                    }
                    None => self.last.get(&v).map(|c| (c.fs_base, c.gs_base, c.cr3)).unwrap_or_default(),
                };
                outputln!(out, "vCPU {v}: fs_base={fs:#x} gs_base={gs:#x} cr3=maddr {cr3:#x}");
            }
            (Some("position"), None) => {
                if self.ended {
                    outputln!(out, "end of the run: {} guest instructions", self.at.pos);
                } else {
                    outputln!(out, "instruction {} (vCPU {}, block at {})", self.at.pos, self.at.vcpu, self.at.block);
                }
            }
            _ => {
                for l in MONITOR_HELP.lines() {
                    outputln!(out, "{l}");
                }
            }
        }
        Ok(())
    }
}

impl Tgt {
    fn pagewalk(&self, va: u64) -> Vec<String> {
        let v = self.cur.as_ref().map(|c| c.vcpu).unwrap_or(self.at.vcpu);
        let Some(cr3) = self.cr3_of(v) else { return vec!["no page tables (the vCPU is gone)".into()] };
        let mem = self.mem();
        let mut out = vec![format!("{va:#x} from cr3=maddr {cr3:#x} (vCPU {v})")];
        let mut table = cr3 & !0xfff;
        for level in (1..=4u32).rev() {
            let idx = (va >> (12 + 9 * (level - 1))) & 511;
            let ea = (table + idx * 8) as usize;
            let Some(b) = mem.get(ea..ea + 8) else {
                out.push(format!("L{level}[{idx}] at maddr {ea:#x}: outside machine memory"));
                return out;
            };
            let e = u64::from_le_bytes(b.try_into().unwrap_or_default());
            let flags = [(1, "P"), (2, "RW"), (4, "US"), (0x20, "A"), (0x40, "D"), (0x80, "PS"), (1 << 63, "NX")]
                .iter()
                .filter(|(f, _)| e & f != 0)
                .map(|(_, n)| *n)
                .collect::<Vec<_>>()
                .join("|");
            out.push(format!("L{level}[{idx:3}] at maddr {ea:#x} = {e:#018x} [{flags}]"));
            if e & 1 == 0 {
                out.push("not present".into());
                return out;
            }
            let frame = e & 0x000f_ffff_ffff_f000;
            if level > 1 && e & 0x80 != 0 {
                let size = 1u64 << (12 + 9 * (level - 1));
                out.push(format!("superpage: maddr {:#x}", (frame & !(size - 1)) + (va & (size - 1))));
                return out;
            }
            table = frame;
        }
        out.push(format!("maddr {:#x}", table + (va & 0xfff)));
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The platform's side

/// Should the core describe itself before this run (a stop may come)?
///
/// The view costs the core some microseconds per run, so it is built only for runs that may
/// stop: stepping, a replay near its target, breakpoints or watchpoints set, a Ctrl-C waiting.
pub(crate) fn wants_view(s: &Shared) -> bool {
    let g = s.borrow();
    let t = &g.tgt;
    if t.abandon {
        return false;
    }
    match t.plan {
        Plan::Detached | Plan::RecordHits { .. } | Plan::RecordPrev { .. } => false,
        Plan::First(_) | Plan::Step(_) => true,
        // A run is at most a time slice (plus a block) long.
        Plan::RunTo(p, _) => p <= t.clock.saturating_add(VIEW_MARGIN),
        Plan::Continue => t.interrupt_pending || !t.sw.is_empty() || !t.hw.is_empty() || !t.watches.is_empty(),
    }
}

/// How far before a replay's target the core starts describing itself (guest instructions): far
/// more than a run (at most a time slice, 1 ms of virtual time today, plus a block).
const VIEW_MARGIN: u64 = 64_000_000;

pub(crate) fn set_view(s: &Shared, v: CoreView) {
    let mut g = s.borrow_mut();
    g.tgt.view = v;
    g.tgt.view_fresh = true;
}

/// Show this console write? (Not when a replay writes what was already shown.)
pub(crate) fn console_visible(s: &Shared) -> bool {
    let mut g = s.borrow_mut();
    let t = &mut g.tgt;
    t.console_seen += 1;
    if t.console_seen > t.console_shown {
        t.console_shown = t.console_seen;
        true
    } else {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// The driver

/// `xenolith boot|create ... --gdb ADDR`: wait for gdb, then run the domain under it, re-running
/// it for reverse execution. Returns the exit code the run without gdb would have.
pub fn serve(c: DomainConfig, what: &Path, opts: &crate::create::RunOptions, addr: &str) -> u8 {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("xenolith: --gdb {addr}: cannot listen: {e}");
            return crate::create::EXIT_BAD_INPUT;
        }
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| addr.into());
    eprintln!("xenolith: gdb: waiting on {local} (gdb {} -ex 'target remote {local}')", c.kernel_name);
    let stream = match listener.accept() {
        Ok((s, _)) => s,
        Err(e) => {
            eprintln!("xenolith: gdb: accept: {e}");
            return crate::create::EXIT_HOST;
        }
    };
    drop(listener);
    let _ = stream.set_nodelay(true);
    let dbg = match Dbg::new(stream) {
        Ok(d) => Rc::new(RefCell::new(d)),
        Err(e) => {
            eprintln!("xenolith: {e}");
            return crate::create::EXIT_HOST;
        }
    };
    let mut window = 100_000u64;
    loop {
        let mut hv = match crate::create::build(&c, what) {
            Ok(h) => h,
            Err(code) => return code,
        };
        bump_epoch();
        {
            let mut g = dbg.borrow_mut();
            let t = &mut g.tgt;
            t.abandon = false;
            t.ended = false;
            t.console_seen = 0;
            t.last.clear();
            t.last_insn.clear();
            t.clock = 0;
            t.view_fresh = false;
            t.interrupt_pending = false;
            t.vcpus.clear();
            t.ram = hv.platform.memory().as_mut_ptr();
            t.ram_len = hv.platform.memory().len();
            t.trace = &hv.platform.trace as *const _;
        }
        hv.platform.gdb = Some(dbg.clone());
        if let Err(code) = crate::create::create_in(&mut hv, c.clone(), what) {
            return code;
        }
        let max = opts.max_insns;
        while hv.any_running() && hv.now < max && !dbg.borrow().tgt.abandon {
            let next = (hv.now + 10_000_000).min(max);
            hv.run_until(next);
        }
        let end = hv.platform.instructions;
        let mut g = dbg.borrow_mut();
        let t = &mut g.tgt;
        t.trace = &hv.platform.trace as *const _;
        // What next: a recording run's result, a reverse command, or the end of the run.
        let next = match t.plan {
            Plan::RecordPrev { vcpu, until, from } => match t.recorded.take() {
                Some((p, _)) => Some(Plan::RunTo(p, Why::Trap)),
                None if from > 0 => {
                    window = window.saturating_mul(100);
                    Some(Plan::RecordPrev { vcpu, until, from: until.saturating_sub(window) })
                }
                None => Some(Plan::First(Why::Begin)),
            },
            Plan::RecordHits { .. } => match t.recorded.take() {
                Some((p, w)) => Some(Plan::RunTo(p, w)),
                None => Some(Plan::First(Why::Begin)),
            },
            _ if t.abandon && t.quit.is_some() => None,
            _ if t.abandon => {
                let at = t.at;
                match t.reverse.take() {
                    Some(Reverse::Step(v)) if at.prev.is_some() && v == at.vcpu => Some(Plan::RunTo(at.prev.unwrap_or(0), Why::Trap)),
                    Some(Reverse::Step(v)) => {
                        window = 100_000;
                        Some(Plan::RecordPrev { vcpu: v, until: at.pos, from: at.pos.saturating_sub(window) })
                    }
                    Some(Reverse::Cont) => Some(Plan::RecordHits { until: at.pos }),
                    None => None,
                }
            }
            _ => None,
        };
        if let Some(p) = next {
            t.plan = p;
            t.recorded = None;
            t.generation += 1;
            drop(g);
            continue;
        }
        if t.quit.is_none() {
            // The end of the run: gdb sees the end of the replay log and may go back.
            t.ended = true;
            let prev = t.last_insn.get(&t.last_vcpu).copied().flatten();
            t.at = StopAt { pos: end, block: end, vcpu: t.last_vcpu, prev };
            t.plan = Plan::Continue;
            let reason = MultiThreadStopReason::ReplayLog { tid: Some(tid(t.last_vcpu)), pos: ReplayLogPosition::End };
            g.tgt.view = hv::debug::view(&mut hv);
            // Continuing or stepping at the end stays at the end.
            while !g.tgt.abandon && g.tgt.quit.is_none() {
                g.interact(reason);
            }
            let t = &mut g.tgt;
            if t.abandon && t.quit.is_none() {
                let at = t.at;
                t.plan = match t.reverse.take() {
                    Some(Reverse::Step(v)) if at.prev.is_some() && v == at.vcpu => Plan::RunTo(at.prev.unwrap_or(0), Why::Trap),
                    Some(Reverse::Step(v)) => {
                        window = 100_000;
                        Plan::RecordPrev { vcpu: v, until: at.pos, from: at.pos.saturating_sub(window) }
                    }
                    _ => Plan::RecordHits { until: at.pos },
                };
                t.recorded = None;
                t.generation += 1;
                drop(g);
                continue;
            }
        }
        drop(g);
        hv.platform.gdb = None;
        return crate::create::finish(&mut hv, &c.name, opts);
    }
}
