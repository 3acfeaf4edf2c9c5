//! Console output: the PV console ring (`print!`/`println!`) and `console_io` (hypercall 18).
//!
//! The ring page is `xencons_interface`; the guest produces into `out[2048]` (index masked with
//! 2047), publishes `out_prod` after a write barrier, notifies the console event channel and then
//! waits (yielding, at most [`DRAIN_YIELDS`] times) until the backend's `out_cons` catches up.
//! Before `init` (or for dom0, which has no ring) output goes through `console_io`.

use crate::abi::*;
use core::fmt::{self, Write};
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use core::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Yields spent waiting for the backend to drain the ring before giving up.
pub const DRAIN_YIELDS: u32 = 1000;

static RING: AtomicUsize = AtomicUsize::new(0);
static EVTCHN: AtomicU32 = AtomicU32::new(0);

/// Locates the console ring: VA = VIRT_BASE + m2p[console.domU.mfn] * 4096.
pub(crate) fn init(si: &StartInfo) {
    if si.flags & SIF_INITDOMAIN != 0 || si.console_mfn == 0 {
        return; // dom0 (or no ring): console_io only
    }
    let va = crate::mm::mfn_to_va(si.console_mfn);
    EVTCHN.store(si.console_evtchn, Ordering::Relaxed);
    RING.store(va as usize, Ordering::Release);
}

/// Writes `bytes` to the console ring (or console_io if there is no ring).
pub fn ring_write(bytes: &[u8]) {
    let ring = RING.load(Ordering::Acquire) as *mut XenconsInterface;
    if ring.is_null() {
        console_io_write(bytes);
        return;
    }
    let port = EVTCHN.load(Ordering::Relaxed);
    let mut sent = 0;
    let mut waits = 0;
    // SAFETY: `ring` is the console page mapped by the domain builder (init computed its VA);
    // the backend concurrently reads `out` and writes `out_cons`, so every shared access is a
    // volatile access through raw pointers (no references to shared memory are created).
    unsafe {
        let out = addr_of_mut!((*ring).out) as *mut u8;
        let cons_p = addr_of!((*ring).out_cons);
        let prod_p = addr_of_mut!((*ring).out_prod);
        while sent < bytes.len() {
            let cons = read_volatile(cons_p);
            fence(Ordering::Acquire); // read cons before overwriting consumed slots
            let mut prod = read_volatile(prod_p);
            while sent < bytes.len() && prod.wrapping_sub(cons) < 2048 {
                write_volatile(out.add((prod & 2047) as usize), bytes[sent]);
                prod = prod.wrapping_add(1);
                sent += 1;
            }
            fence(Ordering::Release); // wmb: data before index
            write_volatile(prod_p, prod);
            crate::hypercall::evtchn_send(port);
            if sent < bytes.len() {
                waits += 1;
                if waits > DRAIN_YIELDS {
                    return; // backend is not consuming; drop the rest
                }
                crate::hypercall::sched_yield();
            }
        }
        for _ in 0..DRAIN_YIELDS {
            if read_volatile(cons_p) == read_volatile(prod_p) {
                break;
            }
            crate::hypercall::sched_yield();
        }
    }
}

/// Writes `bytes` with `console_io(CONSOLEIO_write)`.
pub fn console_io_write(bytes: &[u8]) -> i64 {
    // SAFETY: the buffer is valid for its length.
    unsafe { crate::hypercall::console_io(CONSOLEIO_WRITE, bytes.len() as u64, bytes.as_ptr()) }
}

/// A fixed-size formatting buffer that hands full chunks to a sink.
struct Chunked<F: FnMut(&[u8])> {
    buf: [u8; 256],
    len: usize,
    sink: F,
}

impl<F: FnMut(&[u8])> Chunked<F> {
    fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl<F: FnMut(&[u8])> Write for Chunked<F> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

fn fmt_to(args: fmt::Arguments, sink: impl FnMut(&[u8])) {
    let mut w = Chunked { buf: [0; 256], len: 0, sink };
    let _ = w.write_fmt(args);
    w.flush();
}

/// Backend of `print!`: formats (in 256-byte chunks) into the console ring.
pub fn ring_fmt(args: fmt::Arguments) {
    fmt_to(args, ring_write);
}

/// Formats through console_io (hypercall 18).
pub fn console_io_fmt(args: fmt::Arguments) {
    fmt_to(args, |b| {
        console_io_write(b);
    });
}

/// Prints to the PV console ring.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::ring_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the PV console ring.
#[macro_export]
macro_rules! println {
    () => { $crate::console::ring_write(b"\n") };
    ($($arg:tt)*) => { $crate::console::ring_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints a line through console_io (hypercall 18).
#[macro_export]
macro_rules! cio_println {
    ($($arg:tt)*) => {
        $crate::console::console_io_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Reads what the backend has put in the console ring's `in` buffer (at most `buf.len()`
/// bytes), as Linux's `domU_read_console` does (hvc_xen.c): copy from `in_cons` up to
/// `in_prod`, publish `in_cons`, notify the backend. Returns 0 when there is nothing (or no ring).
pub fn ring_read(buf: &mut [u8]) -> usize {
    let ring = RING.load(Ordering::Acquire) as *mut XenconsInterface;
    if ring.is_null() {
        return 0;
    }
    let mut n = 0;
    // SAFETY: as in `ring_write`; the backend writes `in` and `in_prod` concurrently.
    unsafe {
        let input = addr_of!((*ring).input) as *const u8;
        let mut cons = read_volatile(addr_of!((*ring).in_cons));
        let prod = read_volatile(addr_of!((*ring).in_prod));
        fence(Ordering::Acquire); // rmb: index, then data
        if prod.wrapping_sub(cons) > 1024 {
            return 0; // a confused backend: Linux BUG()s here; we read nothing
        }
        while cons != prod && n < buf.len() {
            buf[n] = read_volatile(input.add((cons & 1023) as usize));
            cons = cons.wrapping_add(1);
            n += 1;
        }
        fence(Ordering::SeqCst); // mb: data read before the slots are handed back
        write_volatile(addr_of_mut!((*ring).in_cons), cons);
    }
    if n > 0 {
        crate::hypercall::evtchn_send(EVTCHN.load(Ordering::Relaxed));
    }
    n
}

/// Waits for console input (or any console notification): clears the console port's pending
/// bit if it was set (then returns at once: the caller looks at the ring again), else blocks in
/// `SCHEDOP_poll` on the port. Needs shared_info mapped; without it (or without a ring) it yields.
pub fn wait_input() {
    let port = EVTCHN.load(Ordering::Relaxed);
    let Some(shared) = crate::mm::shared_info() else {
        crate::hypercall::sched_yield();
        return;
    };
    if RING.load(Ordering::Acquire) == 0 {
        crate::hypercall::sched_yield();
        return;
    }
    let word = (port / 64) as usize;
    let bit = 1u64 << (port % 64);
    // SAFETY: shared_info is mapped; the pending word is shared with the hypervisor, so it is
    // only touched with an atomic read-modify-write through a raw pointer.
    let was = unsafe {
        let p = addr_of_mut!((*shared).evtchn_pending[word]);
        AtomicU64::from_ptr(p).fetch_and(!bit, Ordering::SeqCst) & bit != 0
    };
    if !was {
        let ports = [port];
        let poll = SchedPoll { ports: ports.as_ptr() as u64, nr_ports: 1, timeout: 0 };
        // SAFETY: `poll` and `ports` are valid for the call.
        unsafe { crate::hypercall::sched_op(SCHEDOP_POLL, addr_of!(poll).cast()) };
    }
}
