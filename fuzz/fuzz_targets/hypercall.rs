//! The hypercall dispatcher and exit handling, through the core's real run loop over the mock
//! platform: one domain running the core's test kernel (`hv::testing::image`), and the fuzz
//! input read as a sequence of guest exits, each optionally preceded by the guest writing bytes
//! into its own memory (through its page tables, as the guest would). After every exit the
//! frame-table invariants are checked (`xenolith_fuzz::check_frames`).
//!
//! Input: one byte of flags (bit 0: int3 gate instead of syscall), then records:
//!
//! ```text
//! kind u8        0..=191 hypercall (nr = kind % 64), 192..=223 exception, 224..=255 `int n`
//! 5 x arg        selector u8, then: 0 small (u8) | 1 scratch address (u8 page, u8 offset/16)
//!                | 2 a frame of the domain (u16 pfn, u8 pte flags) | 3 raw (u64)
//! poke u8        bytes to write before the exit (0: none), then u8 page, u8 offset/16, bytes
//! ```
//!
//! "Scratch" is the free, writable part of the bootstrap mapping 2 MiB above VIRT_BASE (16
//! pages), where the unit tests stage hypercall arguments too.
#![no_main]

use hv::hv::SLICE_NS;
use hv::mm::paging::walk_slice;
use hv::mm::{Mfn, PAGE_SIZE};
use hv::platform::{CpuState, Exit, Gate};
use hv::testing::mock::Step;
use libfuzzer_sys::fuzz_target;
use xenolith_fuzz::{check_frames, with_test_domain};

/// Exits per input (longer inputs are cut).
const MAX_EXITS: usize = 48;

struct Rd<'a>(&'a [u8]);

impl Rd<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
    fn u64(&mut self) -> Option<u64> {
        let (b, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_le_bytes(*b))
    }
    fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b.to_vec())
    }
}

/// Write `data` at `va` through the tables at `cr3` where the guest could (present, writable,
/// user); bytes the guest could not write are dropped.
fn guest_write(mem: &mut [u8], cr3: u64, va: u64, data: &[u8]) {
    for (i, &b) in data.iter().enumerate() {
        let a = va.wrapping_add(i as u64);
        if let Ok(w) = walk_slice(mem, Mfn(cr3 >> 12), a) {
            if w.writable && w.user {
                if let Some(m) = mem.get_mut(w.maddr.0 as usize) {
                    *m = b;
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Rd(data);
    let Some(flags) = r.u8() else { return };
    let gate = if flags & 1 != 0 { Gate::Int3 } else { Gate::Syscall };
    let (mut hv, d) = with_test_domain(gate);
    let (vb, p2m) = (hv.doms[&d].virt_base, hv.doms[&d].p2m.clone());
    let scratch = |page: u8, off: u8| vb + 0x20_0000 + (page as u64 % 16) * PAGE_SIZE + off as u64 * 16;

    for _ in 0..MAX_EXITS {
        let Some(kind) = r.u8() else { break };
        let mut args = [0u64; 5];
        for a in &mut args {
            let Some(sel) = r.u8() else { break };
            *a = match sel % 4 {
                0 => r.u8().unwrap_or(0) as u64,
                1 => scratch(r.u8().unwrap_or(0), r.u8().unwrap_or(0)),
                2 => {
                    let pfn = r.u16().unwrap_or(0) as usize % p2m.len();
                    p2m[pfn].0 << 12 | r.u8().unwrap_or(0) as u64
                }
                _ => r.u64().unwrap_or(0),
            };
        }
        let poke = match r.u8() {
            Some(n) if n > 0 => {
                let va = scratch(r.u8().unwrap_or(0), r.u8().unwrap_or(0));
                Some((va, r.bytes(n as usize).unwrap_or_default()))
            }
            _ => None,
        };
        let exit = match kind {
            0..=191 => None,
            192..=223 => Some(Exit::Exception { vector: kind % 32, error_code: Some(args[1] as u32), cr2: args[2] }),
            // A #DB with any status the platform might report.
            224..=231 => Some(Exit::Debug { dr6: args[1] }),
            _ => Some(Exit::SoftInt { vector: args[1] as u8, len: 1 + (args[2] % 2) as u8 }),
        };
        let f = move |c: &mut CpuState, mem: &mut [u8]| {
            if let Some((va, bytes)) = &poke {
                guest_write(mem, c.cr3, *va, bytes);
            }
            match exit {
                Some(e) => e,
                None => {
                    c.rax = (kind % 64) as u64;
                    [c.rdi, c.rsi, c.rdx, c.r10, c.r8] = args;
                    Exit::Gate
                }
            }
        };
        hv.platform.scripts.entry(d).or_default().push_back(Step { f: Box::new(f), ns: 1_000 });
        // Run until the step is taken (a blocked or paused vCPU may never take it).
        for _ in 0..8 {
            if hv.platform.script_empty(d) || !hv.doms.contains_key(&d) {
                break;
            }
            let end = hv.now + SLICE_NS;
            hv.run_until(end);
        }
        check_frames(&mut hv);
        if !hv.doms.contains_key(&d) || !hv.platform.script_empty(d) {
            break;
        }
    }
});
