//! Helpers shared by xenolith's criterion benches (`benches/benches/*.rs`).
//!
//! - where the guest kernels are, and building them once if they are missing ([`guest_elf`]);
//! - a simulator with one domain, tracing off ([`hypervisor_with`]), and running it until every
//!   domain has shut down ([`run_to_end`]);
//! - the `compute` guest's inner loop on a bare unicorn instance ([`BareLoop`]), the baseline the
//!   simulator's guest MIPS are compared against, and the interleaved comparison ([`mips_ratio`]).
//!
//! Nothing here asserts wall-clock limits: benches report numbers and ratios measured in one run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hv::abi::ShutdownReason;
use hv::domain::DomainConfig;
use hv::{Hypervisor, RecordState};
use sim::SimPlatform;
use unicorn_engine::{Arch, Mode, Prot, RegisterX86, Unicorn};

/// The repository root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".."))
}

/// Where `cargo build --release` in `guests/` puts the guest kernels.
pub fn guests_dir() -> PathBuf {
    sim::runner::guests_dir(&repo_root())
}

/// The guests the benches use; all are built together by one `cargo build --release`.
pub const GUESTS: &[&str] = &["hello", "compute", "nullcall"];

static BUILT: Mutex<bool> = Mutex::new(false);

/// Make sure the guests of [`GUESTS`] exist, building the guest workspace once if any is missing.
/// Returns the guests directory, or an error saying what to do.
pub fn ensure_guests() -> Result<PathBuf, String> {
    let dir = guests_dir();
    let missing = || GUESTS.iter().any(|g| !dir.join(g).is_file());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !missing() {
        return Ok(dir);
    }
    if *built {
        return Err(format!("guest kernels missing in {} even after building them", dir.display()));
    }
    *built = true;
    let ws = repo_root().join("guests");
    eprintln!("benches: guest kernels missing in {}; running `cargo build --release` in {}", dir.display(), ws.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--release").current_dir(&ws);
    // The outer `cargo bench` exports settings meant for the host workspace; the guest workspace
    // has its own target and flags (guests/.cargo/config.toml).
    for v in ["CARGO_TARGET_DIR", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "RUSTC_WRAPPER"] {
        cmd.env_remove(v);
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo in {}: {e}", ws.display()))?;
    if !status.success() {
        return Err(format!(
            "building the guest kernels failed ({status}); build them by hand: cd {} && cargo build --release",
            ws.display()
        ));
    }
    if missing() {
        return Err(format!("guest kernels still missing in {} after building them", dir.display()));
    }
    Ok(dir)
}

/// The ELF bytes of guest `name` (building the guests first if needed). Panics with a clear
/// message when they cannot be had: a bench cannot run without them.
pub fn guest_elf(name: &str) -> Arc<[u8]> {
    let dir = ensure_guests().unwrap_or_else(|e| panic!("benches: {e}"));
    let path = dir.join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("benches: cannot read guest {}: {e}", path.display()));
    Arc::from(bytes)
}

/// A fresh simulator with tracing off and one domain `name` running guest `elf` with `cmdline`
/// and `memory_mib` MiB. Panics if the domain cannot be built (a bench set-up error).
pub fn hypervisor_with(name: &str, elf: &Arc<[u8]>, cmdline: &str, memory_mib: u64) -> Hypervisor<SimPlatform> {
    let mut hv = sim::new_hypervisor(memory_mib + 16).unwrap_or_else(|e| panic!("benches: cannot start the simulator: {e}"));
    hv.tracing = false;
    let mut c = DomainConfig::new(name, name, elf.clone());
    c.memory_mib = memory_mib;
    c.cmdline = cmdline.into();
    hv.create_domain(c).unwrap_or_else(|e| panic!("benches: cannot build domain {name}: {e:?}"));
    hv
}

/// Run until no domain is running any more (or `max_ns` of virtual time); returns the virtual
/// time reached.
pub fn run_to_end(hv: &mut Hypervisor<SimPlatform>, max_ns: u64) -> u64 {
    while hv.any_running() && hv.now < max_ns {
        let next = (hv.now + 50_000_000).min(max_ns);
        hv.run_until(next);
    }
    hv.now
}

/// Panics unless domain `name` powered off (so a bench never times a crashed or stuck guest).
pub fn assert_powered_off(hv: &Hypervisor<SimPlatform>, name: &str) {
    let r = hv.record(name).unwrap_or_else(|| panic!("benches: no record of domain {name}"));
    let ok = matches!(r.state, RecordState::Shutdown(ShutdownReason::Poweroff) | RecordState::Destroyed)
        && r.shutdowns.last() == Some(&ShutdownReason::Poweroff);
    assert!(
        ok,
        "benches: domain {name} did not power off: state {:?}, shutdowns {:?}, crash {:?}, console {:?}",
        r.state, r.shutdowns, r.crash_reason, r.console
    );
}

/// The console text of domain `name`, one line per entry.
pub fn console(hv: &Hypervisor<SimPlatform>, name: &str) -> Vec<String> {
    hv.record(name).map(|r| r.console.clone()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The compute loop, in the simulator and on bare unicorn.

/// The `compute` guest's inner loop, byte for byte (guests/kernels/src/bin/compute.rs):
/// `rax` = xorshift64 state, `rsi` = running sum, `rcx` = iterations left, `rdx` scratch.
/// 12 instructions per iteration (the last is `jnz` back to the start).
pub const COMPUTE_LOOP: [u8; 38] = [
    0x48, 0x89, 0xc2, // mov rdx, rax
    0x48, 0xc1, 0xe2, 0x0d, // shl rdx, 13
    0x48, 0x31, 0xd0, // xor rax, rdx
    0x48, 0x89, 0xc2, // mov rdx, rax
    0x48, 0xc1, 0xea, 0x07, // shr rdx, 7
    0x48, 0x31, 0xd0, // xor rax, rdx
    0x48, 0x89, 0xc2, // mov rdx, rax
    0x48, 0xc1, 0xe2, 0x11, // shl rdx, 17
    0x48, 0x31, 0xd0, // xor rax, rdx
    0x48, 0x01, 0xc6, // add rsi, rax
    0x48, 0xff, 0xc9, // dec rcx
    0x75, 0xda, // jnz back to the first instruction (rel8 -38)
];
/// Instructions per iteration of [`COMPUTE_LOOP`].
pub const COMPUTE_LOOP_INSNS: u64 = 12;
/// The compute guest's xorshift64 seed.
pub const COMPUTE_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// Check that `elf` (the compute guest) contains [`COMPUTE_LOOP`] verbatim, so the bare baseline
/// runs the same machine code as the guest.
pub fn check_compute_loop(elf: &[u8]) -> Result<(), String> {
    if elf.windows(COMPUTE_LOOP.len()).any(|w| w == COMPUTE_LOOP) {
        Ok(())
    } else {
        Err("the compute guest's loop no longer matches benches::COMPUTE_LOOP; update the bytes \
             (objdump -d -M intel guests/target/x86_64-unknown-none/release/compute)"
            .into())
    }
}

/// The sum the compute loop produces after `iters` iterations (host reference).
pub fn compute_reference(iters: u64) -> u64 {
    let (mut x, mut sum) = (COMPUTE_SEED, 0u64);
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sum = sum.wrapping_add(x);
    }
    sum
}

/// Where the bare loop's code lives (flat 64-bit, no paging).
const BARE_CODE: u64 = 0x10_0000;

/// A standalone unicorn instance (x86, 64-bit mode, flat memory, no hooks) holding
/// [`COMPUTE_LOOP`]: the baseline for the simulator's guest speed.
pub struct BareLoop {
    uc: Unicorn<'static, ()>,
}

impl BareLoop {
    /// Create the instance and load the loop.
    pub fn new() -> BareLoop {
        let mut uc = Unicorn::new(Arch::X86, Mode::MODE_64).expect("unicorn instance");
        uc.mem_map(BARE_CODE, 0x1000, Prot::READ | Prot::EXEC).expect("map code page");
        uc.mem_write(BARE_CODE, &COMPUTE_LOOP).expect("write code");
        BareLoop { uc }
    }

    /// Run `iters` iterations from the seed with `emu_start` until the end of the loop; returns
    /// the sum (`rsi`). Executes `iters * COMPUTE_LOOP_INSNS` instructions.
    pub fn run(&mut self, iters: u64) -> u64 {
        assert!(iters > 0, "the loop runs at least once");
        let uc = &mut self.uc;
        uc.reg_write(RegisterX86::RAX, COMPUTE_SEED).expect("rax");
        uc.reg_write(RegisterX86::RSI, 0).expect("rsi");
        uc.reg_write(RegisterX86::RCX, iters).expect("rcx");
        uc.reg_write(RegisterX86::RDX, 0).expect("rdx");
        let end = BARE_CODE + COMPUTE_LOOP.len() as u64;
        uc.emu_start(BARE_CODE, end, 0, 0).expect("emu_start");
        assert_eq!(uc.reg_read(RegisterX86::RIP).expect("rip"), end, "bare loop did not reach its end");
        uc.reg_read(RegisterX86::RSI).expect("rsi")
    }
}

impl Default for BareLoop {
    fn default() -> Self {
        Self::new()
    }
}

/// One timed run of the compute guest in the simulator (domain built before the clock starts).
/// Returns (wall time of the run, guest instructions retired). Checks the printed sum.
pub fn sim_compute_run(elf: &Arc<[u8]>, iters: u64) -> (Duration, u64) {
    let mut hv = hypervisor_with("compute", elf, &format!("iters={iters}"), 16);
    let t = Instant::now();
    run_to_end(&mut hv, u64::MAX);
    let wall = t.elapsed();
    assert_powered_off(&hv, "compute");
    let want = format!("compute: {:#018x}", compute_reference(iters));
    let got = console(&hv, "compute");
    assert!(got.iter().any(|l| l.contains(&want)), "compute guest printed {got:?}, expected {want:?}");
    (wall, hv.platform.instructions)
}

/// One timed run of the bare loop (instance created before the clock starts).
/// Returns (wall time, instructions executed). Checks the sum.
pub fn bare_compute_run(iters: u64) -> (Duration, u64) {
    let mut b = BareLoop::new();
    let t = Instant::now();
    let sum = b.run(iters);
    let wall = t.elapsed();
    assert_eq!(sum, compute_reference(iters), "bare loop computed a wrong sum");
    (wall, iters * COMPUTE_LOOP_INSNS)
}

/// Result of [`mips_ratio`].
#[derive(Clone, Copy, Debug)]
pub struct MipsRatio {
    /// Median MIPS of the compute guest in the simulator.
    pub sim_mips: f64,
    /// Median MIPS of the same loop on bare unicorn.
    pub bare_mips: f64,
    pub rounds: usize,
}

impl MipsRatio {
    /// sim / bare.
    pub fn ratio(&self) -> f64 {
        self.sim_mips / self.bare_mips
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Simulator vs bare-unicorn speed on the compute loop, measured interleaved (sim, bare, sim,
/// bare, …) in one process so machine noise hits both alike; medians of `rounds` runs each.
pub fn mips_ratio(elf: &Arc<[u8]>, iters: u64, rounds: usize) -> MipsRatio {
    let rounds = rounds.max(1);
    let (mut s, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (w, n) = sim_compute_run(elf, iters);
        s.push(n as f64 / w.as_secs_f64() / 1e6);
        let (w, n) = bare_compute_run(iters);
        b.push(n as f64 / w.as_secs_f64() / 1e6);
    }
    MipsRatio { sim_mips: median(s), bare_mips: median(b), rounds }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_loop_matches_reference_and_guest_code() {
        check_compute_loop(&guest_elf("compute")).unwrap();
        let mut b = BareLoop::new();
        assert_eq!(b.run(1000), compute_reference(1000));
        assert_eq!(b.run(1), compute_reference(1), "instances are reusable");
    }

    #[test]
    fn hello_runs_to_poweroff_directly() {
        let elf = guest_elf("hello");
        let mut hv = hypervisor_with("hello", &elf, "", 16);
        run_to_end(&mut hv, 10_000_000_000);
        assert_powered_off(&hv, "hello");
        assert!(!console(&hv, "hello").is_empty());
    }

    #[test]
    fn compute_in_the_simulator_prints_the_reference_sum() {
        let (_, insns) = sim_compute_run(&guest_elf("compute"), 1000);
        assert!(insns >= 1000 * COMPUTE_LOOP_INSNS);
    }
}
