//! Distinct types for machine and guest frame numbers and machine addresses.

use core::fmt;

/// Machine frame number: an index into machine memory, in pages.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Mfn(pub u64);

/// Guest pseudo-physical frame number (an index into the domain's P2M).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Pfn(pub u64);

/// Machine address (byte offset into machine memory).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Maddr(pub u64);

impl Mfn {
    /// Invalid M2P / P2M entry.
    pub const INVALID: Mfn = Mfn(!0);
    pub fn maddr(self) -> Maddr {
        Maddr(self.0 << super::PAGE_SHIFT)
    }
}

impl Maddr {
    pub fn mfn(self) -> Mfn {
        Mfn(self.0 >> super::PAGE_SHIFT)
    }
    pub fn offset(self) -> u64 {
        self.0 & (super::PAGE_SIZE - 1)
    }
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, n: u64) -> Maddr {
        Maddr(self.0.wrapping_add(n))
    }
}

impl fmt::Display for Mfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}
