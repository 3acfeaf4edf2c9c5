//! event_channel_op: ports, sends, status, masks.

use super::Ctx;
use crate::abi::hypercall::{evtchn_op as op, virq};
use crate::abi::{evtchn_stat as stat, Errno, EvtchnStatus, DOMID_SELF};
use crate::evtchn::{self, Backend, PortState};
use crate::DomId;

fn op_name(cmd: u64) -> &'static str {
    match cmd {
        op::BIND_INTERDOMAIN => "bind_interdomain",
        op::BIND_VIRQ => "bind_virq",
        op::CLOSE => "close",
        op::SEND => "send",
        op::STATUS => "status",
        op::ALLOC_UNBOUND => "alloc_unbound",
        op::BIND_IPI => "bind_ipi",
        op::BIND_VCPU => "bind_vcpu",
        op::UNMASK => "unmask",
        _ => "",
    }
}

/// Mark `port` of domain `dom` pending; record a wake-up when its upcall became pending.
pub fn notify(ctx: &mut Ctx<'_, '_>, dom: DomId, port: u32) {
    let Some(d) = ctx.doms.get(&dom) else { return };
    let vcpu = d.evtchn.get(port).map(|p| p.vcpu).unwrap_or(0) as usize;
    let Some(v) = d.vcpus.get(vcpu) else { return };
    if evtchn::set_pending(&mut ctx.mem, d.shared_info, v.vcpu_info, port) {
        ctx.fx.wake.push((dom, vcpu as u32));
    }
}

pub fn event_channel_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, arg) = (a[0], a[1]);
    let name = op_name(cmd);
    ctx.describe(|d| *d = if name.is_empty() { alloc::format!("event_channel_op({cmd})") } else { alloc::format!("event_channel_op({name})") });
    match cmd {
        op::SEND => {
            let port: u32 = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(send, port {port})"));
            let st = ctx.domain_ref().evtchn.get(port).map(|p| p.state).ok_or(Errno::EINVAL)?;
            match st {
                PortState::Free | PortState::Virq { .. } => return Err(Errno::EINVAL),
                PortState::Unbound { .. } => {}
                PortState::Backend(Backend::Console) => ctx.fx.console_kick = true,
                PortState::Backend(Backend::Store) => ctx.fx.store_kick = true,
                PortState::Ipi => notify(ctx, ctx.dom, port),
                PortState::Interdomain { remote, remote_port } => notify(ctx, remote, remote_port),
            }
            Ok(0)
        }
        op::UNMASK => {
            let port: u32 = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(unmask, port {port})"));
            let d = ctx.domain_ref();
            let p = d.evtchn.get(port).ok_or(Errno::EINVAL)?;
            let vcpu = p.vcpu as usize;
            let (shared, vi) = (d.shared_info, d.vcpus.get(vcpu).map(|v| v.vcpu_info).ok_or(Errno::EINVAL)?);
            if evtchn::unmask(&mut ctx.mem, shared, vi, port) {
                ctx.fx.wake.push((ctx.dom, vcpu as u32));
            }
            Ok(0)
        }
        op::STATUS => {
            let mut s: EvtchnStatus = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(status, port {})", s.port));
            if s.dom != DOMID_SELF && s.dom != ctx.dom {
                return Err(Errno::EPERM);
            }
            let p = *ctx.domain_ref().evtchn.get(s.port).ok_or(Errno::EINVAL)?;
            s.vcpu = p.vcpu;
            (s.status, s.u0, s.u1) = match p.state {
                PortState::Free => (stat::CLOSED, 0, 0),
                PortState::Unbound { remote } => (stat::UNBOUND, remote as u32, 0),
                PortState::Interdomain { remote, remote_port } => (stat::INTERDOMAIN, remote as u32, remote_port),
                PortState::Virq { virq } => (stat::VIRQ, virq, 0),
                PortState::Ipi => (stat::IPI, 0, 0),
                // The rings' backends live in the hypervisor; Xen would show dom0's backend here.
                PortState::Backend(_) => (stat::INTERDOMAIN, 0, 0),
            };
            ctx.write_guest(arg, &s)?;
            Ok(0)
        }
        op::ALLOC_UNBOUND => {
            let dom: u16 = ctx.read_guest(arg)?;
            let remote: u16 = ctx.read_guest(arg.wrapping_add(2))?;
            if dom != DOMID_SELF && dom != ctx.dom {
                return Err(Errno::EPERM);
            }
            let remote = if remote == DOMID_SELF { ctx.dom } else { remote };
            if remote != 0 && !ctx.doms.contains_key(&remote) {
                return Err(Errno::ESRCH);
            }
            let port = ctx.domain().evtchn.alloc(PortState::Unbound { remote }).ok_or(Errno::ENOSPC)?;
            ctx.write_guest(arg.wrapping_add(4), &port)?;
            ctx.annotate(|n| *n = alloc::format!("port {port}"));
            Ok(0)
        }
        op::BIND_INTERDOMAIN => {
            let remote: u16 = ctx.read_guest(arg)?;
            let rport: u32 = ctx.read_guest(arg.wrapping_add(4))?;
            let me = ctx.dom;
            let ok = ctx
                .doms
                .get(&remote)
                .and_then(|d| d.evtchn.get(rport))
                .is_some_and(|p| p.state == PortState::Unbound { remote: me });
            if !ok {
                return Err(Errno::EINVAL);
            }
            let lport = ctx
                .domain()
                .evtchn
                .alloc(PortState::Interdomain { remote, remote_port: rport })
                .ok_or(Errno::ENOSPC)?;
            if let Some(p) = ctx.doms.get_mut(&remote).and_then(|d| d.evtchn.get_mut(rport)) {
                p.state = PortState::Interdomain { remote: me, remote_port: lport };
            }
            ctx.write_guest(arg.wrapping_add(8), &lport)?;
            ctx.annotate(|n| *n = alloc::format!("port {lport} <-> d{remote} port {rport}"));
            Ok(0)
        }
        op::BIND_VIRQ => {
            let v: u32 = ctx.read_guest(arg)?;
            let vcpu: u32 = ctx.read_guest(arg.wrapping_add(4))?;
            if v >= virq::NR {
                return Err(Errno::EINVAL);
            }
            if vcpu as usize >= ctx.domain_ref().vcpus.len() {
                return Err(Errno::ENOENT);
            }
            if ctx.domain_ref().evtchn.virq_port(v).is_some() {
                return Err(Errno::EEXIST);
            }
            let port = ctx.domain().evtchn.alloc(PortState::Virq { virq: v }).ok_or(Errno::ENOSPC)?;
            if let Some(p) = ctx.domain().evtchn.get_mut(port) {
                p.vcpu = vcpu;
            }
            ctx.write_guest(arg.wrapping_add(8), &port)?;
            ctx.annotate(|n| *n = alloc::format!("virq {v} -> port {port}"));
            Ok(0)
        }
        op::BIND_IPI => {
            let vcpu: u32 = ctx.read_guest(arg)?;
            if vcpu as usize >= ctx.domain_ref().vcpus.len() {
                return Err(Errno::ENOENT);
            }
            let port = ctx.domain().evtchn.alloc(PortState::Ipi).ok_or(Errno::ENOSPC)?;
            if let Some(p) = ctx.domain().evtchn.get_mut(port) {
                p.vcpu = vcpu;
            }
            ctx.write_guest(arg.wrapping_add(4), &port)?;
            Ok(0)
        }
        op::CLOSE => {
            let port: u32 = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("event_channel_op(close, port {port})"));
            let me = ctx.dom;
            let st = ctx.domain_ref().evtchn.get(port).map(|p| p.state).ok_or(Errno::EINVAL)?;
            match st {
                PortState::Free => return Err(Errno::EINVAL),
                PortState::Backend(_) => return Err(Errno::EINVAL),
                PortState::Interdomain { remote, remote_port } => {
                    if let Some(p) = ctx.doms.get_mut(&remote).and_then(|d| d.evtchn.get_mut(remote_port)) {
                        p.state = PortState::Unbound { remote: me };
                    }
                }
                _ => {}
            }
            if let Some(p) = ctx.domain().evtchn.get_mut(port) {
                p.state = PortState::Free;
            }
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}
