//! Scheduling: which vCPU runs on which physical CPU, and for how long.
//!
//! [`credit`] is Xen's credit scheduler (credit1, `xen/common/sched/credit.c`), on the virtual
//! clock. The hypervisor's loop (`hv.rs`, `Hypervisor::run_until`) asks it for decisions and
//! tells it about wake-ups, yields and the passing of time.

pub mod credit;

pub use credit::{Credit, Pri, RunSpan, UnitId};

use crate::abi::Errno;
use crate::domain::Domain;

/// `XEN_DOMCTL_scheduler_op` (xen-public/domctl.h).
pub const XEN_DOMCTL_SCHEDULER_OP: u32 = 16;
/// `XEN_SCHEDULER_CREDIT` (xen-public/domctl.h).
pub const XEN_SCHEDULER_CREDIT: u32 = 5;
/// `XEN_DOMCTL_SCHEDOP_*` (xen-public/domctl.h).
pub const XEN_DOMCTL_SCHEDOP_PUTINFO: u32 = 0;
pub const XEN_DOMCTL_SCHEDOP_GETINFO: u32 = 1;
pub const XEN_DOMCTL_SCHEDOP_PUTVCPUINFO: u32 = 2;
pub const XEN_DOMCTL_SCHEDOP_GETVCPUINFO: u32 = 3;

/// `struct xen_domctl_scheduler_op` (xen-public/domctl.h) as the credit scheduler reads it: the
/// union's first member is `struct xen_domctl_sched_credit { uint16_t weight, cap; }`; the
/// rest of the 16-byte union (its largest member holds a 64-bit guest handle) is not used.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct DomctlSchedulerOp {
    pub sched_id: u32,
    pub cmd: u32,
    pub weight: u16,
    pub cap: u16,
    pub _rest0: u32,
    pub _rest1: u64,
}
const _: () = assert!(core::mem::size_of::<DomctlSchedulerOp>() == 24);

impl DomctlSchedulerOp {
    /// Read it from the bytes of `xen_domctl.u` (little-endian); None when too short.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b: &[u8; 24] = b.get(..24)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(Self {
            sched_id: u32_at(0),
            cmd: u32_at(4),
            weight: u16_at(8),
            cap: u16_at(10),
            _rest0: u32_at(12),
            _rest1: u64::from_le_bytes(b[16..24].try_into().ok()?),
        })
    }
    /// Write the OUT fields (weight and cap) back into the bytes of `xen_domctl.u`.
    pub fn write_out(&self, b: &mut [u8]) {
        if let Some(w) = b.get_mut(8..12) {
            w[..2].copy_from_slice(&self.weight.to_le_bytes());
            w[2..].copy_from_slice(&self.cap.to_le_bytes());
        }
    }
}
const _: () = assert!(core::mem::offset_of!(DomctlSchedulerOp, weight) == 8);
const _: () = assert!(core::mem::offset_of!(DomctlSchedulerOp, cap) == 10);

/// `XEN_DOMCTL_scheduler_op` on domain `d`, for the domctl handler (`hypercall/control.rs`),
/// which has already checked the interface version and that the caller may control `d`
/// (-EPERM for an unprivileged caller, as Xen's XSM dummy policy answers).
///
/// As Xen's `sched_adjust` (sched/core.c): a `sched_id` other than the running scheduler's is
/// -EINVAL, as is any command but put/get(vcpu)info; then `csched_dom_cntl` (sched/credit.c):
/// getinfo returns weight and cap; putinfo sets the weight unless it is 0 and the cap unless it
/// is 0xffff (no range checks: those are libxl's); the per-vCPU commands are -EINVAL (credit
/// has no per-vCPU parameters). New values take effect at the next accounting, within 30 ms.
pub fn domctl_scheduler_op(d: &mut Domain, op: &mut DomctlSchedulerOp) -> Result<(), Errno> {
    if op.sched_id != XEN_SCHEDULER_CREDIT {
        return Err(Errno::EINVAL);
    }
    match op.cmd {
        XEN_DOMCTL_SCHEDOP_GETINFO => {
            op.weight = d.config.weight;
            op.cap = d.config.cap;
            Ok(())
        }
        XEN_DOMCTL_SCHEDOP_PUTINFO => {
            if op.weight != 0 {
                d.config.weight = op.weight;
            }
            if op.cap != u16::MAX {
                d.config.cap = op.cap;
            }
            Ok(())
        }
        _ => Err(Errno::EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::World;

    fn op(cmd: u32, weight: u16, cap: u16) -> DomctlSchedulerOp {
        DomctlSchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd, weight, cap, ..Default::default() }
    }

    #[test]
    fn scheduler_op_get_put_as_csched_dom_cntl() {
        let mut w = World::new();
        let id = w.create("d");
        let d = w.hv.doms.get_mut(&id).unwrap();
        let mut g = op(XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0);
        assert_eq!(domctl_scheduler_op(d, &mut g), Ok(()));
        assert_eq!((g.weight, g.cap), (256, 0));
        // Weight 0 and cap 0xffff leave the value alone; no range checks in the hypervisor.
        assert_eq!(domctl_scheduler_op(d, &mut op(XEN_DOMCTL_SCHEDOP_PUTINFO, 0, 25)), Ok(()));
        assert_eq!((d.config.weight, d.config.cap), (256, 25));
        assert_eq!(domctl_scheduler_op(d, &mut op(XEN_DOMCTL_SCHEDOP_PUTINFO, 64, u16::MAX)), Ok(()));
        assert_eq!((d.config.weight, d.config.cap), (64, 25));
        for bad in [op(XEN_DOMCTL_SCHEDOP_PUTVCPUINFO, 1, 1), op(XEN_DOMCTL_SCHEDOP_GETVCPUINFO, 1, 1), op(7, 1, 1)] {
            assert_eq!(domctl_scheduler_op(d, &mut bad.clone()), Err(Errno::EINVAL));
        }
        let mut other = op(XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0);
        other.sched_id = 6; // XEN_SCHEDULER_CREDIT2
        assert_eq!(domctl_scheduler_op(d, &mut other), Err(Errno::EINVAL));
        let mut bytes = [0u8; 24];
        bytes[0] = 5;
        bytes[4] = 1;
        let mut g = DomctlSchedulerOp::from_bytes(&bytes).unwrap();
        domctl_scheduler_op(d, &mut g).unwrap();
        g.write_out(&mut bytes);
        assert_eq!(&bytes[8..12], &[64, 0, 25, 0]);
        assert_eq!(DomctlSchedulerOp::from_bytes(&bytes[..23]), None);
    }
}
