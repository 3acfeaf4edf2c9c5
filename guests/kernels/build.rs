//! Passes the shared linker script (`guests/link.ld`) to the linker with an absolute path,
//! so that `cargo build` works from a fresh clone regardless of the working directory.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let script = std::path::Path::new(&dir).join("..").join("link.ld");
    let script = script.canonicalize().expect("guests/link.ld must exist");
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
