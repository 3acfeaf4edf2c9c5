//! memory_op: the pseudo-physical memory map and reservation queries.

use super::Ctx;
use crate::abi::hypercall::memory_op as op;
use crate::abi::{E820Entry, Errno, MemoryMap, DOMID_SELF};

const E820_RAM: u32 = 1;

pub fn memory_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    // MEMOP_CMD_MASK: the low 6 bits; the rest is the continuation's extent start.
    let (cmd, arg) = (a[0] & 0x3f, a[1]);
    match cmd {
        op::MEMORY_MAP => {
            ctx.describe(|d| *d = "memory_op(memory_map)".into());
            let mut map: MemoryMap = ctx.read_guest(arg)?;
            if map.nr_entries < 1 {
                return Err(Errno::EINVAL);
            }
            let e = E820Entry { addr: 0, size: ctx.domain_ref().nr_pages * 4096, ty: E820_RAM };
            ctx.write_guest(map.buffer, &e)?;
            map.nr_entries = 1;
            ctx.write_guest(arg, &map)?;
            Ok(0)
        }
        op::CURRENT_RESERVATION | op::MAXIMUM_RESERVATION => {
            ctx.describe(|d| *d = "memory_op(current_reservation)".into());
            let dom: u16 = ctx.read_guest(arg)?;
            if dom != DOMID_SELF && dom != ctx.dom {
                return Err(Errno::EPERM);
            }
            Ok(ctx.domain_ref().nr_pages as i64)
        }
        op::MAXIMUM_RAM_PAGE => {
            ctx.describe(|d| *d = "memory_op(maximum_ram_page)".into());
            Ok(ctx.frames.len() as i64)
        }
        _ => {
            ctx.describe(|d| *d = alloc::format!("memory_op({})", a[0]));
            Err(Errno::ENOSYS)
        }
    }
}
