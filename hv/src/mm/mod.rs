//! Machine memory: frame numbers, the frame table (owner and type of every machine frame), the
//! frame allocator, bounds-checked access to machine memory, and guest page-table walks.
//!
//! Owns: who may touch which machine frame. May not touch: vCPU register state or the platform.

pub mod frames;
pub mod memory;
pub mod pagetable;
pub mod paging;
pub mod types;

pub use frames::{FrameInfo, FrameTable, Owner, PageType};
pub use memory::MachineMemory;
pub use types::{Maddr, Mfn, Pfn};

/// Page size everywhere in xenolith.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;

/// A domain's memory accounting, as Xen keeps it in `struct domain`: `tot_pages` (frames
/// allocated to it and not yet freed), `max_pages` (the toolstack's limit, which allocations on
/// the domain's behalf may not exceed) and `arch.e820` (the pseudo-physical map the toolstack
/// set with XENMEM_set_memory_map; none for a domain xl builds, see `hypercall::memory`).
#[derive(Clone, Debug, Default)]
pub struct DomMem {
    pub tot_pages: u64,
    pub max_pages: u64,
    pub e820: Option<alloc::vec::Vec<crate::abi::E820Entry>>,
    /// Frames the domain gave back while something still referenced them: each is freed by the
    /// first reclaim (after the domain's next memory or page-table hypercall) that finds it
    /// unreferenced. Per domain, so that only the domain that made them pays for the scan.
    pub released: alloc::vec::Vec<Mfn>,
}
