//! `cargo xtask fuzz [TARGET...] [--time SECONDS]`: build the cargo-fuzz targets in `fuzz/` and run
//! each for a while (default: all of them, 20 s each), failing if any crashes.
//!
//! # How the targets are built on a stable toolchain
//!
//! The machines this project runs on have rustup's stable toolchain only, and nothing else can be
//! downloaded. cargo-fuzz (installed from crates.io by `cargo xtask setup`) works there with
//! `-s none` (`--sanitizer none`): its other flags (`-Cpasses=sancov-module`, the
//! `-Cllvm-args=-sanitizer-coverage-*` family, `--cfg fuzzing`, `-Cdebug-assertions`) are all
//! stable `-C` options, and only a sanitizer adds the nightly-only `-Zsanitizer=...`. So the
//! targets get libFuzzer's coverage feedback, value profiles of comparisons and Rust's overflow
//! and debug assertions, but no AddressSanitizer. We lose little: the core is safe Rust (its one
//! `unsafe` is the `Pod` byte view), so what the fuzzers look for is panics, overflows, hangs and
//! broken invariants, which need no sanitizer. `RUSTC_BOOTSTRAP=1` would unlock `-Zsanitizer=address`
//! on stable, but that is a hack we keep out of CI (the fuzz/README.md says what it does here).
//!
//! # Corpora
//!
//! `fuzz/corpus/TARGET` is each target's working corpus (not committed; libFuzzer adds what it
//! finds there). Before a run it gets the committed seeds of `fuzz/seeds/TARGET` and seeds made
//! from the tree: the built guests (`guests/target/x86_64-unknown-none/release/*`) for `elf`, a
//! boot pack of them for `pack`, `scenarios/*.toml` for `scenario`, `scenarios/domains/*.cfg` for
//! `xlcfg`. `fuzz/dict/TARGET.dict`, where present, is passed as libFuzzer's `-dict`. Crashes land in `fuzz/artifacts/TARGET/` and are printed; `cargo fuzz run TARGET FILE
//! -s none` (in `fuzz/`) replays one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use crate::{have_cargo_subcommand, run, Result};

/// Every target, in the order a full run takes them.
pub const TARGETS: [&str; 8] = ["elf", "pack", "xlcfg", "scenario", "rings", "store", "hypercall", "kernel"];
/// Seconds per target when `--time` is not given.
const DEFAULT_SECS: u64 = 20;

/// `cargo xtask fuzz [TARGET...] [--time SECONDS]`.
pub fn fuzz(root: &Path, args: &[String]) -> Result {
    let mut targets = Vec::new();
    let mut secs = DEFAULT_SECS;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" => {
                let v = it.next().ok_or("--time needs a number of seconds")?;
                secs = v.parse().map_err(|_| format!("--time {v}: not a number of seconds"))?;
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => return Err(format!("unknown fuzz target or option \"{other}\" (targets: {})", TARGETS.join(", "))),
        }
    }
    if targets.is_empty() {
        targets.extend(TARGETS);
    }
    if !have_cargo_subcommand("fuzz") {
        return Err("cargo-fuzz is not installed: run `cargo xtask setup`".into());
    }
    let dir = root.join("fuzz");
    let t = Instant::now();
    run(Command::new("cargo").current_dir(&dir).args(["fuzz", "build", "-s", "none"]))?;
    eprintln!("xtask fuzz: built the targets in {:.1}s", t.elapsed().as_secs_f64());

    let mut crashes = Vec::new();
    for target in targets {
        let corpus = dir.join("corpus").join(target);
        fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        seed(root, target, &corpus)?;
        let artifacts = dir.join("artifacts").join(target);
        let dict = dir.join("dict").join(format!("{target}.dict"));
        let before = SystemTime::now();
        eprintln!("xtask fuzz: {target} for {secs}s");
        let r = run(Command::new("cargo")
            .current_dir(&dir)
            .args(["fuzz", "run", "-s", "none", target])
            .arg(&corpus)
            .arg(dir.join("seeds").join(target))
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .arg("-print_final_stats=1")
            .args(dict.is_file().then(|| format!("-dict={}", dict.display()))));
        if let Err(e) = r {
            let found = new_files(&artifacts, before);
            if found.is_empty() {
                crashes.push(format!("{target}: {e}"));
            }
            for f in found {
                crashes.push(format!("{target}: {} (replay: cd fuzz && cargo fuzz run -s none {target} {})", f.display(), f.display()));
            }
        }
    }
    if crashes.is_empty() {
        Ok(())
    } else {
        Err(format!("{} finding(s):\n  {}", crashes.len(), crashes.join("\n  ")))
    }
}

/// Files in `dir` written since `since`.
fn new_files(dir: &Path, since: SystemTime) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else { return Vec::new() };
    rd.flatten().filter(|e| e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m >= since)).map(|e| e.path()).collect()
}

/// Copy `src` into the corpus as `seed-NAME` (libFuzzer's own entries are named by hash).
fn put(corpus: &Path, name: &str, bytes: &[u8]) -> Result {
    let p = corpus.join(format!("seed-{name}"));
    fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))
}

/// Files in `dir` whose name ends with `ext` ("" for any), sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file() && p.to_string_lossy().ends_with(ext)).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The built guest kernels (ELF files of the guests' release dir), if the guests were built.
fn guest_elves(root: &Path) -> Vec<(String, Vec<u8>)> {
    files(&root.join("guests/target/x86_64-unknown-none/release"), "")
        .into_iter()
        .filter_map(|p| {
            let b = fs::read(&p).ok()?;
            let name = p.file_name()?.to_string_lossy().into_owned();
            b.starts_with(b"\x7fELF").then_some((name, b))
        })
        .collect()
}

/// A gzip stream of `data` with stored (uncompressed) deflate blocks: no compressor needed.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        v.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        v.push(chunks.peek().is_none() as u8);
        v.extend_from_slice(&(c.len() as u16).to_le_bytes());
        v.extend_from_slice(&(!(c.len() as u16)).to_le_bytes());
        v.extend_from_slice(c);
    }
    v.extend_from_slice(&crc32(data).to_le_bytes());
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xedb8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// A minimal bzImage (x86 boot protocol 2.15 setup header) around `payload`.
fn bzimage(payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 1024 + 0x40];
    b[0x1f1] = 1; // setup_sects
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    b[0x248..0x24c].copy_from_slice(&0x40u32.to_le_bytes()); // payload_offset
    b[0x24c..0x250].copy_from_slice(&(payload.len() as u32 + 4).to_le_bytes());
    b.extend_from_slice(payload);
    b.extend_from_slice(&0u32.to_le_bytes());
    b
}

/// Seeds made from the tree (see the module doc).
fn seed(root: &Path, target: &str, corpus: &Path) -> Result {
    let from_dir = |dir: &str, ext: &str| -> Result {
        for p in files(&root.join(dir), ext) {
            let b = fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            put(corpus, &p.file_name().unwrap_or_default().to_string_lossy(), &b)?;
        }
        Ok(())
    };
    match target {
        "elf" => {
            for (name, b) in guest_elves(root) {
                put(corpus, &name, &b)?;
            }
        }
        "pack" => {
            let guests = guest_elves(root);
            if !guests.is_empty() {
                put(corpus, "guests", &pack(&guests))?;
            }
        }
        "kernel" => {
            // Each guest gzipped, and wrapped as a bzImage payload: the decoders' and the setup
            // header's paths from the first run.
            for (name, b) in guest_elves(root) {
                let gz = gzip(&b);
                put(corpus, &format!("{name}.gz"), &gz)?;
                put(corpus, &format!("{name}.bzimage"), &bzimage(&gz))?;
            }
        }
        "scenario" => from_dir("scenarios", ".toml")?,
        "xlcfg" => from_dir("scenarios/domains", ".cfg")?,
        _ => {}
    }
    Ok(())
}

/// A boot pack (hv/src/pack.rs's format) with one domain per guest, 16 MiB, default actions.
fn pack(guests: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut v = b"XLNPACK2".to_vec();
    v.extend_from_slice(&(guests.len() as u32).to_le_bytes());
    v.extend_from_slice(&50_000_000u64.to_le_bytes());
    let s = |v: &mut Vec<u8>, s: &str| {
        v.extend_from_slice(&(s.len() as u32).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
    };
    for (name, elf) in guests {
        s(&mut v, name);
        s(&mut v, name);
        s(&mut v, "");
        v.extend_from_slice(&16u64.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&[0, 1, 0, 0]);
        v.extend_from_slice(&(elf.len() as u64).to_le_bytes());
        v.extend_from_slice(elf);
    }
    v
}
