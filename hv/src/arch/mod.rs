//! The architecture layer: the only place where `cfg(target_*)` appears.
//!
//! On `x86_64-unknown-none` this is the bare-metal hypervisor: PVH entry, long mode, GDT/TSS/IDT,
//! guests in ring 3, the `syscall` or `int3` hypercall gate, the debug console, and the
//! [`Platform`](crate::platform::Platform) implementation that runs the core's loop on real
//! (or virtual) hardware. Hosted builds (the simulator, tests) have no arch layer: their
//! platforms live in `sim/` and in the core's tests.

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod x86_64;
