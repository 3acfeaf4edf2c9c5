//! x86-64 4-level paging: entry flags and host-side walks of a guest's page tables.
//!
//! The core never asks the CPU (or unicorn) to translate a guest pointer: it walks the tables in
//! machine memory itself, so a bad guest pointer is an `EFAULT`, never a pending fault.

use super::{MachineMemory, Maddr, Mfn, PAGE_SIZE};
use crate::abi::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};

pub const PTE_P: u64 = 1 << 0;
pub const PTE_RW: u64 = 1 << 1;
pub const PTE_US: u64 = 1 << 2;
pub const PTE_PWT: u64 = 1 << 3;
pub const PTE_PCD: u64 = 1 << 4;
pub const PTE_A: u64 = 1 << 5;
pub const PTE_D: u64 = 1 << 6;
pub const PTE_PS: u64 = 1 << 7;
pub const PTE_G: u64 = 1 << 8;
pub const PTE_NX: u64 = 1 << 63;
/// Software bit 62: Xen's `_PAGE_GNTTAB` (flag bit 22, which `put_pte_flags` moves to PTE bit
/// 62): the entry was made by a grant map. Guests may not set it (`L1_DISALLOW_MASK`), and only
/// the grant table removes such an entry.
pub const PTE_GNTTAB: u64 = 1 << 62;
/// Physical address bits of an entry.
pub const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// The frame an entry points at.
pub fn pte_mfn(e: u64) -> Mfn {
    Mfn((e & PTE_ADDR) >> 12)
}

/// Index into the table of `level` (1..=4) for `va`.
pub fn table_index(va: u64, level: u8) -> usize {
    ((va >> (12 + 9 * (level as u32 - 1))) & 511) as usize
}

/// Is `va` canonical (bits 63..47 equal)?
pub fn is_canonical(va: u64) -> bool {
    let top = (va as i64) >> 47;
    top == 0 || top == -1
}

/// Is `va` inside the range reserved for the hypervisor?
pub fn in_xen_range(va: u64) -> bool {
    (HYPERVISOR_VIRT_START..HYPERVISOR_VIRT_END).contains(&va)
}

/// Why a walk failed (the bits of a #PF error code, where one would be raised).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkFault {
    /// The mapping was present at every level (a protection fault, not a missing page).
    pub present: bool,
}

/// Result of a successful walk.
#[derive(Clone, Copy, Debug)]
pub struct Walk {
    pub maddr: Maddr,
    pub writable: bool,
    pub user: bool,
    pub nx: bool,
    /// Machine address of the L1 entry that maps the page.
    pub l1e: Maddr,
}

/// Walk the 4-level tables rooted at `l4` for `va`. Does not check permissions.
pub fn walk(mem: &MachineMemory<'_>, l4: Mfn, va: u64) -> Result<Walk, WalkFault> {
    walk_with(|a| mem.read_u64(a), mem.frames(), l4, va)
}

/// [`walk`] over a read-only byte slice of machine memory.
pub fn walk_slice(mem: &[u8], l4: Mfn, va: u64) -> Result<Walk, WalkFault> {
    let read = |a: Maddr| {
        let i = usize::try_from(a.0).ok()?;
        Some(u64::from_le_bytes(mem.get(i..i.checked_add(8)?)?.try_into().ok()?))
    };
    walk_with(read, mem.len() as u64 / PAGE_SIZE, l4, va)
}

fn walk_with(read: impl Fn(Maddr) -> Option<u64>, frames: u64, l4: Mfn, va: u64) -> Result<Walk, WalkFault> {
    if !is_canonical(va) {
        return Err(WalkFault { present: false });
    }
    let mut table = l4;
    let (mut rw, mut us, mut nx) = (true, true, false);
    for level in (1..=4u8).rev() {
        let ea = table.maddr().add(table_index(va, level) as u64 * 8);
        let e = read(ea).ok_or(WalkFault { present: false })?;
        if e & PTE_P == 0 {
            return Err(WalkFault { present: false });
        }
        rw &= e & PTE_RW != 0;
        us &= e & PTE_US != 0;
        nx |= e & PTE_NX != 0;
        if level > 1 && e & PTE_PS != 0 {
            // Superpages are never validated for PV guests; the hypervisor's own don't use them.
            return Err(WalkFault { present: false });
        }
        if level == 1 {
            let maddr = pte_mfn(e).maddr().add(va & (PAGE_SIZE - 1));
            if maddr.0 >= frames * PAGE_SIZE {
                return Err(WalkFault { present: false });
            }
            return Ok(Walk { maddr, writable: rw, user: us, nx, l1e: ea });
        }
        table = pte_mfn(e);
    }
    unreachable!("the loop returns at level 1")
}

/// Find the machine address of the L1 entry for `va` (all upper levels must be present).
pub fn l1e_of(mem: &MachineMemory<'_>, l4: Mfn, va: u64) -> Option<Maddr> {
    let mut table = l4;
    for level in (2..=4u8).rev() {
        let e = mem.read_u64(table.maddr().add(table_index(va, level) as u64 * 8))?;
        if e & PTE_P == 0 || e & PTE_PS != 0 {
            return None;
        }
        table = pte_mfn(e);
    }
    Some(table.maddr().add(table_index(va, 1) as u64 * 8))
}
