//! xenolith's hypervisor core: the Xen PV64 ABI, domains and vCPUs, machine memory and page
//! types, the domain builder, the hypercall table, exception bouncing, event channels, the
//! console backend, the scheduler loop and the trace.
//!
//! The core is `no_std` + `alloc` and reaches the world only through [`platform::Platform`].
//! It never names unicorn, QEMU or a CPU register file; `cfg(target_*)` appears only in `arch`.
//!
//! # Safety
//! The only `unsafe` in the core is the `Pod` byte view of ABI structs (`mm::memory`). Guest
//! input is never trusted: every guest pointer is translated by a host-side page walk and every
//! machine address is bounds-checked, so bad input becomes an errno or a crashed domain.

#![cfg_attr(not(any(test, feature = "mock")), no_std)]

extern crate alloc;

pub mod abi;
pub mod arch;
pub mod builder;
pub mod debug;
pub mod desc;
pub mod domain;
pub mod driver;
pub mod elf;
pub mod emulate;
pub mod evtchn;
pub mod grant;
pub mod hv;
pub mod hypercall;
pub mod mm;
pub mod pack;
pub mod platform;
pub mod privop;
pub mod ptwr;
pub mod sched;
pub mod store;
pub mod traps;
pub mod vcpu;

#[cfg(any(test, feature = "mock"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use hv::{Hypervisor, Record, RecordState, XenState};

/// A domain id.
pub type DomId = u16;
