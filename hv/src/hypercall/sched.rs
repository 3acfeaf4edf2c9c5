//! sched_op and set_timer_op.

use alloc::vec::Vec;

use super::Ctx;
use crate::abi::{hypercall::sched_op as op, Errno, SchedPoll, SchedShutdown, ShutdownReason};
use crate::domain::Poll;
use crate::mm::paging::{in_xen_range, is_canonical};

/// The legacy sched_op (hypercall 6), still there for 64-bit PV guests: yield, block, and
/// shutdown with the reason in `arg` itself (xen-public/sched.h, "Versions of Xen prior to
/// 3.0.2 provide only the following legacy version"); anything else -ENOSYS.
pub fn sched_op_compat(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, arg) = (a[0], a[1]);
    match cmd {
        op::YIELD => {
            ctx.describe(|d| *d = "sched_op_compat(yield)".into());
            ctx.fx.yield_ = true;
            Ok(0)
        }
        op::BLOCK => {
            ctx.describe(|d| *d = "sched_op_compat(block)".into());
            ctx.fx.block = true;
            Ok(0)
        }
        op::SHUTDOWN => {
            // Xen passes (u8)arg to domain_shutdown.
            let reason = ShutdownReason::from_raw(arg as u8 as u32).ok_or(Errno::EINVAL);
            ctx.describe(|d| {
                *d = match reason {
                    Ok(r) => alloc::format!("sched_op_compat(shutdown, {})", r.name()),
                    Err(_) => alloc::format!("sched_op_compat(shutdown, {arg})"),
                }
            });
            ctx.fx.shutdown = Some(reason?);
            Ok(0)
        }
        _ => {
            ctx.describe(|d| *d = alloc::format!("sched_op_compat({cmd})"));
            Err(Errno::ENOSYS)
        }
    }
}

pub fn sched_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, arg) = (a[0], a[1]);
    match cmd {
        op::YIELD => {
            ctx.describe(|d| *d = "sched_op(yield)".into());
            ctx.fx.yield_ = true;
            Ok(0)
        }
        op::BLOCK => {
            ctx.describe(|d| *d = "sched_op(block)".into());
            ctx.fx.block = true;
            Ok(0)
        }
        op::SHUTDOWN => {
            ctx.describe(|d| *d = "sched_op(shutdown)".into());
            let s: SchedShutdown = ctx.read_guest(arg)?;
            let reason = ShutdownReason::from_raw(s.reason).ok_or(Errno::EINVAL);
            ctx.describe(|d| {
                *d = match reason {
                    Ok(r) => alloc::format!("sched_op(shutdown, {})", r.name()),
                    Err(_) => alloc::format!("sched_op(shutdown, {})", s.reason),
                }
            });
            ctx.fx.shutdown = Some(reason?);
            Ok(0)
        }
        op::SHUTDOWN_CODE => {
            let s: SchedShutdown = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("sched_op(shutdown_code, {})", s.reason));
            ShutdownReason::from_raw(s.reason).ok_or(Errno::EINVAL)?;
            ctx.domain().shutdown_code = Some(s.reason);
            Ok(0)
        }
        op::POLL => poll(ctx, arg),
        op::REMOTE_SHUTDOWN => {
            ctx.describe(|d| *d = "sched_op(remote_shutdown)".into());
            Err(Errno::EPERM)
        }
        _ => {
            ctx.describe(|d| *d = alloc::format!("sched_op({cmd})"));
            Err(Errno::ENOSYS)
        }
    }
}

/// set_timer_op(deadline in ns of system time; 0 cancels).
pub fn set_timer_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let t = a[0];
    ctx.describe(|d| *d = if t == 0 { "set_timer_op(cancel)".into() } else { alloc::format!("set_timer_op({t} ns)") });
    ctx.cur().timer = if t == 0 { None } else { Some(t) };
    Ok(0)
}

/// SCHEDOP_poll (Xen's `do_poll`): block until one of the ports is pending or the absolute
/// timeout passes, *without* enabling event delivery (unlike SCHEDOP_block). Returns at once
/// when an event is deliverable or a polled port is already pending. A port that is invalid or
/// not bound is simply never pending.
fn poll(ctx: &mut Ctx<'_, '_>, arg: u64) -> Result<i64, Errno> {
    ctx.describe(|d| *d = "sched_op(poll)".into());
    let s: SchedPoll = ctx.read_guest(arg)?;
    ctx.describe(|d| *d = alloc::format!("sched_op(poll, {} port(s), timeout {})", s.nr_ports, s.timeout));
    // "Fairly arbitrary limit."
    if s.nr_ports > 128 {
        return Err(Errno::EINVAL);
    }
    // guest_handle_okay: the array must lie in guest space.
    let len = s.nr_ports as u64 * 4;
    let end = s.ports.checked_add(len.saturating_sub(1)).ok_or(Errno::EFAULT)?;
    if len > 0 && (!is_canonical(s.ports) || !is_canonical(end) || in_xen_range(s.ports) || in_xen_range(end)) {
        return Err(Errno::EFAULT);
    }
    let vi = ctx.cur_ref().vcpu_info;
    if crate::evtchn::upcall_deliverable(&ctx.mem, vi) {
        ctx.annotate(|n| *n = "event pending".into());
        return Ok(0);
    }
    let mut ports = Vec::with_capacity(s.nr_ports as usize);
    for i in 0..s.nr_ports as u64 {
        let p: u32 = ctx.read_guest(s.ports + i * 4)?;
        ports.push(p);
        if super::event::any_pending(ctx, &[p]) {
            ctx.annotate(|n| *n = alloc::format!("port {p} pending"));
            return Ok(0);
        }
    }
    let port = if ports.len() == 1 { Some(ports[0]) } else { None };
    let deadline = (s.timeout != 0).then_some(s.timeout);
    ctx.fx.poll = Some(Poll { port, deadline });
    Ok(0)
}
