//! The frame table: an owner, a type and reference counts for every machine frame, and the
//! machine-frame allocator.

use alloc::vec::Vec;

use super::Mfn;
use crate::DomId;

/// Who owns a machine frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    Free,
    /// The hypervisor (M2P, its own tables, platform pages).
    Xen,
    Dom(DomId),
}

/// What a frame is used as. Page-table frames may never be mapped writable by a guest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PageType {
    /// Ordinary memory: may be mapped writable.
    None,
    /// A validated page table of this level (1..=4).
    PageTable(u8),
    /// A validated GDT/LDT frame (Xen's PGT_seg_desc_page): 512 descriptors that passed
    /// `check_descriptor`; never mapped writable, changed only by update_descriptor
    /// (see `crate::desc`).
    SegDesc,
}

/// Per-frame bookkeeping.
#[derive(Clone, Copy, Debug)]
pub struct FrameInfo {
    pub owner: Owner,
    pub ty: PageType,
    /// References holding the type: entries of validated higher-level tables, pins, base pointers.
    pub type_refs: u32,
    /// Writable mappings of this frame from validated L1 tables.
    pub writable_refs: u32,
    /// Every mapping of this frame, read-only or writable, from validated L1 tables, plus the
    /// references grant maps take (Xen's general page references held by mappings): a frame the
    /// hypervisor wants to take back (a v2 grant status frame) is busy while this is non-zero.
    pub map_refs: u32,
    pub pinned: bool,
    /// May hold old data: it must be scrubbed before a new owner sees it. Machine memory starts
    /// zeroed, so frames are clean until their first owner gives them back.
    pub dirty: bool,
    /// The pseudo-physical frame the builder gave this frame in its domain ([`NO_PFN`] if
    /// none): how traces name it. Unlike the M2P, the guest cannot rewrite it.
    pub pfn: u32,
    /// Linear page-table use (Xen's linear_pt_count, XSA-240): > 0, this table holds that many
    /// linear entries; < 0, that many linear entries point at it. Never both, so a chain of
    /// linear tables is one link long and devalidation cannot recurse without bound.
    pub linear: i32,
    /// Xen's `PGC_allocated` cleared: the domain gave the frame back (decrease_reservation,
    /// xen/common/memory.c guest_remove_page) while something still referenced it. It stays the
    /// domain's until its last reference goes, then it is freed (`DomMem::released`).
    pub released: bool,
}

/// `FrameInfo::pfn` of a frame that is not part of a domain's pseudo-physical memory.
pub const NO_PFN: u32 = u32::MAX;

impl FrameInfo {
    const FREE: FrameInfo = FrameInfo {
        owner: Owner::Free,
        ty: PageType::None,
        type_refs: 0,
        writable_refs: 0,
        map_refs: 0,
        pinned: false,
        dirty: false,
        pfn: NO_PFN,
        linear: 0,
        released: false,
    };

    fn take(&mut self, owner: Owner) {
        *self = FrameInfo { owner, dirty: self.dirty, ..FrameInfo::FREE };
    }

    fn release(&mut self) {
        *self = FrameInfo { dirty: true, ..FrameInfo::FREE };
    }
}

/// All machine frames.
pub struct FrameTable {
    frames: Vec<FrameInfo>,
    free: u64,
    /// No frame below this index is free (allocation scans start here).
    hint: usize,
}

impl FrameTable {
    /// A table for `n` frames, all free. Frames below `reserved` are owned by Xen.
    pub fn new(n: u64, reserved: u64) -> Self {
        let mut frames = alloc::vec![FrameInfo::FREE; n as usize];
        for f in frames.iter_mut().take(reserved as usize) {
            f.owner = Owner::Xen;
        }
        Self { frames, free: n.saturating_sub(reserved), hint: reserved as usize }
    }

    pub fn len(&self) -> u64 {
        self.frames.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn free_frames(&self) -> u64 {
        self.free
    }

    pub fn get(&self, mfn: Mfn) -> Option<&FrameInfo> {
        self.frames.get(usize::try_from(mfn.0).ok()?)
    }

    pub fn get_mut(&mut self, mfn: Mfn) -> Option<&mut FrameInfo> {
        self.frames.get_mut(usize::try_from(mfn.0).ok()?)
    }

    pub fn owner(&self, mfn: Mfn) -> Option<Owner> {
        self.get(mfn).map(|f| f.owner)
    }

    /// Allocate `n` contiguous frames for `owner` (first fit, lowest address: deterministic).
    pub fn alloc_contig(&mut self, n: u64, owner: Owner) -> Option<Mfn> {
        if n == 0 || n > self.free {
            return None;
        }
        let mut run = 0u64;
        for i in self.hint..self.frames.len() {
            if self.frames[i].owner == Owner::Free {
                run += 1;
                if run == n {
                    let start = i as u64 + 1 - n;
                    for f in &mut self.frames[start as usize..=i] {
                        f.take(owner);
                    }
                    self.free -= n;
                    if start as usize == self.hint {
                        self.hint = i + 1;
                    }
                    return Some(Mfn(start));
                }
            } else {
                run = 0;
            }
        }
        None
    }

    /// Allocate `n` frames, not necessarily contiguous (lowest first).
    pub fn alloc_many(&mut self, n: u64, owner: Owner) -> Option<Vec<Mfn>> {
        if n > self.free {
            return None;
        }
        let mut out = Vec::with_capacity(n as usize);
        for (i, f) in self.frames.iter_mut().enumerate().skip(self.hint) {
            if out.len() as u64 == n {
                break;
            }
            if f.owner == Owner::Free {
                f.take(owner);
                out.push(Mfn(i as u64));
            }
        }
        self.free -= n;
        self.hint = self.frames.iter().position(|f| f.owner == Owner::Free).unwrap_or(self.frames.len());
        Some(out)
    }

    /// Allocate `2^order` contiguous frames aligned to their size (Xen's buddy allocator hands out
    /// naturally aligned extents), all below machine frame `limit`. Lowest address first.
    pub fn alloc_aligned(&mut self, order: u32, limit: u64, owner: Owner) -> Option<Mfn> {
        let n = 1u64.checked_shl(order)?;
        if n > self.free {
            return None;
        }
        let end = limit.min(self.frames.len() as u64);
        let mut start = (self.hint as u64).div_ceil(n) * n;
        while start.checked_add(n)? <= end {
            let run = &self.frames[start as usize..(start + n) as usize];
            match run.iter().rposition(|f| f.owner != Owner::Free) {
                None => {
                    for f in &mut self.frames[start as usize..(start + n) as usize] {
                        f.take(owner);
                    }
                    self.free -= n;
                    if start as usize == self.hint {
                        self.hint = self.frames.iter().position(|f| f.owner == Owner::Free).unwrap_or(self.frames.len());
                    }
                    return Some(Mfn(start));
                }
                // Skip past the busy frame, to the next aligned start.
                Some(i) => start = (start + i as u64 + 1).div_ceil(n) * n,
            }
        }
        None
    }

    /// Does anything still reference this frame (Xen's count_info above the allocation
    /// reference): a mapping, a type (page table, pin, base pointer) or a writable use by the
    /// hypervisor itself (rings, vcpu_info)?
    pub fn referenced(&self, mfn: Mfn) -> bool {
        self.get(mfn).is_some_and(|f| f.type_refs != 0 || f.writable_refs != 0 || f.map_refs != 0 || f.pinned || f.ty != PageType::None)
    }

    /// Return one frame to the free pool.
    pub fn free(&mut self, mfn: Mfn) {
        if let Some(f) = self.get_mut(mfn) {
            if f.owner != Owner::Free {
                f.release();
                self.free += 1;
                self.hint = self.hint.min(mfn.0 as usize);
            }
        }
    }

    /// Free every frame a domain owns; returns how many.
    pub fn free_domain(&mut self, dom: DomId) -> u64 {
        let mut n = 0;
        for (i, f) in self.frames.iter_mut().enumerate() {
            if f.owner == Owner::Dom(dom) {
                f.release();
                n += 1;
                self.hint = self.hint.min(i);
            }
        }
        self.free += n;
        n
    }

    /// Mark a frame as scrubbed (all zero).
    pub fn set_clean(&mut self, mfn: Mfn) {
        if let Some(f) = self.get_mut(mfn) {
            f.dirty = false;
        }
    }

    /// Frames a domain owns, in machine order.
    pub fn domain_frames(&self, dom: DomId) -> impl Iterator<Item = Mfn> + '_ {
        self.frames.iter().enumerate().filter(move |(_, f)| f.owner == Owner::Dom(dom)).map(|(i, _)| Mfn(i as u64))
    }
}
