//! Hypercall numbers and sub-operation numbers.

pub const SET_TRAP_TABLE: u32 = 0;
pub const MMU_UPDATE: u32 = 1;
pub const SET_GDT: u32 = 2;
pub const STACK_SWITCH: u32 = 3;
pub const SET_CALLBACKS: u32 = 4;
pub const FPU_TASKSWITCH: u32 = 5;
pub const PLATFORM_OP: u32 = 7;
pub const SET_DEBUGREG: u32 = 8;
pub const GET_DEBUGREG: u32 = 9;
pub const UPDATE_DESCRIPTOR: u32 = 10;
pub const MEMORY_OP: u32 = 12;
pub const MULTICALL: u32 = 13;
pub const UPDATE_VA_MAPPING: u32 = 14;
pub const SET_TIMER_OP: u32 = 15;
pub const XEN_VERSION: u32 = 17;
pub const CONSOLE_IO: u32 = 18;
pub const GRANT_TABLE_OP: u32 = 20;
pub const VM_ASSIST: u32 = 21;
pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 22;
pub const IRET: u32 = 23;
pub const VCPU_OP: u32 = 24;
pub const SET_SEGMENT_BASE: u32 = 25;
pub const MMUEXT_OP: u32 = 26;
pub const XSM_OP: u32 = 27;
pub const NMI_OP: u32 = 28;
pub const SCHED_OP: u32 = 29;
pub const CALLBACK_OP: u32 = 30;
pub const EVENT_CHANNEL_OP: u32 = 32;
pub const PHYSDEV_OP: u32 = 33;
pub const SYSCTL: u32 = 35;
pub const DOMCTL: u32 = 36;

/// Number of 32-byte stubs in the hypercall page.
pub const PAGE_ENTRIES: u32 = 128;

pub mod console_io {
    pub const WRITE: u64 = 0;
    pub const READ: u64 = 1;
}

pub mod sched_op {
    pub const YIELD: u64 = 0;
    pub const BLOCK: u64 = 1;
    pub const SHUTDOWN: u64 = 2;
    pub const POLL: u64 = 3;
    pub const REMOTE_SHUTDOWN: u64 = 4;
    pub const SHUTDOWN_CODE: u64 = 5;
}

pub mod xen_version {
    pub const VERSION: u64 = 0;
    pub const EXTRAVERSION: u64 = 1;
    pub const COMPILE_INFO: u64 = 2;
    pub const CAPABILITIES: u64 = 3;
    pub const CHANGESET: u64 = 4;
    pub const PLATFORM_PARAMETERS: u64 = 5;
    pub const GET_FEATURES: u64 = 6;
    pub const PAGESIZE: u64 = 7;
    pub const GUEST_HANDLE: u64 = 8;
    pub const COMMANDLINE: u64 = 9;
    pub const BUILD_ID: u64 = 10;
}

pub mod evtchn_op {
    pub const BIND_INTERDOMAIN: u64 = 0;
    pub const BIND_VIRQ: u64 = 1;
    pub const CLOSE: u64 = 3;
    pub const SEND: u64 = 4;
    pub const STATUS: u64 = 5;
    pub const ALLOC_UNBOUND: u64 = 6;
    pub const BIND_IPI: u64 = 7;
    pub const BIND_VCPU: u64 = 8;
    pub const UNMASK: u64 = 9;
}

pub mod mmuext {
    pub const PIN_L1_TABLE: u32 = 0;
    pub const PIN_L2_TABLE: u32 = 1;
    pub const PIN_L3_TABLE: u32 = 2;
    pub const PIN_L4_TABLE: u32 = 3;
    pub const UNPIN_TABLE: u32 = 4;
    pub const NEW_BASEPTR: u32 = 5;
    pub const TLB_FLUSH_LOCAL: u32 = 6;
    pub const INVLPG_LOCAL: u32 = 7;
    pub const TLB_FLUSH_MULTI: u32 = 8;
    pub const INVLPG_MULTI: u32 = 9;
    pub const TLB_FLUSH_ALL: u32 = 10;
    pub const INVLPG_ALL: u32 = 11;
    pub const FLUSH_CACHE: u32 = 12;
    pub const SET_LDT: u32 = 13;
    pub const NEW_USER_BASEPTR: u32 = 15;
    pub const CLEAR_PAGE: u32 = 16;
    pub const COPY_PAGE: u32 = 17;
}

/// update_va_mapping flags (low bits of the flags argument).
pub mod uvmf {
    pub const NONE: u64 = 0;
    pub const TLB_FLUSH: u64 = 1;
    pub const INVLPG: u64 = 2;
    pub const FLUSHTYPE_MASK: u64 = 3;
}

pub mod vcpu_op {
    pub const INITIALISE: u64 = 0;
    pub const UP: u64 = 1;
    pub const DOWN: u64 = 2;
    pub const IS_UP: u64 = 3;
    pub const GET_RUNSTATE_INFO: u64 = 4;
    pub const REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5;
    pub const SET_PERIODIC_TIMER: u64 = 6;
    pub const STOP_PERIODIC_TIMER: u64 = 7;
    pub const SET_SINGLESHOT_TIMER: u64 = 8;
    pub const STOP_SINGLESHOT_TIMER: u64 = 9;
    pub const REGISTER_VCPU_INFO: u64 = 10;
}

pub mod memory_op {
    pub const INCREASE_RESERVATION: u64 = 0;
    pub const DECREASE_RESERVATION: u64 = 1;
    pub const MAXIMUM_RAM_PAGE: u64 = 2;
    pub const CURRENT_RESERVATION: u64 = 3;
    pub const MAXIMUM_RESERVATION: u64 = 4;
    pub const POPULATE_PHYSMAP: u64 = 6;
    pub const ADD_TO_PHYSMAP: u64 = 7;
    pub const MEMORY_MAP: u64 = 9;
    pub const MACHPHYS_MAPPING: u64 = 12;
}

pub mod callback {
    pub const TYPE_EVENT: u32 = 0;
    pub const TYPE_FAILSAFE: u32 = 1;
    pub const TYPE_SYSCALL: u32 = 2;
    pub const TYPE_SYSENTER_DEPRECATED: u32 = 3;
    pub const TYPE_NMI: u32 = 4;
    pub const TYPE_SYSENTER: u32 = 5;
    pub const TYPE_SYSCALL32: u32 = 7;
    pub const OP_REGISTER: u64 = 0;
    pub const OP_UNREGISTER: u64 = 1;
    /// Mask events on entry to this callback.
    pub const F_MASK_EVENTS: u16 = 1;
}

pub mod vm_assist {
    pub const CMD_ENABLE: u64 = 0;
    pub const CMD_DISABLE: u64 = 1;
    pub const TYPE_4GB_SEGMENTS: u64 = 0;
    pub const TYPE_4GB_SEGMENTS_NOTIFY: u64 = 1;
    pub const TYPE_WRITABLE_PAGETABLES: u64 = 2;
    pub const TYPE_PAE_EXTENDED_CR3: u64 = 3;
    pub const TYPE_ARCHITECTURAL_IOPL: u64 = 4;
    pub const TYPE_RUNSTATE_UPDATE_FLAG: u64 = 5;
    pub const TYPE_M2P_STRICT: u64 = 32;
    /// Assists a 64-bit PV guest may enable.
    pub const VALID: u64 = (1 << TYPE_4GB_SEGMENTS)
        | (1 << TYPE_4GB_SEGMENTS_NOTIFY)
        | (1 << TYPE_WRITABLE_PAGETABLES)
        | (1 << TYPE_PAE_EXTENDED_CR3)
        | (1 << TYPE_ARCHITECTURAL_IOPL)
        | (1 << TYPE_RUNSTATE_UPDATE_FLAG)
        | (1 << TYPE_M2P_STRICT);
}

pub mod segbase {
    pub const FS: u64 = 0;
    pub const GS_USER: u64 = 1;
    pub const GS_KERNEL: u64 = 2;
    pub const GS_USER_SEL: u64 = 3;
}

/// VGCF_in_syscall in iret_context.flags.
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

/// Virtual IRQs.
pub mod virq {
    pub const TIMER: u32 = 0;
    pub const DEBUG: u32 = 1;
    pub const CONSOLE: u32 = 2;
    pub const DOM_EXC: u32 = 3;
    pub const NR: u32 = 24;
}
