//! Guest-visible structures with compile-time layout checks.
//!
//! Each one names the Xen 4.17 public header that defines it (`xen-public/` is
//! `xen/include/public/`); `hv/tests/xen_abi.rs` compares every size and field offset with the C
//! compiler's view of those headers.

use core::mem::{offset_of, size_of};

macro_rules! layout {
    ($t:ty, size = $s:expr $(, $f:ident @ $o:expr)* $(,)?) => {
        const _: () = assert!(size_of::<$t>() == $s);
        $( const _: () = assert!(offset_of!($t, $f) == $o); )*
    };
}

/// `start_info_t` for 64-bit PV guests (`console_mfn`/`console_evtchn` are `console.domU.*`).
// xen-public/xen.h
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
// xen-public/xen.h
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

impl VcpuTimeInfo {
    /// TSC cycles as ns by a (`tsc_to_system_mul`, `tsc_shift`) pair, as xen.h states it:
    /// `((tsc << tsc_shift) * tsc_to_system_mul) >> 32`, a negative shift shifting right. KVM's
    /// kvmclock uses the same structure (Linux's asm/pvclock-abi.h).
    pub fn scale_tsc(tsc: u64, mul: u32, shift: i8) -> u64 {
        let t = if shift >= 0 { (tsc as u128) << shift } else { (tsc as u128) >> (-(shift as i16)) };
        ((t * mul as u128) >> 32).min(u64::MAX as u128) as u64
    }

    /// The inverse of [`Self::scale_tsc`]: how many TSC cycles make `ns` (rounded down); 0 for a
    /// zero `mul`.
    pub fn ns_to_tsc(ns: u64, mul: u32, shift: i8) -> u64 {
        if mul == 0 {
            return 0;
        }
        let t = ((ns as u128) << 32) / mul as u128;
        let c = if shift >= 0 { t >> shift } else { t << (-(shift as i16)) };
        c.min(u64::MAX as u128) as u64
    }
}

/// Offsets in `vcpu_time_info`.
pub mod time {
    use super::VcpuTimeInfo;
    use core::mem::offset_of;
    pub const TSC_TIMESTAMP: u64 = offset_of!(VcpuTimeInfo, tsc_timestamp) as u64;
    pub const SYSTEM_TIME: u64 = offset_of!(VcpuTimeInfo, system_time) as u64;
    pub const TSC_TO_SYSTEM_MUL: u64 = offset_of!(VcpuTimeInfo, tsc_to_system_mul) as u64;
    pub const TSC_SHIFT: u64 = offset_of!(VcpuTimeInfo, tsc_shift) as u64;
    pub const FLAGS: u64 = offset_of!(VcpuTimeInfo, flags) as u64;
}

/// `vcpu_time_info.flags`: the TSC is stable across vCPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0; // xen-public/xen.h

/// `vcpu_info` (64 bytes). `cr2`/`pad` are `arch` (`arch_vcpu_info`, xen-public/arch-x86/xen-x86_64.h).
// xen-public/xen.h
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
pub const XEN_LEGACY_MAX_VCPUS: usize = 32; // xen-public/arch-x86/xen.h

/// `shared_info` (3,136 bytes on x86_64). The fields from `max_pfn` on are `arch`
/// (`arch_shared_info`, xen-public/arch-x86/xen.h).
// xen-public/xen.h
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

/// Offsets into shared_info used by the core (byte offsets), taken from the structs above.
// xen-public/xen.h
pub mod shinfo {
    use super::{SharedInfo, VcpuInfo};
    use core::mem::{offset_of, size_of};
    pub const VCPU_INFO: u64 = offset_of!(SharedInfo, vcpu_info) as u64;
    pub const VCPU_INFO_SIZE: u64 = size_of::<VcpuInfo>() as u64;
    pub const EVTCHN_PENDING: u64 = offset_of!(SharedInfo, evtchn_pending) as u64;
    pub const EVTCHN_MASK: u64 = offset_of!(SharedInfo, evtchn_mask) as u64;
    pub const WC_VERSION: u64 = offset_of!(SharedInfo, wc_version) as u64;
    /// Within vcpu_info.
    pub const UPCALL_PENDING: u64 = offset_of!(VcpuInfo, evtchn_upcall_pending) as u64;
    pub const UPCALL_MASK: u64 = offset_of!(VcpuInfo, evtchn_upcall_mask) as u64;
    pub const PENDING_SEL: u64 = offset_of!(VcpuInfo, evtchn_pending_sel) as u64;
    pub const CR2: u64 = offset_of!(VcpuInfo, cr2) as u64;
    pub const TIME: u64 = offset_of!(VcpuInfo, time) as u64;
}

/// `trap_info` (16 bytes).
// xen-public/arch-x86/xen.h
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
// xen-public/xen.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MmuUpdate {
    pub ptr: u64,
    pub val: u64,
}
layout!(MmuUpdate, size = 16, ptr @ 0, val @ 8);

/// `mmuext_op` (24 bytes).
// xen-public/xen.h
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
// xen-public/xen.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MulticallEntry {
    pub op: u64,
    pub result: u64,
    pub args: [u64; 6],
}
layout!(MulticallEntry, size = 64, op @ 0, result @ 8, args @ 16);

/// `iret_context` as popped from the guest stack by HYPERVISOR_iret.
// xen-public/arch-x86/xen-x86_64.h
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

/// `callback_register` (16 bytes; `xen_callback_t` is an `unsigned long` on x86_64).
// xen-public/callback.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct CallbackRegister {
    pub ty: u16,
    pub flags: u16,
    pub _pad: u32,
    pub address: u64,
}
layout!(CallbackRegister, size = 16, ty @ 0, flags @ 2, address @ 8);

/// `sched_shutdown`.
// xen-public/sched.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SchedShutdown {
    pub reason: u32,
}
layout!(SchedShutdown, size = 4, reason @ 0);

/// `evtchn_status` (24 bytes).
// xen-public/event_channel.h
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

/// evtchn_status.status values (`EVTCHNSTAT_*`).
pub mod evtchn_stat {
    pub const CLOSED: u32 = 0; // xen-public/event_channel.h
    pub const UNBOUND: u32 = 1; // xen-public/event_channel.h
    pub const INTERDOMAIN: u32 = 2; // xen-public/event_channel.h
    pub const PIRQ: u32 = 3; // xen-public/event_channel.h
    pub const VIRQ: u32 = 4; // xen-public/event_channel.h
    pub const IPI: u32 = 5; // xen-public/event_channel.h
}

/// `e820entry` as returned by XENMEM_memory_map. Not in xen-public: memory.h's XENMEM_memory_map
/// returns the BIOS e820 format (u64 addr, u64 size, u32 type; packed, 20 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Default, Debug)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub ty: u32,
}
layout!(E820Entry, size = 20);

/// `xen_memory_map` {nr_entries, buffer}.
// xen-public/memory.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MemoryMap {
    pub nr_entries: u32,
    pub _pad: u32,
    pub buffer: u64,
}
layout!(MemoryMap, size = 16, nr_entries @ 0, buffer @ 8);

/// `vcpu_register_vcpu_info` {mfn, offset, rsvd}.
// xen-public/vcpu.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct RegisterVcpuInfo {
    pub mfn: u64,
    pub offset: u32,
    pub rsvd: u32,
}
layout!(RegisterVcpuInfo, size = 16, mfn @ 0, offset @ 8);

/// `xen_feature_info` {submap_idx, submap}.
// xen-public/version.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct FeatureInfo {
    pub submap_idx: u32,
    pub submap: u32,
}
layout!(FeatureInfo, size = 8);

/// `callback_unregister` (4 bytes).
// xen-public/callback.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct CallbackUnregister {
    pub ty: u16,
    pub _unused: u16,
}
layout!(CallbackUnregister, size = 4, ty @ 0);

/// `sched_poll` (24 bytes): a guest handle to an array of ports, their number, a timeout.
// xen-public/sched.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SchedPoll {
    pub ports: u64,
    pub nr_ports: u32,
    pub _pad: u32,
    pub timeout: u64,
}
layout!(SchedPoll, size = 24, ports @ 0, nr_ports @ 8, timeout @ 16);

/// `sched_remote_shutdown` (8 bytes).
// xen-public/sched.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SchedRemoteShutdown {
    pub domain_id: u16,
    pub _pad: u16,
    pub reason: u32,
}
layout!(SchedRemoteShutdown, size = 8, domain_id @ 0, reason @ 4);

/// `vcpu_set_singleshot_timer` (16 bytes).
// xen-public/vcpu.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct VcpuSetSingleshotTimer {
    pub timeout_abs_ns: u64,
    pub flags: u32,
    pub _pad: u32,
}
layout!(VcpuSetSingleshotTimer, size = 16, timeout_abs_ns @ 0, flags @ 8);

/// `vcpu_set_periodic_timer` (8 bytes).
// xen-public/vcpu.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct VcpuSetPeriodicTimer {
    pub period_ns: u64,
}
layout!(VcpuSetPeriodicTimer, size = 8, period_ns @ 0);

/// `vcpu_runstate_info` (48 bytes).
// xen-public/vcpu.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct VcpuRunstateInfo {
    pub state: i32,
    pub _pad: u32,
    pub state_entry_time: u64,
    pub time: [u64; 4],
}
layout!(VcpuRunstateInfo, size = 48, state @ 0, state_entry_time @ 8, time @ 16);

/// `struct cpu_user_regs` for x86_64 (200 bytes).
// xen-public/arch-x86/xen-x86_64.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct CpuUserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub error_code: u32,
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u16,
    pub _pad0: u16,
    pub saved_upcall_mask: u8,
    pub _pad1: [u8; 3],
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub _pad2: [u16; 3],
    pub es: u16,
    pub _pad3: [u16; 3],
    pub ds: u16,
    pub _pad4: [u16; 3],
    pub fs: u16,
    pub _pad5: [u16; 3],
    pub gs: u16,
    pub _pad6: [u16; 3],
}
layout!(CpuUserRegs, size = 200, r15 @ 0, rbp @ 32, rbx @ 40, r11 @ 48, r8 @ 72, rax @ 80, rcx @ 88,
    rdx @ 96, rsi @ 104, rdi @ 112, error_code @ 120, entry_vector @ 124, rip @ 128, cs @ 136,
    saved_upcall_mask @ 140, rflags @ 144, rsp @ 152, ss @ 160, es @ 168, ds @ 176, fs @ 184, gs @ 192);

/// `struct vcpu_guest_context` for x86_64 (5168 bytes): what VCPUOP_initialise takes.
// xen-public/arch-x86/xen.h
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VcpuGuestContext {
    pub fpu_ctxt: [u8; 512],
    pub flags: u64,
    pub user_regs: CpuUserRegs,
    pub trap_ctxt: [TrapInfo; 256],
    pub ldt_base: u64,
    pub ldt_ents: u64,
    pub gdt_frames: [u64; 16],
    pub gdt_ents: u64,
    pub kernel_ss: u64,
    pub kernel_sp: u64,
    pub ctrlreg: [u64; 8],
    pub debugreg: [u64; 8],
    pub event_callback_eip: u64,
    pub failsafe_callback_eip: u64,
    pub syscall_callback_eip: u64,
    pub vm_assist: u64,
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
}
layout!(VcpuGuestContext, size = 5168, flags @ 512, user_regs @ 520, trap_ctxt @ 720, ldt_base @ 4816,
    ldt_ents @ 4824, gdt_frames @ 4832, gdt_ents @ 4960, kernel_ss @ 4968, kernel_sp @ 4976,
    ctrlreg @ 4984, debugreg @ 5048, event_callback_eip @ 5112, failsafe_callback_eip @ 5120,
    syscall_callback_eip @ 5128, vm_assist @ 5136, fs_base @ 5144, gs_base_kernel @ 5152,
    gs_base_user @ 5160);

/// `evtchn_alloc_unbound` (8 bytes): IN dom, remote_dom; OUT port.
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnAllocUnbound {
    pub dom: u16,
    pub remote_dom: u16,
    pub port: u32,
}
layout!(EvtchnAllocUnbound, size = 8, dom @ 0, remote_dom @ 2, port @ 4);

/// `evtchn_bind_interdomain` (12 bytes): IN remote_dom, remote_port; OUT local_port.
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnBindInterdomain {
    pub remote_dom: u16,
    pub _pad: u16,
    pub remote_port: u32,
    pub local_port: u32,
}
layout!(EvtchnBindInterdomain, size = 12, remote_dom @ 0, remote_port @ 4, local_port @ 8);

/// `evtchn_bind_virq` (12 bytes): IN virq, vcpu; OUT port.
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnBindVirq {
    pub virq: u32,
    pub vcpu: u32,
    pub port: u32,
}
layout!(EvtchnBindVirq, size = 12, virq @ 0, vcpu @ 4, port @ 8);

/// `evtchn_bind_ipi` (8 bytes): IN vcpu; OUT port.
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnBindIpi {
    pub vcpu: u32,
    pub port: u32,
}
layout!(EvtchnBindIpi, size = 8, vcpu @ 0, port @ 4);

/// `evtchn_bind_vcpu` (8 bytes).
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnBindVcpu {
    pub port: u32,
    pub vcpu: u32,
}
layout!(EvtchnBindVcpu, size = 8, port @ 0, vcpu @ 4);

/// `evtchn_send`, `evtchn_close` and `evtchn_unmask`: one port (4 bytes).
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnPort {
    pub port: u32,
}
layout!(EvtchnPort, size = 4, port @ 0);

/// `evtchn_reset` (2 bytes): IN dom.
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnReset {
    pub dom: u16,
}
layout!(EvtchnReset, size = 2, dom @ 0);

/// `evtchn_init_control` (24 bytes): IN control_gfn, offset, vcpu; OUT link_bits.
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnInitControl {
    pub control_gfn: u64,
    pub offset: u32,
    pub vcpu: u32,
    pub link_bits: u8,
    pub _pad: [u8; 7],
}
layout!(EvtchnInitControl, size = 24, control_gfn @ 0, offset @ 8, vcpu @ 12, link_bits @ 16);

/// `evtchn_expand_array` (8 bytes): IN array_gfn.
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnExpandArray {
    pub array_gfn: u64,
}
layout!(EvtchnExpandArray, size = 8, array_gfn @ 0);

/// `evtchn_set_priority` (8 bytes): IN port, priority.
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnSetPriority {
    pub port: u32,
    pub priority: u32,
}
layout!(EvtchnSetPriority, size = 8, port @ 0, priority @ 4);

/// The FIFO ABI's constants and control block, xen-public/event_channel.h.
pub mod evtchn_fifo {
    pub const PRIORITY_MAX: u32 = 0; // xen-public/event_channel.h
    pub const PRIORITY_DEFAULT: u32 = 7; // xen-public/event_channel.h
    pub const PRIORITY_MIN: u32 = 15; // xen-public/event_channel.h
    /// `EVTCHN_FIFO_MAX_QUEUES`.
    pub const MAX_QUEUES: u32 = 16; // xen-public/event_channel.h
    /// Bit numbers of an `event_word_t`.
    pub const PENDING: u32 = 31; // xen-public/event_channel.h
    pub const MASKED: u32 = 30; // xen-public/event_channel.h
    pub const LINKED: u32 = 29; // xen-public/event_channel.h
    pub const BUSY: u32 = 28; // xen-public/event_channel.h
    pub const LINK_BITS: u32 = 17; // xen-public/event_channel.h
    pub const LINK_MASK: u32 = (1 << LINK_BITS) - 1; // xen-public/event_channel.h
    pub const NR_CHANNELS: u32 = 1 << LINK_BITS; // xen-public/event_channel.h
    /// `sizeof(evtchn_fifo_control_block_t)`: ready, _rsvd, head[16].
    pub const CONTROL_BLOCK_SIZE: u64 = core::mem::size_of::<super::EvtchnFifoControlBlock>() as u64;
}

/// `evtchn_fifo_control_block` (72 bytes).
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnFifoControlBlock {
    pub ready: u32,
    pub _rsvd: u32,
    pub head: [u32; 16],
}
layout!(EvtchnFifoControlBlock, size = 72, ready @ 0, head @ 8);

/// `xencons_interface`: the console ring page.
// xen-public/io/console.h
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenconsInterface {
    pub input: [u8; 1024],
    pub out: [u8; 2048],
    pub in_cons: u32,
    pub in_prod: u32,
    pub out_cons: u32,
    pub out_prod: u32,
}
layout!(XenconsInterface, size = 3088, input @ 0, out @ 1024, in_cons @ 3072, in_prod @ 3076,
    out_cons @ 3080, out_prod @ 3084);

/// Byte offsets into the console ring page (from [`XenconsInterface`]).
// xen-public/io/console.h
pub mod cons_ring {
    use super::XenconsInterface as C;
    use core::mem::offset_of;
    pub const IN: u64 = offset_of!(C, input) as u64;
    pub const IN_SIZE: u64 = 1024;
    pub const OUT: u64 = offset_of!(C, out) as u64;
    pub const OUT_SIZE: u64 = 2048;
    pub const IN_CONS: u64 = offset_of!(C, in_cons) as u64;
    pub const IN_PROD: u64 = offset_of!(C, in_prod) as u64;
    pub const OUT_CONS: u64 = offset_of!(C, out_cons) as u64;
    pub const OUT_PROD: u64 = offset_of!(C, out_prod) as u64;
}

/// `XENSTORE_RING_SIZE`.
pub const XENSTORE_RING_SIZE: usize = 1024; // xen-public/io/xs_wire.h
/// `XENSTORE_PAYLOAD_MAX`: the longest payload of one message.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096; // xen-public/io/xs_wire.h
/// `XENSTORE_ABS_PATH_MAX` / `XENSTORE_REL_PATH_MAX`.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072; // xen-public/io/xs_wire.h
pub const XENSTORE_REL_PATH_MAX: usize = 2048; // xen-public/io/xs_wire.h
/// Values of the ring's `error` field.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2; // xen-public/io/xs_wire.h
pub const XENSTORE_ERROR_PROTO: u32 = 3; // xen-public/io/xs_wire.h

/// `xenstore_domain_interface`: the store ring page.
// xen-public/io/xs_wire.h
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenstoreDomainInterface {
    pub req: [u8; XENSTORE_RING_SIZE],
    pub rsp: [u8; XENSTORE_RING_SIZE],
    pub req_cons: u32,
    pub req_prod: u32,
    pub rsp_cons: u32,
    pub rsp_prod: u32,
    pub server_features: u32,
    pub connection: u32,
    pub error: u32,
}
layout!(XenstoreDomainInterface, size = 2076, req @ 0, rsp @ 1024, req_cons @ 2048, req_prod @ 2052,
    rsp_cons @ 2056, rsp_prod @ 2060, server_features @ 2064, connection @ 2068, error @ 2072);

/// Byte offsets into the store ring page (from [`XenstoreDomainInterface`]).
// xen-public/io/xs_wire.h
pub mod store_ring {
    use super::XenstoreDomainInterface as S;
    use core::mem::offset_of;
    pub const REQ: u64 = offset_of!(S, req) as u64;
    pub const RSP: u64 = offset_of!(S, rsp) as u64;
    pub const RING_SIZE: u64 = super::XENSTORE_RING_SIZE as u64;
    pub const REQ_CONS: u64 = offset_of!(S, req_cons) as u64;
    pub const REQ_PROD: u64 = offset_of!(S, req_prod) as u64;
    pub const RSP_CONS: u64 = offset_of!(S, rsp_cons) as u64;
    pub const RSP_PROD: u64 = offset_of!(S, rsp_prod) as u64;
    pub const ERROR: u64 = offset_of!(S, error) as u64;
}

/// `xsd_sockmsg`: the header of every xenstore message (16 bytes), followed by `len` bytes.
// xen-public/io/xs_wire.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct XsdSockmsg {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}
layout!(XsdSockmsg, size = 16, ty @ 0, req_id @ 4, tx_id @ 8, len @ 12);

/// `enum xsd_sockmsg_type` values.
// xen-public/io/xs_wire.h
pub mod xs {
    pub const CONTROL: u32 = 0; // xen-public/io/xs_wire.h
    pub const DIRECTORY: u32 = 1; // xen-public/io/xs_wire.h
    pub const READ: u32 = 2; // xen-public/io/xs_wire.h
    pub const GET_PERMS: u32 = 3; // xen-public/io/xs_wire.h
    pub const WATCH: u32 = 4; // xen-public/io/xs_wire.h
    pub const UNWATCH: u32 = 5; // xen-public/io/xs_wire.h
    pub const TRANSACTION_START: u32 = 6; // xen-public/io/xs_wire.h
    pub const TRANSACTION_END: u32 = 7; // xen-public/io/xs_wire.h
    pub const INTRODUCE: u32 = 8; // xen-public/io/xs_wire.h
    pub const RELEASE: u32 = 9; // xen-public/io/xs_wire.h
    pub const GET_DOMAIN_PATH: u32 = 10; // xen-public/io/xs_wire.h
    pub const WRITE: u32 = 11; // xen-public/io/xs_wire.h
    pub const MKDIR: u32 = 12; // xen-public/io/xs_wire.h
    pub const RM: u32 = 13; // xen-public/io/xs_wire.h
    pub const SET_PERMS: u32 = 14; // xen-public/io/xs_wire.h
    pub const WATCH_EVENT: u32 = 15; // xen-public/io/xs_wire.h
    pub const ERROR: u32 = 16; // xen-public/io/xs_wire.h
    pub const IS_DOMAIN_INTRODUCED: u32 = 17; // xen-public/io/xs_wire.h
    pub const RESUME: u32 = 18; // xen-public/io/xs_wire.h
    pub const SET_TARGET: u32 = 19; // xen-public/io/xs_wire.h
    pub const RESET_WATCHES: u32 = 21; // xen-public/io/xs_wire.h
    pub const DIRECTORY_PART: u32 = 22; // xen-public/io/xs_wire.h
}

/// XENFEAT_* bits reported by xen_version(get_features).
pub mod feat {
    pub const WRITABLE_PAGE_TABLES: u32 = 0; // xen-public/features.h
    pub const WRITABLE_DESCRIPTOR_TABLES: u32 = 1; // xen-public/features.h
    pub const AUTO_TRANSLATED_PHYSMAP: u32 = 2; // xen-public/features.h
    pub const SUPERVISOR_MODE_KERNEL: u32 = 3; // xen-public/features.h
    pub const PAE_PGDIR_ABOVE_4GB: u32 = 4; // xen-public/features.h
    pub const MMU_PT_UPDATE_PRESERVE_AD: u32 = 5; // xen-public/features.h
    pub const HIGHMEM_ASSIST: u32 = 6; // xen-public/features.h
    pub const GNTTAB_MAP_AVAIL_BITS: u32 = 7; // xen-public/features.h
    pub const DOM0: u32 = 11; // xen-public/features.h
    pub const MEMORY_OP_VNODE_SUPPORTED: u32 = 13; // xen-public/features.h
    pub const NOT_DIRECT_MAPPED: u32 = 16; // xen-public/features.h
    pub const DIRECT_MAPPED: u32 = 17; // xen-public/features.h
}

/// `grant_entry_v1` (8 bytes).
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GrantEntryV1 {
    pub flags: u16,
    pub domid: u16,
    pub frame: u32,
}
layout!(GrantEntryV1, size = 8, flags @ 0, domid @ 2, frame @ 4);

/// `grant_entry_v2` (16 bytes): `hdr`, then `full_page.frame` at 8, or `sub_page.page_off`/`length`
/// at 4/6 and `sub_page.frame` at 8, or `transitive.trans_domid` at 4 and `transitive.gref` at 8.
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GrantEntryV2 {
    pub flags: u16,
    pub domid: u16,
    /// `sub_page.page_off` / `transitive.trans_domid`.
    pub page_off: u16,
    /// `sub_page.length`.
    pub length: u16,
    /// `full_page.frame` / `sub_page.frame` (low 32 bits: `transitive.gref`).
    pub frame: u64,
}
layout!(GrantEntryV2, size = 16, flags @ 0, domid @ 2, page_off @ 4, length @ 6, frame @ 8);

/// `gnttab_map_grant_ref`.
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GnttabMapGrantRef {
    pub host_addr: u64,
    pub flags: u32,
    pub ref_: u32,
    pub dom: u16,
    pub status: i16,
    pub handle: u32,
    pub dev_bus_addr: u64,
}
layout!(GnttabMapGrantRef, size = 32, host_addr @ 0, flags @ 8, ref_ @ 12, dom @ 16, status @ 18,
    handle @ 20, dev_bus_addr @ 24);

/// `gnttab_unmap_grant_ref`.
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GnttabUnmapGrantRef {
    pub host_addr: u64,
    pub dev_bus_addr: u64,
    pub handle: u32,
    pub status: i16,
    pub _pad: u16,
}
layout!(GnttabUnmapGrantRef, size = 24, host_addr @ 0, dev_bus_addr @ 8, handle @ 16, status @ 20);

/// `gnttab_unmap_and_replace`.
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GnttabUnmapAndReplace {
    pub host_addr: u64,
    pub new_addr: u64,
    pub handle: u32,
    pub status: i16,
    pub _pad: u16,
}
layout!(GnttabUnmapAndReplace, size = 24, host_addr @ 0, new_addr @ 8, handle @ 16, status @ 20);

/// `gnttab_setup_table` (`frame_list` is a guest handle of `xen_pfn_t`).
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GnttabSetupTable {
    pub dom: u16,
    pub _pad0: u16,
    pub nr_frames: u32,
    pub status: i16,
    pub _pad1: [u16; 3],
    pub frame_list: u64,
}
layout!(GnttabSetupTable, size = 24, dom @ 0, nr_frames @ 4, status @ 8, frame_list @ 16);

/// `gnttab_copy_ptr` (`u.ref` / `u.gmfn` at 0).
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GnttabCopyPtr {
    pub u: u64,
    pub domid: u16,
    pub offset: u16,
    pub _pad: u32,
}
layout!(GnttabCopyPtr, size = 16, u @ 0, domid @ 8, offset @ 10);

/// `gnttab_copy`.
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GnttabCopy {
    pub source: GnttabCopyPtr,
    pub dest: GnttabCopyPtr,
    pub len: u16,
    pub flags: u16,
    pub status: i16,
    pub _pad: u16,
}
layout!(GnttabCopy, size = 40, source @ 0, dest @ 16, len @ 32, flags @ 34, status @ 36);

/// `gnttab_query_size`.
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GnttabQuerySize {
    pub dom: u16,
    pub _pad: u16,
    pub nr_frames: u32,
    pub max_nr_frames: u32,
    pub status: i16,
    pub _pad1: u16,
}
layout!(GnttabQuerySize, size = 16, dom @ 0, nr_frames @ 4, max_nr_frames @ 8, status @ 12);

/// `gnttab_get_status_frames` (`frame_list` is a guest handle of `uint64_t`).
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GnttabGetStatusFrames {
    pub nr_frames: u32,
    pub dom: u16,
    pub status: i16,
    pub frame_list: u64,
}
layout!(GnttabGetStatusFrames, size = 16, nr_frames @ 0, dom @ 4, status @ 6, frame_list @ 8);

/// `gnttab_get_version`.
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GnttabGetVersion {
    pub dom: u16,
    pub pad: u16,
    pub version: u32,
}
layout!(GnttabGetVersion, size = 8, dom @ 0, pad @ 2, version @ 4);

/// `gnttab_cache_flush` (`a.dev_bus_addr` / `a.ref` at 0).
// xen-public/grant_table.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct GnttabCacheFlush {
    pub a: u64,
    pub offset: u16,
    pub length: u16,
    pub op: u32,
}
layout!(GnttabCacheFlush, size = 16, a @ 0, offset @ 8, length @ 10, op @ 12);

#[cfg(test)]
mod tests {
    use super::VcpuTimeInfo;

    #[test]
    fn pvclock_scaling_and_its_inverse() {
        // The image's own pair for its guests: one TSC cycle per ns (mul 2^31, shift 1).
        assert_eq!(VcpuTimeInfo::scale_tsc(1_000_000, 1 << 31, 1), 1_000_000);
        assert_eq!(VcpuTimeInfo::ns_to_tsc(1_000_000, 1 << 31, 1), 1_000_000);
        // A 2.6 GHz TSC as kvmclock gives it: shift -1 and mul = (10^9 << 32 << 1) / 2.6e9.
        let mul = ((1_000_000_000u128 << 33) / 2_600_000_000u128) as u32;
        // xen.h's frequency formula: ((10^9 << 32) / mul) >> shift (a negative shift: <<).
        let hz = ((1_000_000_000u128 << 32) / mul as u128) << 1;
        assert!((hz as i128 - 2_600_000_000).abs() < 2, "{hz}");
        let cycles = VcpuTimeInfo::ns_to_tsc(1_000_000_000, mul, -1);
        assert!((cycles as i64 - 2_600_000_000).abs() < 4, "{cycles}");
        let ns = VcpuTimeInfo::scale_tsc(cycles, mul, -1);
        assert!((ns as i64 - 1_000_000_000).abs() <= 1, "{ns}");
        assert_eq!(VcpuTimeInfo::ns_to_tsc(5, 0, 0), 0, "no rate, no cycles");
    }
}
