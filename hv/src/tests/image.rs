//! A tiny ELF64 writer for Xen PV64 test kernels.

use crate::abi::elfnote;

/// Where the kernel links.
pub const VB: u64 = 0xffff_ffff_8000_0000;
/// Entry point: the second text page (the first is the hypercall page).
pub const ENTRY: u64 = VB + 0x1000;
/// Bytes at the start of the entry page, to check the builder loaded the segment.
pub const MARKER: &[u8] = b"XENOLITH-TEST-KERNEL";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Notes {
    /// Xen notes in a PT_NOTE segment (and a `.note` section).
    Segment,
    /// Xen notes only in a `.note` section; no PT_NOTE.
    SectionOnly,
    /// No Xen notes at all (a GNU note instead).
    None,
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub machine: u16,
    pub notes: Notes,
    pub vaddr: u64,
    pub virt_base: u64,
    pub entry: u64,
    pub hypercall_page: Option<u64>,
    /// File-backed text pages.
    pub text_pages: u64,
    /// Extra zero-filled (bss) pages after the text.
    pub bss_pages: u64,
    /// Claim more file bytes than the file has.
    pub truncate: bool,
    /// A second PT_LOAD (zero-filled): (vaddr, memsz).
    pub extra_load: Option<(u64, u64)>,
    /// Write the second PT_LOAD's p_vaddr as 0 (its p_paddr stays that of its vaddr), as Linux's
    /// `.data..percpu` segment is.
    pub extra_vaddr_zero: bool,
    /// The FEATURES note.
    pub features: &'static str,
    /// A MOD_START_PFN note with value 1.
    pub mod_start_pfn: bool,
    /// An INIT_P2M note with this address.
    pub init_p2m: Option<u64>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            machine: 62,
            notes: Notes::Segment,
            vaddr: VB,
            virt_base: VB,
            entry: ENTRY,
            hypercall_page: Some(VB),
            text_pages: 4,
            bss_pages: 1,
            truncate: false,
            extra_load: None,
            extra_vaddr_zero: false,
            features: "!writable_page_tables|pae_pgdir_above_4gb",
            mod_start_pfn: false,
            init_p2m: None,
        }
    }
}

fn note(out: &mut Vec<u8>, name: &[u8], ty: u32, desc: &[u8]) {
    let namesz = name.len() as u32 + 1;
    out.extend_from_slice(&namesz.to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(name);
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(desc);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn xen_notes(s: &Spec) -> Vec<u8> {
    let mut n = Vec::new();
    if s.notes == Notes::None {
        note(&mut n, b"GNU", 3, &[0xab; 20]);
        return n;
    }
    note(&mut n, b"Xen", elfnote::GUEST_OS, b"xenolith-test\0");
    note(&mut n, b"Xen", elfnote::XEN_VERSION, b"xen-3.0\0");
    note(&mut n, b"Xen", elfnote::VIRT_BASE, &s.virt_base.to_le_bytes());
    note(&mut n, b"Xen", elfnote::ENTRY, &s.entry.to_le_bytes());
    if let Some(hp) = s.hypercall_page {
        note(&mut n, b"Xen", elfnote::HYPERCALL_PAGE, &hp.to_le_bytes());
    }
    note(&mut n, b"Xen", elfnote::LOADER, b"generic\0");
    let mut f = s.features.as_bytes().to_vec();
    f.push(0);
    note(&mut n, b"Xen", elfnote::FEATURES, &f);
    if s.mod_start_pfn {
        note(&mut n, b"Xen", elfnote::MOD_START_PFN, &1u32.to_le_bytes());
    }
    if let Some(p) = s.init_p2m {
        note(&mut n, b"Xen", elfnote::INIT_P2M, &p.to_le_bytes());
    }
    n
}

fn u16le(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u32le(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u64le(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

#[allow(clippy::too_many_arguments)]
fn phdr(v: &mut Vec<u8>, ty: u32, flags: u32, off: u64, (vaddr, paddr): (u64, u64), filesz: u64, memsz: u64, align: u64) {
    u32le(v, ty);
    u32le(v, flags);
    u64le(v, off);
    u64le(v, vaddr);
    u64le(v, paddr);
    u64le(v, filesz);
    u64le(v, memsz);
    u64le(v, align);
}

#[allow(clippy::too_many_arguments)]
fn shdr(v: &mut Vec<u8>, name: u32, ty: u32, flags: u64, addr: u64, off: u64, size: u64, align: u64) {
    u32le(v, name);
    u32le(v, ty);
    u64le(v, flags);
    u64le(v, addr);
    u64le(v, off);
    u64le(v, size);
    u32le(v, 0);
    u32le(v, 0);
    u64le(v, align);
    u64le(v, 0);
}

/// An ELF64 x86-64 executable: one PT_LOAD (R+X) at `vaddr`, optionally a PT_NOTE, and section
/// headers `.text`, `.note`, `.shstrtab`.
pub fn build(s: &Spec) -> Vec<u8> {
    let text_off = 0x1000u64;
    let text_len = s.text_pages * 0x1000;
    let mut text = vec![0x90u8; text_len as usize];
    let m = s.entry.wrapping_sub(s.vaddr) as usize;
    if m.saturating_add(MARKER.len()) <= text.len() {
        text[m..m + MARKER.len()].copy_from_slice(MARKER);
    }
    let notes = xen_notes(s);
    let notes_off = text_off + text_len;
    let shstr: &[u8] = b"\0.text\0.note\0.shstrtab\0";
    let shstr_off = notes_off + notes.len() as u64;
    let sh_off = (shstr_off + shstr.len() as u64).next_multiple_of(8);
    let with_pt_note = s.notes != Notes::SectionOnly;
    let phnum: u16 = 1 + with_pt_note as u16 + s.extra_load.is_some() as u16;

    let mut f = Vec::new();
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    u16le(&mut f, 2); // ET_EXEC
    u16le(&mut f, s.machine);
    u32le(&mut f, 1);
    u64le(&mut f, s.entry);
    u64le(&mut f, 64); // e_phoff
    u64le(&mut f, sh_off);
    u32le(&mut f, 0);
    u16le(&mut f, 64);
    u16le(&mut f, 56);
    u16le(&mut f, phnum);
    u16le(&mut f, 64);
    u16le(&mut f, 4);
    u16le(&mut f, 3);
    assert_eq!(f.len(), 64);
    let filesz = if s.truncate { text_len + 0x10_0000 } else { text_len };
    let memsz = (text_len + s.bss_pages * 0x1000).max(filesz);
    // p_paddr is the address relative to VIRT_BASE, as a linker script with AT() gives it (libelf
    // places segments at p_paddr + VIRT_BASE - PADDR_OFFSET; PADDR_OFFSET is 0 here).
    let pa = |va: u64| (va, va.wrapping_sub(s.virt_base));
    phdr(&mut f, 1, 5, text_off, pa(s.vaddr), filesz, memsz, 0x1000); // PT_LOAD R+X
    if with_pt_note {
        phdr(&mut f, 4, 4, notes_off, (0, 0), notes.len() as u64, notes.len() as u64, 4);
        // PT_NOTE
    }
    if let Some((vaddr, memsz)) = s.extra_load {
        let (va, p) = pa(vaddr);
        phdr(&mut f, 1, 6, 0, (if s.extra_vaddr_zero { 0 } else { va }, p), 0, memsz, 0x1000);
        // PT_LOAD RW, bss only
    }
    f.resize(text_off as usize, 0);
    f.extend_from_slice(&text);
    f.extend_from_slice(&notes);
    f.extend_from_slice(shstr);
    f.resize(sh_off as usize, 0);
    shdr(&mut f, 0, 0, 0, 0, 0, 0, 0);
    shdr(&mut f, 1, 1, 6, s.vaddr, text_off, text_len, 16); // .text PROGBITS AX
    shdr(&mut f, 7, 7, 2, 0, notes_off, notes.len() as u64, 4); // .note NOTE A
    shdr(&mut f, 13, 3, 0, 0, shstr_off, shstr.len() as u64, 1); // .shstrtab STRTAB
    f
}

/// The default test kernel.
pub fn kernel() -> Vec<u8> {
    build(&Spec::default())
}

/// A minimal ELF32 i386 header (no segments).
pub fn elf32() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    u16le(&mut f, 2);
    u16le(&mut f, 3); // EM_386
    u32le(&mut f, 1);
    u32le(&mut f, 0x100000);
    u32le(&mut f, 0); // phoff
    u32le(&mut f, 0); // shoff
    u32le(&mut f, 0);
    u16le(&mut f, 52);
    u16le(&mut f, 32);
    u16le(&mut f, 0);
    u16le(&mut f, 40);
    u16le(&mut f, 0);
    u16le(&mut f, 0);
    f
}
