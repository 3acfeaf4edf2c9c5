//! A xenstore client over the store ring, written the way Linux's xenbus driver writes
//! (`drivers/xen/xenbus/xenbus_comms.c`: `xb_write` copies as much as fits up to the ring's end,
//! publishes `req_prod`, notifies, and waits for room; `xs_talkv` sends the header and each
//! argument as separate writes), and reads replies as `xb_read` does (whatever is there, then
//! `rsp_cons`, then a notify). Waiting is XTF's: `SCHEDOP_poll` on the store port unless it is
//! already pending. Watch events that arrive while a reply is awaited are kept for
//! [`next_event`].
//!
//! Single vCPU, no interrupts: the state is in statics used only from the guest's main flow.

use crate::abi::*;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use core::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};

static RING: AtomicUsize = AtomicUsize::new(0);
static PORT: AtomicU32 = AtomicU32::new(0);
static REQ_ID: AtomicU32 = AtomicU32::new(1);

/// A reply: its type (the request's, or `XS_ERROR`) and body.
pub struct Reply {
    pub ty: u32,
    pub len: usize,
    pub buf: [u8; XENSTORE_PAYLOAD_MAX],
}

impl Default for Reply {
    fn default() -> Self {
        Self::new()
    }
}

impl Reply {
    pub const fn new() -> Self {
        Self { ty: 0, len: 0, buf: [0; XENSTORE_PAYLOAD_MAX] }
    }
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    /// The body as text without its trailing NUL ("?" if not UTF-8).
    pub fn text(&self) -> &str {
        let b = self.bytes();
        core::str::from_utf8(b.strip_suffix(&[0]).unwrap_or(b)).unwrap_or("?")
    }
    pub fn is_error(&self) -> bool {
        self.ty == XS_ERROR
    }
}

/// Up to this many watch events are kept while waiting for replies.
const EVENTS: usize = 8;

struct EventQueue {
    n: usize,
    ev: [Reply; EVENTS],
}

struct Queue(core::cell::UnsafeCell<EventQueue>);
// SAFETY: used only from the guest's single flow of control (one vCPU, no handlers use it).
unsafe impl Sync for Queue {}

static QUEUE: Queue = Queue(core::cell::UnsafeCell::new(EventQueue { n: 0, ev: [const { Reply::new() }; EVENTS] }));

fn queue() -> &'static mut EventQueue {
    // SAFETY: see `Queue`: no other reference is live while the caller uses this one.
    unsafe { &mut *QUEUE.0.get() }
}

/// Find the ring (VA = the store mfn's pfn in the kernel's map) and the port. Needs shared_info
/// mapped (for the pending bit). Returns false without a store.
pub fn init() -> bool {
    let si = crate::start_info();
    if si.store_mfn == 0 || si.store_evtchn == 0 || crate::mm::map_shared_info() != 0 {
        return false;
    }
    PORT.store(si.store_evtchn, Ordering::Relaxed);
    RING.store(crate::mm::mfn_to_va(si.store_mfn) as usize, Ordering::Release);
    true
}

fn ring() -> *mut XenstoreDomainInterface {
    let r = RING.load(Ordering::Acquire);
    assert!(r != 0, "xenstore::init first");
    r as *mut XenstoreDomainInterface
}

/// Wait for the store: clear the port's pending bit if set, else poll on it (XTF's xenbus).
fn wait() {
    let port = PORT.load(Ordering::Relaxed);
    let Some(shared) = crate::mm::shared_info() else { return };
    let word = (port / 64) as usize;
    let bit = 1u64 << (port % 64);
    // SAFETY: shared_info is mapped; the pending word is shared with the hypervisor, so it is
    // only touched with atomic read-modify-write through a raw pointer.
    let was = unsafe {
        let p = addr_of_mut!((*shared).evtchn_pending[word]);
        core::sync::atomic::AtomicU64::from_ptr(p).fetch_and(!bit, Ordering::SeqCst) & bit != 0
    };
    if !was {
        let ports = [port];
        let poll = SchedPoll { ports: ports.as_ptr() as u64, nr_ports: 1, timeout: 0 };
        // SAFETY: `poll` and `ports` are valid for the call.
        unsafe { crate::hypercall::sched_op(SCHEDOP_POLL, addr_of!(poll).cast()) };
    }
}

/// `xb_write`: copy `data` into the request ring, as much as fits each time.
pub fn write_raw(data: &[u8]) {
    let r = ring();
    let port = PORT.load(Ordering::Relaxed);
    let mut done = 0;
    while done < data.len() {
        // SAFETY: the ring page is mapped by the builder; the store reads `req` and writes
        // `req_cons` concurrently, so every access is volatile through raw pointers.
        unsafe {
            let cons = read_volatile(addr_of!((*r).req_cons));
            let prod = read_volatile(addr_of!((*r).req_prod));
            fence(Ordering::Acquire);
            let used = prod.wrapping_sub(cons);
            if used >= XENSTORE_RING_SIZE {
                crate::hypercall::evtchn_send(port);
                wait();
                continue;
            }
            let off = prod & (XENSTORE_RING_SIZE - 1);
            let n = (XENSTORE_RING_SIZE - used).min(XENSTORE_RING_SIZE - off).min((data.len() - done) as u32);
            let req = addr_of_mut!((*r).req) as *mut u8;
            for i in 0..n {
                write_volatile(req.add((off + i) as usize), data[done + i as usize]);
            }
            fence(Ordering::Release);
            write_volatile(addr_of_mut!((*r).req_prod), prod.wrapping_add(n));
            done += n as usize;
        }
        crate::hypercall::evtchn_send(port);
    }
}

/// `xb_read`: fill `out` from the response ring, waiting as needed.
fn read_raw(out: &mut [u8]) {
    let r = ring();
    let port = PORT.load(Ordering::Relaxed);
    let mut done = 0;
    while done < out.len() {
        // SAFETY: as in `write_raw`; the store writes `rsp` and `rsp_prod`.
        unsafe {
            let cons = read_volatile(addr_of!((*r).rsp_cons));
            let prod = read_volatile(addr_of!((*r).rsp_prod));
            fence(Ordering::Acquire);
            let avail = prod.wrapping_sub(cons);
            if avail == 0 {
                wait();
                continue;
            }
            let off = cons & (XENSTORE_RING_SIZE - 1);
            let n = avail.min(XENSTORE_RING_SIZE - off).min((out.len() - done) as u32);
            let rsp = addr_of!((*r).rsp) as *const u8;
            for i in 0..n {
                out[done + i as usize] = read_volatile(rsp.add((off + i) as usize));
            }
            fence(Ordering::SeqCst);
            write_volatile(addr_of_mut!((*r).rsp_cons), cons.wrapping_add(n));
            done += n as usize;
        }
        crate::hypercall::evtchn_send(port);
    }
}

/// Read one whole message.
fn read_message(into: &mut Reply) {
    let mut hdr = [0u8; 16];
    read_raw(&mut hdr);
    let word = |i: usize| u32::from_le_bytes([hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]]);
    into.ty = word(0);
    let len = word(12) as usize;
    into.len = len.min(XENSTORE_PAYLOAD_MAX);
    read_raw(&mut into.buf[..into.len]);
    // Drain what does not fit (a store that sends too much must not stall the ring).
    let mut rest = len - into.len;
    let mut sink = [0u8; 64];
    while rest > 0 {
        let n = rest.min(64);
        read_raw(&mut sink[..n]);
        rest -= n;
    }
}

/// `xs_talkv`: send a request (header, then each part as its own write) and wait for its
/// reply; watch events in between are queued.
pub fn talk(ty: u32, tx: u32, parts: &[&[u8]], reply: &mut Reply) {
    let id = REQ_ID.fetch_add(1, Ordering::Relaxed);
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut hdr = [0u8; 16];
    for (i, w) in [ty, id, tx, len as u32].iter().enumerate() {
        hdr[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    write_raw(&hdr);
    for p in parts {
        write_raw(p);
    }
    loop {
        read_message(reply);
        if reply.ty != XS_WATCH_EVENT {
            return;
        }
        let q = queue();
        if q.n < EVENTS {
            let slot = &mut q.ev[q.n];
            slot.ty = reply.ty;
            slot.len = reply.len;
            slot.buf[..reply.len].copy_from_slice(reply.bytes());
            q.n += 1;
        }
    }
}

/// A request whose arguments are NUL-terminated strings, optionally followed by raw bytes.
pub fn call(ty: u32, tx: u32, strings: &[&str], raw: &[u8], reply: &mut Reply) {
    // Each string and its NUL as separate writes, as Linux's iovecs.
    let mut parts: [&[u8]; 8] = [&[]; 8];
    let mut n = 0;
    for s in strings.iter().take(3) {
        parts[n] = s.as_bytes();
        parts[n + 1] = b"\0";
        n += 2;
    }
    parts[n] = raw;
    n += 1;
    talk(ty, tx, &parts[..n], reply);
}

/// The next watch event: (path, token) in `into` as "path\0token\0".
pub fn next_event(into: &mut Reply) {
    let q = queue();
    if q.n > 0 {
        let first = &q.ev[0];
        into.ty = first.ty;
        into.len = first.len;
        into.buf[..first.len].copy_from_slice(first.bytes());
        q.ev.rotate_left(1);
        q.n -= 1;
        return;
    }
    read_message(into);
}

/// Split an event body into (path, token).
pub fn event_parts(r: &Reply) -> (&str, &str) {
    let mut it = r.bytes().split(|&b| b == 0).map(|s| core::str::from_utf8(s).unwrap_or("?"));
    (it.next().unwrap_or(""), it.next().unwrap_or(""))
}
