//! The ring side of the store: a domain's `xenstore_domain_interface` page (xs_wire.h), read and
//! written as xenstored_domain.c's `readchn`/`writechn` and xenstored_core.c's `handle_input`
//! do. Input is consumed as it arrives (a header alone, part of a payload, across the wrap) and
//! the partial message is kept per domain; replies go out as far as the ring has room, the rest
//! when the guest has consumed some and kicks again. Indices that claim more than a ring's worth
//! (`check_indexes`) or a payload over `XENSTORE_PAYLOAD_MAX` end the connection as xenstored's
//! `ignore_connection` does: the `error` field says why and nothing more is served.

use alloc::vec::Vec;

use super::Store;
use crate::abi::{store_ring as r, XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX, XENSTORE_PAYLOAD_MAX};
use crate::mm::{MachineMemory, Maddr};
use crate::DomId;

const HDR: usize = 16;
const SIZE: u32 = r::RING_SIZE as u32;

/// Access to one ring page (offsets as in `xenstore_domain_interface`).
pub trait Ring {
    fn get_u32(&self, off: u64) -> u32;
    fn put_u32(&mut self, off: u64, v: u32);
    fn byte(&self, off: u64) -> u8;
    fn set_byte(&mut self, off: u64, v: u8);
}

/// A ring page in machine memory.
pub struct MemRing<'a, 'm> {
    pub mem: &'a mut MachineMemory<'m>,
    pub base: Maddr,
}

impl Ring for MemRing<'_, '_> {
    fn get_u32(&self, off: u64) -> u32 {
        self.mem.read_u32(self.base.add(off)).unwrap_or(0)
    }
    fn put_u32(&mut self, off: u64, v: u32) {
        self.mem.write_u32(self.base.add(off), v);
    }
    fn byte(&self, off: u64) -> u8 {
        self.mem.read_u8(self.base.add(off)).unwrap_or(0)
    }
    fn set_byte(&mut self, off: u64, v: u8) {
        self.mem.write_u8(self.base.add(off), v);
    }
}

/// A ring in a plain byte buffer (tests, fuzzing).
impl Ring for [u8] {
    fn get_u32(&self, off: u64) -> u32 {
        let o = off as usize;
        self.get(o..o + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn put_u32(&mut self, off: u64, v: u32) {
        let o = off as usize;
        if let Some(b) = self.get_mut(o..o + 4) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn byte(&self, off: u64) -> u8 {
        <[u8]>::get(self, off as usize).copied().unwrap_or(0)
    }
    fn set_byte(&mut self, off: u64, v: u8) {
        if let Some(b) = self.get_mut(off as usize) {
            *b = v;
        }
    }
}

/// What one pump did on a ring: whether the guest should be notified.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Pumped {
    pub consumed: bool,
    pub produced: bool,
}

impl Pumped {
    pub fn notify(self) -> bool {
        self.consumed || self.produced
    }
}

impl Store {
    /// Serve `dom`'s ring: send what is queued, take in what the guest wrote and handle each
    /// complete request, until neither moves. Returns whether anything moved (xenstored
    /// notifies the domain's event channel after each read and write).
    pub fn pump(&mut self, dom: DomId, ring: &mut (impl Ring + ?Sized)) -> Pumped {
        let mut done = Pumped::default();
        loop {
            if self.conns.get(&dom).is_none_or(|c| c.ignored) {
                return done;
            }
            let wrote = self.flush(dom, ring);
            done.produced |= wrote;
            // quota_req_outstanding: a domain with too many replies unread waits to send more.
            if self.conns.get(&dom).is_some_and(|c| c.outstanding() >= super::quota::OUTSTANDING) {
                return done;
            }
            let read = self.take_input(dom, ring);
            done.consumed |= read;
            if !wrote && !read {
                return done;
            }
        }
    }

    /// Does `dom` have output waiting?
    pub fn has_output(&self, dom: DomId) -> bool {
        self.conns.get(&dom).is_some_and(|c| !c.ignored && !c.out.is_empty())
    }

    /// Domains with output waiting.
    pub fn with_output(&self) -> Vec<DomId> {
        self.conns.iter().filter(|(_, c)| !c.ignored && !c.out.is_empty()).map(|(&d, _)| d).collect()
    }

    /// `writechn`: copy queued output into the response ring as far as it has room.
    fn flush(&mut self, dom: DomId, ring: &mut (impl Ring + ?Sized)) -> bool {
        let cons = ring.get_u32(r::RSP_CONS);
        let mut prod = ring.get_u32(r::RSP_PROD);
        if prod.wrapping_sub(cons) > SIZE {
            self.ignore(dom, ring, XENSTORE_ERROR_RINGIDX, "response ring indices out of range");
            return false;
        }
        let Some(c) = self.conns.get_mut(&dom) else { return false };
        let mut wrote = false;
        while let Some((msg, _)) = c.out.front() {
            let room = SIZE - prod.wrapping_sub(cons);
            if room == 0 {
                break;
            }
            let n = (msg.len() - c.out_off).min(room as usize);
            for i in 0..n {
                ring.set_byte(r::RSP + (prod.wrapping_add(i as u32) & (SIZE - 1)) as u64, msg[c.out_off + i]);
            }
            prod = prod.wrapping_add(n as u32);
            c.out_off += n;
            wrote = true;
            if c.out_off == msg.len() {
                c.out.pop_front();
                c.out_off = 0;
            }
        }
        if wrote {
            ring.put_u32(r::RSP_PROD, prod);
        }
        wrote
    }

    /// `readchn` + `handle_input`: take what the guest wrote, at most up to the end of the
    /// current message; handle it when complete.
    fn take_input(&mut self, dom: DomId, ring: &mut (impl Ring + ?Sized)) -> bool {
        let mut cons = ring.get_u32(r::REQ_CONS);
        let prod = ring.get_u32(r::REQ_PROD);
        let avail = prod.wrapping_sub(cons);
        if avail > SIZE {
            self.ignore(dom, ring, XENSTORE_ERROR_RINGIDX, "request ring indices out of range");
            return false;
        }
        let Some(c) = self.conns.get_mut(&dom) else { return false };
        let need = if c.inbuf.len() < HDR { HDR - c.inbuf.len() } else { HDR + payload_len(&c.inbuf) - c.inbuf.len() };
        let n = (avail as usize).min(need);
        for _ in 0..n {
            c.inbuf.push(ring.byte(r::REQ + (cons & (SIZE - 1)) as u64));
            cons = cons.wrapping_add(1);
        }
        if n > 0 {
            ring.put_u32(r::REQ_CONS, cons);
        }
        if c.inbuf.len() >= HDR {
            let len = payload_len(&c.inbuf);
            if len > XENSTORE_PAYLOAD_MAX {
                let line = alloc::format!("payload length {len} > {XENSTORE_PAYLOAD_MAX}");
                self.ignore(dom, ring, XENSTORE_ERROR_PROTO, &line);
                return n > 0;
            }
            if c.inbuf.len() == HDR + len {
                let msg = core::mem::take(&mut c.inbuf);
                self.request(dom, &msg);
            }
        }
        n > 0
    }

    /// `ignore_connection`: stop serving `dom`, say why in the ring's `error` field, drop its
    /// watches, transactions and queued output.
    fn ignore(&mut self, dom: DomId, ring: &mut (impl Ring + ?Sized), err: u32, why: &str) {
        ring.put_u32(r::ERROR, err);
        if let Some(c) = self.conns.get_mut(&dom) {
            c.ignored = true;
            c.watches.clear();
            c.txs.clear();
            c.out.clear();
            c.out_off = 0;
            c.inbuf.clear();
        }
        if self.tracing {
            self.lines.push(alloc::format!("d{dom} xenstore protocol error: {why}: connection ignored"));
        }
    }
}

fn payload_len(hdr: &[u8]) -> usize {
    u32::from_le_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]) as usize
}
