//! `ptswitch`: leaves top-level page tables whose last type reference is the base pointer.
//!
//! The attack of issue 6: copy the running L4 to a free page, map the copy read-only, switch to
//! it with `MMUEXT_NEW_BASEPTR`, switch back, in three variants (the old L4 unpinned first; the
//! copy pinned, switched to and unpinned while in use; both in one `mmuext_op` batch), `rounds`
//! times (cmdline `rounds=N`, default 8). A hypervisor that devalidated a table while still
//! running on it would fault in its own code here (on bare metal). Each variant checks what Xen
//! guarantees a guest: a table left with no reference is ordinary memory again (it can be mapped
//! writable), a table in use never is. Prints `ptswitch: N rounds ok` and powers off, or
//! `ptswitch: FAIL ...` and crashes.
//!
//! First, writable page tables (VMASST_TYPE_writable_pagetables, Xen's pv/ro-page-fault.c): the
//! guest rewrites one of its own L1 entries through the read-only mapping of its L1 with the
//! instructions Linux uses on entries (`xchg`, `lock cmpxchg`, `lock and/or`, a plain `mov`) and
//! checks each took effect (`ptswitch: ptwr ok`).
#![no_std]
#![no_main]

use xenrt::{abi::*, hypercall as hc, mm::Page, println, StartInfo};

xenrt::entry!(main);

// xen-public/xen.h: mmuext_op commands.
const MMUEXT_PIN_L4_TABLE: u32 = 3;
const MMUEXT_UNPIN_TABLE: u32 = 4;
const MMUEXT_NEW_BASEPTR: u32 = 5;
const MMUEXT_INVLPG_LOCAL: u32 = 7;
// xen-public/xen.h: VMASST_CMD_enable, VMASST_TYPE_writable_pagetables.
const VMASST_CMD_ENABLE: u64 = 0;
const VMASST_TYPE_WRITABLE_PAGETABLES: u64 = 2;
// Accessed and dirty: set in every value written, so no platform's hardware changes them.
const PTE_A: u64 = 1 << 5;
const PTE_D: u64 = 1 << 6;

/// The page whose entry is rewritten, and the page it is pointed at meanwhile.
static TARGET: Page = Page::new();
static OTHER: Page = Page::new();

/// The copy of the running L4.
static COPY: Page = Page::new();

/// A table in use can never be mapped writable (Xen's errno for it is the conformance
/// work's business; any error will do here).
fn refused(what: &str, rc: i64) {
    if rc >= 0 {
        println!("ptswitch: FAIL {} = {} (want an error)", what, rc);
        xenrt::shutdown(SHUTDOWN_CRASH);
    }
}

fn ops(list: &[MmuextOp]) -> i64 {
    // SAFETY: `list` is a valid array of requests in our own memory.
    unsafe { hc::mmuext_op(list.as_ptr(), list.len() as u64, core::ptr::null_mut(), DOMID_SELF) }
}

fn op(cmd: u32, mfn: u64) -> i64 {
    ops(&[MmuextOp { cmd, arg1: mfn, ..Default::default() }])
}

fn check(what: &str, rc: i64, want: i64) {
    if rc != want {
        println!("ptswitch: FAIL {} = {} (want {})", what, rc, want);
        xenrt::shutdown(SHUTDOWN_CRASH);
    }
}

/// Map COPY at its own address with `flags` (read-only or writable).
fn map_copy(flags: u64) -> i64 {
    // SAFETY: only changes the mapping of our own COPY page.
    unsafe { hc::update_va_mapping(COPY.va(), (COPY.mfn() << 12) | PTE_P | PTE_U | flags, UVMF_INVLPG) }
}

/// The VA (through the initial mapping, read-only) of the L1 entry that maps `va`.
fn l1e_va(l4_va: u64, va: u64) -> u64 {
    let mut table = l4_va;
    for level in (2..=4u32).rev() {
        let i = (va >> (12 + 9 * (level - 1))) & 511;
        // SAFETY: the tables are mapped read-only in the initial mapping; reads only.
        let e = unsafe { core::ptr::read_volatile((table + i * 8) as *const u64) };
        table = xenrt::mm::mfn_to_va((e & 0x000f_ffff_ffff_f000) >> 12);
    }
    table + ((va >> 12) & 511) * 8
}

fn invlpg(va: u64) {
    check("invlpg", ops(&[MmuextOp { cmd: MMUEXT_INVLPG_LOCAL, arg1: va, ..Default::default() }]), 0);
}

fn read(va: u64) -> u64 {
    // SAFETY: TARGET is always mapped to one of our own pages while this runs.
    unsafe { core::ptr::read_volatile(va as *const u64) }
}

fn ptwr(l4_va: u64) {
    check("vm_assist writable_pagetables", hc::vm_assist(VMASST_CMD_ENABLE, VMASST_TYPE_WRITABLE_PAGETABLES), 0);
    let (t, o) = (TARGET.va(), OTHER.va());
    // SAFETY: both pages are ours and writable.
    unsafe {
        core::ptr::write_volatile(t as *mut u64, 0x7a);
        core::ptr::write_volatile(o as *mut u64, 0x0b);
    }
    let own = (TARGET.mfn() << 12) | PTE_P | PTE_RW | PTE_U | PTE_A | PTE_D;
    let other = (OTHER.mfn() << 12) | PTE_P | PTE_U | PTE_A | PTE_D;
    // Start from an entry with A and D set (the hardware then leaves it alone).
    // SAFETY: maps TARGET's own frame at its own address.
    check("target a|d", unsafe { hc::update_va_mapping(t, own, UVMF_INVLPG) }, 0);
    let e = l1e_va(l4_va, t);
    // SAFETY: `e` is the L1 entry of TARGET, mapped read-only: each write below faults and the
    // hypervisor emulates it (or the guest dies of the #PF it has no handler for).
    let entry = unsafe { core::sync::atomic::AtomicU64::from_ptr(e as *mut u64) };
    check("ptwr read", entry.load(core::sync::atomic::Ordering::SeqCst) as i64, own as i64);
    // xchg (Linux's ptep_get_and_clear), then TARGET maps OTHER's frame read-only.
    let old = entry.swap(other, core::sync::atomic::Ordering::SeqCst);
    invlpg(t);
    check("ptwr xchg old", old as i64, own as i64);
    check("ptwr xchg maps other", read(t) as i64, 0x0b);
    // lock cmpxchg: a failing compare writes nothing, a matching one writes.
    let r = entry.compare_exchange(own, 0, core::sync::atomic::Ordering::SeqCst, core::sync::atomic::Ordering::SeqCst);
    check("ptwr cmpxchg mismatch", r.err().unwrap_or(0) as i64, other as i64);
    let r = entry.compare_exchange(other, own, core::sync::atomic::Ordering::SeqCst, core::sync::atomic::Ordering::SeqCst);
    invlpg(t);
    check("ptwr cmpxchg", r.ok().unwrap_or(0) as i64, other as i64);
    check("ptwr cmpxchg maps own", read(t) as i64, 0x7a);
    // lock and / lock or (ptep_set_wrprotect and friends) on the RW bit.
    entry.fetch_and(!PTE_RW, core::sync::atomic::Ordering::SeqCst);
    invlpg(t);
    check("ptwr and", entry.load(core::sync::atomic::Ordering::SeqCst) as i64, (own & !PTE_RW) as i64);
    entry.fetch_or(PTE_RW, core::sync::atomic::Ordering::SeqCst);
    invlpg(t);
    // A plain store (native_set_pte).
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(e as *mut u64, own) };
    invlpg(t);
    // SAFETY: writable again.
    unsafe { core::ptr::write_volatile(t as *mut u64, 0x7b) };
    check("ptwr mov", read(t) as i64, 0x7b);
    println!("ptswitch: ptwr ok");
}

fn main(si: &'static StartInfo) -> ! {
    ptwr(si.pt_base);
    let rounds = xenrt::cmdline::arg_u64("rounds").unwrap_or(8);
    let l4_va = si.pt_base;
    let l4 = xenrt::mm::va_to_mfn(l4_va);
    let copy = COPY.mfn();
    // The copy: every entry of the running L4 (the hypervisor rewrites its own slots when it
    // validates the copy).
    // SAFETY: pt_base maps the running L4 read-only; COPY is ours and still writable here.
    unsafe { core::ptr::copy_nonoverlapping(l4_va as *const u8, COPY.va() as *mut u8, 4096) };
    check("map copy ro", map_copy(0), 0);

    // The builder pinned the initial L4: from now on only base pointers (and our pins) hold it.
    check("unpin initial l4", op(MMUEXT_UNPIN_TABLE, l4), 0);
    for _ in 0..rounds {
        // 1. Leave the L4 whose only reference is the base pointer, then come back to it.
        check("new_baseptr copy", op(MMUEXT_NEW_BASEPTR, copy), 0);
        refused("copy in use, map rw", map_copy(PTE_RW));
        check("new_baseptr l4", op(MMUEXT_NEW_BASEPTR, l4), 0);
        // The copy had no reference left: ordinary memory again, writable, as in Xen.
        check("copy left, map rw", map_copy(PTE_RW), 0);
        check("copy left, map ro", map_copy(0), 0);

        // 2. Pin the copy, run on it, unpin it while in use, leave it.
        check("pin copy", op(MMUEXT_PIN_L4_TABLE, copy), 0);
        check("new_baseptr pinned copy", op(MMUEXT_NEW_BASEPTR, copy), 0);
        check("unpin running copy", op(MMUEXT_UNPIN_TABLE, copy), 0);
        refused("running copy, map rw", map_copy(PTE_RW));
        check("new_baseptr l4 again", op(MMUEXT_NEW_BASEPTR, l4), 0);
        check("unpinned copy left, map rw", map_copy(PTE_RW), 0);
        check("map copy ro again", map_copy(0), 0);

        // 3. Both switches in one batch: there and back.
        let batch = [
            MmuextOp { cmd: MMUEXT_NEW_BASEPTR, arg1: copy, ..Default::default() },
            MmuextOp { cmd: MMUEXT_NEW_BASEPTR, arg1: l4, ..Default::default() },
        ];
        check("batch there and back", ops(&batch), 0);
        check("after batch, map rw", map_copy(PTE_RW), 0);
        check("after batch, map ro", map_copy(0), 0);
    }
    println!("ptswitch: {} rounds ok", rounds);
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
