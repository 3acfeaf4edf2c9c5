//! grant_table_op: setup, versions, maps between two domains, copies, and the page-type rules
//! grant mappings obey.

use super::{World, EINVAL};
use crate::abi::hypercall::gnttab as g;
use crate::abi::hypercall::mmuext;
use crate::abi::{GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabSetupTable, GnttabUnmapGrantRef, GrantEntryV1};
use crate::mm::paging::{PTE_A, PTE_GNTTAB, PTE_P, PTE_RW, PTE_US};
use crate::mm::{Mfn, PAGE_SIZE};
use crate::platform::Platform;
use crate::DomId;

const GNTTAB: u64 = 20;
const EBUSY: i64 = -16;

/// Set up `d`'s grant table (one frame) and map it at scratch page 0; returns its VA.
fn setup(w: &mut World, d: DomId) -> u64 {
    let op = w.scratch(d, 10);
    let list = w.scratch(d, 11);
    w.write_pod(d, op, &GnttabSetupTable { dom: crate::abi::DOMID_SELF, nr_frames: 1, frame_list: list, ..Default::default() });
    assert_eq!(w.hypercall(d, GNTTAB, [g::SETUP_TABLE as u64, op, 1, 0, 0]), 0);
    let back: GnttabSetupTable = w.read_pod(d, op);
    assert_eq!(back.status, g::GNTST_OKAY);
    let frame = Mfn(w.read_u64(d, list));
    let va = w.scratch(d, 0);
    assert_eq!(w.update_va_mapping(d, va, frame.maddr().0 | PTE_P | PTE_RW | PTE_US | PTE_A), 0);
    va
}

/// Grant `frame` to `to` as v1 entry `gref` of `d`'s table (mapped at `table`).
fn grant(w: &mut World, d: DomId, table: u64, gref: u64, to: DomId, frame: Mfn, flags: u16) {
    w.write_pod(d, table + gref * 8, &GrantEntryV1 { flags, domid: to, frame: frame.0 as u32 });
}

fn l1e_addr(w: &mut World, d: DomId, va: u64) -> crate::mm::Maddr {
    let l4 = Mfn(w.cr3(d) >> 12);
    let mem = crate::mm::MachineMemory::new(w.hv.platform.memory());
    crate::mm::paging::l1e_of(&mem, l4, va).expect("an L1 table")
}

fn pte_at(w: &mut World, d: DomId, va: u64) -> u64 {
    let a = l1e_addr(w, d, va);
    w.mread_u64(a)
}

fn map(w: &mut World, d: DomId, rd: DomId, gref: u32, host_addr: u64, flags: u32) -> GnttabMapGrantRef {
    let op = w.scratch(d, 12);
    w.write_pod(d, op, &GnttabMapGrantRef { host_addr, flags, ref_: gref, dom: rd, ..Default::default() });
    assert_eq!(w.hypercall(d, GNTTAB, [g::MAP_GRANT_REF as u64, op, 1, 0, 0]), 0);
    w.read_pod(d, op)
}

fn unmap(w: &mut World, d: DomId, handle: u32, host_addr: u64) -> i16 {
    let op = w.scratch(d, 12);
    w.write_pod(d, op, &GnttabUnmapGrantRef { host_addr, handle, ..Default::default() });
    assert_eq!(w.hypercall(d, GNTTAB, [g::UNMAP_GRANT_REF as u64, op, 1, 0, 0]), 0);
    let back: GnttabUnmapGrantRef = w.read_pod(d, op);
    back.status
}

#[test]
fn two_domains_share_a_page_through_a_grant() {
    let mut w = World::new();
    let d1 = w.create("granter");
    let d2 = w.create("mapper");
    let t1 = setup(&mut w, d1);
    let page = w.scratch(d1, 3);
    let frame = w.mfn_of(d1, page);
    w.write(d1, page, b"hello from d1");
    grant(&mut w, d1, t1, 8, d2, frame, g::GTF_PERMIT_ACCESS);

    // Before the grant is mapped, d2 cannot reach the page at all.
    let va = w.scratch(d2, 5);
    let before = w.mfn_of(d2, va);
    assert_ne!(before, frame);

    let m = map(&mut w, d2, d1, 8, va, g::GNTMAP_HOST_MAP);
    assert_eq!(m.status, g::GNTST_OKAY);
    w.assert_trace(&["d2v0 grant_table_op(map_grant_ref, 1) = 0", "status okay"]);
    assert_eq!(w.mfn_of(d2, va), frame);
    assert_eq!(w.read(d2, va, 13), b"hello from d1");
    w.write(d2, va, b"hello from d2");
    assert_eq!(w.read(d1, page, 13), b"hello from d2");
    // The granter sees the grant in use; the frame holds a writable reference.
    let e: GrantEntryV1 = w.read_pod(d1, t1 + 64);
    assert_eq!(e.flags, g::GTF_PERMIT_ACCESS | g::GTF_READING | g::GTF_WRITING);
    assert_eq!(w.hv.frames.get(frame).unwrap().writable_refs, 2);
    assert_ne!(pte_at(&mut w, d2, va) & PTE_GNTTAB, 0);

    // The grant PTE cannot be overwritten or copied by the guest.
    assert_eq!(w.update_va_mapping(d2, va, 0), super::EPERM);
    let other = w.scratch(d2, 6);
    let gpte = pte_at(&mut w, d2, va);
    assert_eq!(w.update_va_mapping(d2, other, gpte), EINVAL);

    // Unmap at the wrong address fails; at the right one it drops everything.
    assert_eq!(unmap(&mut w, d2, m.handle, other), g::GNTST_GENERAL_ERROR);
    assert_eq!(unmap(&mut w, d2, m.handle, va), g::GNTST_OKAY);
    assert_eq!(pte_at(&mut w, d2, va), 0);
    let e: GrantEntryV1 = w.read_pod(d1, t1 + 64);
    assert_eq!(e.flags, g::GTF_PERMIT_ACCESS);
    assert_eq!(w.hv.frames.get(frame).unwrap().writable_refs, 1);
    assert_eq!(unmap(&mut w, d2, m.handle, va), g::GNTST_BAD_HANDLE, "the handle is gone");
    assert!(w.hv.doms[&d1].grant.active.is_empty());
}

#[test]
fn grant_checks_refuse_what_xen_refuses() {
    let mut w = World::new();
    let d1 = w.create("granter");
    let d2 = w.create("mapper");
    let d3 = w.create("bystander");
    let t1 = setup(&mut w, d1);
    let page = w.scratch(d1, 3);
    let frame = w.mfn_of(d1, page);
    let va = w.scratch(d2, 5);

    // Read-only grant: no writable map, a read-only one is fine.
    grant(&mut w, d1, t1, 9, d2, frame, g::GTF_PERMIT_ACCESS | g::GTF_READONLY);
    assert_eq!(map(&mut w, d2, d1, 9, va, g::GNTMAP_HOST_MAP).status, g::GNTST_GENERAL_ERROR);
    let m = map(&mut w, d2, d1, 9, va, g::GNTMAP_HOST_MAP | g::GNTMAP_READONLY);
    assert_eq!(m.status, g::GNTST_OKAY);
    assert_eq!(pte_at(&mut w, d2, va) & PTE_RW, 0);
    assert_eq!(unmap(&mut w, d2, m.handle, va), g::GNTST_OKAY);

    let d3_va = w.scratch(d3, 5);
    // Bad refs, a grant to someone else, no grant at all, bad domain, no map flags.
    assert_eq!(map(&mut w, d2, d1, 512, va, g::GNTMAP_HOST_MAP).status, g::GNTST_BAD_GNTREF);
    assert_eq!(map(&mut w, d2, d1, u32::MAX, va, g::GNTMAP_HOST_MAP).status, g::GNTST_BAD_GNTREF);
    assert_eq!(map(&mut w, d3, d1, 9, d3_va, g::GNTMAP_HOST_MAP | g::GNTMAP_READONLY).status, g::GNTST_GENERAL_ERROR);
    assert_eq!(map(&mut w, d2, d1, 20, va, g::GNTMAP_HOST_MAP).status, g::GNTST_GENERAL_ERROR);
    assert_eq!(map(&mut w, d2, 77, 9, va, g::GNTMAP_HOST_MAP).status, g::GNTST_BAD_DOMAIN);
    assert_eq!(map(&mut w, d2, crate::abi::DOMID_SELF, 9, va, g::GNTMAP_HOST_MAP).status, g::GNTST_BAD_DOMAIN);
    assert_eq!(map(&mut w, d2, d1, 9, va, g::GNTMAP_READONLY).status, g::GNTST_BAD_GNTREF);
    // A grant of a frame the granter does not own.
    let foreign = w.mfn_of(d3, w.scratch(d3, 3));
    grant(&mut w, d1, t1, 10, d2, foreign, g::GTF_PERMIT_ACCESS);
    assert_eq!(map(&mut w, d2, d1, 10, va, g::GNTMAP_HOST_MAP).status, g::GNTST_BAD_PAGE);
    // Misaligned PTE address (XSA-227), and a PTE address outside the caller's L1 tables.
    grant(&mut w, d1, t1, 11, d2, frame, g::GTF_PERMIT_ACCESS);
    let l1e = l1e_addr(&mut w, d2, va).0;
    assert_eq!(map(&mut w, d2, d1, 11, l1e - 2, g::GNTMAP_HOST_MAP | g::GNTMAP_CONTAINS_PTE).status, g::GNTST_GENERAL_ERROR);
    let l1e_d1 = w.l1e(d1, page).0;
    assert_eq!(map(&mut w, d2, d1, 11, l1e_d1, g::GNTMAP_HOST_MAP | g::GNTMAP_CONTAINS_PTE).status, g::GNTST_GENERAL_ERROR);
    // Nothing stayed pinned after the failures.
    assert!(w.hv.doms[&d1].grant.active.is_empty());
    let e: GrantEntryV1 = w.read_pod(d1, t1 + 11 * 8);
    assert_eq!(e.flags, g::GTF_PERMIT_ACCESS);
    // By PTE address it works.
    let m = map(&mut w, d2, d1, 11, l1e, g::GNTMAP_HOST_MAP | g::GNTMAP_CONTAINS_PTE);
    assert_eq!(m.status, g::GNTST_OKAY);
    assert_eq!(w.mfn_of(d2, va), frame);
    assert_eq!(unmap(&mut w, d2, m.handle, l1e), g::GNTST_OKAY);
    // Bad command bits, negative count.
    assert_eq!(w.hypercall(d2, GNTTAB, [g::MAP_GRANT_REF as u64 | 0x1000, w.scratch(d2, 12), 1, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(d2, GNTTAB, [g::MAP_GRANT_REF as u64, w.scratch(d2, 12), 0x8000_0000, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(d2, GNTTAB, [99, 0, 1, 0, 0]), super::ENOSYS);
}

#[test]
fn a_granted_page_table_is_never_mapped_writable() {
    let mut w = World::new();
    let d1 = w.create("granter");
    let d2 = w.create("mapper");
    let t1 = setup(&mut w, d1);
    // Grant d1's L1 table of its scratch area.
    let l1 = w.l1e(d1, w.scratch(d1, 3)).mfn();
    grant(&mut w, d1, t1, 8, d2, l1, g::GTF_PERMIT_ACCESS);
    let va = w.scratch(d2, 5);
    assert_eq!(map(&mut w, d2, d1, 8, va, g::GNTMAP_HOST_MAP).status, g::GNTST_GENERAL_ERROR);
    assert_eq!(map(&mut w, d2, d1, 8, va, g::GNTMAP_DEVICE_MAP).status, g::GNTST_GENERAL_ERROR);
    // Read-only is allowed (as in Xen).
    let m = map(&mut w, d2, d1, 8, va, g::GNTMAP_HOST_MAP | g::GNTMAP_READONLY);
    assert_eq!(m.status, g::GNTST_OKAY);
    assert_eq!(unmap(&mut w, d2, m.handle, va), g::GNTST_OKAY);

    // And a frame mapped writable through a grant cannot become a page table.
    let page = w.scratch(d1, 3);
    let frame = w.mfn_of(d1, page);
    assert_eq!(w.update_va_mapping(d1, page, 0), 0, "d1 drops its own mapping");
    grant(&mut w, d1, t1, 9, d2, frame, g::GTF_PERMIT_ACCESS);
    let m = map(&mut w, d2, d1, 9, va, g::GNTMAP_HOST_MAP);
    assert_eq!(m.status, g::GNTST_OKAY);
    assert_eq!(w.mmuext(d1, mmuext::PIN_L1_TABLE, frame.0), super::EINVAL);
    assert_eq!(unmap(&mut w, d2, m.handle, va), g::GNTST_OKAY);
    w.write(d1, w.scratch(d1, 20), &[0u8; 8]);
}

#[test]
fn copy_checks_grants_offsets_and_lengths() {
    let mut w = World::new();
    let d1 = w.create("granter");
    let d2 = w.create("copier");
    let t1 = setup(&mut w, d1);
    let page = w.scratch(d1, 3);
    let frame = w.mfn_of(d1, page);
    w.write(d1, page, b"0123456789");
    grant(&mut w, d1, t1, 8, d2, frame, g::GTF_PERMIT_ACCESS | g::GTF_READONLY);
    let dst = w.scratch(d2, 4);
    let dst_frame = w.mfn_of(d2, dst);
    let op = w.scratch(d2, 12);
    let copy = |w: &mut World, flags: u16, sref: u64, soff: u16, dom: u16, dgmfn: u64, doff: u16, len: u16| -> i16 {
        let c = GnttabCopy {
            source: GnttabCopyPtr { u: sref, domid: dom, offset: soff, ..Default::default() },
            dest: GnttabCopyPtr { u: dgmfn, domid: crate::abi::DOMID_SELF, offset: doff, ..Default::default() },
            len,
            flags,
            ..Default::default()
        };
        w.write_pod(d2, op, &c);
        assert_eq!(w.hypercall(d2, GNTTAB, [g::COPY as u64, op, 1, 0, 0]), 0);
        w.read_pod::<GnttabCopy>(d2, op).status
    };
    assert_eq!(copy(&mut w, g::GNTCOPY_SOURCE_GREF, 8, 2, d1, dst_frame.0, 100, 5), g::GNTST_OKAY);
    assert_eq!(w.read(d2, dst + 100, 5), b"23456");
    assert_eq!(copy(&mut w, g::GNTCOPY_SOURCE_GREF, 8, 4000, d1, dst_frame.0, 0, 200), g::GNTST_BAD_COPY_ARG);
    assert_eq!(copy(&mut w, g::GNTCOPY_SOURCE_GREF, 8, 0, d1, dst_frame.0, 4000, 200), g::GNTST_BAD_COPY_ARG);
    assert_eq!(copy(&mut w, g::GNTCOPY_SOURCE_GREF, 600, 0, d1, dst_frame.0, 0, 1), g::GNTST_BAD_GNTREF);
    // A frame by number only with DOMID_SELF; d1's frame by number is refused.
    assert_eq!(copy(&mut w, 0, frame.0, 0, d1, dst_frame.0, 0, 1), g::GNTST_PERMISSION_DENIED);
    assert_eq!(copy(&mut w, 0, frame.0, 0, crate::abi::DOMID_SELF, dst_frame.0, 0, 1), g::GNTST_BAD_PAGE);
    // Nor may the destination be a page table.
    let l1 = w.l1e(d2, dst).mfn();
    assert_eq!(copy(&mut w, g::GNTCOPY_SOURCE_GREF, 8, 0, d1, l1.0, 0, 8), g::GNTST_GENERAL_ERROR);
    assert!(w.hv.doms[&d1].grant.active.is_empty(), "copies leave nothing pinned");
    let e: GrantEntryV1 = w.read_pod(d1, t1 + 64);
    assert_eq!(e.flags, g::GTF_PERMIT_ACCESS | g::GTF_READONLY);
}

#[test]
fn versions_and_status_frames() {
    let mut w = World::new();
    let d = w.create("v2");
    let t = setup(&mut w, d);
    let op = w.scratch(d, 12);
    w.write_pod(d, op, &2u32);
    assert_eq!(w.hypercall(d, GNTTAB, [g::SET_VERSION as u64, op, 1, 0, 0]), 0);
    w.write_pod(d, op, &crate::abi::GnttabGetVersion { dom: crate::abi::DOMID_SELF, ..Default::default() });
    assert_eq!(w.hypercall(d, GNTTAB, [g::GET_VERSION as u64, op, 1, 0, 0]), 0);
    assert_eq!(w.read_pod::<crate::abi::GnttabGetVersion>(d, op).version, 2);
    w.write_pod(d, op, &3u32);
    assert_eq!(w.hypercall(d, GNTTAB, [g::SET_VERSION as u64, op, 1, 0, 0]), EINVAL);
    assert_eq!(w.read_pod::<u32>(d, op), 2, "the current version is written back");

    let list = w.scratch(d, 11);
    w.write_pod(d, op, &crate::abi::GnttabGetStatusFrames { nr_frames: 1, dom: crate::abi::DOMID_SELF, status: 0, frame_list: list });
    assert_eq!(w.hypercall(d, GNTTAB, [g::GET_STATUS_FRAMES as u64, op, 1, 0, 0]), 0);
    assert_eq!(w.read_pod::<crate::abi::GnttabGetStatusFrames>(d, op).status, 0);
    let status = Mfn(w.read_u64(d, list));
    // Mapped (read-only), it cannot be taken back.
    let va = w.scratch(d, 1);
    assert_eq!(w.update_va_mapping(d, va, status.maddr().0 | PTE_P | PTE_US | PTE_A), 0);
    w.write_pod(d, op, &1u32);
    assert_eq!(w.hypercall(d, GNTTAB, [g::SET_VERSION as u64, op, 1, 0, 0]), EBUSY);
    assert_eq!(w.update_va_mapping(d, va, 0), 0);
    w.write_pod(d, op, &1u32);
    assert_eq!(w.hypercall(d, GNTTAB, [g::SET_VERSION as u64, op, 1, 0, 0]), 0);
    assert!(w.hv.doms[&d].grant.status.is_empty());
    // Query size.
    w.write_pod(d, op, &crate::abi::GnttabQuerySize { dom: crate::abi::DOMID_SELF, ..Default::default() });
    assert_eq!(w.hypercall(d, GNTTAB, [g::QUERY_SIZE as u64, op, 1, 0, 0]), 0);
    let q: crate::abi::GnttabQuerySize = w.read_pod(d, op);
    assert_eq!((q.nr_frames, q.max_nr_frames, q.status), (1, 64, 0));
    // Too many frames.
    w.write_pod(d, op, &GnttabSetupTable { dom: crate::abi::DOMID_SELF, nr_frames: 65, frame_list: list, ..Default::default() });
    assert_eq!(w.hypercall(d, GNTTAB, [g::SETUP_TABLE as u64, op, 1, 0, 0]), 0);
    assert_eq!(w.read_pod::<GnttabSetupTable>(d, op).status, g::GNTST_GENERAL_ERROR);
    let _ = (t, PAGE_SIZE);
}

#[test]
fn destroying_the_granter_revokes_mappings() {
    let mut w = World::new();
    let d1 = w.create("granter");
    let d2 = w.create("mapper");
    let t1 = setup(&mut w, d1);
    let frame = w.mfn_of(d1, w.scratch(d1, 3));
    grant(&mut w, d1, t1, 8, d2, frame, g::GTF_PERMIT_ACCESS);
    let va = w.scratch(d2, 5);
    let m = map(&mut w, d2, d1, 8, va, g::GNTMAP_HOST_MAP);
    assert_eq!(m.status, g::GNTST_OKAY);
    w.hv.destroy("granter").unwrap();
    assert_eq!(pte_at(&mut w, d2, va), 0, "the mapping of a freed frame is gone");
    assert_eq!(unmap(&mut w, d2, m.handle, va), g::GNTST_BAD_HANDLE);
}
