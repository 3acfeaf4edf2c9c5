//! Guest-visible structures with compile-time layout checks.

use core::mem::{offset_of, size_of};

macro_rules! layout {
    ($t:ty, size = $s:expr $(, $f:ident @ $o:expr)* $(,)?) => {
        const _: () = assert!(size_of::<$t>() == $s);
        $( const _: () = assert!(offset_of!($t, $f) == $o); )*
    };
}

/// `start_info_t` for 64-bit PV guests.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StartInfo {
    pub magic: [u8; 32],
    pub nr_pages: u64,
    pub shared_info: u64,
    pub flags: u32,
    pub _pad0: u32,
    pub store_mfn: u64,
    pub store_evtchn: u32,
    pub _pad1: u32,
    pub console_mfn: u64,
    pub console_evtchn: u32,
    pub _pad2: u32,
    pub pt_base: u64,
    pub nr_pt_frames: u64,
    pub mfn_list: u64,
    pub mod_start: u64,
    pub mod_len: u64,
    pub cmd_line: [u8; 1024],
    pub first_p2m_pfn: u64,
    pub nr_p2m_frames: u64,
}
layout!(StartInfo, size = 1168, magic @ 0, nr_pages @ 32, shared_info @ 40, flags @ 48,
    store_mfn @ 56, store_evtchn @ 64, console_mfn @ 72, console_evtchn @ 80, pt_base @ 88,
    nr_pt_frames @ 96, mfn_list @ 104, mod_start @ 112, mod_len @ 120, cmd_line @ 128,
    first_p2m_pfn @ 1152, nr_p2m_frames @ 1160);

/// `vcpu_time_info`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct VcpuTimeInfo {
    pub version: u32,
    pub pad0: u32,
    pub tsc_timestamp: u64,
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    pub flags: u8,
    pub pad1: [u8; 2],
}
layout!(VcpuTimeInfo, size = 32, tsc_timestamp @ 8, system_time @ 16, tsc_to_system_mul @ 24, tsc_shift @ 28);

/// `vcpu_info` (64 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VcpuInfo {
    pub evtchn_upcall_pending: u8,
    pub evtchn_upcall_mask: u8,
    pub _pad: [u8; 6],
    pub evtchn_pending_sel: u64,
    pub cr2: u64,
    pub pad: u64,
    pub time: VcpuTimeInfo,
}
layout!(VcpuInfo, size = 64, evtchn_upcall_pending @ 0, evtchn_upcall_mask @ 1,
    evtchn_pending_sel @ 8, cr2 @ 16, time @ 32);

/// Legacy vcpu_info slots in shared_info.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// `shared_info` (3,136 bytes on x86_64).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    pub evtchn_pending: [u64; 64],
    pub evtchn_mask: [u64; 64],
    pub wc_version: u32,
    pub wc_sec: u32,
    pub wc_nsec: u32,
    pub wc_sec_hi: u32,
    pub max_pfn: u64,
    pub pfn_to_mfn_frame_list_list: u64,
    pub nmi_reason: u64,
    pub p2m_cr3: u64,
    pub p2m_vaddr: u64,
    pub p2m_generation: u64,
}
layout!(SharedInfo, size = 3136, vcpu_info @ 0, evtchn_pending @ 2048, evtchn_mask @ 2560,
    wc_version @ 3072, max_pfn @ 3088);

/// Offsets into shared_info used by the core (byte offsets).
pub mod shinfo {
    pub const VCPU_INFO: u64 = 0;
    pub const VCPU_INFO_SIZE: u64 = 64;
    pub const EVTCHN_PENDING: u64 = 2048;
    pub const EVTCHN_MASK: u64 = 2560;
    pub const WC_VERSION: u64 = 3072;
    /// Within vcpu_info.
    pub const UPCALL_PENDING: u64 = 0;
    pub const UPCALL_MASK: u64 = 1;
    pub const PENDING_SEL: u64 = 8;
    pub const CR2: u64 = 16;
    pub const TIME: u64 = 32;
}

/// `trap_info` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct TrapInfo {
    pub vector: u8,
    /// Bits 0-1: DPL; bit 2: disable events on entry.
    pub flags: u8,
    pub cs: u16,
    pub _pad: u32,
    pub address: u64,
}
layout!(TrapInfo, size = 16, vector @ 0, flags @ 1, cs @ 2, address @ 8);

/// `mmu_update` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MmuUpdate {
    pub ptr: u64,
    pub val: u64,
}
layout!(MmuUpdate, size = 16, ptr @ 0, val @ 8);

/// `mmuext_op` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MmuextOp {
    pub cmd: u32,
    pub _pad: u32,
    /// mfn or linear_addr.
    pub arg1: u64,
    /// nr_ents / vcpumask / src_mfn.
    pub arg2: u64,
}
layout!(MmuextOp, size = 24, cmd @ 0, arg1 @ 8, arg2 @ 16);

/// `multicall_entry` (64 bytes on x86_64).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MulticallEntry {
    pub op: u64,
    pub result: u64,
    pub args: [u64; 6],
}
layout!(MulticallEntry, size = 64, op @ 0, result @ 8, args @ 16);

/// `iret_context` as popped from the guest stack by HYPERVISOR_iret.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct IretContext {
    pub rax: u64,
    pub r11: u64,
    pub rcx: u64,
    pub flags: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
layout!(IretContext, size = 72, rax @ 0, r11 @ 8, rcx @ 16, flags @ 24, rip @ 32, cs @ 40,
    rflags @ 48, rsp @ 56, ss @ 64);

/// `callback_register` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct CallbackRegister {
    pub ty: u16,
    pub flags: u16,
    pub _pad: u32,
    pub address: u64,
}
layout!(CallbackRegister, size = 16, ty @ 0, flags @ 2, address @ 8);

/// `sched_shutdown` / `sched_remote_shutdown` share the reason field.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SchedShutdown {
    pub reason: u32,
}
layout!(SchedShutdown, size = 4, reason @ 0);

/// `evtchn_status` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnStatus {
    pub dom: u16,
    pub _pad: u16,
    pub port: u32,
    pub status: u32,
    pub vcpu: u32,
    /// Union: unbound {dom}, interdomain {dom, port}, pirq, virq.
    pub u0: u32,
    pub u1: u32,
}
layout!(EvtchnStatus, size = 24, dom @ 0, port @ 4, status @ 8, vcpu @ 12, u0 @ 16, u1 @ 20);

/// evtchn_status.status values.
pub mod evtchn_stat {
    pub const CLOSED: u32 = 0;
    pub const UNBOUND: u32 = 1;
    pub const INTERDOMAIN: u32 = 2;
    pub const PIRQ: u32 = 3;
    pub const VIRQ: u32 = 4;
    pub const IPI: u32 = 5;
}

/// `e820entry` as returned by XENMEM_memory_map.
#[repr(C, packed)]
#[derive(Clone, Copy, Default, Debug)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub ty: u32,
}
layout!(E820Entry, size = 20);

/// `xen_memory_map` {nr_entries, buffer}.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MemoryMap {
    pub nr_entries: u32,
    pub _pad: u32,
    pub buffer: u64,
}
layout!(MemoryMap, size = 16, nr_entries @ 0, buffer @ 8);

/// `vcpu_register_vcpu_info` {mfn, offset, rsvd}.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct RegisterVcpuInfo {
    pub mfn: u64,
    pub offset: u32,
    pub rsvd: u32,
}
layout!(RegisterVcpuInfo, size = 16, mfn @ 0, offset @ 8);

/// `xen_feature_info` {submap_idx, submap}.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct FeatureInfo {
    pub submap_idx: u32,
    pub submap: u32,
}
layout!(FeatureInfo, size = 8);

/// `xencons_interface`: the console ring page.
pub mod cons_ring {
    pub const IN: u64 = 0;
    pub const IN_SIZE: u64 = 1024;
    pub const OUT: u64 = 1024;
    pub const OUT_SIZE: u64 = 2048;
    pub const IN_CONS: u64 = 3072;
    pub const IN_PROD: u64 = 3076;
    pub const OUT_CONS: u64 = 3080;
    pub const OUT_PROD: u64 = 3084;
}

/// `xenstore_domain_interface`: the store ring page.
pub mod store_ring {
    pub const REQ: u64 = 0;
    pub const RSP: u64 = 1024;
    pub const RING_SIZE: u64 = 1024;
    pub const REQ_CONS: u64 = 2048;
    pub const REQ_PROD: u64 = 2052;
    pub const RSP_CONS: u64 = 2056;
    pub const RSP_PROD: u64 = 2060;
}

/// XENFEAT_* bits reported by xen_version(get_features).
pub mod feat {
    pub const WRITABLE_PAGE_TABLES: u32 = 0;
    pub const WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
    pub const AUTO_TRANSLATED_PHYSMAP: u32 = 2;
    pub const SUPERVISOR_MODE_KERNEL: u32 = 3;
    pub const PAE_PGDIR_ABOVE_4GB: u32 = 4;
    pub const MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
    pub const GNTTAB_MAP_AVAIL_BITS: u32 = 7;
    pub const DOM0: u32 = 11;
}
