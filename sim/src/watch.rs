//! Hardware breakpoints for the simulator: unicorn compiles QEMU's watchpoints out, so writing
//! DR7 arms nothing there. The platform provides what the CPU would (Intel SDM vol. 3, 17.2–17.3):
//!
//! - instruction breakpoints (R/W = 00) are faults: a code hook stops before the instruction at
//!   DRn runs, unless RF was set when the vCPU was entered at it;
//! - data breakpoints (R/W = 01 write, 11 read or write; LEN 1/2/4/8, naturally aligned) are traps:
//!   a memory hook notes the match and the code hook of the next instruction stops there, so the
//!   guest sees rip after the instruction that touched the data;
//! - `mov ss`/`pop ss` hold a #DB across the next instruction (the interrupt shadow). If that
//!   instruction leaves the guest (`syscall`, `int n`, a fault: on Xen each one enters the
//!   hypervisor), the #DB is taken in hypervisor context, where Xen drops it (traps.c: do_debug,
//!   "Hit #DB in Xen context"; the XSA-260 fix): the guest never sees it.
//!
//! DR6 carries B0..B3 of every enabled breakpoint that matched. Nothing is hooked while DR7 enables
//! no breakpoint, so an unarmed vCPU pays nothing. Unicorn's memory hooks see machine addresses:
//! each data breakpoint's linear range is translated through the vCPU's page tables at every
//! entry (guests change mappings only through hypercalls, which are exits). An access to the same
//! bytes through another mapping of the frame also matches (a simulator limit; hardware compares
//! linear addresses).

use hv::mm::paging;
use hv::mm::Mfn;
use hv::platform::DebugRegs;
use hv::privop::dr;

/// Per-vCPU breakpoint state the hooks read and write.
#[derive(Default, Debug)]
pub struct Watch {
    pub regs: DebugRegs,
    /// Data breakpoints resolved for the current address space: (machine address, length,
    /// writes only), by breakpoint number.
    pub data: [Option<(u64, u64, bool)>; 4],
    /// DR6.B0..3 (and BS) bits waiting for the next instruction boundary.
    pub pending: u64,
    /// The pending #DB is held by a `mov ss`/`pop ss` shadow over the current instruction.
    pub shadow: bool,
    /// Address of the last instruction whose code hook ran.
    pub prev: Option<u64>,
    /// The vCPU was entered with RF set at this address: its first instruction skips the
    /// instruction-breakpoint check.
    pub rf_at: Option<u64>,
    /// #DBs held by a shadow and lost to an exit (taken in hypervisor context, as Xen's).
    pub dropped: u64,
}

impl Watch {
    pub fn new(regs: DebugRegs) -> Watch {
        Watch { regs, ..Default::default() }
    }

    /// Does DR7 enable any data breakpoint (the memory hook is needed)?
    pub fn has_data(regs: &DebugRegs) -> bool {
        (0..4).any(|n| dr::enabled(regs.dr7, n) && matches!(dr::rw(regs.dr7, n), dr::RW_WRITE | dr::RW_READ))
    }

    /// Translate the data breakpoints' linear ranges through the page tables at `cr3`.
    pub fn resolve(&mut self, mem: &[u8], cr3: u64) {
        for n in 0..4 {
            self.data[n] = None;
            let rw = dr::rw(self.regs.dr7, n);
            if !dr::enabled(self.regs.dr7, n) || !(rw == dr::RW_WRITE || rw == dr::RW_READ) {
                continue;
            }
            let len = dr::len(self.regs.dr7, n);
            let va = self.regs.addr[n] & !(len - 1);
            if let Ok(w) = paging::walk_slice(mem, Mfn(cr3 >> 12), va) {
                self.data[n] = Some((w.maddr.0, len, rw == dr::RW_WRITE));
            }
        }
    }

    /// A memory hook saw an access of `size` bytes at machine address `addr`.
    pub fn access(&mut self, addr: u64, size: u64, write: bool) {
        for n in 0..4 {
            if let Some((m, len, write_only)) = self.data[n] {
                if addr < m + len && m < addr + size && (write || !write_only) {
                    self.pending |= 1 << n;
                }
            }
        }
    }

    /// The code hook at an instruction boundary, before the instruction at `addr` runs. Returns
    /// the DR6 status of a #DB to raise here (rip = `addr`), or None to let it run.
    /// `movss_before(a)` says whether the instruction at `a` is `mov ss`/`pop ss`.
    pub fn boundary(&mut self, addr: u64, movss_before: impl Fn(u64) -> bool) -> Option<u64> {
        let prev = self.prev.replace(addr);
        let rf = self.rf_at.take() == Some(addr) && prev.is_none();
        if self.pending != 0 {
            if !self.shadow && prev.is_some_and(&movss_before) {
                // The shadow holds the #DB until after this instruction; breakpoints on this
                // instruction are not recognised meanwhile.
                self.shadow = true;
                return None;
            }
            self.shadow = false;
            return Some(dr::DR6_DEFAULT | core::mem::take(&mut self.pending));
        }
        if rf {
            return None;
        }
        let hits = (0..4)
            .filter(|&n| dr::enabled(self.regs.dr7, n) && dr::rw(self.regs.dr7, n) == dr::RW_EXECUTE && self.regs.addr[n] == addr)
            .fold(0u64, |a, n| a | 1 << n);
        (hits != 0).then_some(dr::DR6_DEFAULT | hits)
    }

    /// The run ended with an exit other than a #DB at a boundary: a #DB still held by a shadow is
    /// taken in hypervisor context and dropped (Xen's rule); a data match by an instruction that
    /// then faulted never completed. Either way nothing is delivered.
    pub fn exit(&mut self) {
        if self.pending != 0 && self.shadow {
            self.dropped += 1;
        }
        self.pending = 0;
        self.shadow = false;
        self.prev = None;
    }
}

/// Is the instruction in `bytes` a `mov ss, r/m16` (8E /2) or `pop ss` (17)? Prefixes (legacy
/// and REX) are skipped.
pub fn is_movss(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 | 0x40..=0x4f => i += 1,
            0x17 => return true,
            0x8e => return bytes.get(i + 1).is_some_and(|m| (m >> 3) & 7 == 2),
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn movss_decoding() {
        assert!(is_movss(&[0x8e, 0x55, 0xfc])); // mov -4(%rbp), %ss
        assert!(is_movss(&[0x8e, 0x15, 0, 0, 0, 0])); // rip-relative
        assert!(is_movss(&[0x66, 0x8e, 0xd0])); // mov %ax, %ss
        assert!(is_movss(&[0x17]));
        assert!(!is_movss(&[0x8e, 0xd8])); // mov %ax, %ds
        assert!(!is_movss(&[0x90]));
    }

    fn regs(addr: u64, dr7: u64) -> DebugRegs {
        DebugRegs { addr: [addr, 0, 0, 0], dr7 }
    }

    #[test]
    fn instruction_breakpoint_is_a_fault_and_rf_skips_it() {
        let mut w = Watch::new(regs(0x1000, 0x400 | 1));
        assert_eq!(w.boundary(0x1000, |_| false), Some(0xffff0ff1));
        let mut w = Watch::new(regs(0x1000, 0x400 | 1));
        w.rf_at = Some(0x1000);
        assert_eq!(w.boundary(0x1000, |_| false), None);
        assert_eq!(w.boundary(0x1003, |_| false), None);
        // Disabled: nothing.
        let mut w = Watch::new(regs(0x1000, 0x400));
        assert_eq!(w.boundary(0x1000, |_| false), None);
    }

    #[test]
    fn data_breakpoint_traps_after_the_instruction_and_movss_defers_it() {
        // DR0 write, 4 bytes (RW=01, LEN=11), G0.
        let mut w = Watch::new(regs(0x2000, 0x400 | 2 | (0b1101 << 16)));
        w.data[0] = Some((0x9000, 4, true));
        w.boundary(0x1000, |_| false);
        w.access(0x9002, 1, false);
        assert_eq!(w.pending, 0, "a read does not match a write breakpoint");
        w.access(0x9003, 2, true);
        assert_eq!(w.boundary(0x1004, |_| false), Some(0xffff0ff1));
        // Held over one instruction by mov ss.
        w.boundary(0x1010, |_| false);
        w.access(0x9000, 2, true);
        assert_eq!(w.boundary(0x1014, |a| a == 0x1010), None);
        assert_eq!(w.boundary(0x1015, |a| a == 0x1010), Some(0xffff0ff1));
        // Held, then the next instruction exits: dropped.
        w.boundary(0x1020, |_| false);
        w.access(0x9000, 4, true);
        assert_eq!(w.boundary(0x1024, |a| a == 0x1020), None);
        w.exit();
        assert_eq!((w.pending, w.dropped), (0, 1));
    }
}
