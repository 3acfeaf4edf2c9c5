//! Start of day: start_info, the P2M/M2P, the bootstrap page tables and the hypercall page.

use super::image::{ENTRY, MARKER, VB};
use super::World;
use crate::abi::{self, XEN_L4_FIRST, XEN_L4_LAST};
use crate::builder::BuildError;
use crate::hv::ControlError;
use crate::mm::frames::{Owner, PageType};
use crate::mm::{Mfn, PAGE_SIZE};
use crate::platform::Gate;

#[test]
fn start_info_is_xens() {
    let mut w = World::new();
    let mut cfg = World::config("si");
    cfg.cmdline = "console=hvc0 root=/dev/xvda".into();
    let d = w.try_create(cfg).unwrap();
    let si = w.start_info(d);
    let dom_vb = w.hv.doms[&d].virt_base;
    assert_eq!(dom_vb, VB);
    assert_eq!(&si.magic[..15], b"xen-3.0-x86_64\0");
    assert_eq!(si.nr_pages, 16 * 256);
    assert_eq!(si.shared_info, w.shared_info(d).0);
    assert_eq!(si.flags, 0, "a domU is neither privileged nor the initial domain");
    assert_eq!(&si.cmd_line[..28], b"console=hvc0 root=/dev/xvda\0");

    // rsi at entry points at start_info; rip at ENTRY; rsp inside the mapping, above pt_base.
    let cpu = w.cpu(d);
    assert_eq!(cpu.rsi, w.hv.doms[&d].start_info_va);
    assert_eq!(cpu.rip, ENTRY);
    assert_eq!((cpu.cs, cpu.ss), (abi::FLAT_KERNEL_CS, abi::FLAT_KERNEL_SS));
    assert!(cpu.rsp > si.pt_base + si.nr_pt_frames * PAGE_SIZE);

    // mfn_list and pt_base are inside the bootstrap mapping (mapped, and above the kernel).
    let map_end = VB + 4 * 1024 * 1024;
    for va in [si.mfn_list, si.pt_base, cpu.rsp - 8] {
        assert!((VB..map_end).contains(&va), "{va:#x} outside the bootstrap area");
        assert!(w.walk(d, va).is_some(), "{va:#x} not mapped");
    }
    assert_eq!(w.walk(d, si.pt_base).unwrap().maddr.mfn(), w.hv.doms[&d].vcpus[0].guest_table);
    assert!(w.walk(d, map_end).is_none(), "the mapping ends at a 4 MiB boundary");

    // console and store rings belong to the domain, and are the pages mapped after start_info.
    for mfn in [si.console_mfn, si.store_mfn] {
        assert_eq!(w.hv.frames.owner(Mfn(mfn)), Some(Owner::Dom(d)));
    }
    let si_va = w.hv.doms[&d].start_info_va;
    assert_eq!(w.mfn_of(d, si_va + PAGE_SIZE).0, si.store_mfn);
    assert_eq!(w.mfn_of(d, si_va + 2 * PAGE_SIZE).0, si.console_mfn);
    assert_ne!(si.console_evtchn, si.store_evtchn);
    assert!(si.console_evtchn != 0 && si.store_evtchn != 0);
}

#[test]
fn p2m_and_m2p_agree() {
    let mut w = World::new();
    let d = w.create("m2p");
    let si = w.start_info(d);
    let m2p = w.hv.xen.m2p.maddr();
    let p2m_guest = w.read(d, si.mfn_list, si.nr_pages as usize * 8);
    for pfn in 0..si.nr_pages {
        let mfn = u64::from_le_bytes(p2m_guest[pfn as usize * 8..][..8].try_into().unwrap());
        assert_eq!(mfn, w.hv.doms[&d].p2m[pfn as usize].0, "guest P2M[{pfn}]");
        assert_eq!(w.hv.frames.owner(Mfn(mfn)), Some(Owner::Dom(d)));
        assert_eq!(w.mread_u64(m2p.add(mfn * 8)), pfn, "m2p[p2m[{pfn:#x}]]");
    }
    // shared_info has no pfn; free frames have none either.
    assert_eq!(w.mread_u64(m2p.add((si.shared_info >> 12) * 8)), !0);
    // The guest sees the same M2P read-only at RO_MPT_VIRT_START.
    let mfn0 = w.hv.doms[&d].p2m[0].0;
    let walk = w.walk(d, abi::RO_MPT_VIRT_START + mfn0 * 8).expect("M2P mapped in the guest");
    assert!(!walk.writable && walk.user && walk.nx);
    assert_eq!(w.mread_u64(walk.maddr), 0);
}

#[test]
fn kernel_segment_loaded_and_bss_zeroed() {
    let mut w = World::new();
    let d = w.create("load");
    assert_eq!(w.read(d, ENTRY, MARKER.len()), MARKER);
    assert_eq!(w.read(d, VB + 3 * PAGE_SIZE, 16), vec![0x90; 16]);
    assert_eq!(w.read(d, VB + 4 * PAGE_SIZE, PAGE_SIZE as usize), vec![0; PAGE_SIZE as usize]);
    // Text is executable, data pages (start_info) are not.
    assert!(!w.walk(d, ENTRY).unwrap().nx);
    let si_va = w.hv.doms[&d].start_info_va;
    assert!(w.walk(d, si_va).unwrap().nx);
    assert!(!w.hv.platform.code_changed.is_empty());
}

#[test]
fn bootstrap_page_tables() {
    let mut w = World::new();
    let d = w.create("pt");
    let si = w.start_info(d);
    let l4 = w.hv.doms[&d].vcpus[0].guest_table;
    assert_eq!(w.cr3(d), l4.maddr().0);
    let f = *w.hv.frames.get(l4).unwrap();
    assert!(f.pinned, "the L4 is pinned");
    assert_eq!(f.ty, PageType::PageTable(4));
    assert_eq!(f.type_refs, 2, "one for the pin, one for the base pointer");

    // Page-table frames are mapped read-only; every other page of the area writable.
    let mut levels = std::collections::BTreeMap::new();
    for i in 0..si.nr_pt_frames {
        let va = si.pt_base + i * PAGE_SIZE;
        let wk = w.walk(d, va).unwrap();
        assert!(!wk.writable, "page table at {va:#x} is mapped writable");
        match w.hv.frames.get(wk.maddr.mfn()).unwrap().ty {
            PageType::PageTable(l) => *levels.entry(l).or_insert(0) += 1,
            PageType::None | PageType::SegDesc => panic!("pt frame {i} is not a validated table"),
        }
        assert_eq!(w.hv.frames.get(wk.maddr.mfn()).unwrap().writable_refs, 0);
    }
    assert_eq!(levels.get(&4), Some(&1));
    assert_eq!(levels.get(&3), Some(&1));
    assert_eq!(levels.get(&2), Some(&1));
    assert_eq!(levels.get(&1), Some(&2), "4 MiB needs two L1 tables");
    for va in [VB, w.hv.doms[&d].start_info_va, w.scratch(d, 0), si.mfn_list] {
        assert!(w.walk(d, va).unwrap().writable, "{va:#x} should be writable");
    }

    // Hypervisor slots of the L4.
    for slot in XEN_L4_FIRST..=XEN_L4_LAST {
        let e = w.mread_u64(l4.maddr().add(slot as u64 * 8));
        assert_eq!(e, w.hv.xen.slots[slot - XEN_L4_FIRST], "L4 slot {slot}");
    }
    // Every guest entry carries _PAGE_USER.
    for slot in (0..512).filter(|s| !(XEN_L4_FIRST..=XEN_L4_LAST).contains(s)) {
        let e = w.mread_u64(l4.maddr().add(slot as u64 * 8));
        assert!(e & 1 == 0 || e & 4 != 0, "L4 slot {slot} lacks _PAGE_USER");
    }
}

fn stub(nr: u32, gate: [u8; 2]) -> Vec<u8> {
    let mut v = vec![0x51, 0x41, 0x53, 0xb8];
    v.extend_from_slice(&nr.to_le_bytes());
    v.extend_from_slice(&gate);
    v.extend_from_slice(&[0x41, 0x5b, 0x59, 0xc3]);
    v
}

#[test]
fn hypercall_page_has_xens_stubs() {
    for (gate, bytes) in [(Gate::Syscall, [0x0f, 0x05]), (Gate::Int3, [0xcc, 0x90])] {
        let mut w = World::with_gate(gate);
        let d = w.create("hc");
        let page = w.read(d, VB, PAGE_SIZE as usize);
        for nr in 0..128u32 {
            let s = &page[nr as usize * 32..nr as usize * 32 + 32];
            if nr == 23 {
                let mut iret = vec![0x51, 0x41, 0x53, 0x50, 0xb8, 0x17, 0, 0, 0];
                iret.extend_from_slice(&bytes);
                assert_eq!(&s[..11], &iret[..], "{gate:?} iret stub");
            } else {
                assert_eq!(&s[..14], &stub(nr, bytes)[..], "{gate:?} stub {nr}");
                assert!(s[14..].iter().all(|&b| b == 0xcc), "stub {nr} padding");
            }
        }
        // The spec's syscall example.
        if gate == Gate::Syscall {
            assert_eq!(&page[18 * 32..18 * 32 + 14], &[0x51, 0x41, 0x53, 0xb8, 18, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3]);
        }
    }
}

#[test]
fn too_small_and_too_big() {
    let mut w = World::new();
    let free = w.hv.frames.free_frames();
    let mut cfg = World::config("tiny");
    cfg.memory_mib = 1;
    let r = w.try_create(cfg);
    assert_eq!(r.unwrap_err(), ControlError::Build(BuildError::TooSmall { need_mib: 4, have_mib: 1 }));
    let mut cfg = World::config("huge");
    cfg.memory_mib = 128;
    let r = w.try_create(cfg);
    assert!(matches!(r, Err(ControlError::Build(BuildError::OutOfMemory { .. }))), "{r:?}");
    let mut cfg = World::config("novcpu");
    cfg.vcpus = 0;
    let r = w.try_create(cfg);
    assert!(matches!(r, Err(ControlError::Build(BuildError::Layout(_)))), "{r:?}");
    assert_eq!(w.hv.frames.free_frames(), free, "failed builds leak no frames");
    // And the machine still builds a good domain afterwards.
    let d = w.create("ok");
    assert!(w.hv.doms.contains_key(&d));
}

/// `memory` from a config file is admin input: an absurd value must be an error.
#[test]
fn absurd_memory_is_an_error_not_a_panic() {
    let mut w = World::new();
    let mut cfg = World::config("absurd");
    cfg.memory_mib = u64::MAX / 16;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.try_create(cfg).map(|_| ())));
    let r = r.expect("create_domain panicked");
    assert!(matches!(r, Err(ControlError::Build(_))), "{r:?}");
}

/// shared_info has 32 legacy vcpu_info slots; the builder must not place vcpu_info 32+ inside
/// evtchn_pending (or beyond the page).
#[test]
fn more_than_32_vcpus_do_not_corrupt_shared_info() {
    let mut w = World::new();
    let mut cfg = World::config("wide");
    cfg.vcpus = 33;
    match w.try_create(cfg) {
        Err(_) => {}
        Ok(d) => {
            for port in 0..4096 {
                assert!(!w.port_pending(d, port), "port {port} pending at start of day");
            }
            let shared = w.shared_info(d);
            for v in &w.hv.doms[&d].vcpus {
                assert!(v.vcpu_info.0 < shared.0 + 2048, "vcpu {} vcpu_info outside the legacy slots", v.id);
            }
        }
    }
}

#[test]
fn two_domains_get_disjoint_frames() {
    let mut w = World::new();
    let a = w.create("a");
    let b = w.create("b");
    let fa: std::collections::BTreeSet<_> = w.hv.frames.domain_frames(a).collect();
    let fb: std::collections::BTreeSet<_> = w.hv.frames.domain_frames(b).collect();
    assert!(fa.is_disjoint(&fb));
    assert_eq!(fa.len() as u64, 16 * 256 + 1, "RAM plus shared_info");
    assert!(!fa.contains(&w.hv.xen.m2p));
}

/// INIT_P2M as libxenguest honours it (Linux's note asks for 0x8000000000, L4 slot 1): the list
/// is not in the initial mapping but in the frames after it, mapped writable at the note's
/// address by tables of its own that follow it; start_info says where (mfn_list,
/// first_p2m_pfn, nr_p2m_frames). Misaligned or not below VIRT_BASE: ignored, as libxenguest
/// does. Reaching the hypervisor's range: refused.
#[test]
fn init_p2m_places_the_list_where_the_kernel_asks() {
    use super::image::{self, Spec};
    use alloc::sync::Arc;
    let kernel = |p: u64| Arc::from(image::build(&Spec { init_p2m: Some(p), ..Spec::default() }));
    let mut w = World::new();
    let d = w.try_create(crate::domain::DomainConfig::new("p2m", "test", kernel(0x80_0000_0000))).unwrap();
    let si = w.start_info(d);
    assert_eq!(si.mfn_list, 0x80_0000_0000);
    // 16 MiB: 4096 entries, 8 frames; mapped by one L3, one L2 and one L1.
    assert_eq!(si.nr_p2m_frames, 8 + 3);
    let mapped = (4 << 20) / PAGE_SIZE;
    assert_eq!(si.first_p2m_pfn, mapped, "right after what the initial page tables map");
    let p2m = w.hv.doms[&d].p2m.clone();
    let guest = w.read(d, si.mfn_list, si.nr_pages as usize * 8);
    for pfn in 0..si.nr_pages as usize {
        assert_eq!(u64::from_le_bytes(guest[pfn * 8..][..8].try_into().unwrap()), p2m[pfn].0, "P2M[{pfn}]");
    }
    for i in 0..8 {
        let wk = w.walk(d, si.mfn_list + i * PAGE_SIZE).expect("P2M mapped");
        assert!(wk.writable && wk.nx && wk.user);
        assert_eq!(wk.maddr.mfn(), p2m[(si.first_p2m_pfn + i) as usize]);
    }
    assert!(w.walk(d, si.mfn_list + 8 * PAGE_SIZE).is_none(), "nothing mapped past the list");
    for (i, level) in [(8, 3), (9, 2), (10, 1)] {
        let f = w.hv.frames.get(p2m[(si.first_p2m_pfn + i) as usize]).unwrap();
        assert_eq!(f.ty, PageType::PageTable(level), "table {i} of the P2M mapping");
    }
    // The initial mapping no longer holds the list: start_info follows the kernel directly.
    assert!(w.hv.doms[&d].start_info_va < VB + (1 << 20));

    // Misaligned, or not below VIRT_BASE: as if there were no note.
    for p in [0x80_0000_0008, VB + (64 << 20)] {
        let mut w = World::new();
        let d = w.try_create(crate::domain::DomainConfig::new("p2m", "test", kernel(p))).unwrap();
        let si = w.start_info(d);
        assert!((VB..VB + (4 << 20)).contains(&si.mfn_list), "{p:#x}: {:#x}", si.mfn_list);
        assert_eq!((si.first_p2m_pfn, si.nr_p2m_frames), (0, 0));
    }
    // In the hypervisor's range (L4 slot 256): refused, nothing leaked.
    let mut w = World::new();
    let free = w.hv.frames.free_frames();
    let r = w.try_create(crate::domain::DomainConfig::new("p2m", "test", kernel(0xffff_8000_0000_0000)));
    assert!(matches!(r, Err(ControlError::Build(BuildError::Layout(_)))), "{r:?}");
    assert_eq!(w.hv.frames.free_frames(), free);
}
