//! Event channels: per-domain port tables and Xen's 2-level pending/mask ABI in shared_info.

use alloc::vec::Vec;

use crate::abi::shinfo;
use crate::mm::{Maddr, MachineMemory, Mfn};
use crate::DomId;

/// Ports per domain (2-level ABI on 64-bit: 64 * 64).
pub const NR_PORTS: u32 = 4096;

/// Who is on the other end of a port.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PortState {
    Free,
    /// Allocated, waiting for `remote` to bind.
    Unbound { remote: DomId },
    Interdomain { remote: DomId, remote_port: u32 },
    Virq { virq: u32 },
    Ipi,
    /// Connected to a backend inside the hypervisor.
    Backend(Backend),
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
    /// vCPU notified.
    pub vcpu: u32,
}

/// A domain's ports.
pub struct EvtchnTable {
    pub ports: Vec<Port>,
}

impl Default for EvtchnTable {
    fn default() -> Self {
        Self::new()
    }
}

impl EvtchnTable {
    pub fn new() -> Self {
        // Port 0 is never valid.
        Self { ports: alloc::vec![Port { state: PortState::Free, vcpu: 0 }; 1] }
    }

    /// Allocate the lowest free port.
    pub fn alloc(&mut self, state: PortState) -> Option<u32> {
        let free = (1..self.ports.len()).find(|&p| self.ports[p].state == PortState::Free);
        let p = match free {
            Some(p) => p,
            None if (self.ports.len() as u32) < NR_PORTS => {
                self.ports.push(Port { state: PortState::Free, vcpu: 0 });
                self.ports.len() - 1
            }
            None => return None,
        };
        self.ports[p] = Port { state, vcpu: 0 };
        Some(p as u32)
    }

    pub fn get(&self, port: u32) -> Option<&Port> {
        if port == 0 {
            return None;
        }
        self.ports.get(port as usize)
    }

    pub fn get_mut(&mut self, port: u32) -> Option<&mut Port> {
        if port == 0 {
            return None;
        }
        self.ports.get_mut(port as usize)
    }

    /// The port bound to `virq`, if any.
    pub fn virq_port(&self, virq: u32) -> Option<u32> {
        self.ports
            .iter()
            .position(|p| p.state == (PortState::Virq { virq }))
            .map(|p| p as u32)
    }
}

/// Set `port` pending in the domain's shared_info; returns true when the vCPU's upcall became
/// pending (it must be woken and, if unmasked, get an upcall).
pub fn set_pending(mem: &mut MachineMemory<'_>, shared: Mfn, vcpu_info: Maddr, port: u32) -> bool {
    let word = (port / 64) as u64;
    let bit = 1u64 << (port % 64);
    let base = shared.maddr();
    let pa = base.add(shinfo::EVTCHN_PENDING + word * 8);
    let ma = base.add(shinfo::EVTCHN_MASK + word * 8);
    let pending = mem.read_u64(pa).unwrap_or(0);
    if pending & bit != 0 {
        return false;
    }
    mem.write_u64(pa, pending | bit);
    if mem.read_u64(ma).unwrap_or(0) & bit != 0 {
        return false;
    }
    let sel_a = vcpu_info.add(shinfo::PENDING_SEL);
    let sel = mem.read_u64(sel_a).unwrap_or(0);
    mem.write_u64(sel_a, sel | (1 << word));
    mem.write_u8(vcpu_info.add(shinfo::UPCALL_PENDING), 1);
    true
}

/// Clear the mask bit of `port`; if it is pending, re-raise the upcall. Returns true when the
/// upcall became pending.
pub fn unmask(mem: &mut MachineMemory<'_>, shared: Mfn, vcpu_info: Maddr, port: u32) -> bool {
    let word = (port / 64) as u64;
    let bit = 1u64 << (port % 64);
    let base = shared.maddr();
    let ma = base.add(shinfo::EVTCHN_MASK + word * 8);
    let mask = mem.read_u64(ma).unwrap_or(0);
    mem.write_u64(ma, mask & !bit);
    let pending = mem.read_u64(base.add(shinfo::EVTCHN_PENDING + word * 8)).unwrap_or(0);
    if mask & bit != 0 && pending & bit != 0 {
        let sel_a = vcpu_info.add(shinfo::PENDING_SEL);
        let sel = mem.read_u64(sel_a).unwrap_or(0);
        if sel & (1 << word) == 0 {
            mem.write_u64(sel_a, sel | (1 << word));
            mem.write_u8(vcpu_info.add(shinfo::UPCALL_PENDING), 1);
            return true;
        }
    }
    false
}

/// Is an upcall pending and unmasked in this vcpu_info?
pub fn upcall_deliverable(mem: &MachineMemory<'_>, vcpu_info: Maddr) -> bool {
    mem.read_u8(vcpu_info.add(shinfo::UPCALL_PENDING)).unwrap_or(0) != 0
        && mem.read_u8(vcpu_info.add(shinfo::UPCALL_MASK)).unwrap_or(1) == 0
}

/// Is an upcall pending at all (wakes a blocked vCPU even if masked)?
pub fn upcall_pending(mem: &MachineMemory<'_>, vcpu_info: Maddr) -> bool {
    mem.read_u8(vcpu_info.add(shinfo::UPCALL_PENDING)).unwrap_or(0) != 0
}
