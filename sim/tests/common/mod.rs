//! Shared test helpers: the repository root and the guest kernels (built on demand).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("sim/ has a parent").to_path_buf()
}

/// Build guests/ (its own workspace, target x86_64-unknown-none) once per test process, so a
/// plain `cargo test` works without a separate step. Panics with the build's output on failure.
pub fn guests() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = repo().join("guests");
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--release", "--quiet"])
                .current_dir(&dir)
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env_remove("CARGO_BUILD_TARGET")
                .env_remove("CARGO_TARGET_DIR")
                .output()
                .expect("run cargo to build the guests");
            assert!(
                out.status.success(),
                "building guests/ failed (is the x86_64-unknown-none target installed? `cargo xtask setup`):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            sim::runner::guests_dir(&repo())
        })
        .clone()
}

/// Load and run `scenarios/<name>.toml`.
pub fn run_scenario(name: &str) -> sim::runner::Outcome {
    let path = repo().join("scenarios").join(format!("{name}.toml"));
    let sc = sim::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    sim::runner::run(&sc, &guests())
}
