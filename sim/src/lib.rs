//! xenolith's simulator: the unicorn-backed platform, the scenario runner and trace recorder.

pub mod scenario;
pub mod xlcfg;
