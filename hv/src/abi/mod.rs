//! Xen's public PV64 interface, as our own definitions (`xen/include/public/`).
//!
//! Every structure the core reads from or writes to guest memory is here, `repr(C)`, with
//! compile-time size and offset assertions. Nothing in this module has behaviour: it is the wire
//! format between xenolith and an unmodified Xen PV64 guest.
//!
//! Every number and layout cites, in a comment beside it, the Xen 4.17 public header it comes from
//! (`xen-public/…`, i.e. `xen/include/public/…`). `hv/tests/xen_abi.rs` reads those headers (from
//! `<repo>/../shared/xen-public`) and fails on any mismatch. The exception vectors below are the
//! x86 architecture's, not Xen's.

pub mod control;
pub mod errno;
pub mod hypercall;
pub mod memory;
pub mod structs;

pub use control::{DomctlHead, EvtchnOpCompat, HvmParam, NmiCallback, PhysdevOpCompat, PlatformOpHead, SysctlHead};
pub use errno::Errno;
pub use memory::*;
pub use structs::*;

/// Reserved hypervisor range in every guest address space (L4 slots 256..=271).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000; // xen-public/arch-x86/xen-x86_64.h
/// End (exclusive) of the reserved hypervisor range.
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000; // xen-public/arch-x86/xen-x86_64.h
/// Read-only machine-to-phys table, one u64 per machine frame (`MACH2PHYS_VIRT_START`).
pub const RO_MPT_VIRT_START: u64 = 0xFFFF_8000_0000_0000; // xen-public/arch-x86/xen-x86_64.h
/// End (exclusive) of the M2P's virtual range (`MACH2PHYS_VIRT_END`).
pub const RO_MPT_VIRT_END: u64 = 0xFFFF_8040_0000_0000; // xen-public/arch-x86/xen-x86_64.h
/// First L4 slot reserved for the hypervisor (`HYPERVISOR_VIRT_START >> 39 & 511`).
pub const XEN_L4_FIRST: usize = ((HYPERVISOR_VIRT_START >> 39) & 511) as usize;
/// Last L4 slot reserved for the hypervisor (inclusive; `HYPERVISOR_VIRT_END` is exclusive).
pub const XEN_L4_LAST: usize = (((HYPERVISOR_VIRT_END - 1) >> 39) & 511) as usize;
const _: () = assert!(XEN_L4_FIRST == 256 && XEN_L4_LAST == 271);

/// Flat 64-bit code selector for guest kernel and user (ring 3).
pub const FLAT_RING3_CS64: u16 = 0xe033; // xen-public/arch-x86/xen-x86_64.h
/// Flat 32-bit code selector (ring 3).
pub const FLAT_RING3_CS32: u16 = 0xe023; // xen-public/arch-x86/xen-x86_64.h
/// Flat 32-bit data selector (ring 3).
pub const FLAT_RING3_DS32: u16 = 0xe02b; // xen-public/arch-x86/xen-x86_64.h
/// Flat 64-bit data selector: the null selector.
pub const FLAT_RING3_DS64: u16 = 0x0000; // xen-public/arch-x86/xen-x86_64.h
/// Flat 32-bit stack selector (ring 3).
pub const FLAT_RING3_SS32: u16 = 0xe02b; // xen-public/arch-x86/xen-x86_64.h
/// Flat 64-bit stack selector (ring 3).
pub const FLAT_RING3_SS64: u16 = 0xe02b; // xen-public/arch-x86/xen-x86_64.h
/// Guest kernel code selector (`FLAT_KERNEL_CS` = `FLAT_KERNEL_CS64` = `FLAT_RING3_CS64`).
pub const FLAT_KERNEL_CS: u16 = FLAT_RING3_CS64; // xen-public/arch-x86/xen-x86_64.h
/// Guest kernel stack selector (`FLAT_KERNEL_SS` = `FLAT_KERNEL_SS64` = `FLAT_RING3_SS64`).
pub const FLAT_KERNEL_SS: u16 = FLAT_RING3_SS64; // xen-public/arch-x86/xen-x86_64.h
/// Guest kernel data selector (`FLAT_KERNEL_DS` = `FLAT_KERNEL_DS64` = null).
pub const FLAT_KERNEL_DS: u16 = FLAT_RING3_DS64; // xen-public/arch-x86/xen-x86_64.h
/// First GDT entry reserved for the hypervisor (entries below belong to the guest's own GDT):
/// `FIRST_RESERVED_GDT_PAGE` (14) * 4096 / 8.
pub const FIRST_RESERVED_GDT_ENTRY: usize = 14 * 4096 / 8; // xen-public/arch-x86/xen.h

/// `DOMID_SELF`: "the calling domain" wherever a domid is expected.
pub const DOMID_SELF: u16 = 0x7FF0; // xen-public/xen.h
/// `DOMID_FIRST_RESERVED`: ids from here on are never ordinary domains.
pub const DOMID_FIRST_RESERVED: u16 = 0x7FF0; // xen-public/xen.h

/// ELF note types (`XEN_ELFNOTE_*`; note name "Xen").
pub mod elfnote {
    pub const ENTRY: u32 = 1; // xen-public/elfnote.h
    pub const HYPERCALL_PAGE: u32 = 2; // xen-public/elfnote.h
    pub const VIRT_BASE: u32 = 3; // xen-public/elfnote.h
    pub const PADDR_OFFSET: u32 = 4; // xen-public/elfnote.h
    pub const XEN_VERSION: u32 = 5; // xen-public/elfnote.h
    pub const GUEST_OS: u32 = 6; // xen-public/elfnote.h
    pub const GUEST_VERSION: u32 = 7; // xen-public/elfnote.h
    pub const LOADER: u32 = 8; // xen-public/elfnote.h
    pub const PAE_MODE: u32 = 9; // xen-public/elfnote.h
    pub const FEATURES: u32 = 10; // xen-public/elfnote.h
    pub const BSD_SYMTAB: u32 = 11; // xen-public/elfnote.h
    pub const HV_START_LOW: u32 = 12; // xen-public/elfnote.h
    pub const L1_MFN_VALID: u32 = 13; // xen-public/elfnote.h
    pub const SUSPEND_CANCEL: u32 = 14; // xen-public/elfnote.h
    pub const INIT_P2M: u32 = 15; // xen-public/elfnote.h
    pub const MOD_START_PFN: u32 = 16; // xen-public/elfnote.h
    pub const SUPPORTED_FEATURES: u32 = 17; // xen-public/elfnote.h
    pub const PHYS32_ENTRY: u32 = 18; // xen-public/elfnote.h
}

/// start_info flags: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0; // xen-public/xen.h
/// start_info flags: this is the initial domain.
pub const SIF_INITDOMAIN: u32 = 1 << 1; // xen-public/xen.h
/// start_info flags: mod_start is a multiboot module.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2; // xen-public/xen.h
/// start_info flags: mod_start is a PFN.
pub const SIF_MOD_START_PFN: u32 = 1 << 3; // xen-public/xen.h

/// `SHUTDOWN_*` reason codes.
pub mod shutdown {
    pub const POWEROFF: u32 = 0; // xen-public/sched.h
    pub const REBOOT: u32 = 1; // xen-public/sched.h
    pub const SUSPEND: u32 = 2; // xen-public/sched.h
    pub const CRASH: u32 = 3; // xen-public/sched.h
    pub const WATCHDOG: u32 = 4; // xen-public/sched.h
    pub const SOFT_RESET: u32 = 5; // xen-public/sched.h
    /// `SHUTDOWN_MAX`: the largest valid reason.
    pub const MAX: u32 = 5; // xen-public/sched.h
}

/// Shutdown reasons (`SHUTDOWN_*`, xen-public/sched.h) the core acts on.
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
            shutdown::POWEROFF => Self::Poweroff,
            shutdown::REBOOT => Self::Reboot,
            shutdown::SUSPEND => Self::Suspend,
            shutdown::CRASH => Self::Crash,
            shutdown::WATCHDOG => Self::Watchdog,
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
