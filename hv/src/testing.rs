//! Test support shared by the core's unit tests and the fuzz targets (`fuzz/`): the mock platform
//! (scripted exits over `Vec` memory) and a writer of tiny Xen PV64 ELF kernels.
//!
//! Compiled under `cfg(test)` and with the `mock` feature only; both bring in `std`, so normal
//! builds of the core stay `no_std`. The sources live beside the unit tests that grew them.

#[path = "tests/image.rs"]
pub mod image;
#[path = "tests/mock.rs"]
pub mod mock;
