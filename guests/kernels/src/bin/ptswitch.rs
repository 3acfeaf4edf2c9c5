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
#![no_std]
#![no_main]

use xenrt::{abi::*, hypercall as hc, mm::Page, println, StartInfo};

xenrt::entry!(main);

// xen-public/xen.h: mmuext_op commands.
const MMUEXT_PIN_L4_TABLE: u32 = 3;
const MMUEXT_UNPIN_TABLE: u32 = 4;
const MMUEXT_NEW_BASEPTR: u32 = 5;

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

fn main(si: &'static StartInfo) -> ! {
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
