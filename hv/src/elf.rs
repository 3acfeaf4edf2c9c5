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
            Self::Overlap { a, b } => write!(
                f,
                "PT_LOAD segments overlap: {:#x}..{:#x} and {:#x}..{:#x}",
                a.0, a.1, b.0, b.1
            ),
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
        let vend = ph.p_vaddr.checked_add(ph.p_memsz).ok_or(ElfError::Truncated)?;
        img.v_start = img.v_start.min(ph.p_vaddr);
        img.v_end = img.v_end.max(vend);
        img.segments.push(Segment {
            vaddr: ph.p_vaddr,
            memsz: ph.p_memsz,
            offset: ph.p_offset,
            filesz: ph.p_filesz,
            executable: ph.p_flags & PF_X != 0,
        });
    }
    if img.segments.is_empty() {
        return Err(ElfError::NoSegments);
    }
    // Segments may share a page, never a byte (libelf would load the later one over the
    // earlier, silently). Sorted, so that a hostile header count costs n log n, not n^2.
    let mut spans: Vec<(u64, u64)> = img.segments.iter().map(|s| (s.vaddr, s.vaddr + s.memsz)).collect();
    spans.sort_unstable();
    if let Some(w) = spans.windows(2).find(|w| w[1].0 < w[0].1) {
        return Err(ElfError::Overlap { a: w[0], b: w[1] });
    }

    let mut found = false;
    let mut handle = |n_type: u32, desc: &[u8]| {
        match n_type {
            elfnote::ENTRY => img.entry = note_u64(desc).unwrap_or(img.entry),
            elfnote::HYPERCALL_PAGE => img.hypercall_page = note_u64(desc),
            elfnote::VIRT_BASE => img.virt_base = note_u64(desc).unwrap_or(0),
            elfnote::FEATURES => img.features = note_str(desc),
            elfnote::GUEST_OS => img.guest_os = note_str(desc),
            elfnote::XEN_VERSION => img.xen_version = note_str(desc),
            elfnote::LOADER => img.loader = note_str(desc),
            elfnote::PHYS32_ENTRY => img.pvh_entry = note_u64(desc),
            _ => {}
        }
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
    if img.virt_base & 0xfff != 0 {
        return Err(ElfError::Unsupported(alloc::format!("VIRT_BASE {:#x} is not page-aligned", img.virt_base)));
    }
    // As libelf's elf_xen_addr_calc_check: the entry point must lie inside the image.
    if img.entry < img.v_start || img.entry >= img.v_end {
        return Err(ElfError::Unsupported(alloc::format!(
            "entry point {:#x} outside the loaded segments {:#x}..{:#x}",
            img.entry, img.v_start, img.v_end
        )));
    }
    if img.virt_base > img.v_start {
        return Err(ElfError::Unsupported(alloc::format!(
            "VIRT_BASE {:#x} above the first segment {:#x}",
            img.virt_base, img.v_start
        )));
    }
    Ok(img)
}
