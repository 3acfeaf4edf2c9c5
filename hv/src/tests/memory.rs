//! memory_op (the balloon operations and the start-of-day queries), the control hypercalls,
//! xen_version and the mmu_update / mmuext_op details, against Xen 4.17's answers.

use super::{nr, World, EINVAL, ENOSYS, EPERM};
use crate::abi::hypercall::{memory_op as op, mmuext};
use crate::abi::{MemoryExchange, MemoryReservation, DOMID_SELF};
use crate::mm::frames::Owner;
use crate::mm::paging::{PTE_A, PTE_D, PTE_P, PTE_RW, PTE_US};
use crate::mm::{Mfn, PAGE_SIZE};
use crate::DomId;

const MEMORY_OP: u64 = 12;
const EACCES: i64 = -13;
const ESRCH: i64 = -3;
const EOPNOTSUPP: i64 = -95;

fn w32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn w64(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn res(list: u64, n: u64, order: u32) -> MemoryReservation {
    MemoryReservation { extent_start: list, nr_extents: n, extent_order: order, mem_flags: 0, domid: DOMID_SELF, _pad: [0; 3] }
}

/// A reservation op with its argument at scratch page 20 and its list at scratch page 21.
fn reserve(w: &mut World, d: DomId, cmd: u64, list: &[u64], n: u64, order: u32) -> (i64, Vec<u64>) {
    let (arg, l) = (w.scratch(d, 20), w.scratch(d, 21));
    for (i, v) in list.iter().enumerate() {
        w.write_pod(d, l + i as u64 * 8, v);
    }
    w.write_pod(d, arg, &res(if list.is_empty() { 0 } else { l }, n, order));
    let r = w.hypercall(d, MEMORY_OP, [cmd, arg, 0, 0, 0]);
    let out = (0..list.len() as u64).map(|i| w.read_u64(d, l + i * 8)).collect();
    (r, out)
}

fn domid_query(w: &mut World, d: DomId, cmd: u64, domid: u16) -> i64 {
    let arg = w.scratch(d, 20);
    w.write_pod(d, arg, &domid);
    w.hypercall(d, MEMORY_OP, [cmd, arg, 0, 0, 0])
}

fn tot(w: &mut World, d: DomId) -> i64 {
    domid_query(w, d, op::CURRENT_RESERVATION, DOMID_SELF)
}

#[test]
fn reservation_queries_are_xens() {
    let mut w = World::new();
    let d = w.create("q");
    let other = w.create("other");
    assert_eq!(tot(&mut w, d), 4096, "16 MiB");
    // xl's max_pages: the target plus LIBXL_MAXMEM_CONSTANT (1 MiB).
    assert_eq!(domid_query(&mut w, d, op::MAXIMUM_RESERVATION, DOMID_SELF), 4096 + 256);
    assert_eq!(domid_query(&mut w, d, op::CURRENT_RESERVATION, d), 4096, "own id works too");
    assert_eq!(domid_query(&mut w, d, op::CURRENT_RESERVATION, other), EPERM);
    assert_eq!(domid_query(&mut w, d, op::CURRENT_RESERVATION, 999), ESRCH);
    // A continuation start on a non-reservation op is -EINVAL.
    let arg = w.scratch(d, 20);
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::CURRENT_RESERVATION | 1 << 6, arg, 0, 0, 0]), EINVAL);
    // maximum_gpfn: the guest's shared_info.arch.max_pfn (0 here) ?: 1, minus 1.
    assert_eq!(domid_query(&mut w, d, op::MAXIMUM_GPFN, DOMID_SELF), 0);
    // No memory map for a domain xl builds: -ENOSYS, the guest falls back to nr_pages.
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::MEMORY_MAP, arg, 0, 0, 0]), ENOSYS);
    w.assert_trace(&["memory_op(memory_map) = -ENOSYS", "no memory map set"]);
    // PV: add_to_physmap and remove_from_physmap are for translated guests.
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::ADD_TO_PHYSMAP, arg, 0, 0, 0]), EACCES);
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::MACHINE_MEMORY_MAP, arg, 0, 0, 0]), EPERM);
    // machphys_mapping: the whole read-only M2P range.
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::MACHPHYS_MAPPING, arg, 0, 0, 0]), 0);
    let m: crate::abi::MachphysMapping = w.read_pod(d, arg);
    assert_eq!((m.v_start, m.v_end, m.max_mfn), (0xFFFF_8000_0000_0000, 0xFFFF_8040_0000_0000, (0x40_0000_0000 >> 3) - 1));
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::MAXIMUM_RAM_PAGE, 0, 0, 0, 0]), w.hv.frames.len() as i64);
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::PAGING_OP, arg, 0, 0, 0]), ENOSYS);
}

#[test]
fn set_memory_map_then_memory_map() {
    let mut w = World::new();
    let d = w.create("e820");
    let (arg, buf) = (w.scratch(d, 20), w.scratch(d, 21));
    let e = crate::abi::E820Entry { addr: 0, size: 0x100_0000, ty: 1 };
    w.write_pod(d, buf, &e);
    let f = crate::abi::ForeignMemoryMap {
        domid: DOMID_SELF,
        _pad: [0; 3],
        map: crate::abi::MemoryMap { nr_entries: 1, _pad: 0, buffer: buf },
    };
    w.write_pod(d, arg, &f);
    // XSM_TARGET: a domU may set its own map.
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::SET_MEMORY_MAP, arg, 0, 0, 0]), 0);
    let out = w.scratch(d, 22);
    w.write_pod(d, arg, &crate::abi::MemoryMap { nr_entries: 8, _pad: 0, buffer: out });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::MEMORY_MAP, arg, 0, 0, 0]), 0);
    let m: crate::abi::MemoryMap = w.read_pod(d, arg);
    assert_eq!(m.nr_entries, 1);
    let got: crate::abi::E820Entry = w.read_pod(d, out);
    assert_eq!({ got.size }, 0x100_0000);
    // Another domain's: -EPERM.
    let other = w.create("other");
    w.write_pod(d, arg, &crate::abi::ForeignMemoryMap { domid: other, ..f });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::SET_MEMORY_MAP, arg, 0, 0, 0]), EPERM);
}

#[test]
fn balloon_out_and_back_in() {
    let mut w = World::new();
    let d = w.create("balloon");
    let va = w.scratch(d, 5);
    let mfn = w.mfn_of(d, va);
    let pfn = w.hv.frames.get(mfn).unwrap().pfn as u64;
    // Still mapped: the allocation reference goes, the frame stays until its mapping goes.
    let (r, _) = reserve(&mut w, d, op::DECREASE_RESERVATION, &[mfn.0], 1, 0);
    assert_eq!(r, 1);
    assert_eq!(w.hv.frames.owner(mfn), Some(Owner::Dom(d)));
    assert_eq!(tot(&mut w, d), 4096);
    // Giving it back twice is fine while it is referenced (Xen: get_page succeeds).
    assert_eq!(reserve(&mut w, d, op::DECREASE_RESERVATION, &[mfn.0], 1, 0).0, 1);
    assert_eq!(w.update_va_mapping(d, va, 0), 0);
    assert_eq!(w.hv.frames.owner(mfn), Some(Owner::Free), "freed as its last reference went");
    assert_eq!(tot(&mut w, d), 4095);
    w.assert_trace(&[&format!("d1 pfn {pfn:#x} freed: its last reference went")]);
    assert_eq!(w.hv.frames.owner(mfn), Some(Owner::Free));
    assert_eq!(w.mread_u64(w.hv.xen.m2p.maddr().add(mfn.0 * 8)), !0, "M2P entry invalid");
    // Freed: -ENXIO, nothing done.
    assert_eq!(reserve(&mut w, d, op::DECREASE_RESERVATION, &[mfn.0], 1, 0).0, 0);
    w.assert_trace(&["memory_op(decrease_reservation, 1 extent of order 0) = 0", "-ENXIO"]);
    // Populate the pfn again: a (scrubbed) frame, its MFN written back, the M2P set.
    let (r, out) = reserve(&mut w, d, op::POPULATE_PHYSMAP, &[pfn], 1, 0);
    assert_eq!(r, 1);
    let new = Mfn(out[0]);
    assert_eq!(w.hv.frames.owner(new), Some(Owner::Dom(d)));
    assert_eq!(w.mread_u64(w.hv.xen.m2p.maddr().add(new.0 * 8)), pfn);
    assert_eq!(tot(&mut w, d), 4096);
    // Map it and use it.
    assert_eq!(w.update_va_mapping(d, va, new.maddr().0 | PTE_P | PTE_RW | PTE_US | PTE_A), 0);
    w.write(d, va, b"back");
    assert_eq!(w.read(d, va, 4), b"back");
}

#[test]
fn decrease_of_unmapped_frame_frees_at_once_and_foreign_is_enxio() {
    let mut w = World::new();
    let d = w.create("a");
    let other = w.create("b");
    // A frame of d that nothing maps: one populated now.
    let (_, out) = reserve(&mut w, d, op::INCREASE_RESERVATION, &[0], 1, 0);
    let m = out[0];
    assert_eq!(tot(&mut w, d), 4097);
    let victim = w.hv.doms[&other].p2m[100].0;
    let (r, _) = reserve(&mut w, d, op::DECREASE_RESERVATION, &[m, victim], 2, 0);
    assert_eq!(r, 1, "the second extent is not ours");
    assert_eq!(w.hv.frames.owner(Mfn(m)), Some(Owner::Free));
    assert_eq!(w.hv.frames.owner(Mfn(victim)), Some(Owner::Dom(other)));
    assert_eq!(tot(&mut w, d), 4096);
    // A frame that does not exist: -EINVAL, and the continuation semantics of the return value.
    let (r, _) = reserve(&mut w, d, op::DECREASE_RESERVATION, &[1 << 40], 1, 0);
    assert_eq!(r, 0);
    w.assert_trace(&["-EINVAL"]);
    // start_extent >= nr_extents: returned as is.
    let arg = w.scratch(d, 20);
    w.write_pod(d, arg, &res(0, 3, 0));
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::DECREASE_RESERVATION | 5 << 6, arg, 0, 0, 0]), 5);
}

#[test]
fn increase_stops_at_max_pages_and_order_limit() {
    let mut w = World::new();
    let d = w.create("grow");
    // Null list: 1000 extents asked, max_pages allows 256 more.
    let arg = w.scratch(d, 20);
    w.write_pod(d, arg, &res(0, 1000, 0));
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 256);
    assert_eq!(tot(&mut w, d), 4096 + 256);
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 0);
    // Order 10 is above a domU's limit (9): nothing done.
    let mut w = World::new();
    let d = w.create("order");
    let arg = w.scratch(d, 20);
    w.write_pod(d, arg, &res(0, 1, 10));
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 0);
    // Order 8: one aligned extent of 256 frames.
    let l = w.scratch(d, 21);
    w.write_pod(d, arg, &res(l, 1, 8));
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 1);
    let base = w.read_u64(d, l);
    assert_eq!(base % 256, 0, "naturally aligned");
    assert!((base..base + 256).all(|m| w.hv.frames.owner(Mfn(m)) == Some(Owner::Dom(d))));
    // Another domain's reservation: nothing done (xsm_memory_adjust_reservation).
    let other = w.create("other");
    w.write_pod(d, arg, &MemoryReservation { domid: other, ..res(0, 1, 0) });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 0);
    // A list in the hypervisor's range: nothing done.
    w.write_pod(d, arg, &res(0xFFFF_8000_0000_0000, 1, 0));
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 0);
}

#[test]
fn exchange_swaps_unreferenced_frames_only() {
    let mut w = World::new();
    let d = w.create("xchg");
    let (_, out) = reserve(&mut w, d, op::INCREASE_RESERVATION, &[0], 1, 0);
    let old = out[0];
    let (arg, inl, outl) = (w.scratch(d, 20), w.scratch(d, 21), w.scratch(d, 22));
    w.write_pod(d, inl, &old);
    w.write_pod(d, outl, &77u64); // the gpfn to populate
    let x = MemoryExchange { input: res(inl, 1, 0), output: res(outl, 1, 0), nr_exchanged: 0 };
    let before = tot(&mut w, d);
    w.write_pod(d, arg, &x);
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::EXCHANGE, arg, 0, 0, 0]), 0, "{}", w.traces().join("\n"));
    let got: MemoryExchange = w.read_pod(d, arg);
    assert_eq!(got.nr_exchanged, 1);
    let new = w.read_u64(d, outl);
    assert_ne!(new, old);
    assert_eq!(w.hv.frames.owner(Mfn(old)), Some(Owner::Free));
    assert_eq!(w.hv.frames.owner(Mfn(new)), Some(Owner::Dom(d)));
    assert_eq!(w.mread_u64(w.hv.xen.m2p.maddr().add(new * 8)), 77);
    assert_eq!(tot(&mut w, d), before, "tot_pages unchanged");
    // A mapped frame cannot be stolen: -EINVAL, nothing exchanged.
    let mapped = w.mfn_of(d, w.scratch(d, 3)).0;
    w.write_pod(d, inl, &mapped);
    w.write_pod(d, arg, &x);
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::EXCHANGE, arg, 0, 0, 0]), EINVAL);
    assert_eq!(w.read_pod::<MemoryExchange>(d, arg).nr_exchanged, 0);
    assert_eq!(w.hv.frames.owner(Mfn(mapped)), Some(Owner::Dom(d)));
    // Sizes that do not match: -EINVAL; an order above the limit: -EPERM.
    w.write_pod(d, arg, &MemoryExchange { output: res(outl, 2, 0), ..x });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::EXCHANGE, arg, 0, 0, 0]), EINVAL);
    w.write_pod(d, arg, &MemoryExchange { input: res(inl, 1, 10), output: res(outl, 1, 10), nr_exchanged: 0 });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::EXCHANGE, arg, 0, 0, 0]), EPERM);
    // Huge extent counts resumed near their end (nr_exchanged): no arithmetic overflow; the
    // list address wraps (as Xen's pointer arithmetic does) to the word before `inl`, a zero,
    // and frame 0 is not ours: -EINVAL.
    let huge = 1u64 << 62;
    w.write_pod(d, arg, &MemoryExchange { input: res(inl, huge, 0), output: res(outl, huge, 0), nr_exchanged: huge - 1 });
    w.write_pod(d, inl - 8, &0u64);
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::EXCHANGE, arg, 0, 0, 0]), EINVAL);
    assert_eq!(w.read_pod::<MemoryExchange>(d, arg).nr_exchanged, huge - 1);
    // XSA-212: an output list in the hypervisor's range is refused before anything moves.
    w.write_pod(d, arg, &MemoryExchange { output: res(0xFFFF_8000_0000_0000, 1, 0), ..x });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::EXCHANGE, arg, 0, 0, 0]), -14);
}

#[test]
fn control_hypercalls_answer_as_to_a_domu() {
    let mut w = World::new();
    let d = w.create("ctl");
    let other = w.create("other");
    let arg = w.scratch(d, 20);
    // sysctl: interface version first (-EACCES), then privilege (-EPERM).
    w.write(d, arg, &w32(&[3, 0x14]));
    assert_eq!(w.hypercall(d, 35, [arg, 0, 0, 0, 0]), EACCES);
    w.write(d, arg, &w32(&[3, 0x15]));
    assert_eq!(w.hypercall(d, 35, [arg, 0, 0, 0, 0]), EPERM);
    w.assert_trace(&["d1v0 sysctl(cmd 3) = -EPERM"]);
    // domctl: version, then the domain (DOMID_SELF is none), then privilege.
    w.write(d, arg, &w32(&[5, 0x14, DOMID_SELF as u32]));
    assert_eq!(w.hypercall(d, 36, [arg, 0, 0, 0, 0]), EACCES);
    w.write(d, arg, &w32(&[5, 0x15, DOMID_SELF as u32]));
    assert_eq!(w.hypercall(d, 36, [arg, 0, 0, 0, 0]), ESRCH);
    w.write(d, arg, &w32(&[5, 0x15, other as u32]));
    assert_eq!(w.hypercall(d, 36, [arg, 0, 0, 0, 0]), EPERM);
    assert_eq!(w.hypercall(d, 36, [0, 0, 0, 0, 0]), -14);
    // platform_op.
    w.write(d, arg, &w32(&[1, 0x0300_0001]));
    assert_eq!(w.hypercall(d, 7, [arg, 0, 0, 0, 0]), EPERM);
    w.write(d, arg, &w32(&[1, 0x0300_0000]));
    assert_eq!(w.hypercall(d, 7, [arg, 0, 0, 0, 0]), EACCES);
    assert_eq!(w.hypercall(d, 27, [0, 0, 0, 0, 0]), ENOSYS, "xsm_op with the dummy policy");
    assert_eq!(w.hypercall(d, 37, [0, 0, 0, 0, 0]), EPERM, "kexec_op");
    assert_eq!(w.hypercall(d, 42, [0, 0, 0, 0, 0]), EPERM, "hypfs_op");
    assert_eq!(w.hypercall(d, 48, [0, 0, 0, 0, 0]), EPERM, "mca");
    assert_eq!(w.hypercall(d, 40, [0, 0, 0, 0, 0]), EOPNOTSUPP, "xenpmu_op");
    assert_eq!(w.hypercall(d, 41, [d as u64, 3, 0, 0, 0]), -7, "dm_op: too many buffers");
    // nmi_op: a canonical callback is registered.
    w.write(d, arg, &w64(&[0xffff_ffff_8000_1000, 0]));
    assert_eq!(w.hypercall(d, 28, [0, arg, 0, 0, 0]), 0);
    assert_eq!(w.hv.doms[&d].vcpus[0].callbacks.nmi, 0xffff_ffff_8000_1000);
    w.write(d, arg, &w64(&[0x8000_0000_0000_0000, 0]));
    assert_eq!(w.hypercall(d, 28, [0, arg, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(d, 28, [1, 0, 0, 0, 0]), 0);
    assert_eq!(w.hv.doms[&d].vcpus[0].callbacks.nmi, 0);
}

#[test]
fn xen_version_as_a_pv_domu_sees_it() {
    let mut w = World::new();
    let d = w.create("ver");
    let arg = w.scratch(d, 20);
    w.write(d, arg, &w32(&[0, 0]));
    assert_eq!(w.hypercall(d, nr::XEN_VERSION, [6, arg, 0, 0, 0]), 0);
    let b = w.read(d, arg, 8);
    let f = [u32::from_le_bytes(b[0..4].try_into().unwrap()), u32::from_le_bytes(b[4..8].try_into().unwrap())];
    // memory_op_vnode_supported, mmu_pt_update_preserve_ad, highmem_assist,
    // gnttab_map_avail_bits, direct_mapped.
    assert_eq!(f[1], (1 << 13) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 17));
    w.write(d, arg, &w32(&[1, 0]));
    assert_eq!(w.hypercall(d, nr::XEN_VERSION, [6, arg, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(d, nr::XEN_VERSION, [9, arg, 0, 0, 0]), 0);
    assert_eq!(w.read(d, arg, 9), b"<denied>\0");
    assert_eq!(w.hypercall(d, nr::XEN_VERSION, [10, 0, 0, 0, 0]), EPERM);
    assert_eq!(w.hypercall(d, nr::XEN_VERSION, [3, arg, 0, 0, 0]), 0);
    assert_eq!(w.read(d, arg, 16), b"xen-3.0-x86_64 \0");
    assert_eq!(w.hypercall(d, nr::XEN_VERSION, [7, 0, 0, 0, 0]), 4096);
    assert_eq!(w.hypercall(d, nr::XEN_VERSION, [7, arg, 0, 0, 0]), EINVAL);
}

#[test]
fn mmu_update_preserve_ad_and_mmuext_details() {
    let mut w = World::new();
    let d = w.create("ad");
    let va = w.scratch(d, 4);
    let mfn = w.mfn_of(d, va);
    let l1e = w.l1e(d, va);
    // The guest's entry has A and D set (as the CPU would).
    let e = w.mread_u64(l1e);
    let i = l1e.0 as usize;
    w.hv.platform.mem[i..i + 8].copy_from_slice(&(e | PTE_A | PTE_D).to_le_bytes());
    let plain = mfn.maddr().0 | PTE_P | PTE_RW | PTE_US;
    assert_eq!(w.mmu_update(d, &[(l1e.0 | 2, plain)]), 0);
    assert_eq!(w.mread_u64(l1e) & (PTE_A | PTE_D), PTE_A | PTE_D, "PRESERVE_AD keeps them");
    assert_eq!(w.mmu_update(d, &[(l1e.0, plain)]), 0);
    assert_eq!(w.mread_u64(l1e) & (PTE_A | PTE_D), 0, "a normal update does not");
    // mmuext_op details.
    assert_eq!(w.mmuext(d, mmuext::FLUSH_CACHE, 0), EACCES);
    assert_eq!(w.mmuext(d, mmuext::FLUSH_CACHE_GLOBAL, 0), EINVAL);
    assert_eq!(w.mmuext(d, mmuext::MARK_SUPER, mfn.0), EOPNOTSUPP);
    assert_eq!(w.mmuext(d, mmuext::INVLPG_LOCAL, 0x8000_0000_0000_0000), 0, "a bad address flushes nothing");
    let other = w.create("other");
    let foreign = w.hv.doms[&other].p2m[7];
    assert_eq!(w.mmuext(d, mmuext::CLEAR_PAGE, foreign.0), EINVAL);
    assert_eq!(w.mmuext(d, 99, 0), ENOSYS);
    // Foreign domain ids: oneself by number or a missing domain is -ESRCH, another -EPERM.
    let list = w.scratch(d, 12);
    assert_eq!(w.hypercall(d, nr::MMUEXT_OP, [list, 1, 0, d as u64, 0]), ESRCH);
    assert_eq!(w.hypercall(d, nr::MMUEXT_OP, [list, 1, 0, 999, 0]), ESRCH);
    assert_eq!(w.hypercall(d, nr::MMUEXT_OP, [list, 1, 0, other as u64, 0]), EPERM);
    assert_eq!(w.hypercall(d, nr::MMUEXT_OP, [0xFFFF_8000_0000_0000, 1, 0, DOMID_SELF as u64, 0]), -14);
    let _ = PAGE_SIZE;
}

#[test]
fn mmu_update_foreign_owners_pdone_and_continuations() {
    let mut w = World::new();
    let d = w.create("mu");
    let other = w.create("other");
    let va = w.scratch(d, 4);
    let l1e = w.l1e(d, va);
    let mfn = w.mfn_of(d, va);
    let (list, done) = (w.scratch(d, 13), w.scratch(d, 14));
    let val = mfn.maddr().0 | PTE_P | PTE_RW | PTE_US;
    w.write_pod(d, list, &crate::abi::MmuUpdate { ptr: l1e.0, val });
    // Own id as the foreign domain, or a missing one: -ESRCH; another: -EPERM, at the request.
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [list, 1, done, d as u64, 0]), ESRCH);
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [list, 1, done, 999, 0]), ESRCH);
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [list, 1, done, other as u64, 0]), EPERM);
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [list, 0, done, other as u64, 0]), 0, "no request, no check");
    // A foreign page-table owner (foreigndom >> 16 is its id plus one).
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [list, 1, done, ((other as u64 + 1) << 16) | DOMID_SELF as u64, 0]), EPERM);
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [list, 1, done, (1000 << 16) | DOMID_SELF as u64, 0]), ESRCH);
    // *pdone: the continuation's count plus this call's.
    w.write_pod(d, done, &5u32);
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [list, 1 | 1 << 31, done, DOMID_SELF as u64, 0]), 0);
    assert_eq!(w.read_pod::<u32>(d, done), 6);
    // MMU_UPDATE_PREEMPTED with a null list returns foreigndom (Xen's continuation of a result).
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [0, 1 << 31, 0, 0xffff_ffea, 0]), -22);
    // Commands 4..7 of the low three bits: -ENOSYS; a list in the hypervisor's range: -EFAULT.
    w.write_pod(d, list, &crate::abi::MmuUpdate { ptr: l1e.0 | 5, val });
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [list, 1, 0, DOMID_SELF as u64, 0]), ENOSYS);
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [0xFFFF_8000_0000_0000, 1, 0, DOMID_SELF as u64, 0]), -14);
    // MMU_PT_UPDATE_NO_TRANSLATE is a normal update for a PV page-table owner.
    w.write_pod(d, list, &crate::abi::MmuUpdate { ptr: l1e.0 | 3, val });
    assert_eq!(w.hypercall(d, nr::MMU_UPDATE, [list, 1, 0, DOMID_SELF as u64, 0]), 0);
    // update_va_mapping_otherdomain: DOMID_SELF is update_va_mapping; another domain -EPERM.
    assert_eq!(w.hypercall(d, 22, [va, val, 2, DOMID_SELF as u64, 0]), 0);
    assert_eq!(w.hypercall(d, 22, [va, val, 2, other as u64, 0]), EPERM);
    assert_eq!(w.hypercall(d, 22, [va, val, 2, d as u64, 0]), ESRCH);
    w.assert_trace(&["d1v0 update_va_mapping_otherdomain(", "= -EPERM"]);
}

#[test]
fn reservation_flags_and_other_sub_ops() {
    let mut w = World::new();
    let d = w.create("flags");
    let (arg, l) = (w.scratch(d, 20), w.scratch(d, 21));
    // Address bits: 12 or fewer is refused; 25 gives a frame below 32 MiB, 24 none (the
    // hypervisor and this domain's 16 MiB fill the first 16 MiB).
    w.write_pod(d, arg, &MemoryReservation { mem_flags: 12, ..res(0, 1, 0) });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 0);
    w.write_pod(d, arg, &MemoryReservation { mem_flags: 24, ..res(l, 1, 0) });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 0);
    w.write_pod(d, arg, &MemoryReservation { mem_flags: 25, ..res(l, 1, 0) });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 1);
    assert!(w.read_u64(d, l) < 1 << 13, "below 2^25 bytes");
    let other = w.create("other");
    // An exact node request from a domU: refused; a node hint alone is fine.
    w.write_pod(d, arg, &MemoryReservation { mem_flags: (2 << 8) | (1 << 17), ..res(0, 1, 0) });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 0);
    w.write_pod(d, arg, &MemoryReservation { mem_flags: 2 << 8, ..res(0, 1, 0) });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 1);
    // Populate-on-demand on oneself: nothing done.
    w.write_pod(d, l, &9000u64);
    w.write_pod(d, arg, &MemoryReservation { mem_flags: 1 << 16, ..res(l, 1, 0) });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::POPULATE_PHYSMAP, arg, 0, 0, 0]), 0);
    // More extents than a continuation can encode: nothing done.
    w.write_pod(d, arg, &res(0, (u32::MAX as u64 >> 6) + 1, 0));
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::INCREASE_RESERVATION, arg, 0, 0, 0]), 0);
    // machphys_mfn_list: the M2P's frames, 2 MiB at a time.
    w.write_pod(d, arg, &crate::abi::MachphysMfnList { max_extents: 4, _pad: 0, extent_start: l, nr_extents: 0, _pad2: 0 });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::MACHPHYS_MFN_LIST, arg, 0, 0, 0]), 0);
    let m: crate::abi::MachphysMfnList = w.read_pod(d, arg);
    assert_eq!(m.nr_extents, 1, "64 MiB of machine memory: 128 KiB of M2P");
    assert_eq!(w.read_u64(d, l), w.hv.xen.m2p.0);
    // PoD targets are for HVM domains; claims and vNUMA need privileges or vNUMA.
    w.write_pod(d, arg, &crate::abi::PodTarget { domid: DOMID_SELF, ..Default::default() });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::GET_POD_TARGET, arg, 0, 0, 0]), EINVAL);
    w.write_pod(d, arg, &MemoryReservation { domid: d, ..res(0, 1, 0) });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::CLAIM_PAGES, arg, 0, 0, 0]), EPERM);
    w.write_pod(d, arg, &MemoryReservation { domid: DOMID_SELF, ..res(0, 1, 0) });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::CLAIM_PAGES, arg, 0, 0, 0]), EINVAL, "by id: DOMID_SELF is none");
    w.write_pod(d, arg, &crate::abi::VnumaTopologyInfo { domid: DOMID_SELF, ..Default::default() });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::GET_VNUMAINFO, arg, 0, 0, 0]), EOPNOTSUPP);
    w.write_pod(d, arg, &crate::abi::MemAcquireResource { domid: other, ..Default::default() });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::ACQUIRE_RESOURCE, arg, 0, 0, 0]), EPERM);
    w.write_pod(d, arg, &crate::abi::MemAcquireResource { domid: DOMID_SELF, ..Default::default() });
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::ACQUIRE_RESOURCE, arg, 0, 0, 0]), ESRCH);
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::GET_SHARING_FREED_PAGES, 0, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::MACHPHYS_COMPAT_MFN_LIST, arg, 0, 0, 0]), ENOSYS);
    // x86 sub-ops see the whole cmd: continuation bits make them unknown.
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::MACHPHYS_MAPPING | 1 << 6, arg, 0, 0, 0]), ENOSYS);
    assert_eq!(w.hypercall(d, MEMORY_OP, [op::ADD_TO_PHYSMAP | 1 << 22, arg, 0, 0, 0]), -33, "-EDOM");
}

#[test]
fn a_frame_given_back_while_in_use_stays_until_its_last_reference() {
    // A frame in a GDT is in use by the hypervisor: given back, it stays until the GDT goes.
    let mut w = World::new();
    let d = w.create("gdt");
    let va = w.scratch(d, 6);
    let mfn = w.mfn_of(d, va);
    assert_eq!(w.update_va_mapping(d, va, 0), 0);
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].gdt_frames = vec![mfn];
    assert_eq!(reserve(&mut w, d, op::DECREASE_RESERVATION, &[mfn.0], 1, 0).0, 1);
    assert_eq!(w.hv.frames.owner(mfn), Some(Owner::Dom(d)), "still the GDT's");
    assert_eq!(tot(&mut w, d), 4096);
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].gdt_frames.clear();
    assert_eq!(tot(&mut w, d), 4095);
    assert_eq!(w.hv.frames.owner(mfn), Some(Owner::Free));
    // A page table given back stays a page table until unpinned, and no other domain gets it.
    let pt = w.mfn_of(d, w.scratch(d, 7));
    assert_eq!(w.update_va_mapping(d, w.scratch(d, 7), 0), 0);
    assert_eq!(w.mmuext(d, mmuext::PIN_L1_TABLE, pt.0), 0);
    assert_eq!(reserve(&mut w, d, op::DECREASE_RESERVATION, &[pt.0], 1, 0).0, 1);
    let e = w.create("later");
    assert!(!w.hv.frames.domain_frames(e).any(|m| m == pt), "a referenced frame never reaches another domain");
    assert_eq!(w.mmuext(d, mmuext::UNPIN_TABLE, pt.0), 0);
    assert_eq!(w.hv.frames.owner(pt), Some(Owner::Free));
    assert_eq!(tot(&mut w, d), 4094);
    w.assert_trace(&["d1v0 mmuext_op(unpin) = 0"]);
    let i = w.traces().iter().position(|l| l.contains("d1v0 mmuext_op(unpin) = 0")).unwrap();
    assert!(w.traces()[i + 1].contains("freed: its last reference went"), "the free follows the call that dropped the reference");
}

#[test]
fn legacy_event_channel_and_physdev_hypercalls() {
    let mut w = World::new();
    let d = w.create("compat");
    let arg = w.scratch(d, 20);
    // evtchn_op {cmd = EVTCHNOP_send, u.send.port = 1000}: event_channel_op(send) on `u`.
    w.write(d, arg, &w32(&[4, 1000, 0, 0, 0, 0, 0]));
    assert_eq!(w.hypercall(d, 16, [arg, 0, 0, 0, 0]), EINVAL);
    w.assert_trace(&["d1v0 event_channel_op_compat: event_channel_op(send, port 1000) = -EINVAL"]);
    // A command past unmask is not passed on; an unreadable struct is -EFAULT.
    w.write(d, arg, &w32(&[10, 0, 0, 0, 0, 0, 0]));
    assert_eq!(w.hypercall(d, 16, [arg, 0, 0, 0, 0]), ENOSYS);
    assert_eq!(w.hypercall(d, 16, [0, 0, 0, 0, 0]), -14);
    // physdev_op {cmd = PHYSDEVOP_set_iopl, u.set_iopl.iopl = 1}, `u` at offset 8.
    w.write(d, arg, &w32(&[6, 0, 1, 0, 0, 0]));
    assert_eq!(w.hypercall(d, 19, [arg, 0, 0, 0, 0]), 0);
    assert_eq!(w.hv.doms[&d].vcpus[0].privs.iopl, 1);
    w.assert_trace(&["d1v0 physdev_op_compat: physdev_op(set_iopl, 1) = 0"]);
}
