//! sched_op and set_timer_op.

use super::Ctx;
use crate::abi::{hypercall::sched_op as op, Errno, SchedShutdown, ShutdownReason};

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
        op::POLL => {
            ctx.describe(|d| *d = "sched_op(poll)".into());
            // Polling a set of ports: treat as a block that any event ends.
            ctx.fx.block = true;
            Ok(0)
        }
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
