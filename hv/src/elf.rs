//! Xen PV64 kernel images: ELF64 parsing (goblin, no_std) and the Xen ELF notes.
//!
//! Notes are read from PT_NOTE segments and, when there are none with name "Xen", from the
//! `.note`/`.note.Xen` sections, as Xen's libelf does.

use alloc::string::String;
use alloc::vec::Vec;
use goblin::elf::{program_header::*, Elf};

use crate::abi::elfnote;

/// A loadable segment.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Where the segment is loaded in the guest's virtual address space: its `p_paddr` plus
    /// `VIRT_BASE - PADDR_OFFSET`, as libelf places it (libelf-dominfo.c `elf_xen_addr_calc_check`,
    /// libelf-loader.c `elf_load_binary`). Linux's `.data..percpu` has `p_vaddr` 0 and is placed by
    /// its `p_paddr` like every other segment.
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub executable: bool,
}

/// What the domain builder needs from a kernel image.
#[derive(Clone, Debug, Default)]
pub struct KernelImage {
    pub entry: u64,
    pub virt_base: u64,
    pub hypercall_page: Option<u64>,
    pub features: String,
    pub guest_os: String,
    pub xen_version: String,
    pub loader: String,
    pub segments: Vec<Segment>,
    /// Lowest and highest (exclusive) virtual address of the loadable segments.
    pub v_start: u64,
    pub v_end: u64,
    /// The image carries a PHYS32_ENTRY (PVH) note.
    pub pvh_entry: Option<u64>,
    /// PADDR_OFFSET (default 0 with ELF notes, as libelf).
    pub paddr_offset: u64,
    /// INIT_P2M: where the guest wants its P2M list mapped (outside the initial mapping).
    pub init_p2m: Option<u64>,
    /// MOD_START_PFN: the guest accepts `start_info.mod_start` as a PFN (SIF_MOD_START_PFN).
    pub mod_start_pfn: bool,
    /// XENFEAT_* bits the kernel supports and requires (FEATURES and SUPPORTED_FEATURES notes;
    /// `!name` marks a required feature, as libelf's `elf_xen_parse_features`).
    pub f_supported: u32,
    pub f_required: u32,
}

/// Feature names of the FEATURES note, indexed by their XENFEAT_* bit (libelf-dominfo.c
/// `elf_xen_feature_names`; bit numbers from xen-public/features.h).
const FEATURE_NAMES: [(&str, u32); 7] = [
    ("writable_page_tables", 0),       // XENFEAT_writable_page_tables, xen-public/features.h
    ("writable_descriptor_tables", 1), // XENFEAT_writable_descriptor_tables
    ("auto_translated_physmap", 2),    // XENFEAT_auto_translated_physmap
    ("supervisor_mode_kernel", 3),     // XENFEAT_supervisor_mode_kernel
    ("pae_pgdir_above_4gb", 4),        // XENFEAT_pae_pgdir_above_4gb
    ("hvm_callback_vector", 8),        // XENFEAT_hvm_callback_vector
    ("dom0", 11),                      // XENFEAT_dom0
];

/// Parse a FEATURES note string into (supported, required) bitmaps; unknown names are ignored,
/// as libelf ignores them.
fn parse_features(s: &str) -> (u32, u32) {
    let (mut sup, mut req) = (0u32, 0u32);
    for f in s.split('|') {
        let (name, required) = match f.strip_prefix('!') {
            Some(n) => (n, true),
            None => (f, false),
        };
        if let Some(&(_, bit)) = FEATURE_NAMES.iter().find(|(n, _)| *n == name) {
            sup |= 1 << bit;
            if required {
                req |= 1 << bit;
            }
        }
    }
    (sup, req)
}

/// Why an image cannot be booted as a PV64 guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not a parseable ELF file (the reason in our words, not the parser's).
    Parse(String),
    /// Two PT_LOAD segments claim the same virtual bytes.
    Overlap { a: (u64, u64), b: (u64, u64) },
    /// Not a 64-bit x86 ELF.
    NotX86_64,
    /// No loadable segments.
    NoSegments,
    /// A segment's file range lies outside the file.
    Truncated,
    /// No "Xen" notes: not a Xen PV kernel.
    NoXenNotes,
    /// The image does not support 64-bit PV (e.g. PVH-only).
    Unsupported(String),
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Parse(e) => write!(f, "not an ELF file: {e}"),
            Self::Overlap { a, b } => write!(f, "PT_LOAD segments overlap: {:#x}..{:#x} and {:#x}..{:#x}", a.0, a.1, b.0, b.1),
            Self::NotX86_64 => write!(f, "not an x86_64 ELF64 image"),
            Self::NoSegments => write!(f, "no PT_LOAD segments"),
            Self::Truncated => write!(f, "a segment lies outside the file"),
            Self::NoXenNotes => write!(f, "no Xen ELF notes: not a Xen PV kernel"),
            Self::Unsupported(w) => write!(f, "unsupported kernel: {w}"),
        }
    }
}

fn note_u64(desc: &[u8]) -> Option<u64> {
    match desc.len() {
        8 => Some(u64::from_le_bytes(desc.try_into().ok()?)),
        4 => Some(u32::from_le_bytes(desc.try_into().ok()?) as u64),
        _ => None,
    }
}

fn note_str(desc: &[u8]) -> String {
    let end = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    String::from_utf8_lossy(&desc[..end]).into_owned()
}

/// Say why goblin refused the file, in words a user can act on (goblin's own are terse:
/// "bad offset 1234").
fn parse_error(bytes: &[u8], e: goblin::error::Error) -> ElfError {
    use goblin::error::Error as G;
    let len = bytes.len();
    ElfError::Parse(match e {
        _ if len < 4 || bytes[..4] != *b"\x7fELF" => "no ELF magic at the start of the file".into(),
        G::BadMagic(_) => "bad ELF magic".into(),
        G::BufferTooShort(n, what) => alloc::format!("the file ({len} bytes) is too short for {n} {what}"),
        G::Scroll(_) => alloc::format!("a header or table lies outside the file ({len} bytes)"),
        G::Malformed(m) => alloc::format!("malformed headers ({m})"),
        #[allow(unreachable_patterns)] // goblin's IO variant exists only with its `std` feature
        _ => "unreadable headers".into(),
    })
}

/// Parse a kernel image.
pub fn parse(bytes: &[u8]) -> Result<KernelImage, ElfError> {
    let elf = Elf::parse(bytes).map_err(|e| parse_error(bytes, e))?;
    if !elf.is_64 || elf.header.e_machine != goblin::elf::header::EM_X86_64 {
        return Err(ElfError::NotX86_64);
    }
    let mut img = KernelImage { entry: elf.entry, v_start: u64::MAX, ..Default::default() };
    for ph in elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0) {
        let end = ph.p_offset.checked_add(ph.p_filesz).ok_or(ElfError::Truncated)?;
        if end > bytes.len() as u64 || ph.p_filesz > ph.p_memsz {
            return Err(ElfError::Truncated);
        }
        // Placed below, once VIRT_BASE and PADDR_OFFSET are known: p_paddr for now.
        img.segments.push(Segment {
            vaddr: ph.p_paddr,
            memsz: ph.p_memsz,
            offset: ph.p_offset,
            filesz: ph.p_filesz,
            executable: ph.p_flags & PF_X != 0,
        });
    }
    if img.segments.is_empty() {
        return Err(ElfError::NoSegments);
    }

    let mut found = false;
    let (mut virt_base, mut paddr_offset) = (None::<u64>, None::<u64>);
    let mut handle = |n_type: u32, desc: &[u8]| match n_type {
        elfnote::ENTRY => img.entry = note_u64(desc).unwrap_or(img.entry),
        elfnote::HYPERCALL_PAGE => img.hypercall_page = note_u64(desc),
        elfnote::VIRT_BASE => virt_base = note_u64(desc),
        elfnote::PADDR_OFFSET => paddr_offset = note_u64(desc),
        elfnote::INIT_P2M => img.init_p2m = note_u64(desc),
        elfnote::MOD_START_PFN => img.mod_start_pfn = note_u64(desc).is_some_and(|v| v != 0),
        elfnote::SUPPORTED_FEATURES => img.f_supported |= note_u64(desc).unwrap_or(0) as u32,
        elfnote::FEATURES => img.features = note_str(desc),
        elfnote::GUEST_OS => img.guest_os = note_str(desc),
        elfnote::XEN_VERSION => img.xen_version = note_str(desc),
        elfnote::LOADER => img.loader = note_str(desc),
        elfnote::PHYS32_ENTRY => img.pvh_entry = note_u64(desc),
        _ => {}
    };
    let mut saw_entry_note = false;
    if let Some(notes) = elf.iter_note_headers(bytes) {
        // goblin's iterator repeats an error forever: stop at the first malformed note.
        for n in notes.map_while(Result::ok) {
            if n.name == "Xen" {
                saw_entry_note |= n.n_type == elfnote::ENTRY;
                found = true;
                handle(n.n_type, n.desc);
            }
        }
    }
    if !found {
        for sect in [".note", ".note.Xen"] {
            if let Some(notes) = elf.iter_note_sections(bytes, Some(sect)) {
                for n in notes.map_while(Result::ok) {
                    if n.name == "Xen" {
                        saw_entry_note |= n.n_type == elfnote::ENTRY;
                        found = true;
                        handle(n.n_type, n.desc);
                    }
                }
            }
        }
    }
    if !found {
        return Err(ElfError::NoXenNotes);
    }
    if !saw_entry_note && img.pvh_entry.is_some() && img.hypercall_page.is_none() {
        return Err(ElfError::Unsupported("PVH-only image (no PV entry point)".into()));
    }
    let (sup, req) = parse_features(&img.features);
    img.f_supported |= sup;
    img.f_required |= req;
    // Placement, as libelf's elf_xen_addr_calc_check: VIRT_BASE defaults to 0; PADDR_OFFSET, which
    // needs VIRT_BASE, defaults to 0 for a kernel with ELF notes (every kernel we accept).
    if paddr_offset.is_some() && virt_base.is_none() {
        return Err(ElfError::Unsupported("PADDR_OFFSET set but VIRT_BASE unset".into()));
    }
    img.virt_base = virt_base.unwrap_or(0);
    img.paddr_offset = paddr_offset.unwrap_or(0);
    if img.virt_base & 0xfff != 0 {
        return Err(ElfError::Unsupported(alloc::format!("VIRT_BASE {:#x} is not page-aligned", img.virt_base)));
    }
    let virt_offset = img.virt_base.wrapping_sub(img.paddr_offset);
    for s in img.segments.iter_mut() {
        let paddr = s.vaddr;
        let va = paddr.checked_add(virt_offset).filter(|va| va.checked_add(s.memsz).is_some());
        let Some(va) = va else {
            return Err(ElfError::Unsupported(alloc::format!(
                "segment at p_paddr {paddr:#x} (+{:#x} bytes) placed beyond the address space by VIRT_BASE {:#x} - PADDR_OFFSET {:#x}",
                s.memsz,
                img.virt_base,
                img.paddr_offset
            )));
        };
        s.vaddr = va;
        img.v_start = img.v_start.min(va);
        img.v_end = img.v_end.max(va + s.memsz);
    }
    // Segments may share a page, never a byte (libelf would load the later one over the
    // earlier, silently). Sorted, so that a hostile header count costs n log n, not n^2.
    let mut spans: Vec<(u64, u64)> = img.segments.iter().map(|s| (s.vaddr, s.vaddr + s.memsz)).collect();
    spans.sort_unstable();
    if let Some(w) = spans.windows(2).find(|w| w[1].0 < w[0].1) {
        return Err(ElfError::Overlap { a: w[0], b: w[1] });
    }
    // As libelf's elf_xen_addr_calc_check: the entry point must lie inside the image.
    if img.entry < img.v_start || img.entry >= img.v_end {
        return Err(ElfError::Unsupported(alloc::format!(
            "entry point {:#x} outside the loaded segments {:#x}..{:#x}",
            img.entry,
            img.v_start,
            img.v_end
        )));
    }
    if img.virt_base > img.v_start {
        return Err(ElfError::Unsupported(alloc::format!("VIRT_BASE {:#x} above the first segment {:#x}", img.virt_base, img.v_start)));
    }
    // As libelf: a P2M base inside the kernel image is refused.
    if let Some(p) = img.init_p2m {
        if (img.v_start..img.v_end).contains(&p) {
            return Err(ElfError::Unsupported(alloc::format!("INIT_P2M {p:#x} inside the kernel image")));
        }
    }
    Ok(img)
}
