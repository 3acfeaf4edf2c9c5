//! xenstore: the xs_wire framing over a ring (split writes, the wrap, replies that wait for
//! room, protocol errors), the operations and their errors as xenstored answers a domU,
//! permissions, watches, transactions and quotas; then the store through the hypervisor (a
//! request in a real domain's ring page, the event channel, `xl shutdown` through
//! control/shutdown and its fallback).

use super::{nr, World};
use crate::abi::{store_ring as r, xs, ShutdownReason, XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX};
use crate::hv::RecordState;
use crate::mm::PAGE_SIZE;
use crate::store::{quota, DomInfo, Ring, Store, SHUTDOWN_GRACE_NS};
use crate::DomId;

/// One domain's end of a store ring held in a byte buffer, written the way a guest writes it.
struct Client {
    ring: Vec<u8>,
    dom: DomId,
    next_id: u32,
    /// Watch events that came while waiting for a reply.
    early: Vec<(String, String)>,
    /// Response bytes taken from the ring and not yet a whole message.
    rx: Vec<u8>,
}

fn info(id: DomId) -> DomInfo {
    DomInfo {
        id,
        name: format!("guest{id}"),
        memory_kib: 16384,
        vcpus: 2,
        store_port: 1,
        store_mfn: 0x1234,
        console_port: 2,
        console_mfn: 0x1235,
    }
}

/// A store with domains 1 and 2 introduced.
fn store() -> Store {
    let mut s = Store::new();
    s.introduce(&info(1));
    s.introduce(&info(2));
    s
}

impl Client {
    fn new(dom: DomId) -> Self {
        Self { ring: vec![0u8; PAGE_SIZE as usize], dom, next_id: 1, early: Vec::new(), rx: Vec::new() }
    }

    /// Start both rings at `idx` (to test the wrap of the ring and of the u32 indices).
    fn at(mut self, idx: u32) -> Self {
        for o in [r::REQ_CONS, r::REQ_PROD, r::RSP_CONS, r::RSP_PROD] {
            self.ring.put_u32(o, idx);
        }
        self
    }

    /// Write `bytes` into the request ring (no pump).
    fn put(&mut self, bytes: &[u8]) {
        let prod = self.ring.get_u32(r::REQ_PROD);
        let cons = self.ring.get_u32(r::REQ_CONS);
        assert!(prod.wrapping_sub(cons) as usize + bytes.len() <= 1024, "test wrote past the ring");
        for (i, b) in bytes.iter().enumerate() {
            let at = r::REQ + (prod.wrapping_add(i as u32) & 1023) as u64;
            self.ring.set_byte(at, *b);
        }
        self.ring.put_u32(r::REQ_PROD, prod.wrapping_add(bytes.len() as u32));
    }

    fn pump(&mut self, s: &mut Store) {
        s.pump(self.dom, &mut self.ring[..]);
    }

    /// Send a message in pieces of `chunk` bytes, pumping after each (as Linux's xb_write
    /// writes the header and the payload separately and kicks after each).
    fn send_chunked(&mut self, s: &mut Store, ty: u32, tx: u32, payload: &[u8], chunk: usize) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let msg = crate::store::message(ty, id, tx, payload);
        for c in msg.chunks(chunk.max(1)) {
            // As much as the ring has room for, then kick and wait for the consumer.
            let mut rest = c;
            while !rest.is_empty() {
                let used = self.ring.get_u32(r::REQ_PROD).wrapping_sub(self.ring.get_u32(r::REQ_CONS)) as usize;
                let n = rest.len().min(1024 - used);
                assert!(n > 0, "the store stopped consuming");
                self.put(&rest[..n]);
                self.pump(s);
                rest = &rest[n..];
            }
        }
        id
    }

    /// Take one message from the response ring, if a whole one is there: as a guest does,
    /// consume what is there and let the store send more (a message may be longer than the
    /// ring).
    fn recv(&mut self, s: &mut Store) -> Option<(u32, u32, u32, Vec<u8>)> {
        loop {
            let cons = self.ring.get_u32(r::RSP_CONS);
            let prod = self.ring.get_u32(r::RSP_PROD);
            let avail = prod.wrapping_sub(cons);
            for i in 0..avail {
                self.rx.push(self.ring.byte(r::RSP + (cons.wrapping_add(i) & 1023) as u64));
            }
            self.ring.put_u32(r::RSP_CONS, prod);
            if self.rx.len() >= 16 {
                let word = |i: usize| u32::from_le_bytes([self.rx[i], self.rx[i + 1], self.rx[i + 2], self.rx[i + 3]]);
                let (ty, id, tx, len) = (word(0), word(4), word(8), word(12) as usize);
                if self.rx.len() >= 16 + len {
                    let body = self.rx[16..16 + len].to_vec();
                    self.rx.drain(..16 + len);
                    return Some((ty, id, tx, body));
                }
            }
            self.pump(s);
            if self.ring.get_u32(r::RSP_PROD) == prod {
                return None;
            }
        }
    }

    /// A request and its reply (type, body); watch events that arrive first are kept aside.
    fn req_tx(&mut self, s: &mut Store, ty: u32, tx: u32, payload: &[u8]) -> (u32, Vec<u8>) {
        let id = self.send_chunked(s, ty, tx, payload, 4096);
        loop {
            self.pump(s);
            let (t, rid, _, body) = self.recv(s).expect("a reply");
            if t == xs::WATCH_EVENT {
                let parts: Vec<&[u8]> = body.split(|&c| c == 0).collect();
                self.early.push((String::from_utf8_lossy(parts[0]).into_owned(), String::from_utf8_lossy(parts[1]).into_owned()));
                continue;
            }
            assert_eq!(rid, id, "the reply echoes req_id");
            return (t, body);
        }
    }

    fn req(&mut self, s: &mut Store, ty: u32, payload: &[u8]) -> (u32, Vec<u8>) {
        self.req_tx(s, ty, 0, payload)
    }

    /// The reply as a string: the value, "OK", or the error name.
    fn ask(&mut self, s: &mut Store, ty: u32, payload: &[u8]) -> String {
        let (_, b) = self.req(s, ty, payload);
        String::from_utf8_lossy(b.strip_suffix(&[0]).unwrap_or(&b)).into_owned()
    }

    fn read(&mut self, s: &mut Store, path: &str) -> String {
        self.ask(s, xs::READ, &z(path))
    }

    fn write(&mut self, s: &mut Store, path: &str, v: &str) -> String {
        let mut p = z(path);
        p.extend_from_slice(v.as_bytes());
        self.ask(s, xs::WRITE, &p)
    }

    /// All watch events waiting, as (path, token).
    fn events(&mut self, s: &mut Store) -> Vec<(String, String)> {
        self.pump(s);
        let mut v = core::mem::take(&mut self.early);
        while let Some((t, _, _, b)) = self.recv(s) {
            assert_eq!(t, xs::WATCH_EVENT, "only events were waiting");
            let parts: Vec<&[u8]> = b.split(|&c| c == 0).collect();
            v.push((String::from_utf8_lossy(parts[0]).into_owned(), String::from_utf8_lossy(parts[1]).into_owned()));
        }
        v
    }
}

/// A NUL-terminated string.
fn z(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Several NUL-terminated strings.
fn zs(parts: &[&str]) -> Vec<u8> {
    parts.iter().flat_map(|p| z(p)).collect()
}

#[test]
fn requests_split_across_writes_and_the_wrap() {
    for start in [0u32, 1000, 1020, 0xffff_fff8, 0xffff_fffe] {
        for chunk in [1usize, 3, 16, 17, 4096] {
            let mut s = store();
            let mut c = Client::new(1).at(start);
            let id = c.send_chunked(&mut s, xs::READ, 0, &z("domid"), chunk);
            let (t, rid, tx, body) = c.recv(&mut s).expect("reply");
            assert_eq!((t, rid, tx, body.as_slice()), (xs::READ, id, 0, &b"1"[..]), "start {start:#x} chunk {chunk}");
            // The header alone is consumed and kept: the guest sees req_cons move.
            let before = c.ring.get_u32(r::REQ_CONS);
            c.put(&crate::store::message(xs::READ, 9, 0, &z("name"))[..16]);
            c.pump(&mut s);
            assert_eq!(c.ring.get_u32(r::REQ_CONS), before.wrapping_add(16));
            assert!(c.recv(&mut s).is_none(), "no reply before the payload");
            c.put(&z("name"));
            c.pump(&mut s);
            assert_eq!(c.recv(&mut s).map(|m| m.3), Some(b"guest1".to_vec()));
        }
    }
}

#[test]
fn replies_wait_for_room_in_the_ring() {
    let mut s = store();
    let mut c = Client::new(1);
    // The guest has not consumed 1010 bytes of earlier output: 14 bytes of room.
    c.ring.put_u32(r::RSP_PROD, 1010);
    let id = c.send_chunked(&mut s, xs::READ, 0, &z("name"), 4096);
    assert_eq!(c.ring.get_u32(r::RSP_PROD), 1024, "as much as fits is written");
    assert!(s.has_output(1));
    // The guest consumes the old output and kicks: the rest goes out.
    c.ring.put_u32(r::RSP_CONS, 1010);
    c.pump(&mut s);
    assert_eq!(c.recv(&mut s).map(|m| (m.1, m.3)), Some((id, b"guest1".to_vec())));
    assert!(!s.has_output(1));
}

#[test]
fn a_domu_sees_what_libxl_lets_it_see() {
    let mut s = store();
    let (mut c1, mut c2) = (Client::new(1), Client::new(2));
    assert_eq!(c1.read(&mut s, "domid"), "1");
    assert_eq!(c1.read(&mut s, "/local/domain/1/name"), "guest1");
    assert_eq!(c1.read(&mut s, "memory/target"), "16384");
    assert_eq!(c1.read(&mut s, "cpu/1/availability"), "online");
    assert_eq!(c1.read(&mut s, "control/platform-feature-xs_reset_watches"), "1");
    assert_eq!(c1.read(&mut s, "console/type"), "xenconsoled");
    assert_eq!(c1.read(&mut s, "vm"), "/vm/00000000-0000-4000-8000-000000000001");
    // Read-only to the guest (roperm n0 r1), its own where libxl gives it rwperm (n1).
    assert_eq!(c1.ask(&mut s, xs::GET_PERMS, &z("domid")), "n0\0r1");
    assert_eq!(c1.ask(&mut s, xs::GET_PERMS, &z("control/shutdown")), "n1");
    assert_eq!(c1.write(&mut s, "domid", "7"), "EACCES");
    assert_eq!(c1.write(&mut s, "control/shutdown", ""), "OK");
    assert_eq!(c1.write(&mut s, "data/x", "hello"), "OK");
    assert_eq!(c1.ask(&mut s, xs::GET_PERMS, &z("data/x")), "n1", "a domU owns what it creates");
    assert_eq!(c1.write(&mut s, "newtop", "v"), "EACCES", "its home is not writable");
    // Another domain's nodes are invisible, and missing ones below them say EACCES, not ENOENT.
    assert_eq!(c2.read(&mut s, "/local/domain/1/data/x"), "EACCES");
    assert_eq!(c2.read(&mut s, "/local/domain/1/nothing"), "EACCES");
    assert_eq!(c1.read(&mut s, "nothing"), "ENOENT");
    assert_eq!(c1.ask(&mut s, xs::DIRECTORY, &z("/")), "EACCES");
    assert_eq!(c1.read(&mut s, "/vm/00000000-0000-4000-8000-000000000001/name"), "guest1");
    assert_eq!(c2.read(&mut s, "/vm/00000000-0000-4000-8000-000000000001/name"), "EACCES");
    // The owner lets domain 2 read; it may not give the node away.
    assert_eq!(c1.ask(&mut s, xs::SET_PERMS, &zs(&["data/x", "n1", "r2"])), "OK");
    assert_eq!(c2.read(&mut s, "/local/domain/1/data/x"), "hello");
    assert_eq!(c2.write(&mut s, "/local/domain/1/data/x", "no"), "EACCES");
    assert_eq!(c1.ask(&mut s, xs::SET_PERMS, &zs(&["data/x", "n2"])), "EPERM");
    assert_eq!(c2.ask(&mut s, xs::SET_PERMS, &zs(&["/local/domain/1/data/x", "b2"])), "EACCES");
    assert_eq!(c1.ask(&mut s, xs::SET_PERMS, &zs(&["data/x", "n9"])), "ENOENT", "owner that does not exist");
    assert_eq!(c1.ask(&mut s, xs::SET_PERMS, &zs(&["data/x", "x1"])), "EINVAL");
    assert_eq!(c1.ask(&mut s, xs::SET_PERMS, &zs(&["data/x"])), "EINVAL");
    assert_eq!(c1.ask(&mut s, xs::GET_PERMS, &z("data/x")), "n1\0r2");
    // mkdir, directory, rm.
    assert_eq!(c1.ask(&mut s, xs::MKDIR, &z("data/d/e")), "OK");
    assert_eq!(c1.ask(&mut s, xs::MKDIR, &z("data/d/e")), "OK", "mkdir of an existing node is fine");
    assert_eq!(c1.ask(&mut s, xs::DIRECTORY, &z("data")), "x\0d");
    assert_eq!(c1.read(&mut s, "data/d"), "");
    assert_eq!(c1.ask(&mut s, xs::RM, &z("data/d")), "OK");
    assert_eq!(c1.read(&mut s, "data/d/e"), "ENOENT");
    assert_eq!(c1.ask(&mut s, xs::RM, &z("data/d")), "OK", "rm of a missing node whose parent exists");
    assert_eq!(c1.ask(&mut s, xs::RM, &z("data/no/such")), "ENOENT");
    assert_eq!(c1.ask(&mut s, xs::RM, &z("domid")), "EACCES");
    assert_eq!(c1.ask(&mut s, xs::DIRECTORY, &z("control")).split('\0').next(), Some("shutdown"));
}

#[test]
fn errors_as_xenstored_answers_them() {
    let mut s = store();
    let mut c = Client::new(1);
    let (t, b) = c.req(&mut s, 99, b"");
    assert_eq!((t, b.as_slice()), (xs::ERROR, &b"ENOSYS\0"[..]));
    assert_eq!(c.ask(&mut s, xs::WATCH_EVENT, &z("x")), "ENOSYS");
    for priv_op in [xs::CONTROL, xs::INTRODUCE, xs::RELEASE, xs::IS_DOMAIN_INTRODUCED, xs::RESUME, xs::SET_TARGET] {
        assert_eq!(c.ask(&mut s, priv_op, &z("print")), "EACCES", "type {priv_op}");
    }
    for bad in ["a//b", "data/", "data/x y", "/local/domain/1/da*ta"] {
        assert_eq!(c.read(&mut s, bad), "EINVAL", "{bad:?}");
    }
    assert_eq!(c.ask(&mut s, xs::READ, b"domid"), "EINVAL", "no NUL");
    assert_eq!(c.ask(&mut s, xs::READ, b"domid\0x\0"), "EINVAL", "two strings");
    assert_eq!(c.ask(&mut s, xs::WRITE, b""), "EINVAL");
    let long = format!("data/{}", "a".repeat(2049));
    assert_eq!(c.write(&mut s, &long, "v"), "EINVAL", "path longer than XENSTORE_REL_PATH_MAX");
    assert_eq!(c.ask(&mut s, xs::GET_DOMAIN_PATH, &z("7")), "/local/domain/7");
    assert_eq!(c.ask(&mut s, xs::GET_DOMAIN_PATH, b"7"), "EINVAL");
    assert_eq!(c.req_tx(&mut s, xs::READ, 42, &z("domid")).1, b"ENOENT\0", "unknown transaction");
    assert_eq!(c.ask(&mut s, xs::TRANSACTION_END, &z("T")), "ENOENT", "no transaction");
    // Every reply is XS_ERROR with the error string, or the request's own type.
    assert_eq!(c.req(&mut s, xs::READ, &z("nothing")).0, xs::ERROR);
    assert_eq!(c.req(&mut s, xs::READ, &z("domid")).0, xs::READ);
}

#[test]
fn a_payload_over_the_limit_or_bad_indices_end_the_connection() {
    let mut s = store();
    let mut c = Client::new(1);
    let mut hdr = crate::store::message(xs::READ, 1, 0, b"");
    hdr[12..16].copy_from_slice(&4097u32.to_le_bytes());
    c.put(&hdr);
    c.pump(&mut s);
    assert_eq!(c.ring.get_u32(r::ERROR), XENSTORE_ERROR_PROTO);
    assert!(s.take_lines().iter().any(|l| l.contains("protocol error: payload length 4097 > 4096")));
    c.put(&crate::store::message(xs::READ, 2, 0, &z("domid")));
    c.pump(&mut s);
    assert!(c.recv(&mut s).is_none(), "an ignored connection gets no replies");
    // Domain 2 is unaffected; bad indices end its connection too.
    let mut c2 = Client::new(2);
    assert_eq!(c2.read(&mut s, "domid"), "2");
    c2.ring.put_u32(r::REQ_PROD, 5000);
    c2.pump(&mut s);
    assert_eq!(c2.ring.get_u32(r::ERROR), XENSTORE_ERROR_RINGIDX);
}

#[test]
fn watches_fire_at_once_and_on_changes_below() {
    let mut s = store();
    let (mut c1, mut c2) = (Client::new(1), Client::new(2));
    assert_eq!(c1.ask(&mut s, xs::WATCH, &zs(&["control/shutdown", "tok"])), "OK");
    assert_eq!(c1.events(&mut s), [("control/shutdown".into(), "tok".into())], "the initial event, relative");
    assert_eq!(c1.ask(&mut s, xs::WATCH, &zs(&["control/shutdown", "tok"])), "EEXIST");
    assert_eq!(c1.ask(&mut s, xs::WATCH, &zs(&["/local/domain/1/data", "abs"])), "OK");
    assert_eq!(c1.events(&mut s), [("/local/domain/1/data".into(), "abs".into())]);
    // The toolstack asks for a shutdown: the guest's watch fires.
    s.tool_write("/local/domain/1/control/shutdown", b"poweroff").unwrap();
    assert_eq!(c1.events(&mut s), [("control/shutdown".into(), "tok".into())]);
    // Changes below a watched node fire it with the changed path.
    assert_eq!(c1.write(&mut s, "data/a/b", "1"), "OK");
    assert_eq!(c1.events(&mut s), [("/local/domain/1/data/a/b".into(), "abs".into())]);
    // rm fires the removed node's watches and those above it, and the exact watches of each
    // node below it (delnode_sub).
    assert_eq!(c1.ask(&mut s, xs::WATCH, &zs(&["data/a/b", "exact"])), "OK");
    assert_eq!(c1.events(&mut s).len(), 1);
    assert_eq!(c1.ask(&mut s, xs::RM, &z("data/a")), "OK");
    assert_eq!(c1.events(&mut s), [("data/a/b".into(), "exact".into()), ("/local/domain/1/data/a".into(), "abs".into())]);
    assert_eq!(c1.ask(&mut s, xs::UNWATCH, &zs(&["data/a/b", "exact"])), "OK");
    // A domain that cannot read a node gets no event for it.
    assert_eq!(c2.ask(&mut s, xs::WATCH, &zs(&["/local/domain/1/data", "spy"])), "OK");
    assert_eq!(c2.events(&mut s).len(), 1, "the initial event always comes");
    assert_eq!(c1.write(&mut s, "data/secret", "x"), "OK");
    assert_eq!(c2.events(&mut s), []);
    assert_eq!(c1.events(&mut s), [("/local/domain/1/data/secret".into(), "abs".into())]);
    // Unwatch; a second unwatch is ENOENT.
    assert_eq!(c1.ask(&mut s, xs::UNWATCH, &zs(&["/local/domain/1/data", "abs"])), "OK");
    assert_eq!(c1.ask(&mut s, xs::UNWATCH, &zs(&["/local/domain/1/data", "abs"])), "ENOENT");
    assert_eq!(c1.write(&mut s, "data/after", "x"), "OK");
    assert_eq!(c1.events(&mut s), []);
    // Special watches are accepted; a domU gets only their first event.
    assert_eq!(c1.ask(&mut s, xs::WATCH, &zs(&["@releaseDomain", "rel"])), "OK");
    assert_eq!(c1.events(&mut s), [("@releaseDomain".into(), "rel".into())]);
    s.release(2);
    assert_eq!(c1.events(&mut s), []);
    // RESET_WATCHES drops them all.
    assert_eq!(c1.ask(&mut s, xs::RESET_WATCHES, b""), "OK");
    s.tool_write("/local/domain/1/control/shutdown", b"reboot").unwrap();
    assert_eq!(c1.events(&mut s), []);
    assert_eq!(c1.ask(&mut s, xs::WATCH, &zs(&["a", "b", "c"])), "EINVAL");
}

#[test]
fn watch_quota_is_xenstoreds() {
    let mut s = store();
    let mut c = Client::new(1);
    let mut n = 0;
    loop {
        let r = c.ask(&mut s, xs::WATCH, &zs(&["data", &format!("t{n}")]));
        c.events(&mut s);
        if r != "OK" {
            assert_eq!(r, "E2BIG");
            break;
        }
        n += 1;
    }
    // do_watch refuses when the count is already above quota_nb_watch_per_domain.
    assert_eq!(n, quota::WATCHES + 1);
}

#[test]
fn transactions_commit_abort_and_conflict() {
    let mut s = store();
    let (mut c1, mut c2) = (Client::new(1), Client::new(2));
    assert_eq!(c1.ask(&mut s, xs::WATCH, &zs(&["data", "w"])), "OK");
    c1.events(&mut s);
    let tx: u32 = c1.ask(&mut s, xs::TRANSACTION_START, b"\0").parse().unwrap();
    assert_eq!(tx, 1, "xenstored's first transaction id");
    let w = |c: &mut Client, s: &mut Store, tx, p: &str, v: &str| {
        let mut b = z(p);
        b.extend_from_slice(v.as_bytes());
        String::from_utf8(c.req_tx(s, xs::WRITE, tx, &b).1).unwrap()
    };
    assert_eq!(w(&mut c1, &mut s, tx, "data/t", "in tx"), "OK\0");
    assert_eq!(c1.read(&mut s, "data/t"), "ENOENT", "not visible outside the transaction");
    assert_eq!(c1.req_tx(&mut s, xs::READ, tx, &z("data/t")).1, b"in tx");
    assert_eq!(c1.events(&mut s), [], "watches fire at commit");
    assert_eq!(c1.req_tx(&mut s, xs::TRANSACTION_START, tx, b"\0").1, b"EBUSY\0", "no nesting");
    assert_eq!(c1.req_tx(&mut s, xs::TRANSACTION_END, tx, &z("T")).1, b"OK\0");
    assert_eq!(c1.read(&mut s, "data/t"), "in tx");
    assert_eq!(c1.events(&mut s), [("data/t".into(), "w".into())]);
    assert_eq!(c1.req_tx(&mut s, xs::READ, tx, &z("data/t")).1, b"ENOENT\0", "the transaction is gone");
    // A node the transaction read changed before the commit: EAGAIN, nothing applied.
    let tx: u32 = c1.ask(&mut s, xs::TRANSACTION_START, b"\0").parse().unwrap();
    assert_eq!(c1.req_tx(&mut s, xs::READ, tx, &z("data/t")).1, b"in tx");
    assert_eq!(w(&mut c1, &mut s, tx, "data/u", "u"), "OK\0");
    assert_eq!(c1.write(&mut s, "data/t", "changed"), "OK");
    assert_eq!(c1.req_tx(&mut s, xs::TRANSACTION_END, tx, &z("T")).1, b"EAGAIN\0");
    assert_eq!(c1.read(&mut s, "data/u"), "ENOENT");
    // Abort.
    let tx: u32 = c1.ask(&mut s, xs::TRANSACTION_START, b"\0").parse().unwrap();
    assert_eq!(w(&mut c1, &mut s, tx, "data/v", "v"), "OK\0");
    assert_eq!(c1.req_tx(&mut s, xs::TRANSACTION_END, tx, &z("F")).1, b"OK\0");
    assert_eq!(c1.read(&mut s, "data/v"), "ENOENT");
    assert_eq!(c1.req_tx(&mut s, xs::TRANSACTION_END, tx, &z("X")).1, b"ENOENT\0", "the transaction is looked up first");
    let tx: u32 = c1.ask(&mut s, xs::TRANSACTION_START, b"\0").parse().unwrap();
    assert_eq!(c1.req_tx(&mut s, xs::TRANSACTION_END, tx, &z("X")).1, b"EINVAL\0");
    assert_eq!(c1.req_tx(&mut s, xs::TRANSACTION_END, tx, &z("F")).1, b"OK\0");
    // Another domain's write elsewhere does not conflict.
    let tx: u32 = c1.ask(&mut s, xs::TRANSACTION_START, b"\0").parse().unwrap();
    assert_eq!(w(&mut c1, &mut s, tx, "data/w", "w"), "OK\0");
    assert_eq!(c2.write(&mut s, "data/other", "o"), "OK");
    assert_eq!(c1.req_tx(&mut s, xs::TRANSACTION_END, tx, &z("T")).1, b"OK\0");
    // A transaction id is per connection.
    let tx: u32 = c1.ask(&mut s, xs::TRANSACTION_START, b"\0").parse().unwrap();
    assert_eq!(c2.req_tx(&mut s, xs::READ, tx, &z("domid")).1, b"ENOENT\0");
    // The transaction quota: xenstored refuses when more than quota_max_transaction are open.
    let mut open = 1;
    loop {
        let r = c1.ask(&mut s, xs::TRANSACTION_START, b"\0");
        if r == "ENOSPC" {
            break;
        }
        open += 1;
    }
    assert_eq!(open, quota::TRANSACTIONS + 1);
}

#[test]
fn entry_size_and_count_quotas() {
    let mut s = store();
    let mut c = Client::new(1);
    assert_eq!(c.write(&mut s, "data/big", &"v".repeat(2000)), "OK");
    assert_eq!(c.write(&mut s, "data/big", &"v".repeat(2048)), "ENOSPC", "quota_max_entry_size");
    assert_eq!(c.read(&mut s, "data/big").len(), 2000, "a refused write changes nothing");
    assert_eq!(c.ask(&mut s, xs::SET_PERMS, &zs(&["data/big", "n1", "r2", "r2", "r2", "r2", "r2"])), "ENOSPC");
    // Nodes a domain owns: up to quota_nb_entry_per_domain.
    let owned = s.tree.entries_of(1) as i64;
    let mut made = 0;
    loop {
        // Spread over directories so no child list reaches the entry size.
        let r = c.write(&mut s, &format!("data/d{}/n{}", made / 100, made), "");
        if r != "OK" {
            assert_eq!(r, "ENOSPC");
            break;
        }
        made += 1;
    }
    assert_eq!(s.tree.entries_of(1) as i64, quota::ENTRIES);
    assert!(made > 0 && owned + made as i64 + 10 >= quota::ENTRIES, "owned {owned}, made {made}");
    // Domain 2 is not affected by domain 1's count.
    assert_eq!(Client::new(2).write(&mut s, "data/x", "y"), "OK");
}

#[test]
fn directory_part_pages_the_child_list() {
    let mut s = store();
    let mut c = Client::new(1);
    for i in 0..3 {
        assert_eq!(c.write(&mut s, &format!("data/c{i}"), ""), "OK");
    }
    let (_, b) = c.req(&mut s, xs::DIRECTORY_PART, &zs(&["data", "0"]));
    let parts: Vec<&[u8]> = b.split(|&x| x == 0).collect();
    assert!(std::str::from_utf8(parts[0]).unwrap().parse::<u64>().is_ok(), "generation first");
    assert_eq!(&parts[1..], [&b"c0"[..], b"c1", b"c2", b"", b""]);
    let (_, b) = c.req(&mut s, xs::DIRECTORY_PART, &zs(&["data", "3"]));
    assert!(b.ends_with(b"\0c1\0c2\0\0"), "{b:?}");
    let (_, b) = c.req(&mut s, xs::DIRECTORY_PART, &zs(&["data", "99"]));
    assert!(b.ends_with(b"\0\0"));
    assert_eq!(c.ask(&mut s, xs::DIRECTORY_PART, &z("data")), "EINVAL");
}

#[test]
fn requests_are_traced_one_line_each() {
    let mut s = store();
    let mut c = Client::new(1);
    s.take_lines();
    c.read(&mut s, "domid");
    c.read(&mut s, "nothing");
    c.write(&mut s, "data/x", "v");
    c.ask(&mut s, xs::WATCH, &zs(&["data", "t"]));
    assert_eq!(
        s.take_lines(),
        [
            "d1 xenstore read domid = \"1\"",
            "d1 xenstore read nothing = ENOENT",
            "d1 xenstore write data/x \"v\" = OK",
            "d1 xenstore watch data token \"t\" = OK",
            "d1 xenstore event data token \"t\"",
        ]
    );
}

/// Write a request into domain `d`'s store ring page and kick the store event channel.
fn guest_request(w: &mut World, d: DomId, msg: &[u8]) -> i64 {
    let si = w.start_info(d);
    let ring = w.hv.doms[&d].start_info_va + PAGE_SIZE;
    assert_eq!(w.mfn_of(d, ring).0, si.store_mfn);
    let prod: u32 = w.read_pod(d, ring + r::REQ_PROD);
    for (i, b) in msg.iter().enumerate() {
        w.write(d, ring + r::REQ + ((prod as u64 + i as u64) & 1023), &[*b]);
    }
    w.write_pod(d, ring + r::REQ_PROD, &(prod + msg.len() as u32));
    let arg = w.scratch(d, 0);
    w.write_pod(d, arg, &si.store_evtchn);
    w.hypercall(d, nr::EVENT_CHANNEL_OP, [4, arg, 0, 0, 0])
}

#[test]
fn a_guest_ring_is_served_and_notified() {
    let mut w = World::new();
    let d = w.create("xs");
    let si = w.start_info(d);
    assert!(!w.port_pending(d, si.store_evtchn));
    // The header alone: consumed, no reply yet.
    let msg = crate::store::message(xs::READ, 5, 0, &z("name"));
    assert_eq!(guest_request(&mut w, d, &msg[..16]), 0);
    let ring = w.hv.doms[&d].start_info_va + PAGE_SIZE;
    assert_eq!(w.read_pod::<u32>(d, ring + r::REQ_CONS), 16);
    assert_eq!(w.read_pod::<u32>(d, ring + r::RSP_PROD), 0);
    assert!(w.port_pending(d, si.store_evtchn), "the consumer index moved: notified");
    assert_eq!(guest_request(&mut w, d, &msg[16..]), 0);
    let prod: u32 = w.read_pod(d, ring + r::RSP_PROD);
    assert_eq!(prod, 16 + 2);
    assert_eq!(w.read(d, ring + r::RSP + 16, 2), b"xs");
    w.assert_trace(&["d1 xenstore read name = \"xs\""]);
}

#[test]
fn xl_shutdown_goes_through_control_shutdown() {
    let mut w = World::new();
    let d = w.create("ignores");
    w.hv.shutdown("ignores", ShutdownReason::Poweroff).unwrap();
    assert_eq!(w.hv.store.read("/local/domain/1/control/shutdown"), Some(&b"poweroff"[..]));
    w.assert_trace(&["d1 shutdown requested"]);
    w.assert_trace(&["d1 xenstore toolstack write control/shutdown \"poweroff\" = OK"]);
    w.hv.run_until(w.hv.now + SHUTDOWN_GRACE_NS / 2);
    assert_eq!(w.hv.record("ignores").unwrap().state, RecordState::Running, "the guest has time to act");
    w.hv.run_until(w.hv.now + SHUTDOWN_GRACE_NS);
    assert_eq!(w.hv.record("ignores").unwrap().state, RecordState::Destroyed);
    w.assert_trace(&["d1 shutdown request not acted on within 5ms: forcing poweroff"]);
    w.assert_trace(&["d1 shutdown poweroff -> destroy"]);
    assert!(w.hv.store.read("/local/domain/1/domid").is_none(), "its paths went with it");
    assert!(!w.hv.doms.contains_key(&d));

    // A guest that acts: it shuts itself down; no forced shutdown follows.
    let d2 = w.create("acts");
    w.hv.shutdown("acts", ShutdownReason::Poweroff).unwrap();
    let mut rd = crate::store::message(xs::WRITE, 1, 0, &z("control/shutdown"));
    rd[12..16].copy_from_slice(&(z("control/shutdown").len() as u32).to_le_bytes());
    assert_eq!(guest_request(&mut w, d2, &rd), 0);
    assert_eq!(w.hv.store.read(&format!("/local/domain/{d2}/control/shutdown")), Some(&b""[..]));
    w.shutdown_call(d2, 0);
    w.hv.run_until(w.hv.now + 2 * SHUTDOWN_GRACE_NS);
    assert!(w.trace_lines(&["forcing"]).len() == 1, "only the first domain was forced");
}

#[test]
fn a_domain_that_does_not_read_its_replies_stops_being_read() {
    let mut s = store();
    let mut c = Client::new(1);
    let req = crate::store::message(xs::READ, 1, 0, &z("domid"));
    let reply_len = 16 + 1;
    // Requests until the store stops taking them: the response ring fills (1024 bytes), then
    // quota_req_outstanding replies queue, then input waits.
    let mut sent = 0;
    for _ in 0..200 {
        let used = c.ring.get_u32(r::REQ_PROD).wrapping_sub(c.ring.get_u32(r::REQ_CONS)) as usize;
        if used + req.len() > 1024 {
            break;
        }
        c.put(&req);
        c.pump(&mut s);
        sent += 1;
    }
    let answered_in_ring = 1024 / reply_len;
    assert_eq!(s.conns[&1].outstanding(), quota::OUTSTANDING);
    let consumed = c.ring.get_u32(r::REQ_CONS) as usize / req.len();
    // 60 whole replies fit in the ring; the 61st is partly sent and still counts as queued.
    assert_eq!(consumed, answered_in_ring + quota::OUTSTANDING, "sent {sent}");
    // Reading the replies lets the rest through.
    let mut got = 0;
    while c.recv(&mut s).is_some() {
        got += 1;
    }
    assert_eq!(got, sent);
}
