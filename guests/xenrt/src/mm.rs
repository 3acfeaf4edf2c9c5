//! Address translation and page remapping.
//!
//! The builder maps pseudo-physical frame `pfn` at `VIRT_BASE + pfn * 4096` (the whole bootstrap
//! area); `start_info.mfn_list` is the P2M (pfn → mfn) and the read-only M2P (mfn → pfn) is at
//! [`M2P_VA`]. [`Page`] is a page-aligned 4 KiB .bss buffer whose mapping may be replaced with
//! `update_va_mapping` (e.g. to map shared_info).

use crate::abi::*;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
pub const M2P_VA: u64 = 0xffff_8000_0000_0000;
pub const PAGE_SIZE: u64 = 4096;

/// mfn → pfn from the hypervisor's read-only M2P table.
pub fn m2p(mfn: u64) -> u64 {
    // SAFETY: the hypervisor maps the M2P read-only at M2P_VA with one u64 per machine frame.
    unsafe { core::ptr::read_volatile((M2P_VA as *const u64).add(mfn as usize)) }
}

/// pfn → mfn from the P2M list (`start_info.mfn_list`); `pfn` must be < nr_pages.
pub fn p2m(pfn: u64) -> u64 {
    let si = crate::start_info();
    assert!(pfn < si.nr_pages, "pfn out of range");
    // SAFETY: mfn_list is the builder-provided array of nr_pages u64 entries; bounds checked.
    unsafe { core::ptr::read_volatile((si.mfn_list as *const u64).add(pfn as usize)) }
}

/// The P2M as a slice.
pub fn mfn_list() -> &'static [u64] {
    let si = crate::start_info();
    // SAFETY: the builder maps nr_pages u64 entries at mfn_list and never changes them for us.
    unsafe { core::slice::from_raw_parts(si.mfn_list as *const u64, si.nr_pages as usize) }
}

/// Pseudo-physical frame of a kernel-area virtual address.
pub fn va_to_pfn(va: u64) -> u64 {
    (va - VIRT_BASE) / PAGE_SIZE
}

/// Machine frame backing a kernel-area virtual address (per the P2M).
pub fn va_to_mfn(va: u64) -> u64 {
    p2m(va_to_pfn(va))
}

pub fn pfn_to_va(pfn: u64) -> u64 {
    VIRT_BASE + pfn * PAGE_SIZE
}

/// VA of machine frame `mfn` in the initial mapping (via the M2P).
pub fn mfn_to_va(mfn: u64) -> u64 {
    pfn_to_va(m2p(mfn))
}

/// A page-aligned, page-sized buffer (lives in .bss when declared as a zeroed static).
#[repr(C, align(4096))]
pub struct Page(UnsafeCell<[u8; 4096]>);

// SAFETY: xenrt guests are single-threaded; the page is only accessed through raw pointers.
unsafe impl Sync for Page {}

impl Page {
    pub const fn new() -> Self {
        Page(UnsafeCell::new([0; 4096]))
    }
    pub fn va(&self) -> u64 {
        self.0.get() as u64
    }
    /// Machine frame currently backing this page in the initial mapping.
    pub fn mfn(&self) -> u64 {
        va_to_mfn(self.va())
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::new()
    }
}

static SHARED_INFO_PAGE: Page = Page::new();
static SHARED_INFO: AtomicUsize = AtomicUsize::new(0);

/// Maps shared_info (a machine address in start_info) over a .bss page; idempotent.
/// Returns the update_va_mapping result (0 on success).
pub fn map_shared_info() -> i64 {
    if SHARED_INFO.load(Ordering::Acquire) != 0 {
        return 0;
    }
    let si = crate::start_info();
    let va = SHARED_INFO_PAGE.va();
    let pte = (si.shared_info & !0xfff) | PTE_P | PTE_RW | PTE_U;
    // SAFETY: the page is reserved for shared_info and nothing else refers to its contents.
    let rc = unsafe { crate::hypercall::update_va_mapping(va, pte, UVMF_INVLPG) };
    if rc == 0 {
        SHARED_INFO.store(va as usize, Ordering::Release);
    }
    rc
}

/// shared_info, if mapped.
pub fn shared_info() -> Option<*mut SharedInfo> {
    let p = SHARED_INFO.load(Ordering::Acquire);
    (p != 0).then_some(p as *mut SharedInfo)
}

/// `vcpu_info[0].arch.cr2`: the faulting address of the last #PF (0 if shared_info is unmapped).
pub fn vcpu0_cr2() -> u64 {
    match shared_info() {
        // SAFETY: shared_info is mapped; the hypervisor writes cr2, so read it volatile.
        Some(p) => unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*p).vcpu_info[0].cr2)) },
        None => 0,
    }
}
