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
