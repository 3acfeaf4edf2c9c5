//! Hypercall numbers and sub-operation numbers.
//!
//! Each definition names the Xen 4.17 public header it comes from (`xen-public/` is
//! `xen/include/public/`); `hv/tests/xen_abi.rs` checks every value against those headers.

// Hypercall numbers: `__HYPERVISOR_*`, xen-public/xen.h.
pub const SET_TRAP_TABLE: u32 = 0; // xen-public/xen.h
pub const MMU_UPDATE: u32 = 1; // xen-public/xen.h
pub const SET_GDT: u32 = 2; // xen-public/xen.h
pub const STACK_SWITCH: u32 = 3; // xen-public/xen.h
pub const SET_CALLBACKS: u32 = 4; // xen-public/xen.h
pub const FPU_TASKSWITCH: u32 = 5; // xen-public/xen.h
pub const PLATFORM_OP: u32 = 7; // xen-public/xen.h
pub const SET_DEBUGREG: u32 = 8; // xen-public/xen.h
pub const GET_DEBUGREG: u32 = 9; // xen-public/xen.h
pub const UPDATE_DESCRIPTOR: u32 = 10; // xen-public/xen.h
pub const MEMORY_OP: u32 = 12; // xen-public/xen.h
pub const MULTICALL: u32 = 13; // xen-public/xen.h
pub const UPDATE_VA_MAPPING: u32 = 14; // xen-public/xen.h
pub const SET_TIMER_OP: u32 = 15; // xen-public/xen.h
pub const XEN_VERSION: u32 = 17; // xen-public/xen.h
pub const CONSOLE_IO: u32 = 18; // xen-public/xen.h
pub const GRANT_TABLE_OP: u32 = 20; // xen-public/xen.h
pub const VM_ASSIST: u32 = 21; // xen-public/xen.h
pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 22; // xen-public/xen.h
pub const IRET: u32 = 23; // xen-public/xen.h
pub const VCPU_OP: u32 = 24; // xen-public/xen.h
pub const SET_SEGMENT_BASE: u32 = 25; // xen-public/xen.h
pub const MMUEXT_OP: u32 = 26; // xen-public/xen.h
pub const XSM_OP: u32 = 27; // xen-public/xen.h
pub const NMI_OP: u32 = 28; // xen-public/xen.h
pub const SCHED_OP: u32 = 29; // xen-public/xen.h
pub const SCHED_OP_COMPAT: u32 = 6; // xen-public/xen.h
pub const CALLBACK_OP: u32 = 30; // xen-public/xen.h
pub const EVENT_CHANNEL_OP: u32 = 32; // xen-public/xen.h
pub const PHYSDEV_OP: u32 = 33; // xen-public/xen.h
pub const SYSCTL: u32 = 35; // xen-public/xen.h
pub const DOMCTL: u32 = 36; // xen-public/xen.h
pub const EVENT_CHANNEL_OP_COMPAT: u32 = 16; // xen-public/xen.h
pub const PHYSDEV_OP_COMPAT: u32 = 19; // xen-public/xen.h
pub const XENOPROF_OP: u32 = 31; // xen-public/xen.h
pub const HVM_OP: u32 = 34; // xen-public/xen.h
pub const KEXEC_OP: u32 = 37; // xen-public/xen.h
pub const TMEM_OP: u32 = 38; // xen-public/xen.h
pub const ARGO_OP: u32 = 39; // xen-public/xen.h
pub const XENPMU_OP: u32 = 40; // xen-public/xen.h
pub const DM_OP: u32 = 41; // xen-public/xen.h
pub const HYPFS_OP: u32 = 42; // xen-public/xen.h
/// `__HYPERVISOR_arch_0`: x86's `mca`.
pub const ARCH_0: u32 = 48; // xen-public/xen.h
/// `__HYPERVISOR_arch_1`: x86's `paging_domctl_cont`.
pub const ARCH_1: u32 = 49; // xen-public/xen.h

/// Number of 32-byte stubs in the hypercall page (one 4 KiB page; xen-public/elfnote.h
/// `XEN_ELFNOTE_HYPERCALL_PAGE`).
pub const PAGE_ENTRIES: u32 = 128;

/// `CONSOLEIO_*`, xen-public/xen.h.
pub mod console_io {
    pub const WRITE: u64 = 0; // xen-public/xen.h CONSOLEIO_write
    pub const READ: u64 = 1; // xen-public/xen.h CONSOLEIO_read
}

/// `SCHEDOP_*`, xen-public/sched.h.
pub mod sched_op {
    pub const YIELD: u64 = 0; // xen-public/sched.h
    pub const BLOCK: u64 = 1; // xen-public/sched.h
    pub const SHUTDOWN: u64 = 2; // xen-public/sched.h
    pub const POLL: u64 = 3; // xen-public/sched.h
    pub const REMOTE_SHUTDOWN: u64 = 4; // xen-public/sched.h
    pub const SHUTDOWN_CODE: u64 = 5; // xen-public/sched.h
    pub const WATCHDOG: u64 = 6; // xen-public/sched.h
    pub const PIN_OVERRIDE: u64 = 7; // xen-public/sched.h
}

/// `XENVER_*`, xen-public/version.h.
pub mod xen_version {
    pub const VERSION: u64 = 0; // xen-public/version.h
    pub const EXTRAVERSION: u64 = 1; // xen-public/version.h
    pub const COMPILE_INFO: u64 = 2; // xen-public/version.h
    pub const CAPABILITIES: u64 = 3; // xen-public/version.h
    pub const CHANGESET: u64 = 4; // xen-public/version.h
    pub const PLATFORM_PARAMETERS: u64 = 5; // xen-public/version.h
    pub const GET_FEATURES: u64 = 6; // xen-public/version.h
    pub const PAGESIZE: u64 = 7; // xen-public/version.h
    pub const GUEST_HANDLE: u64 = 8; // xen-public/version.h
    pub const COMMANDLINE: u64 = 9; // xen-public/version.h
    pub const BUILD_ID: u64 = 10; // xen-public/version.h
}

/// `EVTCHNOP_*`, xen-public/event_channel.h.
pub mod evtchn_op {
    pub const BIND_INTERDOMAIN: u64 = 0; // xen-public/event_channel.h
    pub const BIND_VIRQ: u64 = 1; // xen-public/event_channel.h
    pub const BIND_PIRQ: u64 = 2; // xen-public/event_channel.h
    pub const CLOSE: u64 = 3; // xen-public/event_channel.h
    pub const SEND: u64 = 4; // xen-public/event_channel.h
    pub const STATUS: u64 = 5; // xen-public/event_channel.h
    pub const ALLOC_UNBOUND: u64 = 6; // xen-public/event_channel.h
    pub const BIND_IPI: u64 = 7; // xen-public/event_channel.h
    pub const BIND_VCPU: u64 = 8; // xen-public/event_channel.h
    pub const UNMASK: u64 = 9; // xen-public/event_channel.h
    pub const RESET: u64 = 10; // xen-public/event_channel.h
    pub const INIT_CONTROL: u64 = 11; // xen-public/event_channel.h
    pub const EXPAND_ARRAY: u64 = 12; // xen-public/event_channel.h
    pub const SET_PRIORITY: u64 = 13; // xen-public/event_channel.h
}

/// `MMUEXT_*` (mmuext_op.cmd), xen-public/xen.h.
pub mod mmuext {
    pub const PIN_L1_TABLE: u32 = 0; // xen-public/xen.h
    pub const PIN_L2_TABLE: u32 = 1; // xen-public/xen.h
    pub const PIN_L3_TABLE: u32 = 2; // xen-public/xen.h
    pub const PIN_L4_TABLE: u32 = 3; // xen-public/xen.h
    pub const UNPIN_TABLE: u32 = 4; // xen-public/xen.h
    pub const NEW_BASEPTR: u32 = 5; // xen-public/xen.h
    pub const TLB_FLUSH_LOCAL: u32 = 6; // xen-public/xen.h
    pub const INVLPG_LOCAL: u32 = 7; // xen-public/xen.h
    pub const TLB_FLUSH_MULTI: u32 = 8; // xen-public/xen.h
    pub const INVLPG_MULTI: u32 = 9; // xen-public/xen.h
    pub const TLB_FLUSH_ALL: u32 = 10; // xen-public/xen.h
    pub const INVLPG_ALL: u32 = 11; // xen-public/xen.h
    pub const FLUSH_CACHE: u32 = 12; // xen-public/xen.h
    pub const SET_LDT: u32 = 13; // xen-public/xen.h
    pub const NEW_USER_BASEPTR: u32 = 15; // xen-public/xen.h
    pub const CLEAR_PAGE: u32 = 16; // xen-public/xen.h
    pub const COPY_PAGE: u32 = 17; // xen-public/xen.h
    pub const FLUSH_CACHE_GLOBAL: u32 = 18; // xen-public/xen.h
    pub const MARK_SUPER: u32 = 19; // xen-public/xen.h
    pub const UNMARK_SUPER: u32 = 20; // xen-public/xen.h
}

/// `MMU_*`: the request type in the low two bits of `mmu_update.ptr`, xen-public/xen.h.
pub mod mmu {
    pub const NORMAL_PT_UPDATE: u64 = 0; // xen-public/xen.h
    pub const MACHPHYS_UPDATE: u64 = 1; // xen-public/xen.h
    pub const PT_UPDATE_PRESERVE_AD: u64 = 2; // xen-public/xen.h
    pub const PT_UPDATE_NO_TRANSLATE: u64 = 3; // xen-public/xen.h
    /// `ptr[1:0]` selects the command (the comment above `MMU_NORMAL_PT_UPDATE` in xen.h).
    pub const CMD_MASK: u64 = 3; // xen-public/xen.h
}

/// `UVMF_*`: update_va_mapping flags, xen-public/xen.h.
pub mod uvmf {
    pub const NONE: u64 = 0; // xen-public/xen.h
    pub const TLB_FLUSH: u64 = 1; // xen-public/xen.h
    pub const INVLPG: u64 = 2; // xen-public/xen.h
    pub const FLUSHTYPE_MASK: u64 = 3; // xen-public/xen.h
    pub const MULTI: u64 = 0; // xen-public/xen.h
    pub const LOCAL: u64 = 0; // xen-public/xen.h
    pub const ALL: u64 = 1 << 2; // xen-public/xen.h
}

/// `VCPUOP_*`, xen-public/vcpu.h.
pub mod vcpu_op {
    pub const INITIALISE: u64 = 0; // xen-public/vcpu.h
    pub const UP: u64 = 1; // xen-public/vcpu.h
    pub const DOWN: u64 = 2; // xen-public/vcpu.h
    pub const IS_UP: u64 = 3; // xen-public/vcpu.h
    pub const GET_RUNSTATE_INFO: u64 = 4; // xen-public/vcpu.h
    pub const REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5; // xen-public/vcpu.h
    pub const SET_PERIODIC_TIMER: u64 = 6; // xen-public/vcpu.h
    pub const STOP_PERIODIC_TIMER: u64 = 7; // xen-public/vcpu.h
    pub const SET_SINGLESHOT_TIMER: u64 = 8; // xen-public/vcpu.h
    pub const STOP_SINGLESHOT_TIMER: u64 = 9; // xen-public/vcpu.h
    pub const REGISTER_VCPU_INFO: u64 = 10; // xen-public/vcpu.h
    pub const SEND_NMI: u64 = 11; // xen-public/vcpu.h
    pub const GET_PHYSID: u64 = 12; // xen-public/vcpu.h
    pub const REGISTER_VCPU_TIME_MEMORY_AREA: u64 = 13; // xen-public/vcpu.h
    /// `VCPU_SSHOTTMR_future` in `vcpu_set_singleshot_timer.flags`.
    pub const SSHOTTMR_FUTURE: u32 = 1 << 0; // xen-public/vcpu.h
    /// `RUNSTATE_*`: the states of `vcpu_runstate_info.state`.
    pub const RUNSTATE_RUNNING: u32 = 0; // xen-public/vcpu.h
    pub const RUNSTATE_RUNNABLE: u32 = 1; // xen-public/vcpu.h
    pub const RUNSTATE_BLOCKED: u32 = 2; // xen-public/vcpu.h
    pub const RUNSTATE_OFFLINE: u32 = 3; // xen-public/vcpu.h
    /// `XEN_RUNSTATE_UPDATE`: set in `state_entry_time` while the guest copy is being written
    /// (with VMASST_TYPE_runstate_update_flag).
    pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63; // xen-public/vcpu.h
}

/// `XENMEM_*`, xen-public/memory.h.
pub mod memory_op {
    pub const INCREASE_RESERVATION: u64 = 0; // xen-public/memory.h
    pub const DECREASE_RESERVATION: u64 = 1; // xen-public/memory.h
    pub const MAXIMUM_RAM_PAGE: u64 = 2; // xen-public/memory.h
    pub const CURRENT_RESERVATION: u64 = 3; // xen-public/memory.h
    pub const MAXIMUM_RESERVATION: u64 = 4; // xen-public/memory.h
    pub const MACHPHYS_MFN_LIST: u64 = 5; // xen-public/memory.h
    pub const POPULATE_PHYSMAP: u64 = 6; // xen-public/memory.h
    pub const ADD_TO_PHYSMAP: u64 = 7; // xen-public/memory.h
    pub const MEMORY_MAP: u64 = 9; // xen-public/memory.h
    pub const MACHINE_MEMORY_MAP: u64 = 10; // xen-public/memory.h
    pub const EXCHANGE: u64 = 11; // xen-public/memory.h
    pub const MACHPHYS_MAPPING: u64 = 12; // xen-public/memory.h
    pub const SET_MEMORY_MAP: u64 = 13; // xen-public/memory.h
    pub const MAXIMUM_GPFN: u64 = 14; // xen-public/memory.h
    pub const REMOVE_FROM_PHYSMAP: u64 = 15; // xen-public/memory.h
    pub const SET_POD_TARGET: u64 = 16; // xen-public/memory.h
    pub const GET_POD_TARGET: u64 = 17; // xen-public/memory.h
    pub const GET_SHARING_FREED_PAGES: u64 = 18; // xen-public/memory.h
    pub const GET_SHARING_SHARED_PAGES: u64 = 19; // xen-public/memory.h
    pub const PAGING_OP: u64 = 20; // xen-public/memory.h
    pub const ACCESS_OP: u64 = 21; // xen-public/memory.h
    pub const SHARING_OP: u64 = 22; // xen-public/memory.h
    pub const ADD_TO_PHYSMAP_BATCH: u64 = 23; // xen-public/memory.h
    pub const CLAIM_PAGES: u64 = 24; // xen-public/memory.h
    pub const MACHPHYS_COMPAT_MFN_LIST: u64 = 25; // xen-public/memory.h
    pub const GET_VNUMAINFO: u64 = 26; // xen-public/memory.h
    pub const RESERVED_DEVICE_MEMORY_MAP: u64 = 27; // xen-public/memory.h
    pub const ACQUIRE_RESOURCE: u64 = 28; // xen-public/memory.h
}

/// `CALLBACKTYPE_*`, `CALLBACKOP_*`, `CALLBACKF_*`: xen-public/callback.h.
pub mod callback {
    pub const TYPE_EVENT: u32 = 0; // xen-public/callback.h
    pub const TYPE_FAILSAFE: u32 = 1; // xen-public/callback.h
    pub const TYPE_SYSCALL: u32 = 2; // xen-public/callback.h
    /// x86/32 only; a 64-bit hypervisor rejects it.
    pub const TYPE_SYSENTER_DEPRECATED: u32 = 3; // xen-public/callback.h
    pub const TYPE_NMI: u32 = 4; // xen-public/callback.h
    pub const TYPE_SYSENTER: u32 = 5; // xen-public/callback.h
    /// 32-bit guest applications' syscall (AMD). 7, not 3: 3 is `CALLBACKTYPE_sysenter_deprecated`.
    pub const TYPE_SYSCALL32: u32 = 7; // xen-public/callback.h
    pub const OP_REGISTER: u64 = 0; // xen-public/callback.h
    pub const OP_UNREGISTER: u64 = 1; // xen-public/callback.h
    /// Mask events on entry to this callback (`CALLBACKF_mask_events`, `1U << 0`).
    pub const F_MASK_EVENTS: u16 = 1 << 0; // xen-public/callback.h
}

/// `PHYSDEVOP_*`, xen-public/physdev.h.
pub mod physdev {
    pub const SET_IOPL: u64 = 6; // xen-public/physdev.h
}

/// `VMASST_*`, xen-public/xen.h.
pub mod vm_assist {
    pub const CMD_ENABLE: u64 = 0; // xen-public/xen.h
    pub const CMD_DISABLE: u64 = 1; // xen-public/xen.h
    pub const TYPE_4GB_SEGMENTS: u64 = 0; // xen-public/xen.h
    pub const TYPE_4GB_SEGMENTS_NOTIFY: u64 = 1; // xen-public/xen.h
    pub const TYPE_WRITABLE_PAGETABLES: u64 = 2; // xen-public/xen.h
    pub const TYPE_PAE_EXTENDED_CR3: u64 = 3; // xen-public/xen.h
    pub const TYPE_ARCHITECTURAL_IOPL: u64 = 4; // xen-public/xen.h
    pub const TYPE_RUNSTATE_UPDATE_FLAG: u64 = 5; // xen-public/xen.h
    pub const TYPE_M2P_STRICT: u64 = 32; // xen-public/xen.h
    /// Assists a 64-bit PV guest may enable (Xen's `VM_ASSIST_VALID`, built from the types above;
    /// not a public-header constant).
    pub const VALID: u64 = (1 << TYPE_4GB_SEGMENTS)
        | (1 << TYPE_4GB_SEGMENTS_NOTIFY)
        | (1 << TYPE_WRITABLE_PAGETABLES)
        | (1 << TYPE_PAE_EXTENDED_CR3)
        | (1 << TYPE_ARCHITECTURAL_IOPL)
        | (1 << TYPE_RUNSTATE_UPDATE_FLAG)
        | (1 << TYPE_M2P_STRICT);
}

/// `SEGBASE_*` for set_segment_base, xen-public/arch-x86/xen-x86_64.h.
pub mod segbase {
    pub const FS: u64 = 0; // xen-public/arch-x86/xen-x86_64.h
    pub const GS_USER: u64 = 1; // xen-public/arch-x86/xen-x86_64.h
    pub const GS_KERNEL: u64 = 2; // xen-public/arch-x86/xen-x86_64.h
    pub const GS_USER_SEL: u64 = 3; // xen-public/arch-x86/xen-x86_64.h
}

/// `VGCF_in_syscall` (`1 << _VGCF_in_syscall`, bit 8) in iret_context.flags.
pub const VGCF_IN_SYSCALL: u64 = 1 << 8; // xen-public/arch-x86/xen-x86_64.h

/// `VGCF_*` flags of `vcpu_guest_context.flags`, xen-public/arch-x86/xen.h.
pub mod vgcf {
    pub const I387_VALID: u64 = 1 << 0; // xen-public/arch-x86/xen.h
    pub const IN_KERNEL: u64 = 1 << 2; // xen-public/arch-x86/xen.h
    pub const FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3; // xen-public/arch-x86/xen.h
    pub const SYSCALL_DISABLES_EVENTS: u64 = 1 << 4; // xen-public/arch-x86/xen.h
    pub const ONLINE: u64 = 1 << 5; // xen-public/arch-x86/xen.h
}

/// Virtual IRQs (`VIRQ_*`), xen-public/xen.h.
pub mod virq {
    pub const TIMER: u32 = 0; // xen-public/xen.h
    pub const DEBUG: u32 = 1; // xen-public/xen.h
    pub const CONSOLE: u32 = 2; // xen-public/xen.h
    pub const DOM_EXC: u32 = 3; // xen-public/xen.h
    pub const TBUF: u32 = 4; // xen-public/xen.h
    pub const DEBUGGER: u32 = 6; // xen-public/xen.h
    pub const XENOPROF: u32 = 7; // xen-public/xen.h
    pub const CON_RING: u32 = 8; // xen-public/xen.h
    pub const PCPU_STATE: u32 = 9; // xen-public/xen.h
    pub const MEM_EVENT: u32 = 10; // xen-public/xen.h
    pub const ARGO: u32 = 11; // xen-public/xen.h
    pub const ENOMEM: u32 = 12; // xen-public/xen.h
    pub const XENPMU: u32 = 13; // xen-public/xen.h
    /// `NR_VIRQS`.
    pub const NR: u32 = 24; // xen-public/xen.h
}

/// grant_table_op sub-ops (`GNTTABOP_*`), grant-entry flags (`GTF_*`), map flags (`GNTMAP_*`),
/// copy flags (`GNTCOPY_*`) and statuses (`GNTST_*`), xen-public/grant_table.h.
pub mod gnttab {
    pub const MAP_GRANT_REF: u32 = 0; // xen-public/grant_table.h GNTTABOP_map_grant_ref
    pub const UNMAP_GRANT_REF: u32 = 1; // xen-public/grant_table.h GNTTABOP_unmap_grant_ref
    pub const SETUP_TABLE: u32 = 2; // xen-public/grant_table.h GNTTABOP_setup_table
    pub const DUMP_TABLE: u32 = 3; // xen-public/grant_table.h GNTTABOP_dump_table
    pub const TRANSFER: u32 = 4; // xen-public/grant_table.h GNTTABOP_transfer
    pub const COPY: u32 = 5; // xen-public/grant_table.h GNTTABOP_copy
    pub const QUERY_SIZE: u32 = 6; // xen-public/grant_table.h GNTTABOP_query_size
    pub const UNMAP_AND_REPLACE: u32 = 7; // xen-public/grant_table.h GNTTABOP_unmap_and_replace
    pub const SET_VERSION: u32 = 8; // xen-public/grant_table.h GNTTABOP_set_version
    pub const GET_STATUS_FRAMES: u32 = 9; // xen-public/grant_table.h GNTTABOP_get_status_frames
    pub const GET_VERSION: u32 = 10; // xen-public/grant_table.h GNTTABOP_get_version
    pub const SWAP_GRANT_REF: u32 = 11; // xen-public/grant_table.h GNTTABOP_swap_grant_ref
    pub const CACHE_FLUSH: u32 = 12; // xen-public/grant_table.h GNTTABOP_cache_flush

    /// `GNTTAB_NR_RESERVED_ENTRIES`: entries kept across a version switch.
    pub const NR_RESERVED_ENTRIES: u32 = 8; // xen-public/grant_table.h

    pub const GTF_INVALID: u16 = 0; // xen-public/grant_table.h
    pub const GTF_PERMIT_ACCESS: u16 = 1; // xen-public/grant_table.h
    pub const GTF_ACCEPT_TRANSFER: u16 = 2; // xen-public/grant_table.h
    pub const GTF_TRANSITIVE: u16 = 3; // xen-public/grant_table.h
    pub const GTF_TYPE_MASK: u16 = 3; // xen-public/grant_table.h
    pub const GTF_READONLY: u16 = 1 << 2; // xen-public/grant_table.h
    pub const GTF_READING: u16 = 1 << 3; // xen-public/grant_table.h
    pub const GTF_WRITING: u16 = 1 << 4; // xen-public/grant_table.h
    pub const GTF_PWT: u16 = 1 << 5; // xen-public/grant_table.h
    pub const GTF_PCD: u16 = 1 << 6; // xen-public/grant_table.h
    pub const GTF_PAT: u16 = 1 << 7; // xen-public/grant_table.h
    pub const GTF_SUB_PAGE: u16 = 1 << 8; // xen-public/grant_table.h

    pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0; // xen-public/grant_table.h
    pub const GNTMAP_HOST_MAP: u32 = 1 << 1; // xen-public/grant_table.h
    pub const GNTMAP_READONLY: u32 = 1 << 2; // xen-public/grant_table.h
    pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3; // xen-public/grant_table.h
    pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4; // xen-public/grant_table.h

    pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0; // xen-public/grant_table.h
    pub const GNTCOPY_DEST_GREF: u16 = 1 << 1; // xen-public/grant_table.h

    pub const CACHE_CLEAN: u32 = 1 << 0; // xen-public/grant_table.h GNTTAB_CACHE_CLEAN
    pub const CACHE_INVAL: u32 = 1 << 1; // xen-public/grant_table.h GNTTAB_CACHE_INVAL
    pub const CACHE_SOURCE_GREF: u32 = 1 << 31; // xen-public/grant_table.h GNTTAB_CACHE_SOURCE_GREF

    pub const GNTST_OKAY: i16 = 0; // xen-public/grant_table.h
    pub const GNTST_GENERAL_ERROR: i16 = -1; // xen-public/grant_table.h
    pub const GNTST_BAD_DOMAIN: i16 = -2; // xen-public/grant_table.h
    pub const GNTST_BAD_GNTREF: i16 = -3; // xen-public/grant_table.h
    pub const GNTST_BAD_HANDLE: i16 = -4; // xen-public/grant_table.h
    pub const GNTST_BAD_VIRT_ADDR: i16 = -5; // xen-public/grant_table.h
    pub const GNTST_BAD_DEV_ADDR: i16 = -6; // xen-public/grant_table.h
    pub const GNTST_NO_DEVICE_SPACE: i16 = -7; // xen-public/grant_table.h
    pub const GNTST_PERMISSION_DENIED: i16 = -8; // xen-public/grant_table.h
    pub const GNTST_BAD_PAGE: i16 = -9; // xen-public/grant_table.h
    pub const GNTST_BAD_COPY_ARG: i16 = -10; // xen-public/grant_table.h
    pub const GNTST_ADDRESS_TOO_BIG: i16 = -11; // xen-public/grant_table.h
    pub const GNTST_EAGAIN: i16 = -12; // xen-public/grant_table.h
    pub const GNTST_NO_SPACE: i16 = -13; // xen-public/grant_table.h
}
