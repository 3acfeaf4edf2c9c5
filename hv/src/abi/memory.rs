//! `memory_op` structures and flags (xen-public/memory.h), with compile-time layout checks.

use core::mem::{offset_of, size_of};

macro_rules! layout {
    ($t:ty, size = $s:expr $(, $f:ident @ $o:expr)* $(,)?) => {
        const _: () = assert!(size_of::<$t>() == $s);
        $( const _: () = assert!(offset_of!($t, $f) == $o); )*
    };
}

/// `xen_memory_reservation` {extent_start, nr_extents, extent_order, mem_flags, domid}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MemoryReservation {
    pub extent_start: u64,
    pub nr_extents: u64,
    pub extent_order: u32,
    pub mem_flags: u32,
    pub domid: u16,
    pub _pad: [u16; 3],
}
layout!(MemoryReservation, size = 32, extent_start @ 0, nr_extents @ 8, extent_order @ 16, mem_flags @ 20, domid @ 24);

/// `xen_memory_exchange` {in, out, nr_exchanged}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MemoryExchange {
    pub input: MemoryReservation,
    pub output: MemoryReservation,
    pub nr_exchanged: u64,
}
layout!(MemoryExchange, size = 72, input @ 0, output @ 32, nr_exchanged @ 64);

/// `xen_machphys_mfn_list` {max_extents, extent_start, nr_extents}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MachphysMfnList {
    pub max_extents: u32,
    pub _pad: u32,
    pub extent_start: u64,
    pub nr_extents: u32,
    pub _pad2: u32,
}
layout!(MachphysMfnList, size = 24, max_extents @ 0, extent_start @ 8, nr_extents @ 16);

/// `xen_machphys_mapping` {v_start, v_end, max_mfn}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MachphysMapping {
    pub v_start: u64,
    pub v_end: u64,
    pub max_mfn: u64,
}
layout!(MachphysMapping, size = 24, v_start @ 0, v_end @ 8, max_mfn @ 16);

/// `xen_add_to_physmap` {domid, size, space, idx, gpfn}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct AddToPhysmap {
    pub domid: u16,
    pub size: u16,
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}
layout!(AddToPhysmap, size = 24, domid @ 0, size @ 2, space @ 4, idx @ 8, gpfn @ 16);

/// `xen_add_to_physmap_batch` {domid, space, size, u (foreign_domid or res0), idxs, gpfns, errs}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct AddToPhysmapBatch {
    pub domid: u16,
    pub space: u16,
    pub size: u16,
    pub u: u16,
    pub idxs: u64,
    pub gpfns: u64,
    pub errs: u64,
}
layout!(AddToPhysmapBatch, size = 32, domid @ 0, space @ 2, size @ 4, u @ 6, idxs @ 8, gpfns @ 16, errs @ 24);

/// `xen_remove_from_physmap` {domid, gpfn}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct RemoveFromPhysmap {
    pub domid: u16,
    pub _pad: [u16; 3],
    pub gpfn: u64,
}
layout!(RemoveFromPhysmap, size = 16, domid @ 0, gpfn @ 8);

/// `xen_foreign_memory_map` {domid, map}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct ForeignMemoryMap {
    pub domid: u16,
    pub _pad: [u16; 3],
    pub map: super::MemoryMap,
}
layout!(ForeignMemoryMap, size = 24, domid @ 0, map @ 8);

/// `xen_pod_target` {target_pages, tot_pages, pod_cache_pages, pod_entries, domid}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct PodTarget {
    pub target_pages: u64,
    pub tot_pages: u64,
    pub pod_cache_pages: u64,
    pub pod_entries: u64,
    pub domid: u16,
    pub _pad: [u16; 3],
}
layout!(PodTarget, size = 40, target_pages @ 0, tot_pages @ 8, pod_cache_pages @ 16, pod_entries @ 24, domid @ 32);

/// `xen_vnuma_topology_info` {domid, pad, nr_vnodes, nr_vcpus, nr_vmemranges, handles}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct VnumaTopologyInfo {
    pub domid: u16,
    pub pad: u16,
    pub nr_vnodes: u32,
    pub nr_vcpus: u32,
    pub nr_vmemranges: u32,
    pub vdistance: u64,
    pub vcpu_to_vnode: u64,
    pub vmemrange: u64,
}
layout!(VnumaTopologyInfo, size = 40, domid @ 0, pad @ 2, nr_vnodes @ 4, nr_vcpus @ 8, nr_vmemranges @ 12,
    vdistance @ 16, vcpu_to_vnode @ 24, vmemrange @ 32);

/// `xen_reserved_device_memory_map` {flags, nr_entries, buffer, dev}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct ReservedDeviceMemoryMap {
    pub flags: u32,
    pub nr_entries: u32,
    pub buffer: u64,
    pub dev: u32,
    pub _pad: u32,
}
layout!(ReservedDeviceMemoryMap, size = 24, flags @ 0, nr_entries @ 4, buffer @ 8, dev @ 16);

/// `xen_mem_acquire_resource` {domid, type, id, nr_frames, pad, frame, frame_list}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MemAcquireResource {
    pub domid: u16,
    pub ty: u16,
    pub id: u32,
    pub nr_frames: u32,
    pub pad: u32,
    pub frame: u64,
    pub frame_list: u64,
}
layout!(MemAcquireResource, size = 32, domid @ 0, ty @ 2, id @ 4, nr_frames @ 8, pad @ 12, frame @ 16, frame_list @ 24);

/// `xen_mem_access_op` {op, access, domid, nr, pfn, pfn_list, access_list}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MemAccessOp {
    pub op: u8,
    pub access: u8,
    pub domid: u16,
    pub nr: u32,
    pub pfn: u64,
    pub pfn_list: u64,
    pub access_list: u64,
}
layout!(MemAccessOp, size = 32, op @ 0, access @ 1, domid @ 2, nr @ 4, pfn @ 8, pfn_list @ 16, access_list @ 24);

/// `XENMEMF_*`: `mem_flags` of a reservation.
pub mod memf {
    /// `XENMEMF_get_address_bits(x)` is `x & 0xff`.
    pub const ADDRESS_BITS_MASK: u32 = 0xff; // xen-public/memory.h XENMEMF_get_address_bits
    /// `XENMEMF_get_node(x)` is `((x >> 8) - 1) & 0xff`; 0xff (field 0) is "no node".
    pub const NODE_SHIFT: u32 = 8; // xen-public/memory.h XENMEMF_node
    pub const POPULATE_ON_DEMAND: u32 = 1 << 16; // xen-public/memory.h
    pub const EXACT_NODE_REQUEST: u32 = 1 << 17; // xen-public/memory.h
    pub const VNODE: u32 = 1 << 18; // xen-public/memory.h
}

/// `XENMAPSPACE_*`.
pub mod mapspace {
    pub const SHARED_INFO: u32 = 0; // xen-public/memory.h
    pub const GRANT_TABLE: u32 = 1; // xen-public/memory.h
    pub const GMFN: u32 = 2; // xen-public/memory.h
    pub const GMFN_RANGE: u32 = 3; // xen-public/memory.h
    pub const GMFN_FOREIGN: u32 = 4; // xen-public/memory.h
    pub const DEV_MMIO: u32 = 5; // xen-public/memory.h
}

/// `XENMEM_RDM_ALL`: the only flag of `xen_reserved_device_memory_map`.
pub const RDM_ALL: u32 = 1; // xen-public/memory.h
