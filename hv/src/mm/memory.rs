//! Bounds-checked access to machine memory, which the platform lends to the core as a byte slice
//! indexed by machine address. Nothing here can panic on a bad address: it returns `None`.

use super::{Maddr, Mfn, PAGE_SIZE};

/// A view of machine memory.
pub struct MachineMemory<'a> {
    bytes: &'a mut [u8],
}

impl<'a> MachineMemory<'a> {
    pub fn new(bytes: &'a mut [u8]) -> Self {
        Self { bytes }
    }

    /// Number of machine frames.
    pub fn frames(&self) -> u64 {
        self.bytes.len() as u64 / PAGE_SIZE
    }

    fn range(&self, a: Maddr, len: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(a.0).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.bytes.len()).then_some(start..end)
    }

    pub fn read(&self, a: Maddr, out: &mut [u8]) -> Option<()> {
        let r = self.range(a, out.len())?;
        out.copy_from_slice(&self.bytes[r]);
        Some(())
    }

    pub fn write(&mut self, a: Maddr, data: &[u8]) -> Option<()> {
        let r = self.range(a, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Some(())
    }

    pub fn slice(&self, a: Maddr, len: usize) -> Option<&[u8]> {
        let r = self.range(a, len)?;
        Some(&self.bytes[r])
    }

    pub fn slice_mut(&mut self, a: Maddr, len: usize) -> Option<&mut [u8]> {
        let r = self.range(a, len)?;
        Some(&mut self.bytes[r])
    }

    pub fn read_u64(&self, a: Maddr) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(a, &mut b)?;
        Some(u64::from_le_bytes(b))
    }

    pub fn write_u64(&mut self, a: Maddr, v: u64) -> Option<()> {
        self.write(a, &v.to_le_bytes())
    }

    pub fn read_u32(&self, a: Maddr) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(a, &mut b)?;
        Some(u32::from_le_bytes(b))
    }

    pub fn write_u32(&mut self, a: Maddr, v: u32) -> Option<()> {
        self.write(a, &v.to_le_bytes())
    }

    pub fn read_u8(&self, a: Maddr) -> Option<u8> {
        let r = self.range(a, 1)?;
        Some(self.bytes[r.start])
    }

    pub fn write_u8(&mut self, a: Maddr, v: u8) -> Option<()> {
        self.write(a, &[v])
    }

    /// Zero a whole frame.
    pub fn zero_frame(&mut self, mfn: Mfn) -> Option<()> {
        self.slice_mut(mfn.maddr(), PAGE_SIZE as usize)?.fill(0);
        Some(())
    }

    /// Read a plain-old-data structure.
    pub fn read_pod<T: Pod>(&self, a: Maddr) -> Option<T> {
        let mut v = T::zeroed();
        self.read(a, v.as_bytes_mut())?;
        Some(v)
    }

    /// Write a plain-old-data structure.
    pub fn write_pod<T: Pod>(&mut self, a: Maddr, v: &T) -> Option<()> {
        self.write(a, v.as_bytes())
    }
}

/// Types that are valid for any bit pattern and have no padding that matters: the ABI structs.
///
/// # Safety
/// Implementors must be `repr(C)` (or packed), contain only integers and arrays of integers, and
/// be valid for every bit pattern.
pub unsafe trait Pod: Copy {
    fn zeroed() -> Self {
        // SAFETY: `Pod` types are valid for the all-zero bit pattern.
        unsafe { core::mem::zeroed() }
    }
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Pod` types are plain integers; viewing their bytes is always valid.
        unsafe { core::slice::from_raw_parts(self as *const Self as *const u8, core::mem::size_of::<Self>()) }
    }
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: every bit pattern is a valid `Self`, so writing arbitrary bytes is sound.
        unsafe { core::slice::from_raw_parts_mut(self as *mut Self as *mut u8, core::mem::size_of::<Self>()) }
    }
}

macro_rules! pod {
    ($($t:ty),*) => { $(
        // SAFETY: repr(C) ABI struct made only of integers (checked by the layout asserts).
        unsafe impl Pod for $t {}
    )* };
}
use crate::abi::*;
pod!(
    StartInfo,
    VcpuInfo,
    TrapInfo,
    MmuUpdate,
    MmuextOp,
    MulticallEntry,
    IretContext,
    CallbackRegister,
    SchedShutdown,
    EvtchnStatus,
    E820Entry,
    MemoryMap,
    RegisterVcpuInfo,
    FeatureInfo,
    CallbackUnregister,
    SchedPoll,
    SchedRemoteShutdown,
    VcpuSetSingleshotTimer,
    VcpuSetPeriodicTimer,
    EvtchnAllocUnbound,
    EvtchnBindInterdomain,
    EvtchnBindVirq,
    EvtchnBindIpi,
    EvtchnBindVcpu,
    EvtchnPort,
    EvtchnReset,
    EvtchnInitControl,
    EvtchnExpandArray,
    EvtchnSetPriority,
    EvtchnFifoControlBlock,
    XsdSockmsg,
    GrantEntryV1,
    GrantEntryV2,
    GnttabMapGrantRef,
    GnttabUnmapGrantRef,
    GnttabUnmapAndReplace,
    GnttabSetupTable,
    GnttabCopyPtr,
    GnttabCopy,
    GnttabQuerySize,
    GnttabGetStatusFrames,
    GnttabGetVersion,
    GnttabCacheFlush,
    VcpuRunstateInfo,
    CpuUserRegs,
    VcpuGuestContext,
    u64,
    u32,
    u16,
    u8,
    i16
);
pod!(
    MemoryReservation,
    MemoryExchange,
    MachphysMfnList,
    MachphysMapping,
    AddToPhysmap,
    AddToPhysmapBatch,
    RemoveFromPhysmap,
    ForeignMemoryMap,
    PodTarget,
    VnumaTopologyInfo,
    ReservedDeviceMemoryMap,
    MemAcquireResource,
    MemAccessOp,
    DomctlHead,
    SysctlHead,
    PlatformOpHead,
    NmiCallback,
    HvmParam,
    EvtchnOpCompat,
    PhysdevOpCompat
);
