//! console_io and the console ring backend (what xenconsoled does in Xen).

use alloc::vec::Vec;

use super::Ctx;
use crate::abi::{cons_ring, hypercall::console_io as op, Errno};
use crate::domain::Domain;
use crate::evtchn;
use crate::mm::MachineMemory;

/// Most bytes one console_io write may carry (Xen copies in chunks; we bound the work).
const MAX_WRITE: u64 = 1 << 20;

pub fn console_io(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, count, buf) = (a[0], a[1], a[2]);
    match cmd {
        op::WRITE => {
            ctx.describe(|d| *d = alloc::format!("console_io(write, {count} bytes)"));
            if count > MAX_WRITE {
                return Err(Errno::EFAULT);
            }
            let mut data = alloc::vec![0u8; count as usize];
            ctx.copy_from_guest(buf, &mut data)?;
            let dom = ctx.dom;
            let tracing = ctx_tracing(ctx);
            let lines = console_output(ctx.domain(), &data, tracing);
            push_console_lines(ctx, dom, lines);
            ctx.fx.console_out.extend_from_slice(&data);
            Ok(0)
        }
        op::READ => {
            ctx.describe(|d| *d = alloc::format!("console_io(read, {count} bytes)"));
            Ok(0)
        }
        _ => {
            ctx.describe(|d| *d = alloc::format!("console_io({cmd})"));
            Err(Errno::ENOSYS)
        }
    }
}

fn ctx_tracing(ctx: &Ctx<'_, '_>) -> bool {
    ctx.tracing
}

fn push_console_lines(ctx: &mut Ctx<'_, '_>, dom: u16, lines: Vec<alloc::string::String>) {
    for l in lines {
        ctx.lines.push(alloc::format!("d{dom} console {l:?}"));
    }
}

/// Append console bytes to a domain's output; returns the lines completed (for the trace).
pub fn console_output(d: &mut Domain, bytes: &[u8], want_lines: bool) -> Vec<alloc::string::String> {
    let mut done = Vec::new();
    for &b in bytes {
        match b {
            b'\n' => {
                let line = alloc::string::String::from_utf8_lossy(&d.console.partial).into_owned();
                d.console.partial.clear();
                if want_lines {
                    done.push(line.clone());
                }
                d.console.lines.push(line);
            }
            b'\r' => {}
            _ if d.console.partial.len() < 4096 => d.console.partial.push(b),
            _ => {}
        }
    }
    done
}

/// Consume the domain's console ring (out_cons up to out_prod), like xenconsoled, and notify the
/// guest. Returns the bytes consumed and whether the guest's upcall became pending.
pub fn drain_console_ring(mem: &mut MachineMemory<'_>, d: &Domain) -> (Vec<u8>, Vec<u32>) {
    let ring = d.console.ring.maddr();
    let cons = mem.read_u32(ring.add(cons_ring::OUT_CONS)).unwrap_or(0);
    let prod = mem.read_u32(ring.add(cons_ring::OUT_PROD)).unwrap_or(0);
    let avail = prod.wrapping_sub(cons) as u64;
    let mut out = Vec::new();
    if avail == 0 {
        return (out, Vec::new());
    }
    // A guest that claims more than the ring holds is confused: take what the ring holds.
    let n = avail.min(cons_ring::OUT_SIZE);
    for i in 0..n {
        let idx = (cons as u64 + i) & (cons_ring::OUT_SIZE - 1);
        out.push(mem.read_u8(ring.add(cons_ring::OUT + idx)).unwrap_or(0));
    }
    mem.write_u32(ring.add(cons_ring::OUT_CONS), prod);
    // Like xenconsoled: notify the guest that the ring was consumed (unless it closed the port).
    let woke = if d.console.port != 0 { evtchn::raise(mem, d, d.console.port) } else { Vec::new() };
    (out, woke)
}

/// Produce `bytes` into the domain's console ring `in` buffer, as xenconsoled's
/// `handle_tty_read` does (tools/console/daemon/io.c): only as many as fit
/// (`in_prod - in_cons` never exceeds the 1024-byte `in`, xen-public/io/console.h), data
/// written before the index (the simulator and the image run the guest only after this returns,
/// so program order is the barrier), `in_prod` bumped, then the console event channel
/// notified. Returns how many bytes were taken and the vCPUs the notification woke.
pub fn fill_console_input(mem: &mut MachineMemory<'_>, d: &Domain, bytes: &[u8]) -> (usize, Vec<u32>) {
    let ring = d.console.ring.maddr();
    let (Some(cons), Some(prod)) = (mem.read_u32(ring.add(cons_ring::IN_CONS)), mem.read_u32(ring.add(cons_ring::IN_PROD))) else {
        return (0, Vec::new());
    };
    // A guest that moved in_cons past in_prod (or more than a ring behind) is confused: like
    // xenconsoled (`len = sizeof(intf->in) - (prod - cons)` clamped at 0) give it nothing.
    let used = prod.wrapping_sub(cons) as u64;
    let room = cons_ring::IN_SIZE.saturating_sub(used) as usize;
    let n = room.min(bytes.len());
    if n == 0 {
        return (0, Vec::new());
    }
    for (i, &b) in bytes[..n].iter().enumerate() {
        let idx = (prod as u64 + i as u64) & (cons_ring::IN_SIZE - 1);
        mem.write_u8(ring.add(cons_ring::IN + idx), b);
    }
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release); // xen_wmb(): data, then index
    mem.write_u32(ring.add(cons_ring::IN_PROD), prod.wrapping_add(n as u32));
    let woke = if d.console.port != 0 { evtchn::raise(mem, d, d.console.port) } else { Vec::new() };
    (n, woke)
}
