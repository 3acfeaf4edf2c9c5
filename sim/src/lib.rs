//! xenolith's simulator: the unicorn-backed platform, the scenario runner and trace recorder.

pub mod bench_shares;
pub mod console;
pub mod create;
pub mod gdb;
pub mod hw;
pub mod input;
pub mod kernel;
pub mod platform;
pub mod runner;
pub mod scenario;
pub mod timeline;
pub mod uc_fix;
pub mod watch;
pub mod xlcfg;

pub use platform::{new_hypervisor, SimPlatform};
