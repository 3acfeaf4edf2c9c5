//! Xen's public PV64 interface, as our own definitions (`xen/include/public/`).
//!
//! Every structure the core reads from or writes to guest memory is here, `repr(C)`, with
//! compile-time size and offset assertions. Nothing in this module has behaviour: it is the wire
//! format between xenolith and an unmodified Xen PV64 guest.

pub mod errno;
pub mod hypercall;
pub mod structs;

pub use errno::Errno;
pub use structs::*;

/// Reserved hypervisor range in every guest address space (L4 slots 256..=271).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the reserved hypervisor range.
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// Read-only machine-to-phys table, one u64 per machine frame.
pub const RO_MPT_VIRT_START: u64 = HYPERVISOR_VIRT_START;
/// First L4 slot reserved for the hypervisor.
pub const XEN_L4_FIRST: usize = 256;
/// Last L4 slot reserved for the hypervisor (inclusive).
pub const XEN_L4_LAST: usize = 271;

/// Flat 64-bit code selector for guest kernel and user (ring 3).
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// Flat 32-bit code selector (ring 3).
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// Flat data/stack selector (ring 3).
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// Guest kernel code selector as Xen reports it.
pub const FLAT_KERNEL_CS: u16 = FLAT_RING3_CS64;
/// Guest kernel stack selector.
pub const FLAT_KERNEL_SS: u16 = FLAT_RING3_DS32;
/// First GDT entry reserved for the hypervisor (entries below belong to the guest's own GDT).
pub const FIRST_RESERVED_GDT_ENTRY: usize = 14 * 512;

/// ELF note types (name "Xen").
pub mod elfnote {
    pub const ENTRY: u32 = 1;
    pub const HYPERCALL_PAGE: u32 = 2;
    pub const VIRT_BASE: u32 = 3;
    pub const PADDR_OFFSET: u32 = 4;
    pub const XEN_VERSION: u32 = 5;
    pub const GUEST_OS: u32 = 6;
    pub const GUEST_VERSION: u32 = 7;
    pub const LOADER: u32 = 8;
    pub const PAE_MODE: u32 = 9;
    pub const FEATURES: u32 = 10;
    pub const BSD_SYMTAB: u32 = 11;
    pub const HV_START_LOW: u32 = 12;
    pub const L1_MFN_VALID: u32 = 13;
    pub const SUSPEND_CANCEL: u32 = 14;
    pub const INIT_P2M: u32 = 15;
    pub const MOD_START_PFN: u32 = 16;
    pub const SUPPORTED_FEATURES: u32 = 17;
    pub const PHYS32_ENTRY: u32 = 18;
}

/// start_info flags.
pub const SIF_PRIVILEGED: u64 = 1;
/// start_info flags: this is the initial domain.
pub const SIF_INITDOMAIN: u64 = 2;

/// Shutdown reasons (`SHUTDOWN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShutdownReason {
    Poweroff,
    Reboot,
    Suspend,
    Crash,
    Watchdog,
}

impl ShutdownReason {
    pub fn from_raw(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Poweroff,
            1 => Self::Reboot,
            2 => Self::Suspend,
            3 => Self::Crash,
            4 => Self::Watchdog,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Poweroff => "poweroff",
            Self::Reboot => "reboot",
            Self::Suspend => "suspend",
            Self::Crash => "crash",
            Self::Watchdog => "watchdog",
        }
    }
}

/// x86 exception vectors the core names.
pub mod vector {
    pub const DE: u8 = 0;
    pub const DB: u8 = 1;
    pub const NMI: u8 = 2;
    pub const BP: u8 = 3;
    pub const OF: u8 = 4;
    pub const BR: u8 = 5;
    pub const UD: u8 = 6;
    pub const NM: u8 = 7;
    pub const DF: u8 = 8;
    pub const TS: u8 = 10;
    pub const NP: u8 = 11;
    pub const SS: u8 = 12;
    pub const GP: u8 = 13;
    pub const PF: u8 = 14;
    pub const MF: u8 = 16;
    pub const AC: u8 = 17;
    pub const XM: u8 = 19;

    /// Does this vector push an error code?
    pub fn has_error_code(v: u8) -> bool {
        matches!(v, 8 | 10..=14 | 17 | 21)
    }

    /// Short mnemonic for traces.
    pub fn name(v: u8) -> &'static str {
        match v {
            0 => "#DE",
            1 => "#DB",
            2 => "NMI",
            3 => "#BP",
            4 => "#OF",
            5 => "#BR",
            6 => "#UD",
            7 => "#NM",
            8 => "#DF",
            10 => "#TS",
            11 => "#NP",
            12 => "#SS",
            13 => "#GP",
            14 => "#PF",
            16 => "#MF",
            17 => "#AC",
            18 => "#MC",
            19 => "#XM",
            _ => "int",
        }
    }
}
