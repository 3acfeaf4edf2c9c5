//! Domains and vCPUs: what the core knows about each guest.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::abi::{ShutdownReason, TrapInfo};
use crate::evtchn::EvtchnTable;
use crate::mm::{Maddr, Mfn};
use crate::platform::{CpuState, VcpuKey};
use crate::DomId;

/// What to do when a domain shuts down for a given reason (xl's `on_poweroff` and friends).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    Destroy,
    Restart,
    Preserve,
    RenameRestart,
    CoredumpDestroy,
    CoredumpRestart,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Destroy => "destroy",
            Action::Restart => "restart",
            Action::Preserve => "preserve",
            Action::RenameRestart => "rename-restart",
            Action::CoredumpDestroy => "coredump-destroy",
            Action::CoredumpRestart => "coredump-restart",
        }
    }
    /// Does this action rebuild the domain?
    pub fn restarts(self) -> bool {
        matches!(self, Action::Restart | Action::RenameRestart | Action::CoredumpRestart)
    }
}

/// How to build a domain.
#[derive(Clone, Debug)]
pub struct DomainConfig {
    pub name: String,
    /// What the kernel is called in traces (the guest name or file name).
    pub kernel_name: String,
    pub kernel: Arc<[u8]>,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub cmdline: String,
    /// The boot module (initial ramdisk), loaded after the kernel as Xen's builder does and
    /// named in start_info (`mod_start`, `mod_len`).
    pub initrd: Option<Arc<[u8]>>,
    pub on_poweroff: Action,
    pub on_reboot: Action,
    pub on_crash: Action,
    pub weight: u16,
    pub cap: u16,
    /// A control domain (Xen's `d->is_privileged`, `is_control_domain()`; in Xen that is dom0):
    /// the XSM dummy policy's XSM_PRIV checks pass for it, and its start_info has SIF_PRIVILEGED.
    pub privileged: bool,
}

impl DomainConfig {
    /// A config with xl's defaults.
    pub fn new(name: &str, kernel_name: &str, kernel: Arc<[u8]>) -> Self {
        Self {
            name: name.into(),
            kernel_name: kernel_name.into(),
            kernel,
            memory_mib: 16,
            vcpus: 1,
            cmdline: String::new(),
            initrd: None,
            on_poweroff: Action::Destroy,
            on_reboot: Action::Restart,
            on_crash: Action::Destroy,
            weight: 256,
            cap: 0,
            privileged: false,
        }
    }
}

/// Run state of a vCPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VcpuState {
    /// Not brought up (secondary vCPUs before VCPUOP_up).
    Down,
    Runnable,
    /// Waiting for an event (`SCHEDOP_block`).
    Blocked,
}

/// A vCPU blocked in SCHEDOP_poll (Xen's `poll_evtchn` and `poll_timer`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Poll {
    /// The one port polled; `None` when several were (any event wakes the vCPU).
    pub port: Option<u32>,
    /// Absolute virtual time at which the poll times out (0 in the call: never).
    pub deadline: Option<u64>,
}

/// Callbacks registered through set_callbacks / callback_op.
#[derive(Clone, Copy, Default, Debug)]
pub struct Callbacks {
    pub event: u64,
    pub failsafe: u64,
    pub syscall: u64,
    pub syscall_mask_events: bool,
    /// SYSCALL from compatibility-mode user code (CALLBACKTYPE_syscall32).
    pub syscall32: u64,
    pub syscall32_mask_events: bool,
    pub nmi: u64,
}

/// One virtual CPU.
pub struct Vcpu {
    pub id: u32,
    pub key: VcpuKey,
    pub state: VcpuState,
    pub cpu: CpuState,
    /// The guest kernel (as opposed to its user space) is running.
    pub kernel_mode: bool,
    pub trap_table: [TrapInfo; 256],
    pub callbacks: Callbacks,
    /// Kernel stack for transitions from user mode (stack_switch).
    pub kernel_ss: u16,
    pub kernel_sp: u64,
    /// Kernel and user L4 tables.
    pub guest_table: Mfn,
    pub guest_table_user: Option<Mfn>,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
    pub gdt_frames: Vec<Mfn>,
    pub gdt_entries: u32,
    /// Where this vCPU's vcpu_info lives (shared_info slot, or VCPUOP_register_vcpu_info).
    pub vcpu_info: Maddr,
    pub vcpu_info_registered: bool,
    /// The page tables changed since the last run: flush the TLB before running.
    pub needs_flush: bool,
    /// Has run at least once (the start line was traced).
    pub started: bool,
    /// Singleshot timer deadline (virtual ns).
    pub timer: Option<u64>,
    /// Blocked in SCHEDOP_poll: on what, until when.
    pub poll: Option<Poll>,
    /// Virtual control and debug registers, IOPL and MSR state (privileged-op emulation).
    pub privs: crate::privop::PrivState,
    /// vcpu_op state: initialised, runstate and its area, time area, periodic timer.
    pub op: crate::vcpu::VcpuOpState,
}

/// A domain's life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DomState {
    Running,
    /// Shut down with this reason and preserved (on_* = preserve).
    Shutdown(ShutdownReason),
}

/// The console backend state of one domain.
#[derive(Default)]
pub struct ConsoleState {
    pub ring: Mfn,
    pub port: u32,
    /// Bytes of the current unfinished line.
    pub partial: Vec<u8>,
    /// Complete lines so far (ring and console_io output).
    pub lines: Vec<String>,
}

/// One domain.
/// How many domctl weight/cap changes a domain keeps for the share targets.
pub const CREDIT_CHANGES_MAX: usize = 4096;

pub struct Domain {
    pub id: DomId,
    pub config: DomainConfig,
    /// Weight and cap as a control domain's domctl scheduler_op set them: (virtual time, weight,
    /// cap), for the share targets of the scenario driver (`driver.rs`), which samples its own
    /// steps itself. At most [`CREDIT_CHANGES_MAX`] are kept (later ones are not recorded).
    pub credit_changes: Vec<(u64, u16, u16)>,
    pub generation: u32,
    pub state: DomState,
    pub pause_count: u32,
    pub vcpus: Vec<Vcpu>,
    pub nr_pages: u64,
    /// Memory accounting (tot_pages, max_pages, e820): `hypercall::memory`.
    pub mem: crate::mm::DomMem,
    /// pfn -> mfn, as the builder set it up.
    pub p2m: Vec<Mfn>,
    pub shared_info: Mfn,
    pub start_info_va: u64,
    pub virt_base: u64,
    /// Virtual address of the hypercall page, if the kernel has one.
    pub hypercall_page: Option<u64>,
    pub console: ConsoleState,
    pub store_ring: Mfn,
    pub store_port: u32,
    pub evtchn: EvtchnTable,
    /// Grant table (version, frames, active entries, this domain's grant mappings).
    pub grant: crate::grant::GrantTable,
    pub vm_assist: u64,
    pub shutdown_code: Option<u32>,
    /// The last shutdown reason (kept for reporting even after a restart).
    pub last_shutdown: Option<ShutdownReason>,
}

impl Domain {
    pub fn is_paused(&self) -> bool {
        self.pause_count > 0
    }
}
