//! The console ring drain (`hv::hypercall::drain_console_ring`, then the line splitter
//! `console_output`) and the xenstore ring server (`Hypervisor::store_service`) over ring pages whose
//! indices and bytes are the fuzz input.
//!
//! Input: six little-endian u32 indices (console out_cons, out_prod; store req_cons, req_prod,
//! rsp_cons, rsp_prod), one byte `split`, then ring bytes: the first `split * 8` go to the
//! console's output ring, the rest to the store's request ring (each at offset 0, wrapping).
#![no_main]

use std::cell::RefCell;

use hv::abi::{cons_ring, store_ring};
use hv::hypercall::{console_output_pub as console_output, drain_console_ring};
use hv::mm::{MachineMemory, Mfn, PAGE_SIZE};
use hv::platform::Gate;
use hv::testing::mock::Mock;
use hv::{DomId, Hypervisor};
use libfuzzer_sys::fuzz_target;
use xenolith_fuzz::with_test_domain;

/// Built once: the rings only touch their own pages and shared_info, which are restored from
/// `pristine` before every input.
struct Bench {
    hv: Hypervisor<Mock>,
    d: DomId,
    pristine: Vec<(Mfn, Vec<u8>)>,
}

thread_local! {
    static BENCH: RefCell<Option<Bench>> = const { RefCell::new(None) };
}

fn frame(mem: &mut [u8], mfn: Mfn) -> &mut [u8] {
    let a = (mfn.0 * PAGE_SIZE) as usize;
    &mut mem[a..a + PAGE_SIZE as usize]
}

fn u32_at(data: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(data[i * 4..i * 4 + 4].try_into().expect("4 bytes"))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 25 {
        return;
    }
    BENCH.with_borrow_mut(|b| run(b, data));
});

fn run(slot: &mut Option<Bench>, data: &[u8]) {
    let b = slot.get_or_insert_with(|| {
        let (mut hv, d) = with_test_domain(Gate::Syscall);
        let dom = &hv.doms[&d];
        let pages = [dom.console.ring, dom.store_ring, dom.shared_info];
        let pristine = pages.iter().map(|&m| (m, frame(&mut hv.platform.mem, m).to_vec())).collect();
        Bench { hv, d, pristine }
    });
    for (m, bytes) in &b.pristine {
        frame(&mut b.hv.platform.mem, *m).copy_from_slice(bytes);
    }
    let dom = b.hv.doms.get_mut(&b.d).expect("the domain");
    dom.console.partial.clear();
    dom.console.lines.clear();
    let (cons, store) = (dom.console.ring, dom.store_ring);

    let (body, split) = (&data[25..], data[24] as usize * 8);
    let (cbytes, sbytes) = body.split_at(split.min(body.len()));
    {
        let mem = &mut b.hv.platform.mem;
        let page = frame(mem, cons);
        for (i, &x) in cbytes.iter().enumerate() {
            page[(cons_ring::OUT + i as u64 % cons_ring::OUT_SIZE) as usize] = x;
        }
        page[cons_ring::OUT_CONS as usize..][..4].copy_from_slice(&u32_at(data, 0).to_le_bytes());
        page[cons_ring::OUT_PROD as usize..][..4].copy_from_slice(&u32_at(data, 1).to_le_bytes());
        let page = frame(mem, store);
        for (i, &x) in sbytes.iter().enumerate() {
            page[(store_ring::REQ + i as u64 % store_ring::RING_SIZE) as usize] = x;
        }
        for (k, off) in [store_ring::REQ_CONS, store_ring::REQ_PROD, store_ring::RSP_CONS, store_ring::RSP_PROD].into_iter().enumerate() {
            page[off as usize..][..4].copy_from_slice(&u32_at(data, 2 + k).to_le_bytes());
        }
    }

    let dom = b.hv.doms.get_mut(&b.d).expect("the domain");
    let mut mem = MachineMemory::new(&mut b.hv.platform.mem);
    let (out, _) = drain_console_ring(&mut mem, dom);
    assert!(out.len() as u64 <= cons_ring::OUT_SIZE, "drained {} bytes from a {}-byte ring", out.len(), cons_ring::OUT_SIZE);
    let ring = cons.maddr();
    assert_eq!(
        mem.read_u32(ring.add(cons_ring::OUT_CONS)),
        mem.read_u32(ring.add(cons_ring::OUT_PROD)),
        "the drain consumes up to the producer"
    );
    let lines = console_output(dom, &out, true);
    assert!(dom.console.partial.len() <= 4096, "a console line grew past its cap");
    assert!(lines.len() <= out.len());

    let rsp_was = u32_at(data, 5).wrapping_sub(u32_at(data, 4)) as u64;
    drop(mem);
    // A fresh connection each input (the store keeps partial requests per domain).
    b.hv.store = hv::store::Store::new();
    b.hv.store_introduce(b.d);
    b.hv.store_service(Some(b.d));
    let mem = MachineMemory::new(&mut b.hv.platform.mem);
    let ring = store.maddr();
    let rprod = mem.read_u32(ring.add(store_ring::RSP_PROD)).unwrap_or(0);
    let rcons = mem.read_u32(ring.add(store_ring::RSP_CONS)).unwrap_or(0);
    if rsp_was <= store_ring::RING_SIZE {
        assert!(
            rprod.wrapping_sub(rcons) as u64 <= store_ring::RING_SIZE,
            "the server overfilled the response ring: prod {rprod} cons {rcons}"
        );
    }
}
