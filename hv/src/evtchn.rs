//! Event channels: per-domain port tables and Xen's 2-level pending/mask ABI in shared_info.
//!
//! The model follows Xen 4.17 (`common/event_channel.c`, `event_2l.c`): ports live in buckets
//! of [`EVTCHNS_PER_BUCKET`]; a port below the allocated buckets is *valid* even when free (so
//! `status` says closed, `close` and `send` say -EINVAL, `unmask` succeeds), a port above them is
//! not (-EINVAL everywhere). Port 0 is reserved. A domain allocates ports up to its
//! `max_evtchn_port` (xl's `event_channels` default, 1023) and the ABI's limit (4096 for the
//! 2-level ABI on 64-bit).

use alloc::vec::Vec;

use crate::abi::shinfo;
use crate::domain::{Domain, VcpuState};
use crate::mm::{MachineMemory, Maddr, Mfn};
use crate::DomId;

/// Ports of the 2-level ABI on 64-bit: `BITS_PER_EVTCHN_WORD`² = 64 * 64 (Xen's `max_evtchns`).
pub const NR_PORTS: u32 = 4096;
/// Xen allocates `struct evtchn` (64 bytes, 64-byte aligned) a page at a time:
/// `EVTCHNS_PER_BUCKET` = PAGE_SIZE / 64.
pub const EVTCHNS_PER_BUCKET: u32 = 64;
/// The highest port a domU may allocate: xl's default `event_channels = 1023`
/// (`max_evtchn_port` of XEN_DOMCTL_createdomain).
pub const DEFAULT_MAX_PORT: u32 = 1023;

/// Who is on the other end of a port (Xen's `ECS_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PortState {
    Free,
    /// Port 0: never allocated, reads as closed.
    Reserved,
    /// Allocated, waiting for `remote` to bind.
    Unbound {
        remote: DomId,
    },
    Interdomain {
        remote: DomId,
        remote_port: u32,
    },
    /// Bound to `virq` of vCPU `vcpu` (the vCPU whose `virq_to_evtchn` holds it; global VIRQs
    /// always on vCPU 0, whichever vCPU `bind_vcpu` later notifies).
    Virq {
        virq: u32,
        vcpu: u32,
    },
    Ipi,
    /// Connected to a backend inside the hypervisor (what the guest sees: an interdomain
    /// channel to dom0's backend).
    Backend(Backend),
}

impl PortState {
    /// Bound to something (Xen's `evtchn_usable`: state above ECS_RESERVED).
    pub fn usable(self) -> bool {
        !matches!(self, PortState::Free | PortState::Reserved)
    }
}

/// Backends the hypervisor itself serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Console,
    Store,
}

#[derive(Clone, Copy, Debug)]
pub struct Port {
    pub state: PortState,
    /// vCPU notified (`notify_vcpu_id`).
    pub vcpu: u32,
}

const FREE: Port = Port { state: PortState::Free, vcpu: 0 };

/// A domain's ports.
pub struct EvtchnTable {
    /// `valid_evtchns` entries: a whole number of buckets.
    pub ports: Vec<Port>,
    /// `max_evtchn_port`.
    pub max_port: u32,
    /// One past the highest port ever allocated: every port at or above it is free (a bound on
    /// the scans by state, `virq_port`, which an SMP entry runs for each vCPU).
    used_end: u32,
}

impl Default for EvtchnTable {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a port could not be allocated.
pub type AllocError = crate::abi::Errno;

impl EvtchnTable {
    pub fn new() -> Self {
        let mut ports = alloc::vec![FREE; EVTCHNS_PER_BUCKET as usize];
        ports[0].state = PortState::Reserved;
        Self { ports, max_port: DEFAULT_MAX_PORT, used_end: 1 }
    }

    /// Is `port` below the allocated buckets (Xen's `port_is_valid`)?
    pub fn valid(&self, port: u32) -> bool {
        (port as usize) < self.ports.len()
    }

    /// Allocate the lowest free port (Xen's `get_free_port`): -ENOSPC past `max_port`.
    pub fn alloc(&mut self, state: PortState) -> Result<u32, AllocError> {
        let limit = self.max_port.min(NR_PORTS - 1);
        let mut p = 0u32;
        while p <= limit {
            if !self.valid(p) {
                let len = self.ports.len() + EVTCHNS_PER_BUCKET as usize;
                self.ports.resize(len, FREE);
            }
            if self.ports[p as usize].state == PortState::Free {
                self.ports[p as usize] = Port { state, vcpu: 0 };
                self.used_end = self.used_end.max(p + 1);
                return Ok(p);
            }
            p += 1;
        }
        Err(crate::abi::Errno::ENOSPC)
    }

    /// The port if it is valid (it may be free).
    pub fn get(&self, port: u32) -> Option<&Port> {
        self.ports.get(port as usize)
    }

    pub fn get_mut(&mut self, port: u32) -> Option<&mut Port> {
        self.ports.get_mut(port as usize)
    }

    /// The port bound to `virq` on vCPU `vcpu`, if any (Xen's `virq_to_evtchn`).
    pub fn virq_port(&self, virq: u32, vcpu: u32) -> Option<u32> {
        let used = self.ports.get(..self.used_end as usize).unwrap_or(&self.ports);
        used.iter().position(|p| matches!(p.state, PortState::Virq { virq: v, vcpu: c } if v == virq && c == vcpu)).map(|p| p as u32)
    }

    /// Ports in use (not free, not reserved), for `status`-like reports and tests.
    pub fn active(&self) -> usize {
        self.ports.iter().filter(|p| p.state.usable()).count()
    }
}

/// Is `virq` global (bound on vCPU 0 only, movable with bind_vcpu)? Xen's `virq_is_global`:
/// all but VIRQ_TIMER, VIRQ_DEBUG, VIRQ_XENOPROF and VIRQ_XENPMU (on x86 the arch VIRQs are
/// global too).
pub fn virq_is_global(virq: u32) -> bool {
    use crate::abi::hypercall::virq as v;
    !matches!(virq, v::TIMER | v::DEBUG | v::XENOPROF | v::XENPMU)
}

fn word_bit(port: u32) -> (u64, u64) {
    ((port / 64) as u64, 1u64 << (port % 64))
}

/// Set `port` pending in the domain's shared_info (Xen's `evtchn_2l_set_pending`): when it was
/// not already pending and is not masked, set its selector bit in the vCPU's pending_sel and, if
/// that bit was clear, mark the upcall pending. Returns true when the upcall became pending
/// (the vCPU must be kicked).
pub fn set_pending(mem: &mut MachineMemory<'_>, shared: Mfn, vcpu_info: Maddr, port: u32) -> bool {
    if port >= NR_PORTS {
        return false;
    }
    let (word, bit) = word_bit(port);
    let base = shared.maddr();
    let pa = base.add(shinfo::EVTCHN_PENDING + word * 8);
    let pending = mem.read_u64(pa).unwrap_or(0);
    if pending & bit != 0 {
        return false;
    }
    mem.write_u64(pa, pending | bit);
    if mem.read_u64(base.add(shinfo::EVTCHN_MASK + word * 8)).unwrap_or(0) & bit != 0 {
        return false;
    }
    select_word(mem, vcpu_info, word)
}

/// Xen's `vcpu_mark_events_pending`: set evtchn_upcall_pending; true when it was clear.
/// Set selector bit `word` in the vCPU's pending_sel and, if it was clear, mark the upcall
/// pending (the common tail of Xen's 2-level set_pending and unmask). True when the upcall
/// became pending.
fn select_word(mem: &mut MachineMemory<'_>, vcpu_info: Maddr, word: u64) -> bool {
    let sel_a = vcpu_info.add(shinfo::PENDING_SEL);
    let sel = mem.read_u64(sel_a).unwrap_or(0);
    if sel & (1 << word) != 0 {
        return false;
    }
    mem.write_u64(sel_a, sel | (1 << word));
    mark_events_pending(mem, vcpu_info)
}

fn mark_events_pending(mem: &mut MachineMemory<'_>, vcpu_info: Maddr) -> bool {
    let a = vcpu_info.add(shinfo::UPCALL_PENDING);
    if mem.read_u8(a).unwrap_or(0) != 0 {
        return false;
    }
    mem.write_u8(a, 1);
    true
}

/// Clear `port`'s pending bit (a freed port must not fire when it is bound again).
pub fn clear_pending(mem: &mut MachineMemory<'_>, shared: Mfn, port: u32) {
    if port >= NR_PORTS {
        return;
    }
    let (word, bit) = word_bit(port);
    let pa = shared.maddr().add(shinfo::EVTCHN_PENDING + word * 8);
    let pending = mem.read_u64(pa).unwrap_or(0);
    mem.write_u64(pa, pending & !bit);
}

/// Is `port` pending in shared_info?
pub fn is_pending(mem: &MachineMemory<'_>, shared: Mfn, port: u32) -> bool {
    if port >= NR_PORTS {
        return false;
    }
    let (word, bit) = word_bit(port);
    mem.read_u64(shared.maddr().add(shinfo::EVTCHN_PENDING + word * 8)).unwrap_or(0) & bit != 0
}

/// Clear the mask bit of `port` (Xen's `evtchn_2l_unmask`): if it was masked and is pending, set
/// its selector bit and, if that was clear, mark the upcall pending. Returns true when the upcall
/// became pending.
pub fn unmask(mem: &mut MachineMemory<'_>, shared: Mfn, vcpu_info: Maddr, port: u32) -> bool {
    if port >= NR_PORTS {
        return false;
    }
    let (word, bit) = word_bit(port);
    let base = shared.maddr();
    let ma = base.add(shinfo::EVTCHN_MASK + word * 8);
    let mask = mem.read_u64(ma).unwrap_or(0);
    if mask & bit == 0 {
        return false;
    }
    mem.write_u64(ma, mask & !bit);
    let pending = mem.read_u64(base.add(shinfo::EVTCHN_PENDING + word * 8)).unwrap_or(0);
    if pending & bit == 0 {
        return false;
    }
    select_word(mem, vcpu_info, word)
}

/// Raise `port` of domain `d`: set it pending for its notified vCPU and return the vCPUs to
/// wake — that vCPU when its upcall became pending, and every vCPU polling this port (or any
/// port) as Xen's `evtchn_check_pollers` does, masked or not.
pub fn raise(mem: &mut MachineMemory<'_>, d: &Domain, port: u32) -> Vec<u32> {
    let mut wake = Vec::new();
    let Some(p) = d.evtchn.get(port) else { return wake };
    let Some(v) = d.vcpus.get(p.vcpu as usize) else { return wake };
    let was_pending = is_pending(mem, d.shared_info, port);
    if set_pending(mem, d.shared_info, v.vcpu_info, port) {
        wake.push(v.id);
    }
    if !was_pending {
        for pv in &d.vcpus {
            let polling = pv.state == VcpuState::Blocked && pv.poll.is_some_and(|pl| pl.port.is_none_or(|pp| pp == port));
            if polling && !wake.contains(&pv.id) {
                wake.push(pv.id);
            }
        }
    }
    wake
}

/// Is an upcall pending and unmasked in this vcpu_info (Xen's `local_events_need_delivery`)?
pub fn upcall_deliverable(mem: &MachineMemory<'_>, vcpu_info: Maddr) -> bool {
    mem.read_u8(vcpu_info.add(shinfo::UPCALL_PENDING)).unwrap_or(0) != 0
        && mem.read_u8(vcpu_info.add(shinfo::UPCALL_MASK)).unwrap_or(1) == 0
}

/// Is an upcall pending at all (wakes a blocked vCPU even if masked)?
pub fn upcall_pending(mem: &MachineMemory<'_>, vcpu_info: Maddr) -> bool {
    mem.read_u8(vcpu_info.add(shinfo::UPCALL_PENDING)).unwrap_or(0) != 0
}
