//! physdev_op for an unprivileged PV domain: the virtual IOPL (PHYSDEVOP_set_iopl); the
//! operations that need physical devices or interrupts are not a domU's (-ENOSYS as an
//! unimplemented sub-op, or -EPERM where Xen checks privilege first).

use super::Ctx;
use crate::abi::hypercall::physdev::SET_IOPL;
use crate::abi::Errno;

pub fn physdev_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, arg) = (a[0], a[1]);
    match cmd {
        SET_IOPL => {
            let iopl: u32 = match ctx.read_guest(arg) {
                Ok(v) => v,
                Err(e) => {
                    ctx.describe(|d| *d = "physdev_op(set_iopl)".into());
                    return Err(e);
                }
            };
            ctx.describe(|d| *d = alloc::format!("physdev_op(set_iopl, {iopl})"));
            // As Xen's physdev.c: an IOPL above 3 is -EINVAL.
            if iopl > 3 {
                return Err(Errno::EINVAL);
            }
            ctx.cur().privs.iopl = iopl as u8;
            Ok(0)
        }
        _ => {
            ctx.describe(|d| *d = alloc::format!("physdev_op({cmd})"));
            Err(Errno::ENOSYS)
        }
    }
}
