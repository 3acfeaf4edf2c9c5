//! multicall: a batch of hypercalls, each result written back into its entry.

use super::{dispatch, Ctx};
use crate::abi::{hypercall as nr, Errno, MulticallEntry};

/// Most entries per batch.
const MAX_ENTRIES: u64 = 1024;

pub fn multicall(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (list, count) = (a[0], a[1]);
    ctx.describe(|d| *d = alloc::format!("multicall({count} calls)"));
    if ctx.depth > 0 {
        return Err(Errno::EINVAL);
    }
    if count > MAX_ENTRIES {
        return Err(Errno::EINVAL);
    }
    // Validate the whole list is readable first, as Xen's copy of the batch would.
    for i in 0..count {
        let _: MulticallEntry = ctx.read_guest(list.wrapping_add(i * 64))?;
    }
    let head = core::mem::take(&mut ctx.desc);
    let mut inner = alloc::vec::Vec::new();
    ctx.depth += 1;
    let mut result = Ok(0);
    for i in 0..count {
        let va = list.wrapping_add(i * 64);
        let mut e: MulticallEntry = match ctx.read_guest(va) {
            Ok(e) => e,
            Err(er) => {
                result = Err(er);
                break;
            }
        };
        let is_iret = e.op == nr::IRET as u64;
        let r = if e.op == nr::MULTICALL as u64 {
            if ctx.tracing {
                inner.push(alloc::format!("d{}v{}   multicall[{i}] op {} = -EINVAL", ctx.dom, ctx.vcpu, e.op));
            }
            Err(Errno::EINVAL)
        } else {
            let args = [e.args[0], e.args[1], e.args[2], e.args[3], e.args[4]];
            dispatch(ctx, e.op, args, &mut inner)
        };
        e.result = match r {
            Ok(v) => v as u64,
            Err(er) => er.to_ret() as u64,
        };
        if let Err(er) = ctx.write_guest(va, &e) {
            // After an iret the write is best effort (Xen ignores its failure).
            if !is_iret {
                result = Err(er);
                break;
            }
        }
        if ctx.fx.shutdown.is_some() || ctx.fx.crash.is_some() {
            break;
        }
        // HYPERVISOR_iret does not return: Xen performs it, ends the batch (mc_exit) and the
        // multicall returns the call's result, the restored %rax (common/multicall.c,
        // pv/hypercall.c: pv_do_multicall_call; pv/iret.c).
        if is_iret {
            result = r;
            break;
        }
    }
    // Always leave the nesting state as it was, whatever happened above.
    ctx.depth -= 1;
    ctx.desc = head;
    ctx.lines.append(&mut inner);
    result
}
