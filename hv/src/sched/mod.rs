//! Scheduling: which vCPU runs on which physical CPU, and for how long.
//!
//! [`credit`] is Xen's credit scheduler (credit1, `xen/common/sched/credit.c`), on the virtual
//! clock. The hypervisor's loop (`hv.rs`, `Hypervisor::run_until`) asks it for decisions and
//! tells it about wake-ups, yields and the passing of time.

pub mod credit;

pub use credit::{Credit, Pri, RunSpan, UnitId};
