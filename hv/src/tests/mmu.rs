//! Page-type rules, exercised through mmu_update / update_va_mapping / mmuext_op hypercalls.

use super::{nr, World, EBUSY, EINVAL, EPERM};
use crate::abi::hypercall::mmuext;
use crate::abi::{RO_MPT_VIRT_START, XEN_L4_FIRST, XEN_L4_LAST};
use crate::mm::frames::PageType;
use crate::mm::paging::{PTE_A, PTE_P, PTE_RW, PTE_US};
use crate::mm::{Mfn, PAGE_SIZE};
use crate::DomId;

const RW: u64 = PTE_P | PTE_RW | PTE_US | PTE_A;
const RO: u64 = PTE_P | PTE_US | PTE_A;

fn pte(m: Mfn, flags: u64) -> u64 {
    m.maddr().0 | flags
}

fn l4(w: &World, d: DomId) -> Mfn {
    w.hv.doms[&d].vcpus[0].guest_table
}

#[test]
/// Xen's get_page_from_l1e: a frame that is not the domain's cannot be pinned to it (-EBUSY).
fn mapping_another_domains_frame_is_ebusy() {
    let mut w = World::new();
    let d1 = w.create("attacker");
    let d2 = w.create("victim");
    let victim = w.hv.doms[&d2].p2m[100];
    let va = w.scratch(d1, 0);
    let own = w.mfn_of(d1, va);

    assert_eq!(w.update_va_mapping(d1, va, pte(victim, RW)), EBUSY);
    w.assert_trace(&["d1v0 update_va_mapping(", "= -EBUSY", "owned by d2"]);
    assert_eq!(w.update_va_mapping(d1, va, pte(victim, RO)), EBUSY, "read-only is no better");

    let l1e = w.l1e(d1, va);
    assert_eq!(w.mmu_update(d1, &[(l1e.0, pte(victim, RW))]), EBUSY);
    w.assert_trace(&["d1v0 mmu_update(1 req) = -EBUSY", "owned by d2"]);

    // Nothing changed: the VA still maps the attacker's own frame, the victim has no mapping.
    assert_eq!(w.mfn_of(d1, va), own);
    assert_eq!(w.hv.frames.get(victim).unwrap().writable_refs, 1, "only the victim's own mapping");

    // The hypervisor's frames are no better: the M2P.
    assert_eq!(w.update_va_mapping(d1, va, pte(w.hv.xen.m2p, RO)), EBUSY);
    // Nor is a foreign mmu_update on behalf of another domain.
    let list = w.scratch(d1, 13);
    w.write_pod(d1, list, &crate::abi::MmuUpdate { ptr: l1e.0, val: pte(own, RW) });
    assert_eq!(w.hypercall(d1, nr::MMU_UPDATE, [list, 1, 0, d2 as u64, 0]), EPERM);
}

#[test]
fn page_tables_are_never_writable() {
    let mut w = World::new();
    let d = w.create("pt");
    let va = w.scratch(d, 0);
    let own = w.mfn_of(d, va);
    let si = w.start_info(d);
    let l1_of_va = w.l1e(d, va).mfn();
    for table in [l4(&w, d), l1_of_va, w.mfn_of(d, si.pt_base + PAGE_SIZE)] {
        assert_eq!(w.update_va_mapping(d, va, pte(table, RW)), EBUSY, "RW mapping of {table:?}");
        assert_eq!(w.hv.frames.get(table).unwrap().writable_refs, 0);
    }
    w.assert_trace(&["= -EBUSY", "page table"]);
    // Read-only mappings of page tables are fine (Linux reads its tables that way).
    assert_eq!(w.update_va_mapping(d, va, pte(l4(&w, d), RO)), 0);
    let e511 = w.read_u64(d, va + 511 * 8);
    assert_eq!(e511 & PTE_P, PTE_P, "the L4 seen through the RO mapping");
    assert!(!w.walk(d, va).unwrap().writable);
    // A failed update flushes nothing; a successful one asks the platform for a TLB flush
    // before the vCPU runs again.
    let flushes = w.hv.platform.flushes.len();
    assert_eq!(w.update_va_mapping(d, va, pte(l4(&w, d), RW)), EBUSY);
    assert_eq!(w.hv.platform.flushes.len(), flushes);
    assert_eq!(w.update_va_mapping(d, va, pte(own, RW)), 0);
    assert_eq!(w.hv.platform.flushes.len(), flushes + 1);
}

#[test]
/// A frame beyond machine memory is MMIO to Xen: a domU may not map it (-EPERM); a page-table
/// pointer into one is -EINVAL.
fn nonexistent_frames() {
    let mut w = World::new();
    let d = w.create("nx");
    let va = w.scratch(d, 0);
    let nframes = w.hv.frames.len();
    assert_eq!(w.update_va_mapping(d, va, pte(Mfn(nframes + 5), RW)), EPERM);
    w.assert_trace(&["= -EPERM", "does not exist"]);
    let l1e = w.l1e(d, va);
    assert_eq!(w.mmu_update(d, &[(l1e.0, pte(Mfn(1 << 30), RO))]), EPERM);
    // A page-table pointer into a frame that does not exist.
    assert_eq!(w.mmu_update(d, &[((nframes + 1) << 12, 0)]), EINVAL);
    // update_va_mapping of an address with no L1 (beyond the bootstrap area) or in Xen's range.
    assert_eq!(w.update_va_mapping(d, 0x1000, 0), EINVAL);
    assert_eq!(w.update_va_mapping(d, RO_MPT_VIRT_START, 0), EINVAL);
}

#[test]
/// mod_l4_entry: an update of a Xen-private slot is -EINVAL.
fn l4_hypervisor_slots_are_einval() {
    let mut w = World::new();
    let d = w.create("slots");
    let l4 = l4(&w, d);
    let before: Vec<u64> = (0..512).map(|s| w.mread_u64(l4.maddr().add(s * 8))).collect();
    for slot in [XEN_L4_FIRST, 262, XEN_L4_LAST] {
        assert_eq!(w.mmu_update(d, &[(l4.maddr().0 + slot as u64 * 8, 0)]), EINVAL, "slot {slot}");
    }
    let after: Vec<u64> = (0..512).map(|s| w.mread_u64(l4.maddr().add(s * 8))).collect();
    assert_eq!(before, after);
    // Guest slots stay writable through mmu_update (clear an empty one).
    assert_eq!(w.mmu_update(d, &[(l4.maddr().0 + 272 * 8, 0)]), 0);
    // Several requests: the first failure stops the batch and is reported.
    let done = w.scratch(d, 10);
    let list = w.scratch(d, 13);
    for (i, (ptr, val)) in
        [(l4.maddr().0 + 300 * 8, 0u64), (l4.maddr().0 + 256 * 8, 0), (l4.maddr().0 + 301 * 8, 0)].into_iter().enumerate()
    {
        w.write_pod(d, list + i as u64 * 16, &crate::abi::MmuUpdate { ptr, val });
    }
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [list, 3, done, 0x7FF0, 0]), EINVAL);
    assert_eq!(w.read_pod::<u32>(d, done), 1, "one request done");
}

#[test]
fn pin_and_unpin_a_table_built_by_the_guest() {
    let mut w = World::new();
    let d = w.create("pin");
    let (tva, dva) = (w.scratch(d, 1), w.scratch(d, 2));
    let (table, data) = (w.mfn_of(d, tva), w.mfn_of(d, dva));
    // An L1 table with one writable mapping of an ordinary page.
    w.write(d, tva, &pte(data, RW).to_le_bytes());

    assert_eq!(w.mmuext(d, mmuext::PIN_L1_TABLE, table.0), EINVAL, "still mapped writable");
    assert_eq!(w.update_va_mapping(d, tva, pte(table, RO)), 0);
    assert_eq!(w.hv.frames.get(table).unwrap().writable_refs, 0);
    assert_eq!(w.mmuext(d, mmuext::PIN_L1_TABLE, table.0), 0);
    let f = *w.hv.frames.get(table).unwrap();
    assert!(f.pinned);
    assert_eq!(f.ty, PageType::PageTable(1));
    assert_eq!(w.hv.frames.get(data).unwrap().writable_refs, 2, "its entry holds a writable reference");

    // Typed: no writable mapping, no second pin, no pin at another level.
    assert_eq!(w.update_va_mapping(d, tva, pte(table, RW)), EBUSY);
    assert_eq!(w.mmuext(d, mmuext::PIN_L1_TABLE, table.0), EINVAL);
    assert_eq!(w.mmuext(d, mmuext::PIN_L2_TABLE, table.0), EINVAL);
    // The page it maps cannot become a page table while mapped writable.
    assert_eq!(w.update_va_mapping(d, dva, pte(data, RO)), 0);
    assert_eq!(w.mmuext(d, mmuext::PIN_L1_TABLE, data.0), EINVAL);

    // Unpin: ordinary memory again; its entries give back their references.
    assert_eq!(w.mmuext(d, mmuext::UNPIN_TABLE, table.0), 0);
    let f = *w.hv.frames.get(table).unwrap();
    assert!(!f.pinned);
    assert_eq!(f.ty, PageType::None);
    assert_eq!(w.hv.frames.get(data).unwrap().writable_refs, 0);
    assert_eq!(w.mmuext(d, mmuext::UNPIN_TABLE, table.0), EINVAL, "not pinned");
    assert_eq!(w.update_va_mapping(d, tva, pte(table, RW)), 0);
    w.write(d, tva, &[0xaa; 8]);
    w.assert_trace(&["mmuext_op(pin_l1) = 0"]);
}

#[test]
fn pinning_a_table_that_maps_a_foreign_frame_fails_cleanly() {
    let mut w = World::new();
    let d = w.create("a");
    let other = w.create("b");
    let victim = w.hv.doms[&other].p2m[7];
    let (tva, dva) = (w.scratch(d, 1), w.scratch(d, 2));
    let (table, data) = (w.mfn_of(d, tva), w.mfn_of(d, dva));
    // Entry 0: a good writable mapping; entry 1: the victim's frame.
    w.write(d, tva, &pte(data, RW).to_le_bytes());
    w.write(d, tva + 8, &pte(victim, RW).to_le_bytes());
    assert_eq!(w.update_va_mapping(d, tva, pte(table, RO)), 0);
    assert_eq!(w.mmuext(d, mmuext::PIN_L1_TABLE, table.0), EBUSY, "its entry maps d2's frame");
    let f = *w.hv.frames.get(table).unwrap();
    assert_eq!((f.ty, f.pinned, f.type_refs), (PageType::None, false, 0));
    assert_eq!(w.hv.frames.get(data).unwrap().writable_refs, 1, "entry 0's reference was undone");
    assert_eq!(w.hv.frames.get(victim).unwrap().writable_refs, 1);
}

#[test]
fn new_baseptr_switches_cr3() {
    let mut w = World::new();
    let d = w.create("cr3");
    let old = l4(&w, d);
    let nva = w.scratch(d, 3);
    let new = w.mfn_of(d, nva);
    // A copy of the guest half of the current L4.
    for slot in (0..512u64).filter(|s| !(XEN_L4_FIRST as u64..=XEN_L4_LAST as u64).contains(s)) {
        let e = w.mread_u64(old.maddr().add(slot * 8));
        w.write(d, nva + slot * 8, &e.to_le_bytes());
    }
    assert_eq!(w.mmuext(d, mmuext::NEW_BASEPTR, new.0), EINVAL, "mapped writable");
    assert_eq!(w.cr3(d), old.maddr().0);
    assert_eq!(w.update_va_mapping(d, nva, pte(new, RO)), 0);
    assert_eq!(w.mmuext(d, mmuext::NEW_BASEPTR, new.0), 0);
    assert_eq!(w.cr3(d), new.maddr().0);
    assert_eq!(w.hv.doms[&d].vcpus[0].guest_table, new);
    assert_eq!(w.hv.frames.get(new).unwrap().ty, PageType::PageTable(4));
    assert_eq!(w.hv.frames.get(old).unwrap().type_refs, 1, "only the pin is left on the old L4");
    for slot in XEN_L4_FIRST..=XEN_L4_LAST {
        assert_eq!(w.mread_u64(new.maddr().add(slot as u64 * 8)), w.hv.xen.slots[slot - XEN_L4_FIRST]);
    }
    // Guest pointers now translate through the new tables.
    assert_eq!(w.console_write(d, "after cr3 switch\n"), 0);
    assert_eq!(w.hv.record("cr3").unwrap().console, vec!["after cr3 switch".to_string()]);
    // Not an L4: an ordinary page typed as L4 must validate, and an L1 cannot be an L4.
    let l1 = w.l1e(d, nva).mfn();
    assert_eq!(w.mmuext(d, mmuext::NEW_BASEPTR, l1.0), EINVAL);
    assert_eq!(w.cr3(d), new.maddr().0);
}

#[test]
fn machphys_update_only_for_own_frames() {
    let mut w = World::new();
    let d = w.create("m2p");
    let other = w.create("other");
    let own = w.hv.doms[&d].p2m[5];
    let foreign = w.hv.doms[&other].p2m[5];
    assert_eq!(w.mmu_update(d, &[(own.maddr().0 | 1, 0x1234)]), 0);
    let m2p = w.hv.xen.m2p.maddr();
    assert_eq!(w.mread_u64(m2p.add(own.0 * 8)), 0x1234);
    // do_mmu_update: get_page_from_mfn fails for a frame that is not the caller's: -EINVAL.
    assert_eq!(w.mmu_update(d, &[(foreign.maddr().0 | 1, 0x1234)]), EINVAL);
    assert_eq!(w.mread_u64(m2p.add(foreign.0 * 8)), 5);
}

/// The hypervisor writes into shared_info by machine address (vcpu_info time and cr2, event
/// bits). If the guest may turn that frame into a page table, those writes forge page-table
/// entries that were never validated: a #PF with a chosen cr2 maps any machine frame.
#[test]
fn shared_info_can_never_become_a_page_table() {
    let mut w = World::new();
    let d = w.create("attacker");
    let victim_dom = w.create("victim");
    let victim = w.hv.doms[&victim_dom].p2m[42];
    let shared = w.hv.doms[&d].shared_info;
    let r = w.mmuext(d, mmuext::PIN_L1_TABLE, shared.0);
    if r == 0 {
        // Show the consequence: hook it into the L2 as the table for a free 2 MiB region,
        // then fault with cr2 = the victim's frame as a PTE. cr2 lands in L1 entry 2.
        let si = w.start_info(d);
        let l2 = w.mfn_of(d, si.pt_base + 2 * PAGE_SIZE);
        assert_eq!(w.hv.frames.get(l2).unwrap().ty, PageType::PageTable(2));
        let region = w.hv.doms[&d].virt_base + 10 * (2 << 20);
        assert_eq!(w.mmu_update(d, &[(l2.maddr().0 + 10 * 8, pte(shared, RW))]), 0);
        assert_eq!(w.set_traps(d, &[(14, 0, super::image::ENTRY)]), 0);
        w.exit(d, crate::platform::Exit::Exception { vector: 14, error_code: Some(2), cr2: pte(victim, RW | crate::mm::paging::PTE_D) });
        let hit = w.walk(d, region + 2 * PAGE_SIZE);
        assert!(hit.is_none_or(|h| h.maddr.mfn() != victim), "d1 now maps d2's frame {victim:?} writable at {:#x}", region + 2 * PAGE_SIZE);
    }
    assert_ne!(r, 0, "pinning shared_info as an L1 table must fail");
    // The console ring: the backend writes out_cons into it.
    let cons = Mfn(w.start_info(d).console_mfn);
    let cons_va = w.hv.doms[&d].start_info_va + 2 * PAGE_SIZE;
    assert_eq!(w.update_va_mapping(d, cons_va, pte(cons, RO)), 0);
    assert_ne!(w.mmuext(d, mmuext::PIN_L1_TABLE, cons.0), 0, "pinning the console ring must fail");
}

/// VCPUOP_register_vcpu_info on a page-table frame: same hole as above.
#[test]
fn vcpu_info_cannot_live_in_a_page_table() {
    let mut w = World::new();
    let d = w.create("vi");
    let si = w.start_info(d);
    let l1 = w.mfn_of(d, si.pt_base + 3 * PAGE_SIZE);
    assert_eq!(w.hv.frames.get(l1).unwrap().ty, PageType::PageTable(1));
    let arg = w.scratch(d, 9);
    w.write_pod(d, arg, &crate::abi::RegisterVcpuInfo { mfn: l1.0, offset: 0, rsvd: 0 });
    let r = w.hypercall(d, nr::VCPU_OP, [crate::abi::hypercall::vcpu_op::REGISTER_VCPU_INFO, 0, arg, 0, 0]);
    assert_ne!(r, 0, "vcpu_info registered inside an L1 page table");
}

/// Copy the guest half of `d`'s current L4 into the page at `va` and map it read-only there.
fn copy_l4(w: &mut World, d: DomId, va: u64) -> Mfn {
    let old = l4(w, d);
    let new = w.mfn_of(d, va);
    for slot in (0..512u64).filter(|s| !(XEN_L4_FIRST as u64..=XEN_L4_LAST as u64).contains(s)) {
        let e = w.mread_u64(old.maddr().add(slot * 8));
        w.write(d, va + slot * 8, &e.to_le_bytes());
    }
    assert_eq!(w.update_va_mapping(d, va, pte(new, RO)), 0);
    new
}

/// Issue 6, bug 1: a guest leaves an L4 whose last type reference was its base pointer. The
/// core must not devalidate it (and remove the hypervisor's slots) while the CPU still runs on
/// it: the mock checks, whenever the CPU leaves a table, that the slots were there all along.
#[test]
fn leaving_an_l4_held_only_by_the_base_pointer_never_runs_on_it_devalidated() {
    let mut w = World::new();
    let d = w.create("leave");
    let old = l4(&w, d);
    let copy_va = w.scratch(d, 3);
    let copy = copy_l4(&mut w, d, copy_va);
    // The builder's pin goes; the base pointer is now the old L4's only reference.
    assert_eq!(w.mmuext(d, mmuext::UNPIN_TABLE, old.0), 0);
    assert_eq!(w.hv.frames.get(old).unwrap().type_refs, 1);
    assert_eq!(w.mmuext(d, mmuext::NEW_BASEPTR, copy.0), 0);
    assert_eq!(w.cr3(d), copy.maddr().0);
    assert_eq!(w.hv.platform.loaded_cr3, copy.maddr().0, "the platform switched before the put");
    // The old L4 is ordinary memory again, as in Xen: the guest may map it writable.
    assert_eq!(w.hv.frames.get(old).unwrap().ty, PageType::None);
    // Switch back: the copy's base reference was its last one too (it was never pinned).
    assert_eq!(w.mmuext(d, mmuext::NEW_BASEPTR, old.0), 0);
    assert_eq!(w.hv.frames.get(copy).unwrap().ty, PageType::None);
    assert_eq!(w.hv.frames.get(old).unwrap().ty, PageType::PageTable(4));
    assert_eq!(w.console_write(d, "still alive\n"), 0);
    assert_eq!(w.hv.record("leave").unwrap().console, vec!["still alive".to_string()]);
}

/// The same attack with the copy pinned, switched to, unpinned while in use, and left.
#[test]
fn unpinning_the_running_copy_then_leaving_it_is_safe() {
    let mut w = World::new();
    let d = w.create("leave2");
    let old = l4(&w, d);
    let copy_va = w.scratch(d, 4);
    let copy = copy_l4(&mut w, d, copy_va);
    assert_eq!(w.mmuext(d, mmuext::PIN_L4_TABLE, copy.0), 0);
    assert_eq!(w.mmuext(d, mmuext::NEW_BASEPTR, copy.0), 0);
    assert_eq!(w.mmuext(d, mmuext::UNPIN_TABLE, copy.0), 0);
    assert_eq!(w.hv.frames.get(copy).unwrap().type_refs, 1, "the base pointer holds it");
    assert_eq!(w.mmuext(d, mmuext::NEW_BASEPTR, old.0), 0);
    assert_eq!(w.hv.frames.get(copy).unwrap().ty, PageType::None);
    // Mapping the ex-table writable is allowed now, and harmless.
    assert_eq!(w.update_va_mapping(d, copy_va, pte(copy, RW)), 0);
    assert_eq!(w.console_write(d, "ok\n"), 0);
}

/// Traces name frames by the pfn the builder gave them: a guest that rewrites its M2P entry
/// (MMU_MACHPHYS_UPDATE) cannot make the trace lie about which frame a call touched.
#[test]
fn traces_name_frames_by_the_builders_pfn_not_the_guests_m2p() {
    let mut w = World::new();
    let d = w.create("m2p-names");
    let table = l4(&w, d);
    let pfn = w.hv.frames.get(table).unwrap().pfn as u64;
    assert_eq!(w.mmu_update(d, &[(table.maddr().0 | 1, 0)]), 0, "M2P[l4] := 0");
    let va = w.scratch(d, 5);
    assert_eq!(w.update_va_mapping(d, va, pte(table, RW)), EBUSY);
    w.assert_trace(&[&format!("pfn {pfn:#x} is an L4 page table")]);
    assert!(w.trace_lines(&["pfn 0x0 is an L4"]).is_empty(), "named after the guest's M2P");
}

/// Linear page tables as Xen allows them by default (XTF xsa-182): a read-only L4 entry may
/// point at its own L4; a writable one may not.
#[test]
fn linear_self_reference_is_read_only() {
    let mut w = World::new();
    let d = w.create("linear");
    let t = l4(&w, d);
    let slot = t.maddr().add(5 * 8).0;
    assert_eq!(w.mmu_update(d, &[(slot, pte(t, RO))]), 0);
    assert_eq!(w.mmu_update(d, &[(slot, pte(t, RW))]), EINVAL);
    let f = *w.hv.frames.get(t).unwrap();
    assert_eq!((f.type_refs, f.linear), (2, 0), "a self-reference takes no reference");
    assert_eq!(w.mmu_update(d, &[(slot, 0)]), 0);
    assert_eq!(w.hv.frames.get(t).unwrap().type_refs, 2);
}

/// XSA-240: a table that holds linear entries cannot be the target of one, so chains of linear
/// tables are one link long and devalidation never recurses without bound.
#[test]
fn linear_chains_are_one_link_long() {
    let mut w = World::new();
    let d = w.create("chain");
    let t1 = l4(&w, d);
    let va2 = w.scratch(d, 3);
    let va3 = w.scratch(d, 4);
    let t2 = copy_l4(&mut w, d, va2);
    let t3 = copy_l4(&mut w, d, va3);
    assert_eq!(w.mmuext(d, mmuext::PIN_L4_TABLE, t2.0), 0);
    assert_eq!(w.mmuext(d, mmuext::PIN_L4_TABLE, t3.0), 0);
    // t1 -> t2 (t1 holds a linear entry, t2 is a target).
    assert_eq!(w.mmu_update(d, &[(t1.maddr().add(5 * 8).0, pte(t2, RO))]), 0);
    assert_eq!((w.hv.frames.get(t1).unwrap().linear, w.hv.frames.get(t2).unwrap().linear), (1, -1));
    // t2 -> t3 would make a chain: refused. t3 -> t1 too (t1 holds linear entries).
    assert_eq!(w.mmu_update(d, &[(t2.maddr().add(5 * 8).0, pte(t3, RO))]), EINVAL);
    assert_eq!(w.mmu_update(d, &[(t3.maddr().add(5 * 8).0, pte(t1, RO))]), EINVAL);
    // Dropping the entry undoes it all; t2 can then be unpinned and mapped writable.
    assert_eq!(w.mmu_update(d, &[(t1.maddr().add(5 * 8).0, 0)]), 0);
    assert_eq!((w.hv.frames.get(t1).unwrap().linear, w.hv.frames.get(t2).unwrap().linear), (0, 0));
    assert_eq!(w.mmuext(d, mmuext::UNPIN_TABLE, t2.0), 0);
    assert_eq!(w.update_va_mapping(d, va2, pte(t2, RW)), 0);
}
