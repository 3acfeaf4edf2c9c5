//! Xen PV64 public-interface definitions (numbers and `repr(C)` layouts), written from Xen 4.17's
//! public headers (`xen-public/` = `xen/include/public/`); each definition cites its header.
//! Every layout carries compile-time size/offset assertions, and `hv/tests/xen_abi.rs` compiles
//! this file on the host and checks every value and layout against the headers themselves.

use core::mem::{offset_of, size_of};

// ---- hypercall numbers ----
pub const HYPERVISOR_SET_TRAP_TABLE: usize = 0; // xen-public/xen.h
pub const HYPERVISOR_MMU_UPDATE: usize = 1; // xen-public/xen.h
pub const HYPERVISOR_STACK_SWITCH: usize = 3; // xen-public/xen.h
pub const HYPERVISOR_SET_CALLBACKS: usize = 4; // xen-public/xen.h
pub const HYPERVISOR_MEMORY_OP: usize = 12; // xen-public/xen.h
pub const HYPERVISOR_MULTICALL: usize = 13; // xen-public/xen.h
pub const HYPERVISOR_UPDATE_VA_MAPPING: usize = 14; // xen-public/xen.h
pub const HYPERVISOR_XEN_VERSION: usize = 17; // xen-public/xen.h
pub const HYPERVISOR_CONSOLE_IO: usize = 18; // xen-public/xen.h
pub const HYPERVISOR_VM_ASSIST: usize = 21; // xen-public/xen.h
pub const HYPERVISOR_IRET: usize = 23; // xen-public/xen.h
pub const HYPERVISOR_VCPU_OP: usize = 24; // xen-public/xen.h
pub const HYPERVISOR_SET_SEGMENT_BASE: usize = 25; // xen-public/xen.h
pub const HYPERVISOR_MMUEXT_OP: usize = 26; // xen-public/xen.h
pub const HYPERVISOR_SCHED_OP: usize = 29; // xen-public/xen.h
pub const HYPERVISOR_CALLBACK_OP: usize = 30; // xen-public/xen.h
pub const HYPERVISOR_EVENT_CHANNEL_OP: usize = 32; // xen-public/xen.h

// ---- errno values (negated in rax) ----
pub const EPERM: i64 = 1; // xen-public/errno.h
pub const ENOENT: i64 = 2; // xen-public/errno.h
pub const ESRCH: i64 = 3; // xen-public/errno.h
pub const EACCES: i64 = 13; // xen-public/errno.h
pub const EEXIST: i64 = 17; // xen-public/errno.h
pub const EFAULT: i64 = 14; // xen-public/errno.h
pub const EBUSY: i64 = 16; // xen-public/errno.h
pub const EINVAL: i64 = 22; // xen-public/errno.h
pub const ENOSYS: i64 = 38; // xen-public/errno.h

// ---- sub-operations ----
pub const CONSOLEIO_WRITE: u64 = 0; // xen-public/xen.h
pub const CONSOLEIO_READ: u64 = 1; // xen-public/xen.h
pub const XENVER_VERSION: u64 = 0; // xen-public/version.h
pub const XENVER_EXTRAVERSION: u64 = 1; // xen-public/version.h
pub const SCHEDOP_YIELD: u64 = 0; // xen-public/sched.h
pub const SCHEDOP_BLOCK: u64 = 1; // xen-public/sched.h
pub const SCHEDOP_SHUTDOWN: u64 = 2; // xen-public/sched.h
pub const SCHEDOP_POLL: u64 = 3; // xen-public/sched.h
pub const SHUTDOWN_POWEROFF: u32 = 0; // xen-public/sched.h
pub const SHUTDOWN_REBOOT: u32 = 1; // xen-public/sched.h
pub const SHUTDOWN_CRASH: u32 = 3; // xen-public/sched.h
pub const EVTCHNOP_SEND: u64 = 4; // xen-public/event_channel.h
pub const EVTCHNOP_BIND_IPI: u64 = 7; // xen-public/event_channel.h
pub const VCPUOP_INITIALISE: u64 = 0; // xen-public/vcpu.h
pub const VCPUOP_UP: u64 = 1; // xen-public/vcpu.h
pub const VCPUOP_DOWN: u64 = 2; // xen-public/vcpu.h
pub const VCPUOP_IS_UP: u64 = 3; // xen-public/vcpu.h
pub const VCPUOP_GET_RUNSTATE_INFO: u64 = 4; // xen-public/vcpu.h
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5; // xen-public/vcpu.h
pub const VCPUOP_REGISTER_VCPU_INFO: u64 = 10; // xen-public/vcpu.h
pub const RUNSTATE_RUNNING: u64 = 0; // xen-public/vcpu.h
pub const RUNSTATE_OFFLINE: u64 = 3; // xen-public/vcpu.h
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6; // xen-public/xen.h
pub const MMUEXT_INVLPG_LOCAL: u32 = 7; // xen-public/xen.h
pub const DOMID_SELF: u64 = 0x7ff0; // xen-public/xen.h

/// `update_va_mapping` flags (low bits select the flush; `UVMF_LOCAL` is 0).
pub const UVMF_TLB_FLUSH: u64 = 1; // xen-public/xen.h
pub const UVMF_INVLPG: u64 = 2; // xen-public/xen.h

// ---- page-table entry bits (x86 architecture, not a Xen header) ----
pub const PTE_P: u64 = 1;
pub const PTE_RW: u64 = 2;
pub const PTE_U: u64 = 4;

/// `FLAT_KERNEL_CS64` == `FLAT_RING3_CS64` for 64-bit PV guests.
pub const FLAT_KERNEL_CS64: u16 = 0xe033; // xen-public/arch-x86/xen-x86_64.h
/// `FLAT_KERNEL_SS64` == `FLAT_RING3_SS64` for 64-bit PV guests.
pub const FLAT_KERNEL_SS64: u16 = 0xe02b; // xen-public/arch-x86/xen-x86_64.h

/// `vcpu_guest_context.flags`: the vCPU starts in kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2; // xen-public/arch-x86/xen.h

/// `start_info` flags.
pub const SIF_PRIVILEGED: u32 = 1; // xen-public/xen.h
pub const SIF_INITDOMAIN: u32 = 2; // xen-public/xen.h

/// `start_info_t`, 1,168 bytes; rsi points at it on entry.
// xen-public/xen.h
#[repr(C)]
pub struct StartInfo {
    pub magic: [u8; 32],
    pub nr_pages: u64,
    /// Machine address of the shared_info page.
    pub shared_info: u64,
    pub flags: u32,
    pub store_mfn: u64,
    pub store_evtchn: u32,
    /// `console.domU.mfn` (for dom0 this union holds info_off/info_size instead).
    pub console_mfn: u64,
    pub console_evtchn: u32,
    /// Virtual address of the bootstrap page tables (the L4 first).
    pub pt_base: u64,
    pub nr_pt_frames: u64,
    /// Virtual address of the P2M array (`u64` mfn per pfn, `nr_pages` entries).
    pub mfn_list: u64,
    pub mod_start: u64,
    pub mod_len: u64,
    pub cmd_line: [u8; 1024],
    pub first_p2m_pfn: u64,
    pub nr_p2m_frames: u64,
}
const _: () = assert!(size_of::<StartInfo>() == 1168);
const _: () = assert!(offset_of!(StartInfo, nr_pages) == 32);
const _: () = assert!(offset_of!(StartInfo, shared_info) == 40);
const _: () = assert!(offset_of!(StartInfo, flags) == 48);
const _: () = assert!(offset_of!(StartInfo, store_mfn) == 56);
const _: () = assert!(offset_of!(StartInfo, store_evtchn) == 64);
const _: () = assert!(offset_of!(StartInfo, console_mfn) == 72);
const _: () = assert!(offset_of!(StartInfo, console_evtchn) == 80);
const _: () = assert!(offset_of!(StartInfo, pt_base) == 88);
const _: () = assert!(offset_of!(StartInfo, nr_pt_frames) == 96);
const _: () = assert!(offset_of!(StartInfo, mfn_list) == 104);
const _: () = assert!(offset_of!(StartInfo, mod_start) == 112);
const _: () = assert!(offset_of!(StartInfo, mod_len) == 120);
const _: () = assert!(offset_of!(StartInfo, cmd_line) == 128);
const _: () = assert!(offset_of!(StartInfo, first_p2m_pfn) == 1152);

/// `vcpu_time_info` (32 bytes).
// xen-public/xen.h
#[repr(C)]
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
const _: () = assert!(size_of::<VcpuTimeInfo>() == 32);

/// `vcpu_info` (64 bytes): event flags, x86 arch part (`arch_vcpu_info`: `cr2` of the last #PF,
/// xen-public/arch-x86/xen-x86_64.h), time.
// xen-public/xen.h
#[repr(C)]
pub struct VcpuInfo {
    pub evtchn_upcall_pending: u8,
    pub evtchn_upcall_mask: u8,
    pub pad: [u8; 6],
    pub evtchn_pending_sel: u64,
    pub cr2: u64,
    pub arch_pad: u64,
    pub time: VcpuTimeInfo,
}
const _: () = assert!(size_of::<VcpuInfo>() == 64);
const _: () = assert!(offset_of!(VcpuInfo, evtchn_upcall_mask) == 1);
const _: () = assert!(offset_of!(VcpuInfo, evtchn_pending_sel) == 8);
const _: () = assert!(offset_of!(VcpuInfo, cr2) == 16);
const _: () = assert!(offset_of!(VcpuInfo, time) == 32);

/// `shared_info` (3,136 bytes on x86_64); from `max_pfn` on it is `arch_shared_info`
/// (xen-public/arch-x86/xen.h).
// xen-public/xen.h
#[repr(C)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; 32],
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
const _: () = assert!(size_of::<SharedInfo>() == 3136);
const _: () = assert!(offset_of!(SharedInfo, evtchn_pending) == 2048);
const _: () = assert!(offset_of!(SharedInfo, evtchn_mask) == 2560);
const _: () = assert!(offset_of!(SharedInfo, wc_version) == 3072);
const _: () = assert!(offset_of!(SharedInfo, max_pfn) == 3088);

/// `trap_info` (16 bytes). `flags` bits 0-1: DPL; bit 2: mask events on entry.
// xen-public/arch-x86/xen.h
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct TrapInfo {
    pub vector: u8,
    pub flags: u8,
    pub cs: u16,
    pub address: u64,
}
const _: () = assert!(size_of::<TrapInfo>() == 16);
const _: () = assert!(offset_of!(TrapInfo, address) == 8);

/// `struct cpu_user_regs` for x86_64 (200 bytes): the registers of a `vcpu_guest_context`.
/// `error_code` and `entry_vector` are Xen's private fields.
// xen-public/arch-x86/xen-x86_64.h
#[repr(C)]
#[derive(Clone, Copy, Default)]
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
    pub pad0: u16,
    pub saved_upcall_mask: u8,
    pub pad1: [u8; 3],
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub pad2: [u16; 3],
    pub es: u16,
    pub pad3: [u16; 3],
    pub ds: u16,
    pub pad4: [u16; 3],
    pub fs: u16,
    pub pad5: [u16; 3],
    pub gs: u16,
    pub pad6: [u16; 3],
}
const _: () = assert!(size_of::<CpuUserRegs>() == 200);
const _: () = assert!(offset_of!(CpuUserRegs, rbp) == 32);
const _: () = assert!(offset_of!(CpuUserRegs, rax) == 80);
const _: () = assert!(offset_of!(CpuUserRegs, rsi) == 104);
const _: () = assert!(offset_of!(CpuUserRegs, rdi) == 112);
const _: () = assert!(offset_of!(CpuUserRegs, error_code) == 120);
const _: () = assert!(offset_of!(CpuUserRegs, rip) == 128);
const _: () = assert!(offset_of!(CpuUserRegs, cs) == 136);
const _: () = assert!(offset_of!(CpuUserRegs, saved_upcall_mask) == 140);
const _: () = assert!(offset_of!(CpuUserRegs, rflags) == 144);
const _: () = assert!(offset_of!(CpuUserRegs, rsp) == 152);
const _: () = assert!(offset_of!(CpuUserRegs, ss) == 160);
const _: () = assert!(offset_of!(CpuUserRegs, gs) == 192);

/// `struct vcpu_guest_context` for x86_64 (5,168 bytes): what VCPUOP_initialise takes. The
/// x86_64 guest's view (not `__XEN__`'s), so `syscall_callback_eip` is a plain field.
/// `ctrlreg[3]` is the kernel's L4 as `xen_pfn_to_cr3(mfn)`, `ctrlreg[1]` the user one.
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
const _: () = assert!(size_of::<VcpuGuestContext>() == 5168);
const _: () = assert!(offset_of!(VcpuGuestContext, flags) == 512);
const _: () = assert!(offset_of!(VcpuGuestContext, user_regs) == 520);
const _: () = assert!(offset_of!(VcpuGuestContext, trap_ctxt) == 720);
const _: () = assert!(offset_of!(VcpuGuestContext, ldt_base) == 4816);
const _: () = assert!(offset_of!(VcpuGuestContext, gdt_frames) == 4832);
const _: () = assert!(offset_of!(VcpuGuestContext, gdt_ents) == 4960);
const _: () = assert!(offset_of!(VcpuGuestContext, kernel_ss) == 4968);
const _: () = assert!(offset_of!(VcpuGuestContext, kernel_sp) == 4976);
const _: () = assert!(offset_of!(VcpuGuestContext, ctrlreg) == 4984);
const _: () = assert!(offset_of!(VcpuGuestContext, debugreg) == 5048);
const _: () = assert!(offset_of!(VcpuGuestContext, event_callback_eip) == 5112);
const _: () = assert!(offset_of!(VcpuGuestContext, syscall_callback_eip) == 5128);
const _: () = assert!(offset_of!(VcpuGuestContext, vm_assist) == 5136);
const _: () = assert!(offset_of!(VcpuGuestContext, gs_base_user) == 5160);

impl VcpuGuestContext {
    /// All zeroes (no flags, no registers, no trap table, no GDT, no page tables).
    pub const fn zeroed() -> Self {
        // SAFETY: every field is an integer or an array of integers (or of `TrapInfo`, whose
        // fields are integers), for which all-zero bytes are a valid value.
        unsafe { core::mem::zeroed() }
    }
}

/// `vcpu_runstate_info` (48 bytes): the state (`RUNSTATE_*`), since when, and the time spent
/// in each state.
// xen-public/vcpu.h
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct VcpuRunstateInfo {
    pub state: i32,
    pub pad: u32,
    pub state_entry_time: u64,
    pub time: [u64; 4],
}
const _: () = assert!(size_of::<VcpuRunstateInfo>() == 48);
const _: () = assert!(offset_of!(VcpuRunstateInfo, state_entry_time) == 8);
const _: () = assert!(offset_of!(VcpuRunstateInfo, time) == 16);

/// `mmu_update` (16 bytes).
// xen-public/xen.h
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MmuUpdate {
    pub ptr: u64,
    pub val: u64,
}
const _: () = assert!(size_of::<MmuUpdate>() == 16);

/// `mmuext_op` (24 bytes): `arg1` is mfn/linear_addr, `arg2` nr_ents/vcpumask/src_mfn.
// xen-public/xen.h
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MmuextOp {
    pub cmd: u32,
    pub pad: u32,
    pub arg1: u64,
    pub arg2: u64,
}
const _: () = assert!(size_of::<MmuextOp>() == 24);
const _: () = assert!(offset_of!(MmuextOp, arg1) == 8);

/// `multicall_entry` (64 bytes on x86_64).
// xen-public/xen.h
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MulticallEntry {
    pub op: u64,
    pub result: u64,
    pub args: [u64; 6],
}
const _: () = assert!(size_of::<MulticallEntry>() == 64);
const _: () = assert!(offset_of!(MulticallEntry, args) == 16);

/// `sched_shutdown` (4 bytes).
// xen-public/sched.h
#[repr(C)]
pub struct SchedShutdown {
    pub reason: u32,
}
const _: () = assert!(size_of::<SchedShutdown>() == 4);

/// `sched_poll` (24 bytes): a guest handle to the ports, their number, a timeout (0 = none).
// xen-public/sched.h
#[repr(C)]
pub struct SchedPoll {
    pub ports: u64,
    pub nr_ports: u32,
    pub timeout: u64,
}
const _: () = assert!(size_of::<SchedPoll>() == 24);

/// xs_wire.h: message types, the ring size and the largest payload.
pub const XS_DIRECTORY: u32 = 1; // xen-public/io/xs_wire.h
pub const XS_READ: u32 = 2; // xen-public/io/xs_wire.h
pub const XS_GET_PERMS: u32 = 3; // xen-public/io/xs_wire.h
pub const XS_WATCH: u32 = 4; // xen-public/io/xs_wire.h
pub const XS_UNWATCH: u32 = 5; // xen-public/io/xs_wire.h
pub const XS_TRANSACTION_START: u32 = 6; // xen-public/io/xs_wire.h
pub const XS_TRANSACTION_END: u32 = 7; // xen-public/io/xs_wire.h
pub const XS_GET_DOMAIN_PATH: u32 = 10; // xen-public/io/xs_wire.h
pub const XS_WRITE: u32 = 11; // xen-public/io/xs_wire.h
pub const XS_MKDIR: u32 = 12; // xen-public/io/xs_wire.h
pub const XS_RM: u32 = 13; // xen-public/io/xs_wire.h
pub const XS_WATCH_EVENT: u32 = 15; // xen-public/io/xs_wire.h
pub const XS_ERROR: u32 = 16; // xen-public/io/xs_wire.h
pub const XENSTORE_RING_SIZE: u32 = 1024; // xen-public/io/xs_wire.h
pub const XENSTORE_PAYLOAD_MAX: usize = 4096; // xen-public/io/xs_wire.h

/// `xenstore_domain_interface`: requests, responses, then the four indices.
// xen-public/io/xs_wire.h
#[repr(C)]
pub struct XenstoreDomainInterface {
    pub req: [u8; 1024],
    pub rsp: [u8; 1024],
    pub req_cons: u32,
    pub req_prod: u32,
    pub rsp_cons: u32,
    pub rsp_prod: u32,
    pub server_features: u32,
    pub connection: u32,
    pub error: u32,
}
const _: () = assert!(offset_of!(XenstoreDomainInterface, req_cons) == 2048);
const _: () = assert!(size_of::<XenstoreDomainInterface>() == 2076);
const _: () = assert!(offset_of!(XenstoreDomainInterface, rsp_prod) == 2060);

/// `evtchn_send` (4 bytes).
// xen-public/event_channel.h
#[repr(C)]
pub struct EvtchnSend {
    pub port: u32,
}
const _: () = assert!(size_of::<EvtchnSend>() == 4);

/// `vcpu_register_vcpu_info` (16 bytes).
// xen-public/vcpu.h
#[repr(C)]
pub struct VcpuRegisterVcpuInfo {
    pub mfn: u64,
    pub offset: u32,
    pub rsvd: u32,
}
const _: () = assert!(size_of::<VcpuRegisterVcpuInfo>() == 16);

/// `xencons_interface`, 3,088 bytes.
// xen-public/io/console.h
#[repr(C)]
pub struct XenconsInterface {
    pub input: [u8; 1024],
    pub out: [u8; 2048],
    pub in_cons: u32,
    pub in_prod: u32,
    pub out_cons: u32,
    pub out_prod: u32,
}
const _: () = assert!(size_of::<XenconsInterface>() == 3088);
const _: () = assert!(offset_of!(XenconsInterface, out) == 1024);
const _: () = assert!(offset_of!(XenconsInterface, in_cons) == 3072);
const _: () = assert!(offset_of!(XenconsInterface, out_cons) == 3080);
const _: () = assert!(offset_of!(XenconsInterface, out_prod) == 3084);
