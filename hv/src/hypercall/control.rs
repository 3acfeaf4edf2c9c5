//! The control and platform hypercalls, and the rest of Xen 4.17's x86 PV hypercall table, as Xen
//! answers an unprivileged 64-bit PV domU (xen/include/hypercall-defs.c lists what a PV64 guest
//! can reach; the XSM dummy policy decides what a domU may do).
//!
//! What Xen's default 4.17 x86 build compiles in decides -ENOSYS against a real answer; assumed
//! here: CONFIG_PV, CONFIG_HVM (so hvm_op and dm_op exist), CONFIG_KEXEC, CONFIG_HYPFS, no
//! CONFIG_XSM_FLASK (the dummy policy: xsm_op is -ENOSYS), no CONFIG_ARGO, no CONFIG_XENOPROF,
//! no vPMU (`vpmu` off on the command line), and tmem removed (4.13).

use super::Ctx;
use crate::abi::{DomctlHead, Errno, EvtchnOpCompat, HvmParam, NmiCallback, PhysdevOpCompat, PlatformOpHead, SysctlHead, DOMID_SELF};
use crate::mm::paging::is_canonical;

use crate::abi::control::*;

// sysctl, domctl and platform_op copy their whole structure (`*Head`) before looking at any
// field: a structure that is not all readable is -EFAULT.
/// `struct xen_dm_op_buf` {handle, size} and the most buffers `do_dm_op` takes
/// (`struct dmop_args`: buf[2]).
const DM_OP_BUF_SIZE: usize = 16;
const DM_OP_MAX_BUFS: u64 = 2;

fn read_bytes(ctx: &Ctx<'_, '_>, va: u64, n: usize) -> Result<alloc::vec::Vec<u8>, Errno> {
    let mut v = alloc::vec![0u8; n];
    ctx.copy_from_guest(va, &mut v)?;
    Ok(v)
}

/// sysctl (xen/common/sysctl.c `do_sysctl`): the whole structure is copied (-EFAULT), the
/// interface version checked (-EACCES), then `xsm_sysctl(XSM_PRIV)`: -EPERM for a domU.
pub fn sysctl(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    ctx.describe(|d| *d = "sysctl".into());
    let h: SysctlHead = ctx.read_guest(a[0])?;
    let (cmd, ver) = (h.cmd, h.interface_version);
    ctx.describe(|d| *d = alloc::format!("sysctl(cmd {cmd})"));
    if ver != SYSCTL_INTERFACE_VERSION {
        ctx.annotate(|n| *n = alloc::format!("interface version {ver:#x}, not {SYSCTL_INTERFACE_VERSION:#x}"));
        return Err(Errno::EACCES);
    }
    ctx.annotate(|n| n.push_str("not the control domain"));
    Err(Errno::EPERM)
}

/// domctl (xen/common/domctl.c `do_domctl`): copy (-EFAULT), interface version (-EACCES), the
/// target domain by id (DOMID_SELF is none: -ESRCH; createdomain has none), then
/// `xsm_domctl(XSM_OTHER)`: XSM_PRIV, XSM_DM_PRIV or XSM_XS_PRIV, all -EPERM for a domU. A
/// control domain gets `scheduler_op`; the other commands are not implemented (-ENOSYS).
pub fn domctl(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    ctx.describe(|d| *d = "domctl".into());
    let h: DomctlHead = ctx.read_guest(a[0])?;
    let (cmd, ver, domain) = (h.cmd, h.interface_version, h.domain);
    ctx.describe(|d| *d = alloc::format!("domctl(cmd {cmd}, dom {domain:#x})"));
    if ver != DOMCTL_INTERFACE_VERSION {
        ctx.annotate(|n| *n = alloc::format!("interface version {ver:#x}, not {DOMCTL_INTERFACE_VERSION:#x}"));
        return Err(Errno::EACCES);
    }
    // XEN_DOMCTL_createdomain has no target; assign/deassign/test_assign_device and
    // vm_event_op accept DOMID_INVALID or DOMID_IO as "none": xsm_domctl still says -EPERM.
    use domctl::{ASSIGN_DEVICE, CREATEDOMAIN, DEASSIGN_DEVICE, TEST_ASSIGN_DEVICE, VM_EVENT_OP};
    let no_target = match cmd {
        CREATEDOMAIN => true,
        ASSIGN_DEVICE | DEASSIGN_DEVICE if domain == DOMID_IO => true,
        ASSIGN_DEVICE | DEASSIGN_DEVICE if domain == DOMID_INVALID => return Err(Errno::ESRCH),
        ASSIGN_DEVICE | DEASSIGN_DEVICE | TEST_ASSIGN_DEVICE | VM_EVENT_OP => domain == DOMID_INVALID,
        _ => false,
    };
    if !no_target && !ctx.doms.contains_key(&domain) {
        return Err(Errno::ESRCH);
    }
    // xsm_domctl (xen/include/xsm/dummy.h): every command but a few device-model and xenstore
    // ones is XSM_PRIV, and xsm_default_action lets XSM_PRIV through only for
    // is_control_domain(src); those few are XSM_DM_PRIV/XSM_XS_PRIV, which a control domain
    // passes too. So: the control domain (`privileged = true`) gets on, anyone else -EPERM.
    if !ctx.domain_ref().config.privileged {
        ctx.annotate(|n| n.push_str("not the control domain"));
        return Err(Errno::EPERM);
    }
    match cmd {
        domctl::SCHEDULER_OP => scheduler_op(ctx, a[0], h),
        _ => {
            ctx.annotate(|n| n.push_str("not implemented in xenolith (only scheduler_op is)"));
            Err(Errno::ENOSYS)
        }
    }
}

/// XEN_DOMCTL_scheduler_op for the control domain (xen/common/domctl.c: `ret =
/// sched_adjust(d, &op->u.scheduler_op); copyback = 1;`, then the whole `xen_domctl` copied
/// back whatever `ret`): `sched::domctl_scheduler_op` is `sched_adjust` + `csched_dom_cntl`.
fn scheduler_op(ctx: &mut Ctx<'_, '_>, va: u64, mut h: DomctlHead) -> Result<i64, Errno> {
    use crate::sched::{DomctlSchedulerOp, XEN_DOMCTL_SCHEDOP_GETINFO, XEN_DOMCTL_SCHEDOP_PUTINFO};
    let domain = h.domain;
    let Some(mut op) = DomctlSchedulerOp::from_bytes(&h.u) else { return Err(Errno::EFAULT) };
    let what = match op.cmd {
        XEN_DOMCTL_SCHEDOP_GETINFO => "getinfo".into(),
        XEN_DOMCTL_SCHEDOP_PUTINFO => alloc::format!("putinfo weight={} cap={}", op.weight, op.cap),
        c => alloc::format!("cmd {c}"),
    };
    ctx.describe(|d| *d = alloc::format!("domctl(scheduler_op {what}, sched {}, dom {domain})", op.sched_id));
    let r = match ctx.doms.get_mut(&domain) {
        Some(d) => crate::sched::domctl_scheduler_op(d, &mut op),
        None => Err(Errno::ESRCH),
    };
    op.write_out(&mut h.u);
    ctx.write_guest(va, &h)?;
    if r.is_ok() {
        if op.cmd == XEN_DOMCTL_SCHEDOP_PUTINFO {
            let now = ctx.now;
            if let Some(d) = ctx.doms.get_mut(&domain).filter(|d| d.credit_changes.len() < crate::domain::CREDIT_CHANGES_MAX) {
                d.credit_changes.push((now, d.config.weight, d.config.cap));
            }
        }
        let (w, c) = ctx.doms.get(&domain).map_or((0, 0), |d| (d.config.weight, d.config.cap));
        ctx.annotate(|n| *n = alloc::format!("d{domain} weight={w} cap={c}"));
    }
    r.map(|()| 0)
}

/// platform_op (xen/arch/x86/platform_hypercall.c `do_platform_op`): copy (-EFAULT), interface
/// version (-EACCES), `xsm_platform_op(XSM_PRIV)`: -EPERM.
pub fn platform_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    ctx.describe(|d| *d = "platform_op".into());
    let h: PlatformOpHead = ctx.read_guest(a[0])?;
    let (cmd, ver) = (h.cmd, h.interface_version);
    ctx.describe(|d| *d = alloc::format!("platform_op(cmd {cmd})"));
    if ver != XENPF_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    ctx.annotate(|n| n.push_str("not the hardware domain"));
    Err(Errno::EPERM)
}

/// xsm_op: with the dummy XSM policy (no FLASK), `xsm_do_xsm_op` is -ENOSYS whatever the op.
pub fn xsm_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    ctx.describe(|d| *d = alloc::format!("xsm_op({:#x})", a[0]));
    ctx.annotate(|n| n.push_str("dummy XSM policy"));
    Err(Errno::ENOSYS)
}

/// nmi_op (xen/arch/x86/pv/callback.c `do_nmi_op`): register the vCPU's NMI callback (any
/// canonical address, else -EINVAL) or drop it.
pub fn nmi_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    match a[0] as u32 as u64 {
        XENNMI_REGISTER_CALLBACK => {
            ctx.describe(|d| *d = "nmi_op(register_callback)".into());
            let addr = ctx.read_guest::<NmiCallback>(a[1])?.handler_address;
            ctx.describe(|d| *d = alloc::format!("nmi_op(register_callback, {addr:#x})"));
            if !is_canonical(addr) {
                return Err(Errno::EINVAL);
            }
            ctx.cur().callbacks.nmi = addr;
            Ok(0)
        }
        XENNMI_UNREGISTER_CALLBACK => {
            ctx.describe(|d| *d = "nmi_op(unregister_callback)".into());
            ctx.cur().callbacks.nmi = 0;
            Ok(0)
        }
        _ => {
            ctx.describe(|d| *d = alloc::format!("nmi_op({})", a[0]));
            Err(Errno::ENOSYS)
        }
    }
}

/// hvm_op (xen/arch/x86/hvm/hvm.c `do_hvm_op`) from a PV domain: the parameter ops look the
/// domain up (-ESRCH) and refuse one that is not HVM (-EINVAL); flush_tlbs is for HVM callers
/// (-EINVAL); unknown ops -ENOSYS.
pub fn hvm_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (op, arg) = (a[0], a[1]);
    match op {
        HVMOP_SET_PARAM | HVMOP_GET_PARAM => {
            let name = if op == HVMOP_SET_PARAM { "set_param" } else { "get_param" };
            ctx.describe(|d| *d = alloc::format!("hvm_op({name})"));
            let p: HvmParam = ctx.read_guest(arg)?;
            let domid = p.domid;
            if p.index >= HVM_NR_PARAMS {
                return Err(Errno::EINVAL);
            }
            if domid != DOMID_SELF && !ctx.doms.contains_key(&domid) {
                return Err(Errno::ESRCH);
            }
            ctx.annotate(|n| n.push_str("not an HVM domain"));
            Err(Errno::EINVAL)
        }
        HVMOP_FLUSH_TLBS => {
            ctx.describe(|d| *d = "hvm_op(flush_tlbs)".into());
            Err(Errno::EINVAL)
        }
        _ => {
            ctx.describe(|d| *d = alloc::format!("hvm_op({op})"));
            Err(Errno::ENOSYS)
        }
    }
}

/// kexec_op: `xsm_kexec(XSM_PRIV)` first: -EPERM.
pub fn kexec_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    ctx.describe(|d| *d = alloc::format!("kexec_op({})", a[0]));
    Err(Errno::EPERM)
}

/// xenpmu_op (xen/arch/x86/cpu/vpmu.c `do_xenpmu_op`): without `vpmu` on Xen's command line,
/// -EOPNOTSUPP.
pub fn xenpmu_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    ctx.describe(|d| *d = alloc::format!("xenpmu_op({})", a[0]));
    Err(Errno::EOPNOTSUPP)
}

/// dm_op (xen/arch/x86/hvm/dm.c `do_dm_op`): at most two buffers (-E2BIG), copied (-EFAULT);
/// the target must be another existing domain (`rcu_lock_remote_domain_by_id`: -ESRCH, -EPERM
/// for oneself) and an HVM one (-EINVAL).
pub fn dm_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (domid, nr_bufs, bufs) = (a[0] as u16, a[1] as u32 as u64, a[2]);
    ctx.describe(|d| *d = alloc::format!("dm_op(dom {domid:#x}, {nr_bufs} bufs)"));
    if nr_bufs > DM_OP_MAX_BUFS {
        return Err(Errno::E2BIG);
    }
    read_bytes(ctx, bufs, nr_bufs as usize * DM_OP_BUF_SIZE)?;
    if !ctx.doms.contains_key(&domid) {
        return Err(Errno::ESRCH);
    }
    if domid == ctx.dom {
        return Err(Errno::EPERM);
    }
    Err(Errno::EINVAL)
}

/// hypfs_op: `xsm_hypfs_op(XSM_PRIV)` first: -EPERM.
pub fn hypfs_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    ctx.describe(|d| *d = alloc::format!("hypfs_op({})", a[0]));
    Err(Errno::EPERM)
}

/// mca (`__HYPERVISOR_arch_0`, xen/arch/x86/cpu/mcheck/mce.c `do_mca`): `xsm_do_mca(XSM_PRIV)`
/// first: -EPERM.
pub fn mca(ctx: &mut Ctx<'_, '_>, _a: [u64; 5]) -> Result<i64, Errno> {
    ctx.describe(|d| *d = "mca".into());
    Err(Errno::EPERM)
}

/// paging_domctl_cont (`__HYPERVISOR_arch_1`, xen/arch/x86/mm/paging.c): copy the domctl
/// (-EFAULT); anything but a shadow_op of this interface version is -EOPNOTSUPP; then the
/// domain (-ESRCH) and `xsm_domctl` (-EPERM).
pub fn paging_domctl_cont(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    ctx.describe(|d| *d = "paging_domctl_cont".into());
    let h: DomctlHead = ctx.read_guest(a[0])?;
    let (cmd, ver, domain) = (h.cmd, h.interface_version, h.domain);
    if ver != DOMCTL_INTERFACE_VERSION || cmd != domctl::SHADOW_OP {
        return Err(Errno::EOPNOTSUPP);
    }
    if !ctx.doms.contains_key(&domain) {
        return Err(Errno::ESRCH);
    }
    Err(Errno::EPERM)
}

/// event_channel_op_compat (xen/arch/x86/compat.c `do_event_channel_op_compat`): the whole
/// `struct evtchn_op` is copied (-EFAULT), then bind_interdomain..unmask go to event_channel_op
/// with a pointer to its `u`; any other command is -ENOSYS.
pub fn event_channel_op_compat(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    use crate::abi::hypercall::evtchn_op as e;
    ctx.describe(|d| *d = "event_channel_op_compat".into());
    let op: EvtchnOpCompat = ctx.read_guest(a[0])?;
    let cmd = op.cmd as u64;
    if !(e::BIND_INTERDOMAIN..=e::UNMASK).contains(&cmd) {
        ctx.describe(|d| *d = alloc::format!("event_channel_op_compat({cmd})"));
        return Err(Errno::ENOSYS);
    }
    let u = a[0].wrapping_add(core::mem::offset_of!(EvtchnOpCompat, u) as u64);
    let r = super::event::event_channel_op(ctx, [cmd, u, 0, 0, 0]);
    if ctx.tracing {
        ctx.desc = alloc::format!("event_channel_op_compat: {}", ctx.desc);
    }
    r
}

/// physdev_op_compat (xen/arch/x86/compat.c `do_physdev_op_compat`): the whole `struct
/// physdev_op` is copied (-EFAULT), then physdev_op runs with its command and a pointer to `u`.
pub fn physdev_op_compat(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    ctx.describe(|d| *d = "physdev_op_compat".into());
    let op: PhysdevOpCompat = ctx.read_guest(a[0])?;
    let u = a[0].wrapping_add(core::mem::offset_of!(PhysdevOpCompat, u) as u64);
    let r = super::physdev::physdev_op(ctx, [op.cmd as u64, u, 0, 0, 0]);
    if ctx.tracing {
        ctx.desc = alloc::format!("physdev_op_compat: {}", ctx.desc);
    }
    r
}
