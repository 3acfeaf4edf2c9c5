//! The xenstore ring backend. xenolith has no xenstore daemon yet: every request gets an
//! `XS_ERROR "ENOSYS"` reply, so a guest that talks to the store sees a clean error, not a hang.

use alloc::vec::Vec;
use crate::abi::{store_ring as r, xs, XsdSockmsg};
use crate::domain::Domain;
use crate::evtchn;
use crate::mm::MachineMemory;

const HDR: u64 = core::mem::size_of::<XsdSockmsg>() as u64;

/// Answer every complete request in the ring. Returns (requests answered, upcall became pending).
pub fn serve(mem: &mut MachineMemory<'_>, d: &Domain) -> (u32, Vec<u32>) {
    let ring = d.store_ring.maddr();
    let mut answered = 0;
    loop {
        let cons = mem.read_u32(ring.add(r::REQ_CONS)).unwrap_or(0);
        let prod = mem.read_u32(ring.add(r::REQ_PROD)).unwrap_or(0);
        let avail = prod.wrapping_sub(cons) as u64;
        if !(HDR..=r::RING_SIZE).contains(&avail) {
            break;
        }
        let byte = |i: u64| mem.read_u8(ring.add(r::REQ + ((cons as u64 + i) & (r::RING_SIZE - 1)))).unwrap_or(0);
        let word = |i: u64| u32::from_le_bytes([byte(i), byte(i + 1), byte(i + 2), byte(i + 3)]);
        let (req_id, tx_id, len) = (word(4), word(8), word(12) as u64);
        if avail < HDR + len {
            break;
        }
        mem.write_u32(ring.add(r::REQ_CONS), cons.wrapping_add((HDR + len) as u32));
        let body = b"ENOSYS\0";
        let mut msg = alloc::vec::Vec::new();
        for w in [xs::ERROR, req_id, tx_id, body.len() as u32] {
            msg.extend_from_slice(&w.to_le_bytes());
        }
        msg.extend_from_slice(body);
        let rprod = mem.read_u32(ring.add(r::RSP_PROD)).unwrap_or(0);
        let rcons = mem.read_u32(ring.add(r::RSP_CONS)).unwrap_or(0);
        if (rprod.wrapping_sub(rcons) as u64) + msg.len() as u64 > r::RING_SIZE {
            break;
        }
        for (i, b) in msg.iter().enumerate() {
            mem.write_u8(ring.add(r::RSP + ((rprod as u64 + i as u64) & (r::RING_SIZE - 1))), *b);
        }
        mem.write_u32(ring.add(r::RSP_PROD), rprod.wrapping_add(msg.len() as u32));
        answered += 1;
    }
    let woke = if answered > 0 && d.store_port != 0 { evtchn::raise(mem, d, d.store_port) } else { Vec::new() };
    (answered, woke)
}
