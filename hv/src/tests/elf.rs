//! Kernel images: Xen notes in PT_NOTE or only in a `.note` section; images that must be
//! rejected with the right [`ElfError`], never a panic.

use std::sync::Arc;

use super::image::{self, Notes, Spec, ENTRY, VB};
use super::World;
use crate::builder::BuildError;
use crate::elf::{parse, ElfError};
use crate::hv::ControlError;

#[test]
fn notes_in_a_pt_note_segment() {
    let img = parse(&image::kernel()).expect("valid kernel");
    assert_eq!(img.entry, ENTRY);
    assert_eq!(img.virt_base, VB);
    assert_eq!(img.hypercall_page, Some(VB));
    assert_eq!(img.xen_version, "xen-3.0");
    assert_eq!(img.guest_os, "xenolith-test");
    assert_eq!(img.loader, "generic");
    assert!(img.features.contains("!writable_page_tables"));
    assert_eq!(img.segments.len(), 1);
    let s = &img.segments[0];
    assert!(s.executable);
    assert_eq!((s.vaddr, s.filesz, s.memsz), (VB, 4 * 4096, 5 * 4096));
    assert_eq!((img.v_start, img.v_end), (VB, VB + 5 * 4096));
}

#[test]
fn notes_only_in_a_note_section() {
    let bytes = image::build(&Spec { notes: Notes::SectionOnly, ..Spec::default() });
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    assert!(elf.program_headers.iter().all(|p| p.p_type != goblin::elf::program_header::PT_NOTE));
    let img = parse(&bytes).expect("notes found in the .note section");
    assert_eq!(img.entry, ENTRY);
    assert_eq!(img.hypercall_page, Some(VB));
    assert_eq!(img.virt_base, VB);
    // And it boots like the other.
    let mut w = World::new();
    let d = w.try_create(crate::domain::DomainConfig::new("sec", "sec", Arc::from(bytes))).unwrap();
    assert_eq!(w.cpu(d).rip, ENTRY);
}

#[test]
fn without_entry_note_the_entry_is_e_entry() {
    // ENTRY note value differs from e_entry: the note wins.
    let bytes = image::build(&Spec { entry: VB + 0x2000, ..Spec::default() });
    assert_eq!(parse(&bytes).unwrap().entry, VB + 0x2000);
}

#[test]
fn rejects_what_is_not_a_pv64_kernel() {
    assert!(matches!(parse(b"#!/bin/sh\necho not a kernel\n"), Err(ElfError::Parse(_))));
    assert!(matches!(parse(&[]), Err(ElfError::Parse(_))));
    assert_eq!(parse(&image::elf32()).unwrap_err(), ElfError::NotX86_64);
    assert_eq!(parse(&image::build(&Spec { machine: 3, ..Spec::default() })).unwrap_err(), ElfError::NotX86_64);
    assert_eq!(parse(&image::build(&Spec { notes: Notes::None, ..Spec::default() })).unwrap_err(), ElfError::NoXenNotes);
    assert_eq!(parse(&image::build(&Spec { truncate: true, ..Spec::default() })).unwrap_err(), ElfError::Truncated);
    // VIRT_BASE above the first segment.
    assert!(matches!(parse(&image::build(&Spec { virt_base: VB + 0x1000, ..Spec::default() })), Err(ElfError::Unsupported(_))));
}

#[test]
fn create_domain_reports_elf_errors() {
    let mut w = World::new();
    let free = w.hv.frames.free_frames();
    let bad = image::build(&Spec { notes: Notes::None, ..Spec::default() });
    let r = w.try_create(crate::domain::DomainConfig::new("bad", "bad", Arc::from(bad)));
    assert!(matches!(r, Err(ControlError::Build(BuildError::Elf(ElfError::NoXenNotes)))), "{r:?}");
    assert_eq!(w.hv.frames.free_frames(), free, "a failed build leaks no frames");
    w.assert_trace(&["d1 create failed: no Xen ELF notes"]);
}

/// Images with one header byte corrupted: (offset, value) pairs, header and section table.
fn mangled() -> impl Iterator<Item = (usize, u8, Vec<u8>)> {
    let good = image::kernel();
    let n = good.len();
    (0..n).filter(move |i| *i < 0xb0 || *i >= n - 0x100).flat_map(move |i| {
        let good = good.clone();
        [0x00u8, 0xff, 0x80, 0x01].into_iter().map(move |v| {
            let mut b = good.clone();
            b[i] = v;
            (i, v, b)
        })
    })
}

/// Every prefix of a valid image, and images with single bytes corrupted, parse to a result:
/// nothing panics.
#[test]
fn mangled_images_never_panic() {
    let good = image::kernel();
    for n in (0..good.len()).step_by(7) {
        let _ = parse(&good[..n]);
    }
    for (_, _, b) in mangled() {
        let _ = parse(&b);
    }
}

/// Bytes of the PT_NOTE program header (phdr 1).
const PT_NOTE_PHDR: std::ops::Range<usize> = 64 + 56..64 + 112;

/// A malformed note (e.g. a PT_NOTE whose offset is not 4-aligned) makes goblin's note
/// iterator yield the same `Err` forever; `elf::parse` must stop at the first error (it once
/// iterated with `.flatten()`, which never ended).
#[test]
fn malformed_notes_do_not_hang_the_parser() {
    let mut hung = Vec::new();
    for (i, v, b) in mangled().filter(|(i, _, _)| PT_NOTE_PHDR.contains(i)) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(parse(&b).is_ok());
        });
        if rx.recv_timeout(std::time::Duration::from_secs(2)).is_err() {
            hung.push(format!("byte {i:#x} = {v:#x}"));
            if hung.len() >= 3 {
                break;
            }
        }
    }
    assert!(hung.is_empty(), "parse() hangs on: {hung:?}");
}

/// The builder, too, turns hostile layouts into errors.
#[test]
fn hostile_layouts_are_build_errors() {
    let mut w = World::new();
    let free = w.hv.frames.free_frames();
    let cases = [
        // Inside the hypervisor's reserved range.
        Spec {
            vaddr: 0xffff_8000_0000_0000,
            virt_base: 0xffff_8000_0000_0000,
            entry: 0xffff_8000_0000_1000,
            hypercall_page: Some(0xffff_8000_0000_0000),
            ..Spec::default()
        },
        // Hypercall page outside the image.
        Spec { hypercall_page: Some(VB - 0x1000), ..Spec::default() },
        // Hypercall page not page aligned.
        Spec { hypercall_page: Some(VB + 0x10), ..Spec::default() },
    ];
    for (i, s) in cases.iter().enumerate() {
        let r = w.try_create(crate::domain::DomainConfig::new(&format!("h{i}"), "h", Arc::from(image::build(s))));
        assert!(matches!(r, Err(ControlError::Build(BuildError::Layout(_)))), "case {i}: {r:?}");
        assert_eq!(w.hv.frames.free_frames(), free, "case {i} leaked frames");
    }
}

/// A kernel linked in the top 4 MiB of the address space: the layout arithmetic (`round_up`
/// of the end of the bootstrap area) overflows u64.
#[test]
fn kernel_at_the_top_of_the_address_space_is_an_error() {
    let top = 0xffff_ffff_ffc0_0000;
    let s = Spec { vaddr: top, virt_base: top, entry: top + 0x1000, hypercall_page: Some(top), ..Spec::default() };
    let mut w = World::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        w.try_create(crate::domain::DomainConfig::new("top", "top", Arc::from(image::build(&s)))).map(|_| ())
    }));
    let r = r.expect("create_domain panicked");
    assert!(matches!(r, Err(ControlError::Build(_))), "{r:?}");
}

fn create(w: &mut World, name: &str, s: &Spec, memory_mib: u64) -> Result<crate::DomId, ControlError> {
    let mut c = crate::domain::DomainConfig::new(name, name, Arc::from(image::build(s)));
    c.memory_mib = memory_mib;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.try_create(c)));
    r.unwrap_or_else(|_| panic!("create_domain panicked for {name}: {s:?}"))
}

/// Issue 6, bug 2: a HYPERCALL_PAGE note at the top of the address space made the builder's
/// range check `hp + PAGE_SIZE` overflow (a panic for the whole batch).
#[test]
fn hypercall_page_at_the_top_of_the_address_space_is_a_build_error() {
    let mut w = World::new();
    let free = w.hv.frames.free_frames();
    let s = Spec { hypercall_page: Some(0xffff_ffff_ffff_f000), ..Spec::default() };
    let r = create(&mut w, "hp-top", &s, 16);
    assert!(matches!(r, Err(ControlError::Build(BuildError::Layout(_)))), "{r:?}");
    assert_eq!(w.hv.frames.free_frames(), free, "frames leaked");
}

/// Issue 6, bug 3: a VIRT_BASE that is not page-aligned panicked the builder with the minimum
/// memory, and with more memory built a domain with shifted mappings. It is refused.
#[test]
fn unaligned_virt_base_is_refused() {
    let mut w = World::new();
    for (i, mib) in [1u64, 4, 16, 64].into_iter().enumerate() {
        let s = Spec { virt_base: VB - 0x800, ..Spec::default() };
        let r = create(&mut w, &format!("vb{i}"), &s, mib);
        match r {
            Err(ControlError::Build(BuildError::Elf(ElfError::Unsupported(m)))) => assert!(m.contains("not page-aligned"), "{m}"),
            other => panic!("memory {mib}: {other:?}"),
        }
    }
}

/// Xen's libelf refuses an entry point outside the image (elf_xen_addr_calc_check).
#[test]
fn entry_outside_the_image_is_refused() {
    for entry in [VB - 0x1000, VB + 0x10_0000, 0] {
        let r = parse(&image::build(&Spec { entry, ..Spec::default() }));
        assert!(matches!(&r, Err(ElfError::Unsupported(m)) if m.contains("entry point")), "{entry:#x}: {r:?}");
    }
}

/// Overlapping PT_LOAD segments were accepted silently; sharing a page is fine.
#[test]
fn overlapping_segments_are_refused() {
    let r = parse(&image::build(&Spec { extra_load: Some((VB + 0x2000, 0x1000)), ..Spec::default() }));
    assert_eq!(r.unwrap_err(), ElfError::Overlap { a: (VB, VB + 0x5000), b: (VB + 0x2000, VB + 0x3000) });
    let msg = format!("{}", ElfError::Overlap { a: (VB, VB + 0x5000), b: (VB + 0x2000, VB + 0x3000) });
    assert!(msg.contains("overlap") && msg.contains("0xffffffff80002000"), "{msg}");
    // Adjacent, and in the same page but not the same bytes.
    assert!(parse(&image::build(&Spec { extra_load: Some((VB + 0x5000, 0x1000)), ..Spec::default() })).is_ok());
    assert!(parse(&image::build(&Spec { bss_pages: 0, extra_load: Some((VB + 0x4000, 0x10)), ..Spec::default() })).is_ok());
}

/// Parse errors are in our words, never the parser's ("bad offset 1234").
#[test]
fn parse_errors_say_what_is_wrong() {
    let good = image::kernel();
    for cut in [0usize, 3, 20, 63, 64, 100, 200] {
        let e = parse(&good[..cut]).unwrap_err();
        let m = format!("{e}");
        assert!(!m.contains("bad offset") && !m.contains("BadOffset"), "cut {cut}: {m}");
        assert!(m.starts_with("not an ELF file") || m.contains("segment") || m.contains("Xen"), "cut {cut}: {m}");
    }
    let mut bad = good.clone();
    bad[0x20..0x28].copy_from_slice(&0xffff_0000u64.to_le_bytes()); // e_phoff far past the end
    let m = format!("{}", parse(&bad).unwrap_err());
    assert!(m.contains("outside the file") || m.contains("too short") || m.contains("malformed"), "{m}");
}

#[test]
fn segments_are_placed_by_p_paddr_as_libelf_does() {
    // Linux's `.data..percpu` has p_vaddr 0 and a p_paddr inside the image: libelf places every
    // segment at p_paddr + VIRT_BASE - PADDR_OFFSET, so it lands after the text.
    let extra = VB + 0x8000;
    let bytes = image::build(&Spec { extra_load: Some((extra, 0x3000)), extra_vaddr_zero: true, ..Spec::default() });
    let img = parse(&bytes).expect("p_vaddr 0 is placed by p_paddr");
    assert_eq!(img.segments.len(), 2);
    assert_eq!(img.segments[1].vaddr, extra);
    assert_eq!((img.v_start, img.v_end), (VB, extra + 0x3000));
    // And the domain builds, with that segment mapped.
    let mut w = World::new();
    let d = w.try_create(crate::domain::DomainConfig::new("pc", "pc", Arc::from(bytes))).unwrap();
    assert!(w.walk(d, extra + 0x2000).is_some());
}

#[test]
fn feature_notes_are_parsed_as_libelf_does() {
    let img =
        parse(&image::build(&Spec { features: "!writable_page_tables|pae_pgdir_above_4gb|no_such_feature|!dom0", ..Spec::default() }))
            .unwrap();
    // xen-public/features.h: writable_page_tables 0, pae_pgdir_above_4gb 4, dom0 11.
    assert_eq!(img.f_supported, 1 << 0 | 1 << 4 | 1 << 11);
    assert_eq!(img.f_required, 1 << 0 | 1 << 11);
}

#[test]
fn the_boot_module_follows_the_kernel_and_start_info_names_it() {
    let module: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
    for pfn_note in [false, true] {
        let bytes = image::build(&Spec { mod_start_pfn: pfn_note, ..Spec::default() });
        let mut c = crate::domain::DomainConfig::new("m", "m", Arc::from(bytes));
        c.initrd = Some(Arc::from(module.clone()));
        let mut w = World::new();
        let d = w.try_create(c).unwrap();
        let si = w.start_info(d);
        assert_eq!(si.mod_len, module.len() as u64);
        // After the kernel's 5 pages (4 text + 1 bss), page-aligned.
        let va = VB + 5 * 4096;
        if pfn_note {
            assert_eq!((si.mod_start, si.flags & crate::abi::SIF_MOD_START_PFN), (5, crate::abi::SIF_MOD_START_PFN));
        } else {
            assert_eq!((si.mod_start, si.flags & crate::abi::SIF_MOD_START_PFN), (va, 0));
        }
        assert_eq!(w.read(d, va, module.len()), module);
        // The P2M list comes after it.
        assert_eq!(si.mfn_list, va + 3 * 4096);
    }
    // A module larger than the domain is a clear build error.
    let mut c = crate::domain::DomainConfig::new("big", "big", Arc::from(image::kernel()));
    c.memory_mib = 2;
    c.initrd = Some(Arc::from(vec![0u8; 3 << 20]));
    let mut w = World::new();
    assert!(w.try_create(c).unwrap_err().to_string().contains("too small"));
}

#[test]
fn paddr_offset_without_virt_base_is_refused() {
    // libelf's elf_xen_addr_calc_check: "ELF_PADDR_OFFSET set, VIRT_BASE unset" is an error.
    let mut bytes = image::kernel();
    // The VIRT_BASE note (type 3, 8-byte desc, name "Xen") becomes PADDR_OFFSET (type 4).
    let pat: Vec<u8> = [4u32.to_le_bytes(), 8u32.to_le_bytes(), 3u32.to_le_bytes()].concat();
    let at = bytes.windows(12).position(|w| w == pat.as_slice()).expect("VIRT_BASE note");
    bytes[at + 8] = 4;
    assert!(parse(&bytes).unwrap_err().to_string().contains("PADDR_OFFSET set but VIRT_BASE unset"));
}
