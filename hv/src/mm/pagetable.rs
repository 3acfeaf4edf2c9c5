//! Page-table validation: Xen's page-type rules, simplified.
//!
//! A frame becomes a page table of level N when it is pinned, installed as a base pointer, or
//! linked from a validated table of level N+1; at that moment all its entries are validated and
//! take references on what they point to. While typed, the guest can never map it writable, and it
//! changes only through `mmu_update`/`update_va_mapping`. When its last type reference goes, it is
//! ordinary memory again and its entries drop their references.

use super::frames::{FrameTable, Owner, PageType};
use super::paging::*;
use super::{MachineMemory, Mfn};
use crate::abi::{Errno, XEN_L4_FIRST, XEN_L4_LAST};
use crate::DomId;

/// Flags a guest may not set in an entry (bits 52..62 are available to software; keep them).
const FORBIDDEN_L1: u64 = PTE_PS; // PAT bit in L1 is the same bit; refuse it to keep things simple
/// Hypervisor slot entries for new L4 tables.
pub type XenSlots = [u64; XEN_L4_LAST - XEN_L4_FIRST + 1];

/// The state page-table operations need.
pub struct PtCtx<'a, 'm> {
    pub frames: &'a mut FrameTable,
    pub mem: &'a mut MachineMemory<'m>,
    pub dom: DomId,
    pub xen_slots: &'a XenSlots,
}

impl PtCtx<'_, '_> {
    /// A frame of this domain, or -EINVAL (Xen's get_page_from_mfn failing in
    /// get_page_and_type_from_mfn, for tables, pins and base pointers).
    fn owned(&self, mfn: Mfn) -> Result<(), Errno> {
        match self.frames.owner(mfn) {
            Some(Owner::Dom(d)) if d == self.dom => Ok(()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// What an L1 entry may map, with Xen's errnos (mm.c, get_page_from_l1e): a frame that does
    /// not exist is MMIO a domU may not map (-EPERM); a frame that is not the domain's cannot be
    /// pinned to it (-EBUSY, "could_not_pin").
    fn l1_target(&self, mfn: Mfn) -> Result<(), Errno> {
        match self.frames.owner(mfn) {
            None => Err(Errno::EPERM),
            Some(Owner::Dom(d)) if d == self.dom => Ok(()),
            Some(_) => Err(Errno::EBUSY),
        }
    }

    /// Take a type reference on `mfn` as a page table of `level`, validating it if needed.
    pub fn get_type(&mut self, mfn: Mfn, level: u8) -> Result<(), Errno> {
        self.owned(mfn)?;
        let f = *self.frames.get(mfn).ok_or(Errno::EINVAL)?;
        match f.ty {
            PageType::PageTable(l) if l == level => {
                self.frames.get_mut(mfn).ok_or(Errno::EINVAL)?.type_refs += 1;
                Ok(())
            }
            PageType::PageTable(_) | PageType::SegDesc => Err(Errno::EINVAL),
            PageType::None => {
                // Still mapped writable: the page-table type cannot be taken (Xen's
                // get_page_and_type_from_mfn: -EINVAL for pins, base pointers and links).
                if f.writable_refs != 0 {
                    return Err(Errno::EINVAL);
                }
                // Mark first so that a table referring to itself is caught as a type clash.
                {
                    let fm = self.frames.get_mut(mfn).ok_or(Errno::EINVAL)?;
                    fm.ty = PageType::PageTable(level);
                    fm.type_refs = 1;
                }
                for slot in 0..512 {
                    if level == 4 && (XEN_L4_FIRST..=XEN_L4_LAST).contains(&slot) {
                        continue;
                    }
                    let ea = mfn.maddr().add(slot as u64 * 8);
                    let e = self.mem.read_u64(ea).ok_or(Errno::EINVAL)?;
                    if e & PTE_P == 0 {
                        continue;
                    }
                    if let Err(err) = self.get_entry(level, e, mfn) {
                        for undo in 0..slot {
                            if level == 4 && (XEN_L4_FIRST..=XEN_L4_LAST).contains(&undo) {
                                continue;
                            }
                            let e = self.mem.read_u64(mfn.maddr().add(undo as u64 * 8)).unwrap_or(0);
                            if e & PTE_P != 0 {
                                self.put_entry(level, e, mfn);
                            }
                        }
                        let fm = self.frames.get_mut(mfn).ok_or(Errno::EINVAL)?;
                        fm.ty = PageType::None;
                        fm.type_refs = 0;
                        return Err(err);
                    }
                    // Xen forces _PAGE_USER on every guest entry of a 64-bit PV guest.
                    if e & PTE_US == 0 {
                        self.mem.write_u64(ea, e | PTE_US);
                    }
                }
                if level == 4 {
                    for (i, s) in self.xen_slots.iter().enumerate() {
                        self.mem.write_u64(mfn.maddr().add((XEN_L4_FIRST + i) as u64 * 8), *s);
                    }
                }
                Ok(())
            }
        }
    }

    /// Drop a type reference; devalidate when it was the last.
    pub fn put_type(&mut self, mfn: Mfn) {
        let Some(f) = self.frames.get_mut(mfn) else { return };
        let PageType::PageTable(level) = f.ty else { return };
        f.type_refs = f.type_refs.saturating_sub(1);
        if f.type_refs > 0 {
            return;
        }
        f.ty = PageType::None;
        f.pinned = false;
        for slot in 0..512 {
            if level == 4 && (XEN_L4_FIRST..=XEN_L4_LAST).contains(&slot) {
                self.mem.write_u64(mfn.maddr().add(slot as u64 * 8), 0);
                continue;
            }
            let e = self.mem.read_u64(mfn.maddr().add(slot as u64 * 8)).unwrap_or(0);
            if level == 1 && e & PTE_P != 0 && e & PTE_GNTTAB != 0 {
                // An implicit unmap of a grant entry (Xen crashes the domain that does this):
                // the entry goes, its grant handle keeps the references it took (so the
                // granted frame stays pinned until the handle is unmapped or the domain dies)
                // and the table is never revalidated with a grant entry in it.
                self.mem.write_u64(mfn.maddr().add(slot as u64 * 8), 0);
                continue;
            }
            if e & PTE_P != 0 {
                self.put_entry(level, e, mfn);
            }
        }
    }

    /// Validate one present entry of `table`, a table of `level`, and take its reference.
    ///
    /// Linear page tables, as Xen allows them by default for PV guests (mm.c,
    /// define_get_linear_pagetable): an L2, L3 or L4 entry may point at a validated table of
    /// its own level if it is read-only. Pointing at its own table takes no reference.
    pub fn get_entry(&mut self, level: u8, e: u64, table: Mfn) -> Result<(), Errno> {
        let target = pte_mfn(e);
        if level == 1 && e & PTE_GNTTAB != 0 {
            // Only the grant table makes grant entries (Xen's L1_DISALLOW_MASK).
            return Err(Errno::EINVAL);
        }
        if level == 1 {
            self.l1_target(target)?;
        } else {
            self.owned(target)?;
        }
        if level > 1 && e & PTE_PS == 0 {
            let f = *self.frames.get(target).ok_or(Errno::EINVAL)?;
            if f.ty == PageType::PageTable(level) {
                if e & PTE_RW != 0 {
                    return Err(Errno::EINVAL);
                }
                if target != table {
                    // XSA-240: a table either holds linear entries or is the target of some.
                    let src = self.frames.get(table).map(|t| t.linear).unwrap_or(0);
                    if f.type_refs == 0 || src < 0 || f.linear > 0 {
                        return Err(Errno::EINVAL);
                    }
                    let t = self.frames.get_mut(target).ok_or(Errno::EINVAL)?;
                    t.type_refs += 1;
                    t.linear -= 1;
                    if let Some(s) = self.frames.get_mut(table) {
                        s.linear += 1;
                    }
                }
                return Ok(());
            }
        }
        if level == 1 {
            if e & FORBIDDEN_L1 != 0 {
                return Err(Errno::EINVAL);
            }
            let f = self.frames.get_mut(target).ok_or(Errno::EINVAL)?;
            if e & PTE_RW != 0 {
                // A page table cannot take the writable type (could_not_pin: -EBUSY).
                if f.ty != PageType::None {
                    return Err(Errno::EBUSY);
                }
                f.writable_refs += 1;
            }
            f.map_refs = f.map_refs.saturating_add(1);
            Ok(())
        } else {
            if e & PTE_PS != 0 {
                return Err(Errno::EINVAL);
            }
            self.get_type(target, level - 1)
        }
    }

    /// Drop the reference a present entry of `table` held.
    pub fn put_entry(&mut self, level: u8, e: u64, table: Mfn) {
        let target = pte_mfn(e);
        if level > 1 && target == table {
            return; // a linear self-reference holds no reference
        }
        if level > 1 && self.frames.get(target).is_some_and(|f| f.ty == PageType::PageTable(level)) {
            // A linear entry (see get_entry): undo its XSA-240 counts, then its type reference.
            if let Some(t) = self.frames.get_mut(target) {
                t.linear += 1;
            }
            if let Some(s) = self.frames.get_mut(table) {
                s.linear -= 1;
            }
        }
        if level == 1 {
            if e & PTE_GNTTAB != 0 {
                // A grant entry's references belong to its grant handle (see `put_type`).
                return;
            }
            if let Some(f) = self.frames.get_mut(target) {
                if e & PTE_RW != 0 {
                    f.writable_refs = f.writable_refs.saturating_sub(1);
                }
                f.map_refs = f.map_refs.saturating_sub(1);
            }
        } else {
            self.put_type(target);
        }
    }

    /// Replace the entry at machine address `ptr` with `new` (an `mmu_update` normal request).
    pub fn update_entry(&mut self, ptr: super::Maddr, new: u64) -> Result<(), Errno> {
        self.update_entry_ad(ptr, new, false)
    }

    /// [`Self::update_entry`]; with `preserve_ad` (MMU_PT_UPDATE_PRESERVE_AD) the accessed and
    /// dirty bits of the old entry are ORed into the new one (Xen's mm.c `update_intpte`).
    pub fn update_entry_ad(&mut self, ptr: super::Maddr, new: u64, preserve_ad: bool) -> Result<(), Errno> {
        if ptr.0 & 7 != 0 {
            return Err(Errno::EINVAL);
        }
        let table = ptr.mfn();
        self.owned(table)?;
        let ty = self.frames.get(table).ok_or(Errno::EINVAL)?.ty;
        let old = self.mem.read_u64(ptr).ok_or(Errno::EINVAL)?;
        match ty {
            // Xen's do_mmu_update: any other type must take PGT_writable_page, which a
            // descriptor page cannot.
            PageType::SegDesc => Err(Errno::EINVAL),
            PageType::None => {
                // Not a page table: a plain write into guest memory (Xen allows this).
                self.mem.write_u64(ptr, new).ok_or(Errno::EINVAL)
            }
            PageType::PageTable(level) => {
                let slot = (ptr.offset() / 8) as usize;
                // mod_l4_entry: "Illegal L4 update attempt in Xen-private area" is -EINVAL.
                if level == 4 && (XEN_L4_FIRST..=XEN_L4_LAST).contains(&slot) {
                    return Err(Errno::EINVAL);
                }
                if level == 1 && old & PTE_P != 0 && old & PTE_GNTTAB != 0 {
                    // Only GNTTABOP_unmap_grant_ref removes a grant entry (Xen crashes a
                    // domain that overwrites one; xenolith refuses the update).
                    return Err(Errno::EPERM);
                }
                let new = if new & PTE_P != 0 { new | PTE_US } else { new };
                if new & PTE_P != 0 {
                    self.get_entry(level, new, table)?;
                }
                if old & PTE_P != 0 {
                    self.put_entry(level, old, table);
                }
                let new = if preserve_ad { new | (old & (PTE_A | PTE_D)) } else { new };
                self.mem.write_u64(ptr, new).ok_or(Errno::EINVAL)
            }
        }
    }

    /// Pin `mfn` as a table of `level`.
    pub fn pin(&mut self, mfn: Mfn, level: u8) -> Result<(), Errno> {
        self.owned(mfn)?;
        if self.frames.get(mfn).is_some_and(|f| f.pinned) {
            return Err(Errno::EINVAL);
        }
        self.get_type(mfn, level)?;
        if let Some(f) = self.frames.get_mut(mfn) {
            f.pinned = true;
        }
        Ok(())
    }

    /// Unpin `mfn`.
    pub fn unpin(&mut self, mfn: Mfn) -> Result<(), Errno> {
        self.owned(mfn)?;
        match self.frames.get_mut(mfn) {
            Some(f) if f.pinned => f.pinned = false,
            _ => return Err(Errno::EINVAL),
        }
        self.put_type(mfn);
        Ok(())
    }
}
