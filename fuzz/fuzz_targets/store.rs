//! The xenstore request parser and operations (`hv::store`): two domains' rings fed with
//! fuzz-chosen bytes in fuzz-chosen pieces, as a guest writes them, with the toolstack writing
//! between; the store's tree and rings are checked after every piece.
//!
//! Input: a sequence of records `[ctl][len][len bytes]`. `ctl` bit 0 picks the domain (1 or 2),
//! bit 1 makes the domain consume all its responses after the piece, bit 2 has the toolstack
//! write `control/shutdown` of that domain first, bit 3 replaces the bytes with a well-formed
//! message (type `len & 31`, the bytes as payload with a NUL appended) so the fuzzer reaches the
//! operations quickly.
#![no_main]

use hv::abi::store_ring as r;
use hv::store::{message, DomInfo, Ring, Store};
use libfuzzer_sys::fuzz_target;

fn info(id: u16) -> DomInfo {
    DomInfo { id, name: format!("d{id}"), memory_kib: 16384, vcpus: 1, store_port: 1, store_mfn: 1, console_port: 2, console_mfn: 2 }
}

/// Put `bytes` in the request ring as far as it has room.
fn put(ring: &mut [u8], bytes: &[u8]) {
    let prod = ring.get_u32(r::REQ_PROD);
    let cons = ring.get_u32(r::REQ_CONS);
    let room = 1024usize.saturating_sub(prod.wrapping_sub(cons) as usize);
    let n = bytes.len().min(room);
    for (i, b) in bytes[..n].iter().enumerate() {
        ring.set_byte(r::REQ + (prod.wrapping_add(i as u32) & 1023) as u64, *b);
    }
    ring.put_u32(r::REQ_PROD, prod.wrapping_add(n as u32));
}

fn check(s: &Store, rings: &[Vec<u8>; 2]) {
    for ring in rings {
        let (p, c) = (ring.get_u32(r::RSP_PROD), ring.get_u32(r::RSP_CONS));
        assert!(p.wrapping_sub(c) <= 1024, "response ring overfilled: prod {p} cons {c}");
        let (p, c) = (ring.get_u32(r::REQ_PROD), ring.get_u32(r::REQ_CONS));
        assert!(p.wrapping_sub(c) <= 1024, "consumed past the producer: prod {p} cons {c}");
    }
    // The tree is a tree: every child listed exists, every node but "/" is listed by its
    // parent, and the per-owner counts are right.
    let mut owned = std::collections::BTreeMap::new();
    for (path, n) in &s.tree.nodes {
        *owned.entry(n.owner()).or_insert(0u32) += 1;
        for c in &n.children {
            let cp = if path == "/" { format!("/{c}") } else { format!("{path}/{c}") };
            assert!(s.tree.nodes.contains_key(&cp), "{path} lists a missing child {c}");
        }
        if path != "/" {
            let (parent, base) = path.rsplit_once('/').expect("absolute");
            let parent = if parent.is_empty() { "/" } else { parent };
            let pn = s.tree.nodes.get(parent).unwrap_or_else(|| panic!("{path} has no parent"));
            assert!(pn.children.iter().any(|c| c == base), "{parent} does not list {base}");
        }
    }
    assert_eq!(owned, s.tree.owned, "ownership counts");
    for (&d, c) in &s.conns {
        assert!(c.inbuf.len() <= 16 + hv::abi::XENSTORE_PAYLOAD_MAX, "d{d} input buffer grew past a message");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut s = Store::new();
    s.tracing = data.first().is_some_and(|b| b & 0x80 != 0);
    s.introduce(&info(1));
    s.introduce(&info(2));
    let mut rings = [vec![0u8; 4096], vec![0u8; 4096]];
    let mut rest = data;
    while rest.len() >= 2 {
        let (ctl, len) = (rest[0], rest[1] as usize);
        let body = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[(2 + len).min(rest.len())..];
        let d = (ctl & 1) as usize;
        let dom = d as u16 + 1;
        if ctl & 4 != 0 {
            let _ = s.tool_write(&format!("/local/domain/{dom}/control/shutdown"), b"poweroff");
        }
        let bytes = if ctl & 8 != 0 {
            let mut p = body.to_vec();
            p.push(0);
            message((len & 31) as u32, 7, (ctl >> 4) as u32 & 3, &p)
        } else {
            body.to_vec()
        };
        put(&mut rings[d], &bytes);
        s.pump(dom, &mut rings[d][..]);
        if ctl & 2 != 0 {
            let p = rings[d].get_u32(r::RSP_PROD);
            rings[d].put_u32(r::RSP_CONS, p);
            s.pump(dom, &mut rings[d][..]);
        }
        let other = 1 - d;
        s.pump(other as u16 + 1, &mut rings[other][..]);
        check(&s, &rings);
        s.take_lines();
    }
});
