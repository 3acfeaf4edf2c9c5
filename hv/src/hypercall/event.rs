//! event_channel_op: ports, sends, status, masks — Xen 4.17's `do_event_channel_op`
//! (common/event_channel.c, event_fifo.c), with its checks in its order and its errnos.
//!
//! A domU is not privileged: where Xen asks XSM (`XSM_TARGET`) about another domain, the dummy
//! policy refuses with -EPERM, after the lookups that come first in Xen (-ESRCH for a domain that
//! does not exist, -ENOSPC when that domain has no free port).

use super::Ctx;
use crate::abi::hypercall::{evtchn_op as op, virq};
use crate::abi::{
    evtchn_fifo, evtchn_stat as stat, Errno, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnExpandArray, EvtchnInitControl, EvtchnPort, EvtchnReset, EvtchnSetPriority, EvtchnStatus, DOMID_SELF,
};
use crate::evtchn::{self, Backend, PortState};
use crate::mm::frames::{Owner, PageType};
use crate::mm::{Mfn, PAGE_SIZE};
use crate::DomId;

fn op_name(cmd: u64) -> &'static str {
    match cmd {
        op::BIND_INTERDOMAIN => "bind_interdomain",
        op::BIND_VIRQ => "bind_virq",
        op::BIND_PIRQ => "bind_pirq",
        op::CLOSE => "close",
        op::SEND => "send",
        op::STATUS => "status",
        op::ALLOC_UNBOUND => "alloc_unbound",
        op::BIND_IPI => "bind_ipi",
        op::BIND_VCPU => "bind_vcpu",
        op::UNMASK => "unmask",
        op::RESET => "reset",
        op::INIT_CONTROL => "init_control",
        op::EXPAND_ARRAY => "expand_array",
        op::SET_PRIORITY => "set_priority",
        _ => "",
    }
}

/// A domain id as traces show it.
fn dom_name(d: u16) -> alloc::string::String {
    if d == DOMID_SELF {
        "self".into()
    } else {
        alloc::format!("d{d}")
    }
}

/// Mark `port` of domain `dom` pending; record the vCPUs to wake.
pub fn notify(ctx: &mut Ctx<'_, '_>, dom: DomId, port: u32) {
    let Some(d) = ctx.doms.get(&dom) else { return };
    for v in evtchn::raise(&mut ctx.mem, d, port) {
        ctx.fx.wake.push((dom, v));
    }
}

/// Xen's `rcu_lock_domain_by_any_id`: DOMID_SELF or an existing domain, else -ESRCH.
fn lookup(ctx: &Ctx<'_, '_>, dom: u16) -> Result<DomId, Errno> {
    let id = if dom == DOMID_SELF { ctx.dom } else { dom };
    if ctx.doms.contains_key(&id) {
        Ok(id)
    } else {
        Err(Errno::ESRCH)
    }
}

/// Free `port` of `dom` (Xen's `evtchn_free`): clear its pending bit, notify vCPU 0 again.
fn free_port(ctx: &mut Ctx<'_, '_>, dom: DomId, port: u32) {
    let Some(d) = ctx.doms.get_mut(&dom) else { return };
    let shared = d.shared_info;
    if let Some(p) = d.evtchn.get_mut(port) {
        p.state = PortState::Free;
        p.vcpu = 0;
    }
    evtchn::clear_pending(&mut ctx.mem, shared, port);
}

/// Close `port` of `dom` (Xen's `evtchn_close`): the remote end of an interdomain channel
/// becomes unbound, waiting for this domain again.
pub fn close(ctx: &mut Ctx<'_, '_>, dom: DomId, port: u32) -> Result<(), Errno> {
    let st = ctx.doms.get(&dom).and_then(|d| d.evtchn.get(port)).map(|p| p.state).ok_or(Errno::EINVAL)?;
    match st {
        PortState::Free | PortState::Reserved => return Err(Errno::EINVAL),
        PortState::Interdomain { remote, remote_port } => {
            if let Some(p) = ctx.doms.get_mut(&remote).and_then(|d| d.evtchn.get_mut(remote_port)) {
                p.state = PortState::Unbound { remote: dom };
            }
        }
        PortState::Backend(b) => {
            // The hypervisor's backend is dom0's end: it stops being notified.
            if let Some(d) = ctx.doms.get_mut(&dom) {
                match b {
                    Backend::Console if d.console.port == port => d.console.port = 0,
                    Backend::Store if d.store_port == port => d.store_port = 0,
                    _ => {}
                }
            }
        }
        PortState::Unbound { .. } | PortState::Virq { .. } | PortState::Ipi => {}
    }
    free_port(ctx, dom, port);
    Ok(())
}

pub fn event_channel_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, arg) = (a[0], a[1]);
    let name = op_name(cmd);
    ctx.describe(|d| {
        *d = if name.is_empty() { alloc::format!("event_channel_op({cmd})") } else { alloc::format!("event_channel_op({name})") }
    });
    match cmd {
        op::ALLOC_UNBOUND => {
            let mut s: EvtchnAllocUnbound = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(alloc_unbound, {} for {})", dom_name(s.dom), dom_name(s.remote_dom)));
            let d = lookup(ctx, s.dom)?;
            let remote = if s.remote_dom == DOMID_SELF { ctx.dom } else { s.remote_dom };
            // Xen takes the port first, then asks XSM (and frees the port again on refusal).
            let dm = ctx.doms.get_mut(&d).ok_or(Errno::ESRCH)?;
            let port = dm.evtchn.alloc(PortState::Free)?;
            if d != ctx.dom {
                return Err(Errno::EPERM);
            }
            if let Some(p) = ctx.domain().evtchn.get_mut(port) {
                p.state = PortState::Unbound { remote };
            }
            s.port = port;
            // On a fault the port stays allocated, as in Xen ("cleaning up here would be a mess").
            ctx.write_guest(arg, &s)?;
            ctx.annotate(|n| *n = alloc::format!("port {port}"));
            Ok(0)
        }
        op::BIND_INTERDOMAIN => {
            let mut s: EvtchnBindInterdomain = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(bind_interdomain, {} port {})", dom_name(s.remote_dom), s.remote_port));
            let rd = lookup(ctx, s.remote_dom)?;
            let me = ctx.dom;
            let lport = ctx.domain().evtchn.alloc(PortState::Free)?;
            let rport = s.remote_port;
            let ok = ctx.doms.get(&rd).and_then(|d| d.evtchn.get(rport)).is_some_and(|p| p.state == PortState::Unbound { remote: me });
            if !ok {
                return Err(Errno::EINVAL);
            }
            if let Some(p) = ctx.domain().evtchn.get_mut(lport) {
                *p = evtchn::Port { state: PortState::Interdomain { remote: rd, remote_port: rport }, vcpu: 0 };
            }
            if let Some(p) = ctx.doms.get_mut(&rd).and_then(|d| d.evtchn.get_mut(rport)) {
                p.state = PortState::Interdomain { remote: me, remote_port: lport };
            }
            // Notifications sent to the unbound end were dropped: Xen conservatively raises
            // the new local port.
            notify(ctx, me, lport);
            s.local_port = lport;
            ctx.write_guest(arg, &s)?;
            ctx.annotate(|n| *n = alloc::format!("port {lport} <-> d{rd} port {rport}"));
            Ok(0)
        }
        op::BIND_VIRQ => {
            let mut s: EvtchnBindVirq = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(bind_virq, virq {} vcpu {})", s.virq, s.vcpu));
            // Xen reads both as int: a "negative" virq is out of range too.
            if s.virq >= virq::NR {
                return Err(Errno::EINVAL);
            }
            if evtchn::virq_is_global(s.virq) && s.vcpu != 0 {
                return Err(Errno::EINVAL);
            }
            if s.vcpu as usize >= ctx.domain_ref().vcpus.len() {
                return Err(Errno::ENOENT);
            }
            if ctx.domain_ref().evtchn.virq_port(s.virq, s.vcpu).is_some() {
                return Err(Errno::EEXIST);
            }
            let port = ctx.domain().evtchn.alloc(PortState::Virq { virq: s.virq, vcpu: s.vcpu })?;
            if let Some(p) = ctx.domain().evtchn.get_mut(port) {
                p.vcpu = s.vcpu;
            }
            s.port = port;
            ctx.write_guest(arg, &s)?;
            ctx.annotate(|n| *n = alloc::format!("port {port}"));
            Ok(0)
        }
        op::BIND_IPI => {
            let mut s: EvtchnBindIpi = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(bind_ipi, vcpu {})", s.vcpu));
            if s.vcpu as usize >= ctx.domain_ref().vcpus.len() {
                return Err(Errno::ENOENT);
            }
            let port = ctx.domain().evtchn.alloc(PortState::Ipi)?;
            if let Some(p) = ctx.domain().evtchn.get_mut(port) {
                p.vcpu = s.vcpu;
            }
            s.port = port;
            ctx.write_guest(arg, &s)?;
            ctx.annotate(|n| *n = alloc::format!("port {port}"));
            Ok(0)
        }
        op::CLOSE => {
            let s: EvtchnPort = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(close, port {})", s.port));
            close(ctx, ctx.dom, s.port)?;
            Ok(0)
        }
        op::SEND => {
            let s: EvtchnPort = ctx.read_guest(arg)?;
            let port = s.port;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(send, port {port})"));
            let st = ctx.domain_ref().evtchn.get(port).map(|p| p.state).ok_or(Errno::EINVAL)?;
            match st {
                PortState::Free | PortState::Reserved | PortState::Virq { .. } => return Err(Errno::EINVAL),
                // Silently dropped.
                PortState::Unbound { .. } => {}
                PortState::Backend(Backend::Console) => ctx.fx.console_kick = true,
                PortState::Backend(Backend::Store) => ctx.fx.store_kick = true,
                PortState::Ipi => notify(ctx, ctx.dom, port),
                PortState::Interdomain { remote, remote_port } => {
                    notify(ctx, remote, remote_port);
                    ctx.annotate(|n| *n = alloc::format!("-> d{remote} port {remote_port}"));
                }
            }
            Ok(0)
        }
        op::STATUS => {
            let mut s: EvtchnStatus = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(status, {} port {})", dom_name(s.dom), s.port));
            let d = lookup(ctx, s.dom)?;
            let p = *ctx.doms.get(&d).and_then(|d| d.evtchn.get(s.port)).ok_or(Errno::EINVAL)?;
            if d != ctx.dom {
                return Err(Errno::EPERM);
            }
            s.vcpu = p.vcpu;
            (s.status, s.u0, s.u1) = match p.state {
                PortState::Free | PortState::Reserved => (stat::CLOSED, 0, 0),
                PortState::Unbound { remote } => (stat::UNBOUND, remote as u32, 0),
                PortState::Interdomain { remote, remote_port } => (stat::INTERDOMAIN, remote as u32, remote_port),
                PortState::Virq { virq, .. } => (stat::VIRQ, virq, 0),
                PortState::Ipi => (stat::IPI, 0, 0),
                // The rings' backends live in the hypervisor; Xen would show dom0's backend here.
                PortState::Backend(_) => (stat::INTERDOMAIN, 0, 0),
            };
            ctx.write_guest(arg, &s)?;
            let st = s.status;
            ctx.annotate(|n| *n = alloc::format!("status {st}"));
            Ok(0)
        }
        op::BIND_VCPU => {
            let s: EvtchnBindVcpu = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(bind_vcpu, port {} vcpu {})", s.port, s.vcpu));
            if s.vcpu as usize >= ctx.domain_ref().vcpus.len() {
                return Err(Errno::ENOENT);
            }
            let p = ctx.domain().evtchn.get_mut(s.port).ok_or(Errno::EINVAL)?;
            match p.state {
                PortState::Virq { virq, .. } if evtchn::virq_is_global(virq) => p.vcpu = s.vcpu,
                PortState::Unbound { .. } | PortState::Interdomain { .. } | PortState::Backend(_) => p.vcpu = s.vcpu,
                _ => return Err(Errno::EINVAL),
            }
            Ok(0)
        }
        op::UNMASK => {
            let s: EvtchnPort = ctx.read_guest(arg)?;
            let port = s.port;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(unmask, port {port})"));
            let d = ctx.domain_ref();
            let p = d.evtchn.get(port).ok_or(Errno::EINVAL)?;
            let vcpu = p.vcpu as usize;
            let (shared, vi) = (d.shared_info, d.vcpus.get(vcpu).map(|v| v.vcpu_info).ok_or(Errno::EINVAL)?);
            if evtchn::unmask(&mut ctx.mem, shared, vi, port) {
                ctx.fx.wake.push((ctx.dom, vcpu as u32));
                ctx.annotate(|n| *n = alloc::format!("upcall pending on v{vcpu}"));
            }
            Ok(0)
        }
        op::RESET => {
            let s: EvtchnReset = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(reset, {})", dom_name(s.dom)));
            let d = lookup(ctx, s.dom)?;
            if d != ctx.dom {
                return Err(Errno::EPERM);
            }
            let n = ctx.domain_ref().evtchn.ports.len() as u32;
            let mut closed = 0;
            for port in 1..n {
                if close(ctx, d, port).is_ok() {
                    closed += 1;
                }
            }
            ctx.annotate(|n| *n = alloc::format!("{closed} port(s) closed"));
            Ok(0)
        }
        op::INIT_CONTROL => {
            let s: EvtchnInitControl = ctx.read_guest(arg)?;
            ctx.describe(|d| {
                *d = alloc::format!("event_channel_op(init_control, gfn {:#x} offset {:#x} vcpu {})", s.control_gfn, s.offset, s.vcpu)
            });
            if s.vcpu as usize >= ctx.domain_ref().vcpus.len() {
                return Err(Errno::ENOENT);
            }
            if s.offset as u64 > PAGE_SIZE - evtchn_fifo::CONTROL_BLOCK_SIZE {
                ctx.annotate(|n| *n = "control block crosses a page".into());
                return Err(Errno::EINVAL);
            }
            if s.offset & 7 != 0 {
                ctx.annotate(|n| *n = "offset not 8-byte aligned".into());
                return Err(Errno::EINVAL);
            }
            // Xen's map_guest_page: for a PV guest the gfn is a frame of its own that can take
            // a writable type (not a page table).
            let me = ctx.dom;
            let ok = (s.control_gfn < ctx.frames.len())
                .then_some(Mfn(s.control_gfn))
                .and_then(|m| ctx.frames.get(m))
                .is_some_and(|f| f.owner == Owner::Dom(me) && f.ty == PageType::None);
            if !ok {
                ctx.annotate(|n| *n = "control_gfn is not a writable frame of this domain".into());
                return Err(Errno::EINVAL);
            }
            // The FIFO ABI itself is not implemented: refuse valid arguments, so the guest keeps
            // the 2-level ABI (Linux falls back on any error).
            ctx.annotate(|n| *n = "FIFO ABI not implemented; 2-level ABI stays".into());
            Err(Errno::ENOSYS)
        }
        op::EXPAND_ARRAY => {
            let s: EvtchnExpandArray = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(expand_array, gfn {:#x})", s.array_gfn));
            // Only a domain using the FIFO ABI has an event array.
            ctx.annotate(|n| *n = "2-level ABI".into());
            Err(Errno::EOPNOTSUPP)
        }
        op::SET_PRIORITY => {
            let s: EvtchnSetPriority = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(set_priority, port {} priority {})", s.port, s.priority));
            ctx.domain_ref().evtchn.get(s.port).ok_or(Errno::EINVAL)?;
            // The 2-level ABI has no priorities (no set_priority port op).
            Err(Errno::ENOSYS)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// Ports of `dom` polled by a `sched_op(poll)`: is any of them pending (and usable)?
pub fn any_pending(ctx: &Ctx<'_, '_>, ports: &[u32]) -> bool {
    let d = ctx.domain_ref();
    ports.iter().any(|&p| d.evtchn.get(p).is_some_and(|e| e.state.usable()) && evtchn::is_pending(&ctx.mem, d.shared_info, p))
}

/// When domain `dead` goes away, every channel to it in other domains becomes unbound (Xen's
/// `evtchn_destroy` closes the dead domain's ends).
pub fn unbind_peers(doms: &mut alloc::collections::BTreeMap<DomId, crate::domain::Domain>, dead: DomId) {
    for d in doms.values_mut().filter(|d| d.id != dead) {
        for p in d.evtchn.ports.iter_mut() {
            if let PortState::Interdomain { remote, .. } = p.state {
                if remote == dead {
                    p.state = PortState::Unbound { remote: dead };
                }
            }
        }
    }
}
