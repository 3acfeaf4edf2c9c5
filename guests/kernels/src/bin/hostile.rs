//! `hostile`: a guest that fuzzes the hypervisor with seeded random hypercalls and page-table
//! games, and checks that it survives them.
//!
//! Command line: `seed=N` (default 1), `calls=N` (default 20000), `mode=calls|pt|mixed` (default
//! mixed), `verbose=1` (print every failed expectation's context).
//!
//! Everything is drawn from a splitmix64 PRNG seeded from the command line only (never from time),
//! so a seed reproduces a run exactly. The fuzzer never asks for what would legitimately end or
//! wreck it (shutdown other than with an invalid reason, iret, a garbage trap table or event
//! callback, unmapping its own code/stack, writes into its own code/data, closing its console
//! port, a base pointer without its code). Writable buffers it hands the hypervisor are in
//! [`ARENA`]; frames it lets the hypervisor scribble on are the *victim* pages of its spare
//! bootstrap memory. So after N calls the guest must still be alive and must report; any other
//! end is the hypervisor's fault.
//!
//! - `calls`: random hypercall numbers (0..64, 64..128 through the page, anything through
//!   multicall), valid and random sub-ops, arguments from classes (0, -1, huge, small, pointers
//!   into the arena: aligned, unaligned, spanning a page; into its read-only page tables; into the
//!   hypervisor hole; non-canonical; own page-table MFNs, victim MFNs, foreign MFNs; machine
//!   addresses for mmu_update).
//! - `pt`: rounds that copy the L4 to a free page, build L3/L2/L1 for a VA seen only through the
//!   copy, pin/unpin, switch base pointers there and back (including the sequences in which the
//!   base pointer holds the last type reference of the table it leaves), and try to map tables
//!   writable.
//! - `mixed`: `calls` with a `pt` round every 64 calls.
//!
//! Invariants checked: a pinned or in-use table is never mapped writable (the call fails and the
//! entry is unchanged, a write through the read-only mapping faults); a table that is unpinned
//! and unused can be mapped writable again; base-pointer switches take effect (a page mapped only
//! in the copy is visible exactly while on the copy); no mapping of a foreign frame appears; code
//! and read-only data keep their checksum; no unexpected trap arrives.
//! The end: `hostile: seed=.. mode=.. calls=.. ... invariants held` and poweroff, or
//! `hostile: INVARIANT ...` and SHUTDOWN_crash.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use xenrt::{abi::*, hypercall as hc, mm, println, traps::TrapFrame, StartInfo};

xenrt::entry!(main);

// ---- Xen ABI numbers used here (not in xenrt::abi) ----
/// xen.h: `__HYPERVISOR_set_gdt`.
const HC_SET_GDT: usize = 2;
/// xen.h: `__HYPERVISOR_fpu_taskswitch`.
const HC_FPU_TASKSWITCH: usize = 5;
/// xen.h: `__HYPERVISOR_set_debugreg`.
const HC_SET_DEBUGREG: usize = 8;
/// xen.h: `__HYPERVISOR_update_descriptor`.
const HC_UPDATE_DESCRIPTOR: usize = 10;
/// xen.h: `__HYPERVISOR_set_timer_op`.
const HC_SET_TIMER_OP: usize = 15;
/// xen.h: `__HYPERVISOR_grant_table_op`.
const HC_GRANT_TABLE_OP: usize = 20;
/// xen.h: `__HYPERVISOR_update_va_mapping_otherdomain`.
const HC_UVM_OTHERDOMAIN: usize = 22;
/// xen.h: `__HYPERVISOR_physdev_op`.
const HC_PHYSDEV_OP: usize = 33;

/// xen.h: `MMU_NORMAL_PT_UPDATE` 0, `MMU_MACHPHYS_UPDATE` 1 (low bits of `mmu_update.ptr`).
const MMU_NORMAL_PT_UPDATE: u64 = 0;
const MMU_MACHPHYS_UPDATE: u64 = 1;
/// xen.h: MMUEXT_PIN_L1_TABLE 0 .. MMUEXT_PIN_L4_TABLE 3, MMUEXT_UNPIN_TABLE 4,
/// MMUEXT_NEW_BASEPTR 5, MMUEXT_TLB_FLUSH_MULTI 8, MMUEXT_INVLPG_MULTI 9, MMUEXT_SET_LDT 13,
/// MMUEXT_NEW_USER_BASEPTR 15, MMUEXT_CLEAR_PAGE 16, MMUEXT_COPY_PAGE 17.
const MMUEXT_PIN_L1_TABLE: u32 = 0;
const MMUEXT_PIN_L4_TABLE: u32 = 3;
const MMUEXT_UNPIN_TABLE: u32 = 4;
const MMUEXT_NEW_BASEPTR: u32 = 5;
const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
const MMUEXT_INVLPG_MULTI: u32 = 9;
const MMUEXT_SET_LDT: u32 = 13;
const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
const MMUEXT_CLEAR_PAGE: u32 = 16;
const MMUEXT_COPY_PAGE: u32 = 17;
/// sched.h: SCHEDOP_yield 0, SCHEDOP_block 1, SCHEDOP_shutdown 2, SCHEDOP_poll 3,
/// SCHEDOP_remote_shutdown 4, SCHEDOP_shutdown_code 5; SHUTDOWN_MAX 5 (soft_reset).
const SCHEDOP_BLOCK: u64 = 1;
const SCHEDOP_POLL: u64 = 3;
const SCHEDOP_REMOTE_SHUTDOWN: u64 = 4;
const SCHEDOP_SHUTDOWN_CODE: u64 = 5;
const SHUTDOWN_MAX: u64 = 5;
/// event_channel.h: EVTCHNOP_close 3, EVTCHNOP_reset 10, EVTCHNOP_reset_cont 14.
const EVTCHNOP_CLOSE: u64 = 3;
const EVTCHNOP_RESET: u64 = 10;
const EVTCHNOP_RESET_CONT: u64 = 14;
/// vcpu.h: VCPUOP_down 2.
const VCPUOP_DOWN: u64 = 2;
/// callback.h: CALLBACKOP_register 0; CALLBACKTYPE_event 0.
const CALLBACKOP_REGISTER: u64 = 0;
const CALLBACKTYPE_EVENT: u64 = 0;
/// memory.h: XENMEM_decrease_reservation 1, XENMEM_exchange 11, XENMEM_remove_from_physmap 15,
/// XENMEM_memory_map 9 (takes `xen_memory_map {u32 nr_entries; handle buffer}`).
/// XENMEM_increase_reservation 0, XENMEM_current_reservation 3, XENMEM_populate_physmap 6.
const XENMEM_INCREASE_RESERVATION: u64 = 0;
const XENMEM_DECREASE_RESERVATION: u64 = 1;
const XENMEM_CURRENT_RESERVATION: u64 = 3;
const XENMEM_POPULATE_PHYSMAP: u64 = 6;
const XENMEM_MEMORY_MAP: u64 = 9;
const XENMEM_EXCHANGE: u64 = 11;
const XENMEM_REMOVE_FROM_PHYSMAP: u64 = 15;
/// arch-x86/xen-x86_64.h: FLAT_KERNEL_SS (FLAT_RING3_SS64) 0xe02b.
const FLAT_KERNEL_SS: u64 = 0xe02b;
/// arch-x86/xen-x86_64.h: __HYPERVISOR_VIRT_START / __HYPERVISOR_VIRT_END.
const HV_START: u64 = 0xFFFF_8000_0000_0000;
const HV_END: u64 = 0xFFFF_8800_0000_0000;
/// Page-table entry bits (x86): NX (bit 63), PS (bit 7), accessed (5), dirty (6).
const PTE_NX: u64 = 1 << 63;
const PTE_PS: u64 = 1 << 7;
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

const VIRT_BASE: u64 = mm::VIRT_BASE;
const PAGE: u64 = 4096;

// ---- sizes of what the fuzzer owns ----
const ARENA_PAGES: usize = 4;
const ARENA_SIZE: u64 = ARENA_PAGES as u64 * PAGE;
/// Arena layout: [0, 6 KiB) output pointers handed out (+1 KiB of output stays below 8 KiB);
/// argument structures from 8 KiB, 512 bytes per slot (slot 0: a top-level call, 1..=6: the
/// entries of a multicall, so that no entry's arguments overwrite another's, and no output
/// lands on them); multicall entries at 12 KiB.
const ARENA_SCRATCH: u64 = 6 * 1024;
const ARENA_STRUCTS: u64 = 8 * 1024;
const ARENA_SLOT: u64 = 512;
const ARENA_MULTICALL: u64 = 12 * 1024;
/// Spare bootstrap pages (after the boot stack page) the builder guarantees: 512 KiB.
const POOL_PAGES: u64 = 128;
/// Victims: pool pages 0..NVICTIM, whose frames and VAs the random calls may scribble on/remap.
const NVICTIM: usize = 32;
/// Page-table rounds use pool pages NVICTIM.. in sets of 5: [L4 copy, L3, L2, L1, data].
const NSETS: usize = 4;
const MAX_PT: usize = 16;
/// Mixed mode: a page-table round every this many calls.
const MIXED_PT_EVERY: u64 = 64;
/// Invariant scans (checksum, no writable table, no foreign mapping) every this many calls.
const SCAN_EVERY: u64 = 512;

/// Buffers the hypervisor may write: the only writable memory the fuzzer points it at.
#[repr(C, align(4096))]
struct Arena(core::cell::UnsafeCell<[u8; ARENA_SIZE as usize]>);
// SAFETY: single-threaded guest; accessed through raw pointers only.
unsafe impl Sync for Arena {}
static ARENA: Arena = Arena(core::cell::UnsafeCell::new([0; ARENA_SIZE as usize]));

extern "C" {
    /// Start of .data (guests/link.ld): code and read-only data lie in [VIRT_BASE, this).
    static __data_start: u8;
}

// ---- trap handling ----
static FAULTS: AtomicU64 = AtomicU64::new(0);
/// Where a probe resumes after a fault (0: no probe armed).
static RECOVER: AtomicU64 = AtomicU64::new(0);

fn on_trap(f: &mut TrapFrame) {
    FAULTS.fetch_add(1, SeqCst);
    let rec = RECOVER.swap(0, SeqCst);
    if rec != 0 {
        f.rip = rec;
        return;
    }
    match f.vector {
        // #DB/#BP are trap-style: resume after the instruction (debug registers or int3 set by
        // the hypervisor on a fuzzed request are not our bug to die of).
        1 | 3 => {}
        // #NM after a fuzzed fpu_taskswitch(1): clear TS and retry.
        7 => {
            // SAFETY: fpu_taskswitch takes no pointer.
            unsafe { hc::hypercall1(HC_FPU_TASKSWITCH, 0) };
        }
        _ => {
            fresh_line();
            println!(
                "hostile: INVARIANT unexpected trap vector {} err {:#x} rip {:#x} rsp {:#x} cr2 {:#x}",
                f.vector,
                f.error_code,
                f.rip,
                f.rsp,
                mm::vcpu0_cr2()
            );
            xenrt::shutdown(SHUTDOWN_CRASH);
        }
    }
}

/// Reads a u64 at `va`, or None if that faults.
fn probe_read(va: u64) -> Option<u64> {
    let (val, ok): (u64, u64);
    // SAFETY: a fault on the load is caught by `on_trap`, which resumes at label 2 with the
    // registers of the faulting instant (edx = 0); nothing else is touched.
    unsafe {
        core::arch::asm!(
            "lea 2f(%rip), %rax",
            "mov %rax, {rec}(%rip)",
            "xor %edx, %edx",
            "mov (%rcx), %rax",
            "mov $1, %edx",
            "2:",
            "movq $0, {rec}(%rip)",
            rec = sym RECOVER,
            in("rcx") va,
            out("rax") val,
            out("rdx") ok,
            options(att_syntax, nostack),
        );
    }
    (ok == 1).then_some(val)
}

/// Writes the byte at `va` back to itself; false if that faults.
fn probe_write(va: u64) -> bool {
    let ok: u64;
    // SAFETY: as probe_read; the store writes the value just read, so success changes nothing.
    unsafe {
        core::arch::asm!(
            "lea 2f(%rip), %rax",
            "mov %rax, {rec}(%rip)",
            "xor %edx, %edx",
            "movb (%rcx), %al",
            "movb %al, (%rcx)",
            "mov $1, %edx",
            "2:",
            "movq $0, {rec}(%rip)",
            rec = sym RECOVER,
            in("rcx") va,
            out("rax") _,
            out("rdx") ok,
            options(att_syntax, nostack),
        );
    }
    ok == 1
}

// ---- PRNG ----
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

// ---- what the guest knows about itself ----
#[derive(Clone, Copy, Default)]
struct PtFrame {
    va: u64,
    mfn: u64,
}

struct World {
    si: &'static StartInfo,
    /// Boot page-table frames (pt_base..), VA and MFN; [0] is the L4.
    pt: [PtFrame; MAX_PT],
    npt: usize,
    /// Pool page `i`: VA and (original) MFN.
    pool_va: u64,
    pool_mfn: [u64; POOL_PAGES as usize],
    /// Machine address of the L1 entry mapping each victim VA.
    victim_l1e: [u64; NVICTIM],
    foreign: [u64; 8],
    code_mfns: [u64; 4],
    checksum: u64,
    console_port: u32,
    store_port: u32,
    rng: Rng,
    // tallies
    hypercalls: u64,
    ok: u64,
    errors: u64,
    mc_entries: u64,
    pt_rounds: u64,
    verbose: bool,
    /// Check after every call (slow; to find the call that broke something).
    paranoid: bool,
    /// The L1 entries mapping [VIRT_BASE, pool_va) at start (A/D masked).
    image_ptes: [u64; MAX_IMAGE_PAGES],
    image_pages: usize,
    last: (usize, [u64; 5]),
    /// Print the call with this index (`dump=N`).
    dump: Option<u64>,
    /// Frames the balloon rounds gained (and have not given back yet): ours too.
    gained: [u64; 4],
    balloon_rounds: u64,
}
const MAX_IMAGE_PAGES: usize = 256;
const PTE_AD: u64 = 0x60;

fn checksum() -> u64 {
    // (Taking the address of a linker symbol; nothing is read through it here.)
    let end = core::ptr::addr_of!(__data_start) as u64;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut p = VIRT_BASE;
    while p < end {
        // SAFETY: [VIRT_BASE, __data_start) is the kernel's text and rodata, mapped for its life.
        let v = unsafe { core::ptr::read_volatile(p as *const u64) };
        h = (h ^ v).wrapping_mul(0x100_0000_01b3);
        p += 8;
    }
    h
}

/// Ends a console line that fuzzed console writes may have left open, so ours stands alone.
fn fresh_line() {
    xenrt::console::console_io_write(b"\n");
    println!();
}

/// Is `mfn` one of our own grant-table frames (shared or v2 status)? Xen gives those to the
/// domain, outside its mfn_list, and the domain may map them (grant_table.h: setup_table,
/// get_status_frames, query_size).
fn grant_frame(mfn: u64) -> bool {
    // struct gnttab_query_size { dom, pad, nr_frames, max_nr_frames, status }.
    let mut q = [0u32; 4];
    q[0] = DOMID_SELF as u32;
    // SAFETY: q is ours and large enough; the hypervisor writes only inside it.
    if unsafe { hc::hypercall5(HC_GRANT_TABLE_OP, 6, q.as_mut_ptr() as u64, 1, 0, 0) } != 0 {
        return false;
    }
    let mut frames = [0u64; 64];
    let n = (q[1] as usize).min(frames.len());
    // struct gnttab_setup_table { dom, nr_frames, status, frame_list } (24 bytes).
    let mut st = [0u64; 3];
    st[0] = DOMID_SELF | ((n as u64) << 32);
    st[2] = frames.as_mut_ptr() as u64;
    // SAFETY: as above; frame_list has room for n entries.
    let rc = unsafe { hc::hypercall5(HC_GRANT_TABLE_OP, 2, st.as_mut_ptr() as u64, 1, 0, 0) };
    if rc == 0 && st[1] as i16 == 0 && frames[..n].contains(&mfn) {
        return true;
    }
    // struct gnttab_get_status_frames { nr_frames, dom, status, frame_list } (16 bytes): at most 8.
    for k in (1..=8u64).rev() {
        let mut gs = [k | (DOMID_SELF << 32), frames.as_mut_ptr() as u64];
        // SAFETY: as above.
        let rc = unsafe { hc::hypercall5(HC_GRANT_TABLE_OP, 9, gs.as_mut_ptr() as u64, 1, 0, 0) };
        if rc == 0 && (gs[0] >> 48) as i16 == 0 {
            return frames[..k as usize].contains(&mfn);
        }
    }
    false
}

fn invariant(what: core::fmt::Arguments) -> ! {
    fresh_line();
    println!("hostile: INVARIANT {}", what);
    xenrt::shutdown(SHUTDOWN_CRASH)
}

impl World {
    fn arena(&self) -> u64 {
        ARENA.0.get() as u64
    }
    fn arena_write(&self, off: u64, v: u64) {
        assert!(off + 8 <= ARENA_SIZE);
        // SAFETY: in bounds of the arena, which only the fuzzer and the hypervisor write.
        unsafe { core::ptr::write_unaligned((self.arena() + off) as *mut u64, v) }
    }
    fn victim_va(&self, i: usize) -> u64 {
        self.pool_va + i as u64 * PAGE
    }
    fn set_page(&self, set: usize, k: usize) -> (u64, u64) {
        let i = NVICTIM + set * 5 + k;
        (self.pool_va + i as u64 * PAGE, self.pool_mfn[i])
    }
    fn l4(&self) -> PtFrame {
        self.pt[0]
    }
    fn pt_va_of(&self, mfn: u64) -> Option<u64> {
        self.pt[..self.npt].iter().find(|f| f.mfn == mfn).map(|f| f.va)
    }
    fn is_boot_pt(&self, mfn: u64) -> bool {
        self.pt_va_of(mfn).is_some()
    }
    fn owns(&self, mfn: u64) -> bool {
        mfn == self.si.shared_info >> 12 || mm::mfn_list().contains(&mfn) || grant_frame(mfn) || (mfn != 0 && self.gained.contains(&mfn))
    }

    /// Machine address of the L1 entry for `va`, walking the boot tables (read-only mappings).
    fn l1e_maddr(&self, va: u64) -> Option<u64> {
        let mut table = self.l4();
        for level in (2..=4).rev() {
            let idx = (va >> (12 + 9 * (level - 1))) & 511;
            // SAFETY: boot page-table frames are mapped read-only at their VA for our life.
            let e = unsafe { core::ptr::read_volatile((table.va + idx * 8) as *const u64) };
            if e & PTE_P == 0 {
                return None;
            }
            let mfn = (e & PTE_ADDR) >> 12;
            table = PtFrame { va: self.pt_va_of(mfn)?, mfn };
        }
        Some((table.mfn << 12) + ((va >> 12) & 511) * 8)
    }
    /// The L1 entry for `va` (through the boot tables' own read-only mappings).
    fn pte(&self, va: u64) -> u64 {
        let Some(ma) = self.l1e_maddr(va) else { return 0 };
        let Some(tva) = self.pt_va_of(ma >> 12) else { return 0 };
        // SAFETY: as in l1e_maddr.
        unsafe { core::ptr::read_volatile((tva + (ma & 0xfff)) as *const u64) }
    }

    // ---- issuing ----
    fn call(&mut self, nr: usize, a: [u64; 5]) -> i64 {
        self.hypercalls += 1;
        // SAFETY: every argument set is built by `gen` (or the page-table rounds) from classes
        // that cannot hurt the guest itself; pointers the hypervisor may write go to the arena or
        // are invalid, and frames it may change are victims. Harmful requests are excluded there.
        let r = unsafe { hc::hypercall5(nr, a[0], a[1], a[2], a[3], a[4]) };
        if r < 0 {
            self.errors += 1;
        } else {
            self.ok += 1;
        }
        r
    }
    /// One normal `mmu_update` request (the request lives on our stack).
    fn mmu1(&mut self, ptr: u64, val: u64) -> i64 {
        let req = [ptr, val];
        let p = core::ptr::addr_of!(req) as u64;
        self.call(HYPERVISOR_MMU_UPDATE, [p, 1, 0, DOMID_SELF, 0])
    }
    fn mmuext(&mut self, cmd: u32, arg1: u64, arg2: u64) -> i64 {
        let op = MmuextOp { cmd, pad: 0, arg1, arg2 };
        let p = core::ptr::addr_of!(op) as u64;
        self.call(HYPERVISOR_MMUEXT_OP, [p, 1, 0, DOMID_SELF, 0])
    }
    fn uvm(&mut self, va: u64, val: u64) -> i64 {
        self.call(HYPERVISOR_UPDATE_VA_MAPPING, [va, val, UVMF_INVLPG, 0, 0])
    }

    // ---- argument classes ----
    /// A pointer the hypervisor cannot read or write: null, -1, the hypervisor hole,
    /// non-canonical, low unmapped, straddling those edges.
    fn ptr_bad(&mut self) -> u64 {
        match self.rng.below(9) {
            0 => 0,
            1 => u64::MAX,
            2 => HV_START + self.rng.below(HV_END - HV_START),
            3 => 0x0000_8000_0000_0000 + self.rng.below(0xFFFF_0000_0000_0000), // non-canonical
            4 => 0x1000 + self.rng.below(1 << 40),                              // low, unmapped
            5 => HV_END - 1 - self.rng.below(64),                               // straddles the end of the hole
            6 => 0x0000_7fff_ffff_fff8 + self.rng.below(8),                     // straddles the canonical edge
            7 => VIRT_BASE - 8 - self.rng.below(64),                            // runs from unmapped into our image
            _ => u64::MAX - self.rng.below(64),                                 // wraps around
        }
    }
    /// A pointer whose contents are harmless as input and where output is allowed: the
    /// arena (aligned, unaligned, spanning a page), a read-only page table, or a bad pointer.
    fn ptr_any(&mut self) -> u64 {
        match self.rng.below(8) {
            0 => self.arena() + self.rng.below(ARENA_SCRATCH) / 8 * 8,
            1 => self.arena() + self.rng.below(ARENA_SCRATCH), // unaligned
            2 => self.arena() + PAGE - 1 - self.rng.below(16), // spans a page boundary
            3 => {
                let f = self.pt[self.rng.below(self.npt as u64) as usize];
                f.va + self.rng.below(PAGE) // a read-only page table: writes must fail
            }
            4 => self.arena(),
            _ => self.ptr_bad(),
        }
    }
    /// An MFN from the interesting classes. `own`: may also name frames the hypervisor must
    /// not be asked to write (code/data, shared_info, the console ring): for mappings and pins.
    fn mfn(&mut self, own: bool) -> u64 {
        match self.rng.below(if own { 9 } else { 6 }) {
            0 => self.pool_mfn[self.rng.below(NVICTIM as u64) as usize],
            1 => self.pt[self.rng.below(self.npt as u64) as usize].mfn,
            2 => self.rng.pick(&self.foreign),
            3 => self.rng.next() & ((1 << 52) - 1),
            4 => self.rng.pick(&[0, 1, 2, 63, u64::MAX, u32::MAX as u64]),
            5 => self.rng.pick(&self.foreign) + self.rng.below(1 << 20),
            6 => self.si.shared_info >> 12,
            7 => self.si.console_mfn,
            _ => self.rng.pick(&self.code_mfns),
        }
    }
    /// A value for an arena field: no pointer to or MFN of guest code/data.
    fn safe_val(&mut self) -> u64 {
        match self.rng.below(12) {
            0 => 0,
            1 => u64::MAX,
            2 => self.rng.below(64),
            3 => self.rng.next(),
            4 => 1 << self.rng.below(64),
            5 => self.arena() + self.rng.below(ARENA_SCRATCH),
            6 => HV_START + self.rng.below(1 << 40),
            7 => 0x8000_0000_0000_0000 | self.rng.below(1 << 47),
            8 => self.mfn(false),
            9 => self.mfn(false) << 12,
            10 => DOMID_SELF,
            _ => u32::MAX as u64,
        }
    }
    fn scalar(&mut self) -> u64 {
        match self.rng.below(8) {
            0 => 0,
            1 => u64::MAX,
            2 => self.rng.below(16),
            3 => self.rng.below(1 << 16),
            4 => 1 << self.rng.below(64),
            5 => u32::MAX as u64,
            6 => i64::MIN as u64,
            _ => self.rng.next(),
        }
    }
    /// Fill `n` u64 of the arena at `off` with safe values; returns the address.
    fn fill(&mut self, off: u64, n: u64) -> u64 {
        for i in 0..n {
            let v = self.safe_val();
            self.arena_write(off + i * 8, v);
        }
        self.arena() + off
    }
    /// A VA that update_va_mapping may change: a victim, or one it must refuse.
    fn uvm_va(&mut self) -> u64 {
        match self.rng.below(8) {
            0..=3 => {
                let i = self.rng.below(NVICTIM as u64) as usize;
                let off = if self.rng.chance(8) { self.rng.below(PAGE) } else { 0 }; // unaligned VA
                self.victim_va(i) + off
            }
            4 => HV_START + self.rng.below(HV_END - HV_START),
            5 => 0x0000_8000_0000_0000 + self.rng.below(1 << 60),
            6 => self.rng.below(1 << 40) & !0xfff, // no L1 there
            _ => self.rng.next(),
        }
    }
    /// A PTE value from the mapping classes, random flags.
    fn pte_val(&mut self) -> u64 {
        let mfn = self.mfn(true);
        let mut flags = PTE_P | PTE_U | self.rng.pick(&[0, PTE_RW, PTE_RW, PTE_NX, PTE_PS, 0x60, 0x18]);
        if self.rng.chance(8) {
            flags = self.rng.next() & !PTE_ADDR; // anything, incl. not present and reserved bits
        }
        if self.rng.chance(16) {
            return self.rng.next();
        }
        ((mfn << 12) & PTE_ADDR) | flags
    }
    /// For a write-capable mapping of `val` that succeeded: it must not be a table or foreign.
    fn check_mapping(&mut self, val: u64, how: &str) {
        if val & PTE_P == 0 {
            return;
        }
        let mfn = (val & PTE_ADDR) >> 12;
        if val & PTE_RW != 0 && self.is_boot_pt(mfn) {
            invariant(format_args!("{how} mapped page table mfn {mfn:#x} writable (pte {val:#x})"));
        }
        if !self.owns(mfn) {
            invariant(format_args!("{how} mapped foreign mfn {mfn:#x} (pte {val:#x})"));
        }
    }

    // ---- the random call generator ----
    /// One random call (nr, args) that is safe for the guest by construction.
    fn gen(&mut self, slot: u64) -> (usize, [u64; 5]) {
        let depth = (slot > 0) as u32;
        let r = &mut self.rng;
        let nr = match r.below(20) {
            0..=1 => r.below(64) as usize,
            2 => 64 + r.below(64) as usize, // beyond the table, still in the page
            _ => r.pick(&[
                HYPERVISOR_SET_TRAP_TABLE,
                HYPERVISOR_MMU_UPDATE,
                HYPERVISOR_MMU_UPDATE,
                HC_SET_GDT,
                HYPERVISOR_STACK_SWITCH,
                HYPERVISOR_SET_CALLBACKS,
                HC_FPU_TASKSWITCH,
                HC_UPDATE_DESCRIPTOR,
                HYPERVISOR_MEMORY_OP,
                HYPERVISOR_MULTICALL,
                HYPERVISOR_UPDATE_VA_MAPPING,
                HYPERVISOR_UPDATE_VA_MAPPING,
                HC_SET_TIMER_OP,
                HYPERVISOR_XEN_VERSION,
                HYPERVISOR_CONSOLE_IO,
                HC_GRANT_TABLE_OP,
                HYPERVISOR_VM_ASSIST,
                HC_UVM_OTHERDOMAIN,
                HYPERVISOR_VCPU_OP,
                HYPERVISOR_SET_SEGMENT_BASE,
                HYPERVISOR_MMUEXT_OP,
                HYPERVISOR_MMUEXT_OP,
                HYPERVISOR_SCHED_OP,
                HYPERVISOR_CALLBACK_OP,
                HYPERVISOR_EVENT_CHANNEL_OP,
                HYPERVISOR_EVENT_CHANNEL_OP,
                HC_PHYSDEV_OP,
            ]),
        };
        // iret (23) pops a frame off our stack: only our trap path may use it. nmi_op (28) with a
        // random handler, then an NMI, would send us to it: as Xen would.
        let nr = if nr == HYPERVISOR_IRET || nr == 28 { HYPERVISOR_XEN_VERSION } else { nr };
        // Per-depth arena regions so a multicall's entries do not overwrite each other's args.
        let base = ARENA_STRUCTS + slot * ARENA_SLOT;
        let mut a = [self.scalar(), self.scalar(), self.scalar(), self.scalar(), self.scalar()];
        match nr {
            HYPERVISOR_SET_TRAP_TABLE => {
                // A trap table we cannot live with is out; the call must fail on these.
                // (A null table clears the trap table in Xen: that would be suicide too.)
                a[0] = self.rng.pick(&[HV_START + 0x1000, 0x8000_0000_0000_0000, 0x1000, u64::MAX - 7]);
            }
            HYPERVISOR_MMU_UPDATE => {
                let n = self.rng.below(5);
                for i in 0..n {
                    let (ptr, val) = self.gen_mmu_req();
                    self.arena_write(base + i * 16, ptr);
                    self.arena_write(base + i * 16 + 8, val);
                }
                // Terminate with a request that must fail, so a too-large count stops here.
                self.arena_write(base + n * 16, self.pool_mfn[0] << 12 | 3);
                self.arena_write(base + n * 16 + 8, 0);
                a[0] = if self.rng.chance(6) { self.ptr_bad() } else { self.arena() + base };
                a[1] = match self.rng.below(4) {
                    0 => n,
                    1 => n + 1,
                    2 => self.scalar(),
                    _ => self.rng.below(n + 1),
                };
                a[2] = self.done_ptr();
                a[3] = {
                    let x = self.rng.next();
                    self.rng.pick(&[DOMID_SELF, DOMID_SELF, 0, 1, x])
                };
            }
            HC_SET_GDT => {
                a[0] = if self.rng.chance(2) { self.fill(base, 16) } else { self.ptr_any() };
                a[1] = self.rng.pick(&[0, 1, 2, 16, 14 * 512, 14 * 512 + 1, u64::MAX]);
            }
            HYPERVISOR_STACK_SWITCH => {}           // restored right after the call (see `issue`)
            HYPERVISOR_SET_CALLBACKS => a = [0; 5], // what we run with: none registered
            HC_UPDATE_DESCRIPTOR => {
                a[0] = match self.rng.below(3) {
                    0 => (self.pool_mfn[self.rng.below(NVICTIM as u64) as usize] << 12) + self.rng.below(PAGE),
                    1 => self.mfn(false) << 12,
                    _ => self.scalar(),
                };
            }
            HYPERVISOR_MEMORY_OP => {
                let cmd = self.rng.below(24) | if self.rng.chance(8) { self.rng.next() & !0x3f } else { 0 };
                a[0] = cmd;
                let c = cmd & 0x3f;
                if c == XENMEM_DECREASE_RESERVATION || c == XENMEM_EXCHANGE || c == XENMEM_REMOVE_FROM_PHYSMAP {
                    a[1] = self.rng.pick(&[0, HV_START, 0x8000_0000_0000_0000]);
                // would give our memory away
                } else if c == XENMEM_INCREASE_RESERVATION || c == XENMEM_POPULATE_PHYSMAP {
                    // Random reservations for a domain that is not us (nor DOMID_SELF): refused
                    // (the balloon rounds grow and shrink us with known arguments).
                    a[1] = self.fill(base, 4);
                    let other = 0x7fe0 + self.rng.below(15);
                    self.arena_write(base + 24, other);
                } else if c == XENMEM_MEMORY_MAP && self.rng.chance(2) {
                    let nr = self.rng.pick(&[0, 1, 2, u32::MAX as u64]);
                    self.arena_write(base, nr);
                    let buf = if self.rng.chance(2) { self.arena() + base + 64 + self.rng.below(64) } else { self.ptr_any() };
                    self.arena_write(base + 8, buf);
                    a[1] = self.arena() + base;
                } else {
                    a[1] = if self.rng.chance(2) { self.fill(base, 32) } else { self.ptr_any() };
                }
            }
            HYPERVISOR_MULTICALL => {
                if depth > 0 || self.rng.chance(4) {
                    a[0] = if depth > 0 { self.ptr_any() } else { self.ptr_bad() }; // nested or garbage: refused
                    a[1] = self.scalar() & 0xff;
                } else {
                    let n = 1 + self.rng.below(6);
                    let mut ents = [MulticallEntry::default(); 6];
                    for (i, e) in ents.iter_mut().enumerate().take(n as usize) {
                        let (op, args) = self.gen(1 + i as u64);
                        e.op = if self.rng.chance(16) { self.rng.next() } else { op as u64 };
                        e.result = 0xdead_beef;
                        e.args[..5].copy_from_slice(&args);
                        e.args[5] = self.scalar();
                        if e.op == HYPERVISOR_STACK_SWITCH as u64 || e.op == HYPERVISOR_SET_CALLBACKS as u64 {
                            e.op = HYPERVISOR_XEN_VERSION as u64;
                        }
                    }
                    for (i, e) in ents.iter().enumerate().take(n as usize) {
                        let off = ARENA_MULTICALL + i as u64 * 64;
                        self.arena_write(off, e.op);
                        self.arena_write(off + 8, e.result);
                        for (j, v) in e.args.iter().enumerate() {
                            self.arena_write(off + 16 + j as u64 * 8, *v);
                        }
                    }
                    self.mc_entries += n;
                    a[0] = self.arena() + ARENA_MULTICALL;
                    a[1] = n;
                }
            }
            HYPERVISOR_UPDATE_VA_MAPPING => {
                a[0] = self.uvm_va();
                a[1] = self.pte_val();
                a[2] = match self.rng.below(6) {
                    0 => UVMF_INVLPG,
                    1 => UVMF_TLB_FLUSH,
                    2 => 0,
                    3 => 4 | self.rng.below(4), // UVMF_ALL
                    4 => self.arena() & !3,     // UVMF_MULTI: a vcpumask pointer
                    _ => self.ptr_any(),
                };
            }
            HC_SET_TIMER_OP => {}
            HC_SET_DEBUGREG => {
                // Any value for any register, but DR7 (or its alias DR5) never enables a
                // breakpoint: a #DB would legitimately end us (we have no handler for it).
                if matches!(a[0] & 0xffff_ffff, 5 | 7) {
                    a[1] &= !0xff;
                }
            }
            HYPERVISOR_XEN_VERSION => {
                a[0] = if self.rng.chance(4) { self.scalar() } else { self.rng.below(12) };
                a[1] = self.ptr_any();
            }
            HYPERVISOR_CONSOLE_IO => {
                a[0] = {
                    let x = self.rng.next();
                    self.rng.pick(&[CONSOLEIO_WRITE, CONSOLEIO_READ, 2, x])
                };
                if self.rng.chance(2) {
                    a[1] = self.rng.below(48);
                    a[2] = self.arena() + self.rng.below(ARENA_SCRATCH);
                } else {
                    a[2] = self.ptr_any();
                    if a[2] >= self.arena() && a[2] < self.arena() + ARENA_SIZE {
                        a[1] = self.rng.below(64);
                    }
                }
            }
            HC_GRANT_TABLE_OP => {
                // Xen writes each operation (or its status) back, as many as `count` says: keep
                // the array inside the 16 words filled (at most 3 operations of at most 40
                // bytes), or make the count one Xen refuses before touching memory.
                a[0] = if self.rng.chance(4) { self.scalar() } else { self.rng.below(14) };
                a[1] = self.fill(base, 16);
                a[2] = self.rng.pick(&[0, 1, 1, 2, 3, 0x8000_0000, u64::MAX]);
            }
            HC_UVM_OTHERDOMAIN | HC_PHYSDEV_OP => {
                a[1] = if self.rng.chance(2) { self.fill(base, 16) } else { self.ptr_any() };
            }
            HYPERVISOR_VM_ASSIST => a[0] = self.rng.below(4),
            HYPERVISOR_VCPU_OP => {
                let mut cmd = if self.rng.chance(6) { self.scalar() } else { self.rng.below(16) };
                a[1] = {
                    let x = self.rng.next();
                    self.rng.pick(&[0, 0, 0, 1, 31, 32, u64::MAX, x])
                };
                // (cmd and vcpuid are C ints: compare the low 32 bits.)
                if cmd & 0xffff_ffff == VCPUOP_DOWN && a[1] & 0xffff_ffff == 0 {
                    cmd = VCPUOP_DOWN + 1; // taking our only vCPU down would end us
                }
                // Areas the hypervisor then writes on every switch (runstate 5, vcpu_info 10,
                // vcpu time 13) at random addresses, or an NMI (11), would wreck us as they would
                // on Xen: ask for the runstate info (4) instead.
                if matches!(cmd & 0xffff_ffff, 5 | 10 | 11 | 13) {
                    cmd = 4;
                }
                a[0] = cmd;
                a[2] = if self.rng.chance(2) { self.fill(base, 16) } else { self.ptr_any() };
            }
            HYPERVISOR_SET_SEGMENT_BASE => {
                a[0] = if self.rng.chance(4) { self.scalar() } else { self.rng.below(4) };
                a[1] = self.scalar();
            }
            HYPERVISOR_MMUEXT_OP => {
                let n = self.rng.below(4);
                for i in 0..n {
                    let (cmd, a1, a2) = self.gen_mmuext();
                    self.arena_write(base + i * 24, cmd as u64);
                    self.arena_write(base + i * 24 + 8, a1);
                    self.arena_write(base + i * 24 + 16, a2);
                }
                self.arena_write(base + n * 24, 99); // an unknown op ends a too-large count
                a[0] = if self.rng.chance(6) { self.ptr_bad() } else { self.arena() + base };
                a[1] = match self.rng.below(4) {
                    0 => n,
                    1 => n + 1,
                    2 => self.scalar(),
                    _ => self.rng.below(n + 1),
                };
                a[2] = self.done_ptr();
                a[3] = {
                    let x = self.rng.next();
                    self.rng.pick(&[DOMID_SELF, DOMID_SELF, 0, 1, x])
                };
            }
            HYPERVISOR_SCHED_OP => {
                let mut cmd = if self.rng.chance(6) { self.scalar() } else { self.rng.below(10) };
                if cmd & 0xffff_ffff == SCHEDOP_BLOCK || cmd & 0xffff_ffff == SCHEDOP_POLL {
                    cmd = SCHEDOP_YIELD; // events are masked and no timer is bound: could sleep forever
                }
                a[0] = cmd;
                let reason = SHUTDOWN_MAX + 1 + self.rng.below(1 << 20); // never a valid reason
                self.arena_write(base, reason);
                if cmd & 0xffff_ffff == SCHEDOP_SHUTDOWN_CODE && self.rng.chance(2) {
                    self.arena_write(base, SHUTDOWN_POWEROFF as u64); // the reason we end with
                }
                if cmd & 0xffff_ffff == SCHEDOP_REMOTE_SHUTDOWN {
                    // {domid_t domain_id; uint32_t reason} (sched.h): someone else, a bad reason.
                    let dom = self.rng.pick(&[0, 2, 0x7ff1, 0xffff]);
                    self.arena_write(base, (reason << 32) | dom);
                }
                a[1] = if self.rng.chance(8) { self.ptr_bad() } else { self.arena() + base };
            }
            HYPERVISOR_CALLBACK_OP => {
                a[0] = self.rng.below(4);
                self.fill(base, 4);
                if a[0] == CALLBACKOP_REGISTER {
                    // callback_register {u16 type; u16 flags; pad; address} (callback.h): never
                    // the event callback (garbage there ends us at the next upcall).
                    let ty = self.rng.pick(&[1, 2, 3, 4, 5, 7, 8, 0xffff]);
                    self.arena_write(base, ty);
                } else {
                    let ty = self.rng.pick(&[CALLBACKTYPE_EVENT + 1, 2, 4, 7, 0xffff]);
                    self.arena_write(base, ty);
                }
                a[1] = if self.rng.chance(4) { self.ptr_bad() } else { self.arena() + base };
            }
            HYPERVISOR_EVENT_CHANNEL_OP => {
                let mut cmd = if self.rng.chance(8) { self.scalar() } else { self.rng.below(16) };
                let low = cmd & 0xffff_ffff;
                if low == EVTCHNOP_RESET || low == EVTCHNOP_RESET_CONT || low == EVTCHNOP_CLOSE {
                    // close only through the explicit close below (never our console/store port)
                    cmd = EVTCHNOP_SEND;
                }
                if self.rng.chance(8) {
                    cmd = EVTCHNOP_CLOSE;
                }
                a[0] = cmd;
                self.fill(base, 4);
                // Port fields: small ports are interesting; never close our console/store port.
                let port = self.rng.pick(&[0, 1, 2, 3, 4, 5, 63, 64, 1023, 4095, 4096, u32::MAX as u64]);
                let port =
                    if cmd == EVTCHNOP_CLOSE && (port == self.console_port as u64 || port == self.store_port as u64) { 4095 } else { port };
                let w0 = self.rng.next() & 0xffff_ffff_0000_0000;
                self.arena_write(base, w0 | port);
                if cmd == EVTCHNOP_CLOSE {
                    self.arena_write(base, port);
                }
                a[1] = if self.rng.chance(6) { self.ptr_bad() } else { self.arena() + base };
            }
            // xen.h: __HYPERVISOR_sched_op_compat 6 (cmd, reason by value) and
            // __HYPERVISOR_event_channel_op_compat 16 (one pointer to {cmd, op}): a shutdown or
            // a close of the console port through them would end us, should they be implemented.
            6 => {
                if a[0] == SCHEDOP_SHUTDOWN || a[0] == SCHEDOP_BLOCK || a[0] == SCHEDOP_POLL || a[0] == SCHEDOP_SHUTDOWN_CODE {
                    a[0] = SCHEDOP_YIELD;
                }
            }
            16 => a[0] = self.ptr_bad(),
            _ => {
                // Anything else (unimplemented or beyond): random scalars and harmless pointers.
                if self.rng.chance(2) {
                    a[1] = self.ptr_any();
                }
            }
        }
        (nr, a)
    }

    /// A pointer for a `success_count` output.
    fn done_ptr(&mut self) -> u64 {
        match self.rng.below(4) {
            0 => 0,
            1 => self.arena() + 4000 + self.rng.below(8), // (in the output area)
            _ => self.ptr_any(),
        }
    }

    /// One mmu_update request that cannot hurt the guest.
    fn gen_mmu_req(&mut self) -> (u64, u64) {
        match self.rng.below(8) {
            // Plain write into a victim frame.
            0 => {
                let v = self.pool_mfn[self.rng.below(NVICTIM as u64) as usize];
                ((v << 12) + self.rng.below(512) * 8, self.rng.next())
            }
            // The L1 entry of a victim VA: any mapping.
            1 | 2 => {
                let i = self.rng.below(NVICTIM as u64) as usize;
                (self.victim_l1e[i], self.pte_val())
            }
            // A no-op rewrite of a boot table entry (references must balance).
            3 => {
                let f = self.pt[self.rng.below(self.npt as u64) as usize];
                let slot = self.rng.below(512);
                // SAFETY: boot table frames are mapped read-only at their VA.
                let cur = unsafe { core::ptr::read_volatile((f.va + slot * 8) as *const u64) };
                if self.rng.chance(3) && cur & PTE_P != 0 {
                    // ...or with RW flipped on: fine for entries pointing at plain pages, refused for
                    // anything that would make a table writable.
                    ((f.mfn << 12) + slot * 8, cur | PTE_RW)
                } else {
                    ((f.mfn << 12) + slot * 8, cur)
                }
            }
            // Machphys update of a victim (any value), or of a boot table (unchanged value).
            4 => {
                if self.rng.chance(2) {
                    let v = self.pool_mfn[self.rng.below(NVICTIM as u64) as usize];
                    ((v << 12) | MMU_MACHPHYS_UPDATE, self.scalar())
                } else {
                    let f = self.pt[self.rng.below(self.npt as u64) as usize];
                    ((f.mfn << 12) | MMU_MACHPHYS_UPDATE, mm::va_to_pfn(f.va))
                }
            }
            // Foreign / nonexistent / Xen machine addresses, bad low bits.
            5 => ((self.rng.pick(&self.foreign) << 12) | self.rng.below(4096), self.rng.next()),
            6 => (self.victim_l1e[0] | self.rng.pick(&[2, 3, 4, 6]), self.pte_val()),
            _ => (self.rng.next() & !(MMU_MACHPHYS_UPDATE | 2) | MMU_NORMAL_PT_UPDATE, self.rng.next()),
        }
    }

    /// One mmuext op that cannot hurt the guest: (cmd, arg1, arg2).
    fn gen_mmuext(&mut self) -> (u32, u64, u64) {
        let cmd = if self.rng.chance(8) { self.rng.below(64) as u32 } else { self.rng.below(18) as u32 };
        let arg2 = self.safe_val();
        match cmd {
            MMUEXT_PIN_L1_TABLE..=MMUEXT_PIN_L4_TABLE | MMUEXT_UNPIN_TABLE => (cmd, self.mfn(true), arg2),
            // Only our own L4 (a no-op switch) or what must be refused: a victim that validates
            // as an empty L4 would take our code away.
            MMUEXT_NEW_BASEPTR => {
                let m = match self.rng.below(5) {
                    0 => self.l4().mfn,
                    1 => self.pt[self.rng.below(self.npt as u64) as usize].mfn,
                    2 => self.rng.pick(&self.foreign),
                    3 => self.rng.pick(&self.code_mfns),
                    _ => self.rng.next(),
                };
                (cmd, m, arg2)
            }
            MMUEXT_NEW_USER_BASEPTR => (cmd, self.mfn(true), arg2),
            MMUEXT_TLB_FLUSH_MULTI | MMUEXT_INVLPG_MULTI => (cmd, self.scalar(), self.safe_val()),
            MMUEXT_SET_LDT => (cmd, self.ptr_any(), self.scalar()),
            // Clear/copy only into victims (or what must be refused).
            MMUEXT_CLEAR_PAGE => (cmd, self.mfn(false), arg2),
            MMUEXT_COPY_PAGE => (cmd, self.mfn(false), self.mfn(true)),
            _ => (cmd, self.scalar(), arg2),
        }
    }

    /// Issue one generated call, with the bookkeeping a few of them need.
    fn issue(&mut self) {
        let (nr, a) = self.gen(0);
        self.last = (nr, a);
        if self.dump.is_some_and(|d| self.hypercalls >= d) {
            println!("hostile: call {}: {nr} {a:#x?}", self.hypercalls);
            if nr == HYPERVISOR_MULTICALL && a[0] == self.arena() + ARENA_MULTICALL {
                for i in 0..a[1] {
                    let e = self.arena() + ARENA_MULTICALL + i * 64;
                    // SAFETY: the entries were just written in the arena.
                    let v = unsafe { core::ptr::read_volatile(e as *const [u64; 8]) };
                    println!("hostile:   entry {i}: {v:#x?}");
                }
            }
        }
        let r = self.call(nr, a);
        match nr {
            HYPERVISOR_STACK_SWITCH => {
                let top = core::ptr::addr_of!(STACK_MARK) as u64; // any sane value: we stay in kernel mode
                hc::stack_switch(FLAT_KERNEL_SS, top);
            }
            HYPERVISOR_UPDATE_VA_MAPPING if r == 0 => self.check_mapping(a[1], "update_va_mapping"),
            HYPERVISOR_SET_TRAP_TABLE if r == 0 => invariant(format_args!("set_trap_table({:#x}) accepted a table we never wrote", a[0])),
            _ => {}
        }
    }

    /// Periodic checks: code intact, no table writable, no foreign frame mapped in the victim window.
    fn scan(&mut self, when: &str) {
        for i in 0..self.image_pages {
            let va = VIRT_BASE + i as u64 * PAGE;
            let e = self.pte(va) & !PTE_AD;
            if e != self.image_ptes[i] {
                let (nr, a) = self.last;
                invariant(format_args!(
                    "our own mapping of {va:#x} changed: {:#x} -> {e:#x} ({when}; last call {nr} {a:#x?})",
                    self.image_ptes[i]
                ));
            }
        }
        if checksum() != self.checksum {
            invariant(format_args!("code/rodata checksum changed ({when})"));
        }
        for i in 0..self.npt {
            let f = self.pt[i];
            let e = self.pte(f.va);
            if e & PTE_RW != 0 {
                invariant(format_args!("boot page table {i} (mfn {:#x}) mapped writable: pte {e:#x} ({when})", f.mfn));
            }
        }
        for i in 0..NVICTIM {
            let e = self.pte(self.victim_va(i));
            self.check_mapping(e, "victim window");
        }
    }

    // ---- page-table rounds ----
    fn expect(&self, ok: bool, what: core::fmt::Arguments) {
        if !ok {
            invariant(what);
        }
    }

    /// A balloon round: grow by one frame, map it, give it back while mapped (it must stay until
    /// its mapping goes, then be freed), populate a pfn beyond our memory, exchange that frame for
    /// another, give that back; the reservation must end where it started, and no frame we gave
    /// back may be mappable again. Also try to give away frames that are not ours.
    fn balloon_round(&mut self) {
        self.balloon_rounds += 1;
        let round = self.balloon_rounds;
        let base = ARENA_STRUCTS;
        let (res, list, outl, xch) = (self.arena() + base, self.arena() + base + 64, self.arena() + base + 128, self.arena() + base + 192);
        let k = NVICTIM - 1 - (round as usize % 4);
        let va = self.victim_va(k);
        let rw = PTE_P | PTE_RW | PTE_U | PTE_NX;
        let resv = |w: &mut World, list: u64, n: u64| {
            w.arena_write(base, list);
            w.arena_write(base + 8, n);
            w.arena_write(base + 16, 0); // extent_order 0, mem_flags 0
            w.arena_write(base + 24, DOMID_SELF);
        };
        let tot = |w: &mut World| {
            w.arena_write(base + 256, DOMID_SELF);
            w.call(HYPERVISOR_MEMORY_OP, [XENMEM_CURRENT_RESERVATION, w.arena() + base + 256, 0, 0, 0])
        };
        let t0 = tot(self);
        self.expect(t0 > 0, format_args!("balloon {round}: current_reservation {t0}"));

        // Grow by one frame.
        resv(self, list, 1);
        self.arena_write(base + 64, 0);
        let r = self.call(HYPERVISOR_MEMORY_OP, [XENMEM_INCREASE_RESERVATION, res, 0, 0, 0]);
        self.expect(r == 1, format_args!("balloon {round}: increase_reservation gave {r}"));
        // SAFETY: the arena is ours.
        let m = unsafe { core::ptr::read_volatile(list as *const u64) };
        self.expect(
            m != 0 && !mm::mfn_list().contains(&m) && m != self.si.shared_info >> 12 && !grant_frame(m),
            format_args!("balloon {round}: new frame {m:#x} is one we had"),
        );
        self.gained[0] = m;
        let t1 = tot(self);
        self.expect(t1 == t0 + 1, format_args!("balloon {round}: reservation {t0} -> {t1} after growing by one"));
        // Map it, use it.
        let r = self.uvm(va, (m << 12) | rw);
        self.expect(r == 0, format_args!("balloon {round}: new frame {m:#x} cannot be mapped: {r}"));
        self.expect(probe_read(va) == Some(0), format_args!("balloon {round}: new frame {m:#x} not readable or not scrubbed"));
        self.expect(probe_write(va), format_args!("balloon {round}: new frame {m:#x} not writable"));
        // Give it back while mapped: it stays ours until the mapping goes.
        resv(self, list, 1);
        self.arena_write(base + 64, m);
        let r = self.call(HYPERVISOR_MEMORY_OP, [XENMEM_DECREASE_RESERVATION, res, 0, 0, 0]);
        self.expect(r == 1, format_args!("balloon {round}: decrease_reservation of {m:#x} gave {r}"));
        let t2 = tot(self);
        self.expect(t2 == t1, format_args!("balloon {round}: a still-mapped frame was freed ({t1} -> {t2})"));
        self.expect(probe_write(va), format_args!("balloon {round}: mapped frame {m:#x} went away under us"));
        // The mapping goes: the frame is freed, and can never be mapped again.
        let r = self.uvm(va, (self.pool_mfn[k] << 12) | rw);
        // A random set_gdt may have made that frame a descriptor page, or a random pin a page
        // table: Xen refuses writable mappings of both (-EBUSY). Read-only is always allowed.
        let r = if r == -16 { self.uvm(va, (self.pool_mfn[k] << 12) | (rw & !PTE_RW)) } else { r };
        self.expect(r == 0, format_args!("balloon {round}: victim {k} cannot be restored: {r}"));
        let t3 = tot(self);
        self.expect(t3 == t0, format_args!("balloon {round}: reservation {t3} after the last mapping went, not {t0}"));
        self.gained[0] = 0;
        let r = self.uvm(va, (m << 12) | rw);
        self.expect(r < 0, format_args!("balloon {round}: freed frame {m:#x} mapped again: {r}"));
        if r == 0 {
            self.uvm(va, (self.pool_mfn[k] << 12) | rw);
        }

        // Populate a pfn beyond our memory, then exchange that frame for another.
        let pfn = self.si.nr_pages + round % 64;
        resv(self, list, 1);
        self.arena_write(base + 64, pfn);
        let r = self.call(HYPERVISOR_MEMORY_OP, [XENMEM_POPULATE_PHYSMAP, res, 0, 0, 0]);
        self.expect(r == 1, format_args!("balloon {round}: populate_physmap gave {r}"));
        // SAFETY: the arena is ours.
        let p = unsafe { core::ptr::read_volatile(list as *const u64) };
        self.gained[1] = p;
        // xen_memory_exchange {in, out, nr_exchanged}: one order-0 extent for one.
        let words = [list, 1, 0, DOMID_SELF, outl, 1, 0, DOMID_SELF, 0];
        for (i, w) in words.iter().enumerate() {
            self.arena_write(192 + base + i as u64 * 8, *w);
        }
        self.arena_write(base + 64, p);
        self.arena_write(base + 128, pfn);
        let r = self.call(HYPERVISOR_MEMORY_OP, [XENMEM_EXCHANGE, xch, 0, 0, 0]);
        // SAFETY: the arena is ours.
        let (q, done) = unsafe { (core::ptr::read_volatile(outl as *const u64), core::ptr::read_volatile((xch + 64) as *const u64)) };
        self.expect(r == 0 && done == 1 && q != p, format_args!("balloon {round}: exchange gave {r}, {done} exchanged, {p:#x} -> {q:#x}"));
        self.gained[1] = q;
        let r = self.uvm(va, (p << 12) | rw);
        self.expect(r < 0, format_args!("balloon {round}: exchanged-away frame {p:#x} mapped: {r}"));
        if r == 0 {
            self.uvm(va, (self.pool_mfn[k] << 12) | rw);
        }
        let t4 = tot(self);
        self.expect(t4 == t0 + 1, format_args!("balloon {round}: reservation {t4} after populate+exchange, not {}", t0 + 1));
        // Frames that are not ours cannot be given away; then ours goes.
        resv(self, list, 3);
        // (A "foreign" frame may have become one of our grant frames since the start: those are
        // ours, and Xen lets a domain drop the allocation reference of such a Xen-heap page.)
        let mut victim = self.rng.pick(&self.foreign);
        if self.owns(victim) {
            victim = 1 << 40;
        }
        self.arena_write(base + 64, q);
        self.arena_write(base + 72, victim);
        self.arena_write(base + 80, q);
        let r = self.call(HYPERVISOR_MEMORY_OP, [XENMEM_DECREASE_RESERVATION, res, 0, 0, 0]);
        self.expect(r == 1, format_args!("balloon {round}: decrease of [{q:#x}, foreign {victim:#x}, ..] gave {r}"));
        self.gained[1] = 0;
        let t5 = tot(self);
        self.expect(t5 == t0, format_args!("balloon {round}: reservation {t5} at the end, not {t0}"));
    }

    fn pt_round(&mut self) {
        self.pt_rounds += 1;
        if self.pt_rounds % 4 == 0 {
            self.balloon_round();
        }
        let round = self.pt_rounds;
        let set = (round as usize) % NSETS;
        let [(c_va, c), (l3_va, l3), (l2_va, l2), (l1_va, l1), (d_va, d)] = [0, 1, 2, 3, 4].map(|k| self.set_page(set, k));
        let orig = self.l4();
        let rw = PTE_P | PTE_RW | PTE_U | PTE_NX;
        let ro = PTE_P | PTE_U | PTE_NX;

        // Every page of the set is plain again (unpinned and unused at the end of its last round):
        // it must map writable.
        for (va, m) in [(c_va, c), (l3_va, l3), (l2_va, l2), (l1_va, l1), (d_va, d)] {
            let r = self.uvm(va, (m << 12) | rw);
            self.expect(r == 0, format_args!("round {round}: unpinned page mfn {m:#x} cannot be mapped writable again: {r}"));
        }
        let slot = 1 + (self.rng.below(8));
        let x = slot << 39;
        // SAFETY: the boot L4 is mapped read-only at its VA.
        let orig_slot = unsafe { core::ptr::read_volatile((orig.va + slot * 8) as *const u64) };
        self.expect(orig_slot & PTE_P == 0, format_args!("round {round}: L4 slot {slot} unexpectedly present"));
        let marker = self.rng.next() | 1;
        // SAFETY: the set's pages are ours and mapped writable right now (checked above); the
        // original L4 is readable.
        unsafe {
            core::ptr::write_bytes(l3_va as *mut u8, 0, PAGE as usize);
            core::ptr::write_bytes(l2_va as *mut u8, 0, PAGE as usize);
            core::ptr::write_bytes(l1_va as *mut u8, 0, PAGE as usize);
            core::ptr::copy_nonoverlapping(orig.va as *const u64, c_va as *mut u64, 512);
            core::ptr::write_volatile(d_va as *mut u64, marker);
            core::ptr::write_volatile(l1_va as *mut u64, (d << 12) | rw);
            core::ptr::write_volatile(l2_va as *mut u64, (l1 << 12) | PTE_P | PTE_RW | PTE_U);
            core::ptr::write_volatile(l3_va as *mut u64, (l2 << 12) | PTE_P | PTE_RW | PTE_U);
            core::ptr::write_volatile((c_va + slot * 8) as *mut u64, (l3 << 12) | PTE_P | PTE_RW | PTE_U);
        }
        for (va, m) in [(l1_va, l1), (l2_va, l2), (l3_va, l3), (c_va, c)] {
            let r = self.uvm(va, (m << 12) | ro);
            self.expect(r == 0, format_args!("round {round}: cannot map own page mfn {m:#x} read-only: {r}"));
        }
        // Pin some of the lower tables bottom-up, then maybe the copy.
        let mut pinned = [false; 4]; // [L1, L2, L3, L4]
        for (lvl, m) in [(0usize, l1), (1, l2), (2, l3)] {
            if self.rng.chance(3) {
                let r = self.mmuext(MMUEXT_PIN_L1_TABLE + lvl as u32, m, 0);
                self.expect(r == 0, format_args!("round {round}: pin L{} of a valid table: {r}", lvl + 1));
                pinned[lvl] = true;
            }
        }
        let pin_c = self.rng.chance(2);
        if pin_c {
            let r = self.mmuext(MMUEXT_PIN_L4_TABLE, c, 0);
            self.expect(r == 0, format_args!("round {round}: pin L4 of the copy: {r}"));
            pinned[3] = true;
            let r = self.mmuext(MMUEXT_PIN_L4_TABLE, c, 0);
            self.expect(r < 0, format_args!("round {round}: pinning a pinned table twice succeeded"));
        }
        // Typed tables can never be mapped writable.
        self.writable_must_fail(c, c_va, pin_c, round, "pinned L4 copy");
        let l1_typed = pinned[0] || pinned[1] || pinned[2] || pin_c;
        self.writable_must_fail(l1, l1_va, l1_typed, round, "L1 under a pinned table");
        self.boot_table_attack(round);
        self.expect(probe_read(x).is_none(), format_args!("round {round}: {x:#x} readable before the switch"));

        // Variant: unpin the original L4 first, so our switches hold its last reference.
        let unpin_orig = self.rng.chance(3);
        if unpin_orig {
            let r = self.mmuext(MMUEXT_UNPIN_TABLE, orig.mfn, 0);
            self.expect(r == 0 || r == -EINVAL, format_args!("round {round}: unpin of the boot L4: {r}"));
        }
        let r = self.mmuext(MMUEXT_NEW_BASEPTR, c, 0);
        self.expect(r == 0, format_args!("round {round}: new_baseptr to the copy: {r}"));
        let seen = probe_read(x);
        self.expect(
            seen == Some(marker),
            format_args!("round {round}: after switching to the copy {x:#x} reads {seen:?}, want {marker:#x}"),
        );
        self.expect(checksum() == self.checksum, format_args!("round {round}: checksum on the copy"));
        // The copy is in use: never writable, pinned or not.
        self.writable_must_fail(c, c_va, true, round, "L4 copy in use as base pointer");
        // Linear page tables (Xen's default): a read-only self-reference in a free slot of the
        // running L4 must be accepted and show the L4 itself, read-only, four levels down; a
        // writable one must be refused, and pointing the slot at another L4 must never hurt.
        let s2 = slot + 8;
        let e2 = (c << 12) + s2 * 8;
        let r = self.mmu1(e2, (c << 12) | PTE_P | PTE_U);
        self.expect(r == 0, format_args!("round {round}: read-only linear self-reference refused: {r}"));
        let lin = (s2 << 39) | (s2 << 30) | (s2 << 21) | (s2 << 12);
        let want = (l3 << 12) | PTE_P | PTE_RW | PTE_U;
        let seen = probe_read(lin + slot * 8).map(|e| e & !(1 << 5 | 1 << 6)); // A/D may be set
        self.expect(seen == Some(want), format_args!("round {round}: the L4 through its linear slot reads {seen:?}, want {want:#x}"));
        self.expect(!probe_write(lin + 511 * 8), format_args!("round {round}: the linear mapping of the L4 is writable"));
        let r = self.mmu1(e2, (c << 12) | PTE_P | PTE_RW | PTE_U);
        self.expect(r < 0, format_args!("round {round}: writable linear self-reference accepted"));
        let r = self.mmu1(e2, (orig.mfn << 12) | PTE_P | PTE_U);
        if r == 0 {
            let r = self.mmu1(e2, (c << 12) | PTE_P | PTE_U);
            self.expect(r == 0, format_args!("round {round}: replacing a linear entry: {r}"));
        }
        let r = self.mmu1(e2, 0);
        self.expect(r == 0, format_args!("round {round}: clearing the linear slot: {r}"));
        self.expect(probe_read(lin).is_none(), format_args!("round {round}: linear slot still mapped after clearing"));
        if pin_c && self.rng.chance(2) {
            let r = self.mmuext(MMUEXT_UNPIN_TABLE, c, 0);
            self.expect(r == 0, format_args!("round {round}: unpin of the copy while on it: {r}"));
            pinned[3] = false;
            self.writable_must_fail(c, c_va, true, round, "unpinned L4 copy still in use");
        }
        let r = self.mmuext(MMUEXT_NEW_BASEPTR, orig.mfn, 0);
        self.expect(r == 0, format_args!("round {round}: new_baseptr back to the boot L4: {r}"));
        let seen = probe_read(x);
        self.expect(seen.is_none(), format_args!("round {round}: after switching back {x:#x} still reads {seen:?}"));
        self.expect(checksum() == self.checksum, format_args!("round {round}: checksum after switching back"));
        if unpin_orig {
            let r = self.mmuext(MMUEXT_PIN_L4_TABLE, orig.mfn, 0);
            self.expect(r == 0 || r == -EINVAL, format_args!("round {round}: re-pin of the boot L4: {r}"));
        }
        // Unpin everything; then every page is plain and must map writable.
        for (lvl, m) in [(3usize, c), (2, l3), (1, l2), (0, l1)] {
            if pinned[lvl] {
                let r = self.mmuext(MMUEXT_UNPIN_TABLE, m, 0);
                self.expect(r == 0, format_args!("round {round}: unpin L{}: {r}", lvl + 1));
            }
        }
        let r = self.mmuext(MMUEXT_UNPIN_TABLE, c, 0);
        self.expect(r < 0, format_args!("round {round}: unpin of an unpinned table succeeded"));
        for (va, m) in [(c_va, c), (l3_va, l3), (l2_va, l2), (l1_va, l1)] {
            let r = self.uvm(va, (m << 12) | rw);
            self.expect(r == 0, format_args!("round {round}: page mfn {m:#x} unpinned and unused, still not writable: {r}"));
            self.expect(probe_write(va), format_args!("round {round}: write to re-mapped page {va:#x} faults"));
        }
    }

    /// Try to map `mfn` writable at its own VA; if `typed`, it must fail, leave the entry as it
    /// was, and a write must fault.
    fn writable_must_fail(&mut self, mfn: u64, va: u64, typed: bool, round: u64, what: &str) {
        let before = self.pte(va);
        let r = self.uvm(va, (mfn << 12) | PTE_P | PTE_RW | PTE_U | PTE_NX);
        if typed {
            self.expect(r < 0, format_args!("round {round}: {what} (mfn {mfn:#x}) mapped writable"));
            let after = self.pte(va);
            self.expect(after == before, format_args!("round {round}: {what}: refused update changed the entry {before:#x} -> {after:#x}"));
            // With VMASST_TYPE_writable_pagetables (which the fuzzed calls may have enabled) Xen
            // emulates a kernel's write to a read-only mapping of an L1 (pv/ro-page-fault.c):
            // the probe writes back the byte it read, a valid entry. Without it, it faults.
            no_writable_pagetables();
            self.expect(!probe_write(va), format_args!("round {round}: {what}: write through its mapping did not fault"));
        } else if r == 0 {
            let r = self.uvm(va, (mfn << 12) | PTE_P | PTE_U | PTE_NX);
            self.expect(r == 0, format_args!("round {round}: {what}: cannot map read-only again: {r}"));
        }
    }

    /// Map a boot table writable at a victim VA (must fail, entry unchanged), then read-only
    /// (must work and show the same bytes), then restore the victim.
    fn boot_table_attack(&mut self, round: u64) {
        let i = self.rng.below(NVICTIM as u64) as usize;
        let va = self.victim_va(i);
        let f = self.pt[self.rng.below(self.npt as u64) as usize];
        let before = self.pte(va);
        let r = self.uvm(va, (f.mfn << 12) | PTE_P | PTE_RW | PTE_U | PTE_NX);
        self.expect(r < 0, format_args!("round {round}: boot table mfn {:#x} mapped writable at {va:#x}", f.mfn));
        self.expect(self.pte(va) == before, format_args!("round {round}: refused writable alias changed the entry"));
        let r = self.uvm(va, (f.mfn << 12) | PTE_P | PTE_U | PTE_NX);
        self.expect(r == 0, format_args!("round {round}: read-only alias of boot table: {r}"));
        let (a, b) = (probe_read(va), probe_read(f.va));
        self.expect(a.is_some() && a == b, format_args!("round {round}: read-only alias reads {a:?}, table reads {b:?}"));
        no_writable_pagetables();
        self.expect(!probe_write(va), format_args!("round {round}: write through read-only alias of a table did not fault"));
        // (Refused if the fuzzed calls pinned the victim meanwhile: then it stays an alias.)
        self.uvm(va, (self.pool_mfn[i] << 12) | PTE_P | PTE_RW | PTE_U | PTE_NX);
    }
}

/// Turn VMASST_TYPE_writable_pagetables off (xen-public/xen.h: VMASST_CMD_disable = 1, type 2),
/// so that a write through a read-only mapping of a page table faults whatever the table's level.
fn no_writable_pagetables() {
    let r = xenrt::hypercall::vm_assist(1, 2);
    if r != 0 {
        invariant(format_args!("vm_assist(disable, writable_pagetables) = {r}"));
    }
}

/// Only its address is used (a harmless value for stack_switch).
static STACK_MARK: u64 = 0;

fn main(si: &'static StartInfo) -> ! {
    let seed = xenrt::cmdline::arg_u64("seed").unwrap_or(1);
    let calls = xenrt::cmdline::arg_u64("calls").unwrap_or(20_000);
    let mode = xenrt::cmdline::arg("mode").unwrap_or("mixed");
    let verbose = xenrt::cmdline::arg_u64("verbose").unwrap_or(0) != 0;
    let (do_calls, do_pt) = match mode {
        "calls" => (true, false),
        "pt" => (false, true),
        "mixed" => (true, true),
        other => {
            println!("hostile: INVARIANT bad mode {other:?} (calls|pt|mixed)");
            xenrt::shutdown(SHUTDOWN_CRASH);
        }
    };
    let rc = mm::map_shared_info();
    if rc != 0 {
        invariant(format_args!("map_shared_info: {rc}"));
    }
    // Every vector xenrt has a stub for, so any trap reaches on_trap (int3/into from ring 3).
    let mut gates = [(0u8, 0u8); 32];
    for (v, g) in gates.iter_mut().enumerate() {
        *g = (v as u8, if v == 3 || v == 4 { 3 } else { 0 });
    }
    let rc = xenrt::traps::install(&gates, on_trap);
    if rc != 0 {
        invariant(format_args!("set_trap_table: {rc}"));
    }

    let npt = (si.nr_pt_frames as usize).min(MAX_PT);
    let mut pt = [PtFrame::default(); MAX_PT];
    for (i, f) in pt.iter_mut().enumerate().take(npt) {
        let va = si.pt_base + i as u64 * PAGE;
        *f = PtFrame { va, mfn: mm::va_to_mfn(va) };
    }
    // The boot stack page follows the tables; the spare pages follow it.
    let pool_va = si.pt_base + (si.nr_pt_frames + 1) * PAGE;
    let mut pool_mfn = [0u64; POOL_PAGES as usize];
    for (i, m) in pool_mfn.iter_mut().enumerate() {
        *m = mm::va_to_mfn(pool_va + i as u64 * PAGE);
    }
    let list = mm::mfn_list();
    let (lo, hi) = (list.iter().copied().min().unwrap_or(0), list.iter().copied().max().unwrap_or(0));
    let foreign = [hi + 1, hi + 17, lo.saturating_sub(1), lo / 2, 0, 1, 1 << 36, (1 << 40) - 1];
    let code_mfns =
        [mm::va_to_mfn(VIRT_BASE), mm::va_to_mfn(VIRT_BASE + PAGE), mm::va_to_mfn(ARENA.0.get() as u64 - PAGE), mm::va_to_mfn(si.mfn_list)];
    let mut w = World {
        si,
        pt,
        npt,
        pool_va,
        pool_mfn,
        victim_l1e: [0; NVICTIM],
        foreign,
        code_mfns,
        checksum: checksum(),
        console_port: si.console_evtchn,
        store_port: si.store_evtchn,
        rng: Rng(seed ^ 0x686f_7374_696c_6521),
        hypercalls: 0,
        ok: 0,
        errors: 0,
        mc_entries: 0,
        pt_rounds: 0,
        verbose,
        paranoid: xenrt::cmdline::arg_u64("paranoid").unwrap_or(0) != 0,
        image_ptes: [0; MAX_IMAGE_PAGES],
        image_pages: (((pool_va - VIRT_BASE) / PAGE) as usize).min(MAX_IMAGE_PAGES),
        last: (0, [0; 5]),
        dump: xenrt::cmdline::arg_u64("dump"),
        gained: [0; 4],
        balloon_rounds: 0,
    };
    for i in 0..w.image_pages {
        w.image_ptes[i] = w.pte(VIRT_BASE + i as u64 * PAGE) & !PTE_AD;
    }
    for i in 0..NVICTIM {
        match w.l1e_maddr(w.victim_va(i)) {
            Some(ma) => w.victim_l1e[i] = ma,
            None => invariant(format_args!("victim page {i} at {:#x} is not mapped", w.victim_va(i))),
        }
    }
    for &f in &foreign {
        if list.contains(&f) {
            invariant(format_args!("'foreign' mfn {f:#x} is in our own mfn_list"));
        }
    }
    println!("hostile: seed={seed} mode={mode} calls={calls} pt_frames={npt} pool={pool_va:#x} arena={:#x}", w.arena());

    if do_calls {
        for i in 0..calls {
            w.issue();
            if do_pt && i % MIXED_PT_EVERY == MIXED_PT_EVERY - 1 {
                w.pt_round();
            }
            if w.paranoid || i % SCAN_EVERY == SCAN_EVERY - 1 {
                w.scan("periodic");
            }
        }
    } else {
        for _ in 0..calls.div_ceil(32) {
            w.pt_round();
        }
    }
    w.scan("final");
    fresh_line();
    if w.verbose {
        println!("hostile: ok={} multicall_entries={}", w.ok, w.mc_entries);
    }
    println!(
        "hostile: seed={seed} mode={mode} calls={calls} hypercalls={} faults={} ok={} errors={} multicall_entries={} pt_rounds={} balloon_rounds={} invariants held",
        w.hypercalls,
        FAULTS.load(SeqCst),
        w.ok,
        w.errors,
        w.mc_entries,
        w.pt_rounds,
        w.balloon_rounds
    );
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
