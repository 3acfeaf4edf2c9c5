//! `xenolith boot -c` / `create -c`: the interactive side of `xl console`. Bytes read from stdin
//! go into the domain's console ring (`Hypervisor::console_input`, which does what xenconsoled
//! does with bytes from the pty: fill `in`, bump `in_prod`, notify the console event channel).
//!
//! **Determinism.** A reader thread only collects stdin; the bytes enter the guest from the run
//! loop, between runs of [`CHUNK_NS`] of virtual time: input that arrived while a chunk ran is
//! injected at the chunk's end, i.e. stamped at that virtual time (and traced as
//! `dN console input "..." (K bytes)`). The guest therefore sees input only at those points of
//! its virtual clock, and the same bytes at the same virtual times give the same run, as the
//! `input` scenario step shows (`scenarios/console_input.toml`). What is not reproducible is
//! which chunk a typed key falls into, which depends on the host's speed.
//!
//! **Pacing.** While the guest idles (blocked waiting for input or a timer) the simulator would
//! otherwise race through virtual time; in a session, the idle part of each chunk is spent
//! waiting for stdin in real time, so virtual time passes no faster than wall time when idle.
//!
//! **Ctrl-] (0x1d)** ends the session as `xl console`'s escape character does. The domain lives
//! in this process, so leaving its console ends it too: it is destroyed (exit 4). Bytes typed
//! before the Ctrl-] are delivered first, and the guest runs [`DETACH_GRACE_NS`] more of
//! virtual time to read them; nothing after the Ctrl-] is read. End of input (a pipe's writer closing) leaves the
//! session running without more input, as a pty with no more keystrokes would.
//!
//! On a terminal, stdin is put in raw mode (no line editing, no local echo, no signals: Ctrl-C
//! goes to the guest, as on a serial console) for the session and restored afterwards.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

/// Virtual time between two points where input may be injected (1 ms).
pub const CHUNK_NS: u64 = 1_000_000;
/// Virtual time the guest still runs after Ctrl-], to read what was typed before it (10 ms).
pub const DETACH_GRACE_NS: u64 = 10_000_000;
/// `xl console`'s escape character (Ctrl-]).
pub const ESCAPE: u8 = 0x1d;

/// Stdin as a console: a reader thread, the bytes not yet taken by the ring, end of input.
pub struct Session {
    rx: Receiver<Vec<u8>>,
    pending: VecDeque<u8>,
    eof: bool,
    /// Ctrl-] was read (everything before it is in `pending`).
    pub detach: bool,
    raw: Option<RawMode>,
}

impl Session {
    /// Starts reading stdin (raw mode on a terminal).
    pub fn start() -> Self {
        let raw = RawMode::enter();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Self { rx, pending: VecDeque::new(), eof: false, detach: false, raw }
    }

    fn take(&mut self, chunk: Vec<u8>) {
        if self.detach {
            return;
        }
        match chunk.iter().position(|&b| b == ESCAPE) {
            Some(i) => {
                self.pending.extend(&chunk[..i]);
                self.detach = true;
            }
            None => self.pending.extend(chunk),
        }
    }

    /// Collect what the reader has so far, without waiting.
    pub fn poll(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(c) => self.take(c),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.eof = true;
                    return;
                }
            }
        }
    }

    /// Wait up to `d` of real time for input (returns early when some arrives).
    pub fn wait(&mut self, d: Duration) {
        if self.eof || self.detach {
            std::thread::sleep(d);
            return;
        }
        match self.rx.recv_timeout(d) {
            Ok(c) => self.take(c),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.eof = true,
        }
    }

    /// The bytes waiting for room in the ring.
    pub fn pending(&mut self) -> &[u8] {
        self.pending.make_contiguous()
    }

    /// `n` bytes went into the ring.
    pub fn consumed(&mut self, n: usize) {
        self.pending.drain(..n.min(self.pending.len()));
    }

    /// Restore the terminal (also done on drop).
    pub fn end(&mut self) {
        self.raw.take();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end();
    }
}

/// The terminal's settings before the session, restored on drop.
struct RawMode(libc::termios);

impl RawMode {
    fn enter() -> Option<Self> {
        // SAFETY: isatty only inspects file descriptor 0.
        if unsafe { libc::isatty(0) } != 1 {
            return None;
        }
        // SAFETY: a zeroed termios is a valid buffer for tcgetattr to fill.
        let mut old: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is a terminal and `old` is a valid termios.
        if unsafe { libc::tcgetattr(0, &mut old) } != 0 {
            return None;
        }
        let mut raw = old;
        // SAFETY: `raw` is a valid termios.
        unsafe { libc::cfmakeraw(&mut raw) };
        // Keep output processing (a guest's "\n" still starts a new line on the screen).
        raw.c_oflag = old.c_oflag;
        // SAFETY: fd 0 is a terminal and `raw` a valid termios.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(Self(old))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read from the same terminal.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.0) };
    }
}
