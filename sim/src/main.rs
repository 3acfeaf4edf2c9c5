//! The `xenolith` command: run scenarios in the simulator, or boot one Xen PV64 kernel.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use hv::domain::{Action, DomainConfig};
use rayon::prelude::*;

use sim::runner::{self, Outcome};
use sim::scenario;

/// Exit codes of `boot`, `create`, `run` and `boot-hw` (the README lists them under "Limits and
/// exit codes", `sim::create` names them): 0 the guest powered off / every scenario passed; 1 the
/// guest crashed / a scenario failed; 2 bad input; 3 the instruction budget ran out or, on
/// hardware, the timeout; 4 the guest shut down otherwise; 5 the host could not run it.
use sim::create::{EXIT_BAD_INPUT, EXIT_HOST};

#[derive(Parser)]
#[command(name = "xenolith", version, about = "Xen-compatible PV64 hypervisor: the simulator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenario files (or every *.toml in directories) in the simulator, in parallel.
    Run {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write every scenario's full trace to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Where the guests of guests/ are (default: guests/target/x86_64-unknown-none/release).
        #[arg(long)]
        guests: Option<PathBuf>,
        /// Do not print the domains' consoles.
        #[arg(long, short)]
        quiet: bool,
        /// Draw which vCPU ran on which pCPU when, as an SVG picture.
        #[arg(long)]
        timeline: Option<PathBuf>,
        /// Write the same as a Chrome/Perfetto trace (JSON; opens in ui.perfetto.dev).
        #[arg(long)]
        perfetto: Option<PathBuf>,
    },
    /// Write a scenario's domains (or one kernel) as the bootable image's boot pack.
    Pack {
        /// A scenario file.
        #[arg(long, conflicts_with = "kernel", required_unless_present = "kernel")]
        scenario: Option<PathBuf>,
        /// Or one Xen PV64 ELF, booted like `xenolith boot`.
        #[arg(long)]
        kernel: Option<PathBuf>,
        #[arg(long, default_value_t = 16)]
        memory: u64,
        #[arg(long, default_value = "")]
        cmdline: String,
        /// With --kernel: the initial ramdisk (boot module).
        #[arg(long, requires = "kernel")]
        initrd: Option<PathBuf>,
        #[arg(long)]
        guests: Option<PathBuf>,
        /// Output file.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Run scenarios (default: scenarios/) on the bootable image under QEMU and compare each
    /// domain's events with the simulator's snapshot; or boot one kernel (--kernel).
    BootHw {
        scenarios: Vec<PathBuf>,
        /// The image ELF (cargo xtask boot-hw builds it).
        #[arg(long)]
        image: PathBuf,
        /// kvm | tcg | auto (KVM when /dev/kvm works) | all (TCG, and KVM where it works).
        #[arg(long, default_value = "auto")]
        accel: String,
        /// Boot this Xen PV64 ELF as one domain instead, like `xenolith boot`.
        #[arg(long)]
        kernel: Option<PathBuf>,
        #[arg(long, default_value_t = 16)]
        memory: u64,
        #[arg(long, default_value = "")]
        cmdline: String,
        /// With --kernel: the initial ramdisk (boot module).
        #[arg(long, requires = "kernel")]
        initrd: Option<PathBuf>,
        /// vCPUs of the `--kernel` domain (an xl.cfg's `vcpus`).
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// With --kernel: physical CPUs of the machine (QEMU's `-smp`, and `cpus=` for the image).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
        pcpus: u32,
        /// Force the hypercall gate (syscall | int3) instead of the image's probe.
        #[arg(long)]
        gate: Option<String>,
        /// Seconds before QEMU is killed.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[arg(long)]
        guests: Option<PathBuf>,
        /// Print the image's whole trace.
        #[arg(long, short)]
        verbose: bool,
        /// With --kernel: start QEMU halted with its own gdbstub on ADDR (default
        /// 127.0.0.1:1234) and no timeout; the README's "Debugging a guest with gdb" explains the
        /// hypervisor's and the guest's symbols.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = sim::gdb::DEFAULT_ADDR, requires = "kernel")]
        gdb: Option<String>,
    },
    /// Each domain's CPU share against the credit target, in the simulator and on the image: the
    /// median, min and max over the runs, the |error|, and per accelerator the worst and mean.
    /// Default: every scenario of scenarios/ with `share_within`. Exits non-zero only when a run
    /// could not be run, never for the size of an error.
    BenchShares {
        /// Scenario files, directories, or names of scenarios/NAME.toml.
        scenarios: Vec<PathBuf>,
        /// The image ELF (needed for tcg and kvm; cargo xtask bench-shares builds it).
        #[arg(long)]
        image: Option<PathBuf>,
        /// Runs of each scenario on each accelerator.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
        /// sim | tcg | kvm | auto (sim, TCG, and KVM when /dev/kvm works) | all (the three) | a
        /// list such as sim,tcg.
        #[arg(long, default_value = "auto")]
        accel: String,
        /// Seconds before QEMU is killed.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[arg(long)]
        guests: Option<PathBuf>,
    },
    /// Hardware benches: launch-to-result of hello, hypercall round trip in TSC cycles per gate.
    BenchHw {
        #[arg(long)]
        image: PathBuf,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long)]
        guests: Option<PathBuf>,
    },
    /// Boot one Xen PV64 kernel as one domain and stream its console (like `xl create -c`).
    Boot {
        kernel: PathBuf,
        #[arg(long, default_value_t = 16)]
        memory: u64,
        #[arg(long, default_value = "")]
        cmdline: String,
        /// The initial ramdisk, loaded as the boot module (start_info's mod_start/mod_len).
        #[arg(long)]
        initrd: Option<PathBuf>,
        /// vCPUs of the domain, 1..=32 (an xl.cfg's `vcpus`).
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// Stop after this many guest instructions (virtual ns); default 2000000000, none with -c.
        #[arg(long)]
        max_insns: Option<u64>,
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Interactive console (like `xl create -c`): stdin goes to the guest's console ring;
        /// Ctrl-] ends the session (and the domain). See the README's "Console input".
        #[arg(short = 'c', long = "console", conflicts_with = "gdb")]
        console: bool,
        /// Wait for gdb on this TCP address (default 127.0.0.1:1234; PORT or :PORT also do)
        /// before the guest's first instruction. See the README's "Debugging a guest with gdb".
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = sim::gdb::DEFAULT_ADDR)]
        gdb: Option<String>,
    },
    /// Create a domain from an xl.cfg file and stream its console, like `xl create -c FILE.cfg`
    /// (the kernel path is relative to the file's directory; same exit codes as `boot`).
    Create {
        config: PathBuf,
        /// Stop after this many guest instructions (virtual ns); default 2000000000, none with -c.
        #[arg(long)]
        max_insns: Option<u64>,
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Interactive console (like `xl create -c`): stdin goes to the guest's console ring;
        /// Ctrl-] ends the session (and the domain).
        #[arg(short = 'c', long = "console", conflicts_with = "gdb")]
        console: bool,
        /// Check the file and its kernel and print the domain (name, kernel, memory, vcpus,
        /// cmdline as key=value lines) without running it.
        #[arg(long)]
        dry_run: bool,
        /// Wait for gdb on this TCP address (default 127.0.0.1:1234) before the guest's first
        /// instruction.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = sim::gdb::DEFAULT_ADDR)]
        gdb: Option<String>,
    },
}

/// `boot`'s and `create`'s instruction budget without `--max-insns` (and without `-c`).
const DEFAULT_MAX_INSNS: u64 = 2_000_000_000;

fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> ExitCode {
    let code = dispatch(Cli::parse());
    // The image runs' scratch files (packs; Linux's is 65 MiB) go with the process.
    let _ = std::fs::remove_dir_all(scratch_dir());
    code
}

fn dispatch(cli: Cli) -> ExitCode {
    match cli.cmd {
        Cmd::Run { paths, trace, guests, quiet, timeline, perfetto } => run(&paths, trace, guests, quiet, timeline, perfetto),
        Cmd::Boot { kernel, memory, cmdline, initrd, vcpus, max_insns, trace, console, gdb } => {
            let gdb = gdb.map(|a| sim::gdb::parse_addr(&a));
            let max_insns = max_insns.unwrap_or(if console { u64::MAX } else { DEFAULT_MAX_INSNS });
            boot(
                &kernel,
                memory,
                vcpus,
                &cmdline,
                initrd.as_deref(),
                &sim::create::RunOptions { max_insns, trace, gdb, console_input: console },
            )
        }
        Cmd::Create { config, max_insns, trace, console, dry_run, gdb } => {
            let gdb = gdb.map(|a| sim::gdb::parse_addr(&a));
            let max_insns = max_insns.unwrap_or(if console { u64::MAX } else { DEFAULT_MAX_INSNS });
            ExitCode::from(sim::create::create(
                &config,
                &sim::create::RunOptions { max_insns, trace, gdb, console_input: console },
                dry_run,
            ))
        }
        Cmd::BootHw { scenarios, image, accel, kernel, memory, cmdline, initrd, vcpus, pcpus, gate, timeout, guests, verbose, gdb } => {
            let guests = guests.unwrap_or_else(|| runner::guests_dir(&repo_root()));
            let gdb = gdb.map(|a| sim::gdb::parse_addr(&a));
            let o = HwArgs { image, accel, gate, timeout: std::time::Duration::from_secs(timeout), guests, verbose, gdb, pcpus };
            match kernel {
                Some(k) => boot_hw_kernel(&o, &k, memory, vcpus, &cmdline, initrd.as_deref()),
                None => boot_hw(&o, &scenarios),
            }
        }
        Cmd::BenchShares { scenarios, image, runs, accel, timeout, guests } => {
            let guests = guests.unwrap_or_else(|| runner::guests_dir(&repo_root()));
            bench_shares(&scenarios, image, runs as usize, &accel, std::time::Duration::from_secs(timeout), guests)
        }
        Cmd::BenchHw { image, runs, guests } => {
            let guests = guests.unwrap_or_else(|| runner::guests_dir(&repo_root()));
            bench_hw(&image, runs, &guests)
        }
        Cmd::Pack { scenario, kernel, memory, cmdline, initrd, guests, out } => {
            let guests = guests.unwrap_or_else(|| runner::guests_dir(&repo_root()));
            match sim::hw::write_pack(scenario.as_deref(), kernel.as_deref(), memory, &cmdline, initrd.as_deref(), &guests, &out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xenolith: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn run(
    paths: &[PathBuf],
    trace: Option<PathBuf>,
    guests: Option<PathBuf>,
    quiet: bool,
    timeline: Option<PathBuf>,
    perfetto: Option<PathBuf>,
) -> ExitCode {
    let guests = guests.unwrap_or_else(|| runner::guests_dir(&repo_root()));
    let mut files = Vec::new();
    for p in paths {
        match scenario::load_dir_or_file(p) {
            Ok(f) => files.extend(f),
            Err(e) => {
                eprintln!("xenolith: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut scenarios = Vec::new();
    let mut bad = false;
    for f in &files {
        match scenario::load(f) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("xenolith: {e}");
                bad = true;
            }
        }
    }
    if bad {
        return ExitCode::from(2);
    }
    // Every domain's kernel is read and checked before any scenario runs: bad input ends the
    // command at once, with a line naming the scenario and the domain.
    let mut configs = Vec::new();
    for s in &scenarios {
        let c = runner::domain_configs(s, &guests);
        for (d, e) in s.domains.iter().zip(&c).filter_map(|(d, c)| Some((d, c.as_ref().err()?))) {
            // The error names the domain's source file; name the scenario too when that is an xl.cfg.
            let sc = if d.source == s.path { String::new() } else { format!("{}: ", s.path.display()) };
            eprintln!("xenolith: {sc}{e}");
            bad = true;
        }
        configs.push(c);
    }
    if bad {
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let opts = runner::Options { spans: timeline.is_some() || perfetto.is_some() };
    let outcomes: Vec<Outcome> = scenarios.par_iter().zip(configs).map(|(s, c)| runner::run_with(s, c, opts)).collect::<Vec<_>>();
    for (path, text) in [(&timeline, sim::timeline::svg as fn(&[Outcome]) -> String), (&perfetto, sim::timeline::perfetto)] {
        if let Some(p) = path {
            if let Err(e) = std::fs::write(p, text(&outcomes)) {
                eprintln!("xenolith: cannot write {}: {e}", p.display());
                return ExitCode::from(2);
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if !quiet {
        for o in &outcomes {
            for (name, r) in &o.records {
                for l in &r.console {
                    let _ = writeln!(out, "[{}/{}] {l}", o.name, name);
                }
            }
        }
    }
    if let Some(t) = trace {
        let mut text = String::new();
        for o in &outcomes {
            text.push_str(&format!("# scenario {}\n", o.name));
            text.push_str(&o.trace_text());
        }
        if let Err(e) = std::fs::write(&t, text) {
            eprintln!("xenolith: cannot write {}: {e}", t.display());
            return ExitCode::from(2);
        }
    }
    let _ =
        writeln!(out, "\n{:<28} {:<6} {:>14} {:>10} {:>10} {:>9}", "scenario", "result", "instructions", "hypercalls", "virtual", "wall");
    let mut failed = 0;
    for o in &outcomes {
        let _ = writeln!(
            out,
            "{:<28} {:<6} {:>14} {:>10} {:>8}ms {:>7}ms",
            o.name,
            if o.passed() { "pass" } else { "FAIL" },
            o.instructions,
            o.hypercalls,
            o.virtual_ns / 1_000_000,
            o.wall.as_millis()
        );
        for sh in o.shares.iter().filter(|s| s.measured > 0.0 || s.target.is_some()) {
            let target = sh.target.map_or("-".to_string(), |t| format!("{t:.2}%"));
            let _ =
                writeln!(out, "    {:<24} cpu {:>7.2}%  target {:>7}  (of one pCPU; {} pCPU(s))", sh.name, sh.measured, target, o.pcpus);
        }
        for f in &o.failures {
            let _ = writeln!(out, "    {}: {f}", o.path.display());
        }
        failed += (!o.passed()) as usize;
    }
    let _ = writeln!(out, "{} passed, {} failed", outcomes.len() - failed, failed);
    let _ = out.flush();
    for e in outcomes.iter().flat_map(|o| o.host_errors.iter().chain(&o.input_errors)) {
        eprintln!("xenolith: {e}");
    }
    if outcomes.iter().any(|o| !o.host_errors.is_empty()) {
        ExitCode::from(EXIT_HOST)
    } else if outcomes.iter().any(|o| !o.input_errors.is_empty()) {
        ExitCode::from(EXIT_BAD_INPUT)
    } else if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn boot(kernel: &Path, memory: u64, vcpus: u32, cmdline: &str, initrd: Option<&Path>, opts: &sim::create::RunOptions) -> ExitCode {
    let bytes = match sim::kernel::read_kernel(kernel) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("xenolith: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    if !(1..=4096).contains(&memory) {
        eprintln!("xenolith: --memory {memory}: must be 1..=4096 MiB");
        return ExitCode::from(2);
    }
    // The same range as an xl.cfg's or a scenario's `vcpus` (sim/src/xlcfg.rs, scenario.rs).
    if !(1..=32).contains(&vcpus) {
        eprintln!("xenolith: --vcpus {vcpus}: must be 1..=32");
        return ExitCode::from(2);
    }
    let name = kernel.file_stem().and_then(|s| s.to_str()).unwrap_or("guest").to_string();
    let mut c = DomainConfig::new(&name, &kernel.display().to_string(), Arc::from(bytes));
    c.memory_mib = memory;
    c.vcpus = vcpus;
    c.cmdline = cmdline.into();
    c.on_reboot = Action::Destroy;
    if let Some(r) = initrd {
        match sim::input::read_input(r, sim::input::InputKind::Ramdisk) {
            Ok(b) => c.initrd = Some(Arc::from(b)),
            Err(e) => {
                eprintln!("xenolith: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
    }
    ExitCode::from(sim::create::run_domain(c, kernel, opts))
}

struct HwArgs {
    image: PathBuf,
    accel: String,
    gate: Option<String>,
    timeout: std::time::Duration,
    guests: PathBuf,
    verbose: bool,
    /// QEMU's gdbstub address (`--gdb`).
    gdb: Option<String>,
    /// Physical CPUs for `--kernel` runs (`--pcpus`).
    pcpus: u32,
}

/// This process's scratch directory (removed when `main` returns).
fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("xenolith-hw-{}", std::process::id()))
}

fn scratch(name: &str) -> PathBuf {
    let d = scratch_dir();
    let _ = std::fs::create_dir_all(&d);
    d.join(name)
}

fn append(gate: &Option<String>) -> String {
    gate.as_ref().map(|g| format!("gate={g}")).unwrap_or_default()
}

/// QEMU's `-smp M` and the image's `cpus=M` (appended to `append`) for M physical CPUs; nothing
/// extra for one.
fn smp(pcpus: u32, append: String) -> (Vec<String>, String) {
    if pcpus <= 1 {
        return (Vec::new(), append);
    }
    let a = if append.is_empty() { format!("cpus={pcpus}") } else { format!("{append} cpus={pcpus}") };
    (vec!["-smp".to_string(), pcpus.to_string()], a)
}

fn boot_hw_kernel(o: &HwArgs, kernel: &Path, memory: u64, vcpus: u32, cmdline: &str, initrd: Option<&Path>) -> ExitCode {
    let accels = match sim::hw::accels(&o.accel) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xenolith: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = sim::hw::check_image_memory(memory) {
        eprintln!("xenolith: --memory {memory}: {e}");
        return ExitCode::from(2);
    }
    let pack = scratch("kernel.pack");
    if let Err(e) = sim::hw::write_pack_vcpus(None, Some(kernel), memory, vcpus, cmdline, initrd, &o.guests, &pack) {
        eprintln!("xenolith: {e}");
        return ExitCode::from(2);
    }
    // The same range as an xl.cfg's or a scenario's `vcpus` (sim/src/xlcfg.rs, scenario.rs).
    if !(1..=32).contains(&vcpus) {
        eprintln!("xenolith: --vcpus {vcpus}: must be 1..=32");
        return ExitCode::from(2);
    }
    let name = kernel.file_stem().and_then(|s| s.to_str()).unwrap_or("guest").to_string();
    let mut code = 0u8;
    for a in accels {
        let (extra, timeout) = match &o.gdb {
            // QEMU implements the protocol: hand its gdbstub over, halted before the first
            // instruction, and wait for as long as the session lasts.
            Some(addr) => {
                eprintln!("xenolith: QEMU ({}) waits for gdb on {addr}, halted before the image's first instruction:", a.name());
                eprintln!("  gdb {} -ex 'target remote {addr}'          # the hypervisor's symbols", o.image.display());
                eprintln!("  (gdb) add-symbol-file {}                   # the guest's, at its own link addresses", kernel.display());
                eprintln!("  use hbreak under KVM; the console is printed when QEMU ends");
                (vec!["-gdb".to_string(), format!("tcp:{addr}"), "-S".to_string()], std::time::Duration::from_secs(7 * 24 * 3600))
            }
            None => (Vec::new(), o.timeout),
        };
        // The image copies the pack into its heap: QEMU needs room for the module and that copy.
        let pack_mib = std::fs::metadata(&pack).map(|m| m.len().div_ceil(1 << 20)).unwrap_or(0);
        let mem = sim::hw::qemu_memory(memory) + 2 * pack_mib;
        let (smp_extra, app) = smp(o.pcpus, append(&o.gate));
        let extra: Vec<String> = extra.into_iter().chain(smp_extra).collect();
        let run = match sim::hw::qemu_with(&o.image, &pack, a, mem, &app, timeout, &extra) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("xenolith: {e}");
                return ExitCode::from(2);
            }
        };
        let mut out = std::io::stdout().lock();
        for l in run.output.lines() {
            if o.verbose {
                let _ = writeln!(out, "{l}");
            } else if let Some(t) = sim::hw::console_text(l) {
                let _ = writeln!(out, "{t}");
            }
        }
        let done = run.output.lines().find(|l| l.starts_with("# done")).unwrap_or("").to_string();
        let gate = run.output.lines().find(|l| l.starts_with("# gate=")).unwrap_or("# gate=?").to_string();
        eprintln!(
            "xenolith: {} under {} ({}): {} in {:.3} s",
            kernel.display(),
            a.name(),
            &gate[2..],
            done.trim_start_matches("# "),
            run.wall.as_secs_f64()
        );
        let end = sim::hw::kernel_end(&run, &name);
        match &end {
            sim::hw::KernelEnd::ImageFailed(why) => eprintln!("xenolith: under {}: {why}", a.name()),
            sim::hw::KernelEnd::Timeout if run.status.is_none() => eprintln!("xenolith: {}", run.problem().unwrap_or_default()),
            _ => {}
        }
        // The worst outcome over the accelerators: any failure beats a poweroff.
        code = code.max(end.code());
    }
    ExitCode::from(code)
}

/// The scenario files that `paths` name (default: scenarios/): files, directories (their
/// `*.toml`), or bare names of scenarios there (`weights` is scenarios/weights.toml).
fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let dir = repo_root().join("scenarios");
    let default = [dir.clone()];
    let paths = if paths.is_empty() { &default[..] } else { paths };
    let mut files = Vec::new();
    for p in paths {
        let named = dir.join(p).with_extension("toml");
        let p = if !p.exists() && p.components().count() == 1 && named.is_file() { &named } else { p };
        files.extend(scenario::load_dir_or_file(p).map_err(|e| e.to_string())?);
    }
    Ok(files)
}

/// A scenario's boot pack for the image, in the scratch directory, and the memory its domains
/// need (MiB), refused before QEMU starts if the image could not hold them.
fn pack_scenario(sc: &scenario::Scenario, file: &Path, guests: &Path) -> Result<(PathBuf, u64), String> {
    let pack = scratch(&format!("{}.pack", sc.name));
    sim::hw::write_pack(Some(file), None, 0, "", None, guests, &pack)?;
    let mem: u64 = sc.domains.iter().map(|d| d.memory_mib + 2).sum();
    sim::hw::check_image_memory(mem)?;
    Ok((pack, mem))
}

/// Boot the image with a packed scenario under `accel`: the scenario's pCPUs as QEMU's `-smp`
/// and the image's `cpus=`, the gate if one is forced, room for its domains, under the timeout.
fn run_packed(o: &HwArgs, sc: &scenario::Scenario, pack: &Path, mem: u64, accel: sim::hw::Accel) -> Result<sim::hw::QemuRun, String> {
    let (extra, app) = smp(sc.pcpus, append(&o.gate));
    sim::hw::qemu_with(&o.image, pack, accel, sim::hw::qemu_memory(mem), &app, o.timeout, &extra)
}

fn boot_hw(o: &HwArgs, paths: &[PathBuf]) -> ExitCode {
    let accels = match sim::hw::accels(&o.accel) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xenolith: {e}");
            return ExitCode::from(2);
        }
    };
    let files = match scenario_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("xenolith: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{:<24} {:<5} {:<8} {:<7} {:>8}  detail", "scenario", "accel", "gate", "result", "wall");
    let (mut failed, mut passed, mut skipped) = (0, 0, 0);
    for f in &files {
        let sc = match scenario::load(f) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("xenolith: {e}");
                return ExitCode::from(2);
            }
        };
        if let Some(why) = sim::hw::hw_skip_reason(&sc) {
            let _ = writeln!(out, "{:<24} {:<5} {:<8} {:<7} {:>8}  {why}", sc.name, "-", "-", "skip", "-");
            skipped += 1;
            continue;
        }
        let snap_path = repo_root().join("snapshots").join(format!("{}.snap", sc.name));
        let expected = match std::fs::read_to_string(&snap_path) {
            Ok(t) => sim::hw::snapshot_body(&t),
            Err(e) => {
                let _ = writeln!(
                    out,
                    "{:<24} {:<5} {:<8} {:<7} {:>8}  no snapshot {}: {e}",
                    sc.name,
                    "-",
                    "-",
                    "FAIL",
                    "-",
                    snap_path.display()
                );
                failed += 1;
                continue;
            }
        };
        let (pack, mem) = match pack_scenario(&sc, f, &o.guests) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(out, "{:<24} {:<5} {:<8} {:<7} {:>8}  {e}", sc.name, "-", "-", "FAIL", "-");
                failed += 1;
                continue;
            }
        };
        for &a in &accels {
            if let Some(why) = sim::hw::hw_unsupported_reason(&sc, a) {
                let _ = writeln!(out, "{:<24} {:<5} {:<8} {:<7} {:>8}  {why}", sc.name, a.name(), "-", "skip", "-");
                skipped += 1;
                continue;
            }
            let mut run = match run_packed(o, &sc, &pack, mem, a) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("xenolith: {e}");
                    return ExitCode::from(2);
                }
            };
            // A share that missed while the trace matched is timing on a shared host: one more
            // run decides, and the line says what the first one measured.
            let mut first_miss = None;
            {
                let (fails, _) = sim::hw::check_expectations(&sc, &run.output);
                if run.problem().is_none() && sim::hw::compare(&expected, &run.output).is_none() && sim::hw::only_share_misses(&fails) {
                    match run_packed(o, &sc, &pack, mem, a) {
                        Ok(r) => {
                            first_miss = Some(fails.join("; "));
                            run = r;
                        }
                        Err(e) => {
                            eprintln!("xenolith: {e}");
                            return ExitCode::from(2);
                        }
                    }
                }
            }
            let retried = first_miss.as_ref().map(|m| format!(" (a second run: the first missed: {m})")).unwrap_or_default();
            let gate = run
                .output
                .lines()
                .find_map(|l| l.strip_prefix("# gate="))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("?")
                .to_string();
            let wall = format!("{:.2}s", run.wall.as_secs_f64());
            let (expect_fails, shares) = sim::hw::check_expectations(&sc, &run.output);
            let verdict = match run.problem() {
                Some(p) => Err(p),
                None => match sim::hw::compare(&expected, &run.output) {
                    Some(diff) => Err(format!("per-domain trace differs from {}:\n{diff}", snap_path.display())),
                    None if !expect_fails.is_empty() => Err(format!("same per-domain trace, but: {}", expect_fails.join("; "))),
                    None => Ok(()),
                },
            };
            match verdict {
                Ok(()) => {
                    passed += 1;
                    let detail = if shares.is_empty() {
                        "same per-domain trace as the simulator".to_string()
                    } else {
                        // Which timer preempted the guests (the image's boot line names it).
                        let timer = run
                            .output
                            .lines()
                            .find_map(|l| l.split(" preemption=").nth(1))
                            .and_then(|t| t.split_whitespace().next())
                            .unwrap_or("?");
                        format!("same per-domain trace; {timer} timer; shares {shares}{retried}")
                    };
                    let _ = writeln!(out, "{:<24} {:<5} {:<8} {:<7} {:>8}  {detail}", sc.name, a.name(), gate, "pass", wall);
                }
                Err(e) => {
                    failed += 1;
                    let _ = writeln!(out, "{:<24} {:<5} {:<8} {:<7} {:>8}  {e}{retried}", sc.name, a.name(), gate, "FAIL", wall);
                }
            }
            if o.verbose {
                let _ = writeln!(out, "{}", run.output);
            }
        }
    }
    let _ = writeln!(out, "boot-hw: {passed} passed, {failed} failed, {skipped} skipped");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `bench-shares`: each scenario on each platform `runs` times, the simulator in-process as
/// `xenolith run` runs it, the image as `boot-hw` runs it; then the table of
/// [`sim::bench_shares`]. Fails (exit 1) only on a run that did not run; bad input exits 2.
fn bench_shares(
    paths: &[PathBuf],
    image: Option<PathBuf>,
    runs: usize,
    accel: &str,
    timeout: std::time::Duration,
    guests: PathBuf,
) -> ExitCode {
    use sim::bench_shares::{aggregate, format_table, parse_accels, Platform, Sample};
    let platforms = match parse_accels(accel, sim::hw::kvm_usable()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("xenolith: {e}");
            return ExitCode::from(2);
        }
    };
    let image = match (image, platforms.iter().any(|p| *p != Platform::Sim)) {
        (Some(i), _) => i,
        (None, false) => PathBuf::new(),
        (None, true) => {
            eprintln!("xenolith: --accel {accel} runs the image: give --image (cargo xtask bench-shares builds it)");
            return ExitCode::from(2);
        }
    };
    let o = HwArgs { image, accel: accel.to_string(), gate: None, timeout, guests, verbose: false, gdb: None, pcpus: 1 };
    let mut scenarios = Vec::new();
    match scenario_files(paths) {
        Ok(files) => {
            for f in files {
                match scenario::load(&f) {
                    // By default only the scenarios that state a share tolerance.
                    Ok(s) if !paths.is_empty() || !s.expect.share_within.is_empty() => scenarios.push((f, s)),
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("xenolith: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
        }
        Err(e) => {
            eprintln!("xenolith: {e}");
            return ExitCode::from(2);
        }
    }
    let (mut samples, mut failed, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (f, sc) in &scenarios {
        // Each domain that has a target or a tolerance (not one that powered off on its own).
        let mut add = |p: Platform, name: &str, measured: f64, target: Option<f64>| {
            let slack = if p == Platform::Sim { 0.0 } else { sim::hw::HW_SHARE_SLACK };
            let tolerance = sc.expect.share_within.get(name).map(|t| *t as f64 + slack);
            if target.is_some() || tolerance.is_some() {
                samples.push(Sample {
                    scenario: sc.name.clone(),
                    accel: p.name().into(),
                    domain: name.into(),
                    measured,
                    target,
                    tolerance,
                });
            }
        };
        let mut packed = None;
        for &p in &platforms {
            let a = match p {
                Platform::Sim => {
                    for _ in 0..runs {
                        let run = runner::run_with(sc, runner::domain_configs(sc, &o.guests), runner::Options::default());
                        match run.input_errors.iter().chain(&run.host_errors).next() {
                            Some(e) => failed.push(format!("{} sim: {e}", sc.name)),
                            None => run.shares.iter().for_each(|s| add(p, &s.name, s.measured, s.target)),
                        }
                    }
                    continue;
                }
                Platform::Image(a) => a,
            };
            if let Some(why) = sim::hw::hw_unsupported_reason(sc, a) {
                skipped.push(format!("{} {}: {why}", sc.name, a.name()));
                continue;
            }
            if packed.is_none() {
                packed = Some(pack_scenario(sc, f, &o.guests));
            }
            let (pack, mem) = match packed.as_ref().expect("packed above") {
                Ok(pm) => pm,
                Err(e) => {
                    failed.push(format!("{} {}: {e}", sc.name, a.name()));
                    continue;
                }
            };
            for i in 0..runs {
                match run_packed(&o, sc, pack, *mem, a) {
                    Ok(r) => match r.problem() {
                        Some(why) => failed.push(format!("{} {} run {}: {why}", sc.name, a.name(), i + 1)),
                        None => sim::hw::parse_shares(&r.output).into_iter().for_each(|(n, m, t)| add(p, &n, m, t)),
                    },
                    Err(e) => failed.push(format!("{} {}: {e}", sc.name, a.name())),
                }
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", format_table(&aggregate(&samples), runs));
    let _ =
        writeln!(out, "tolerance: share_within in the simulator, +{} points on the image (hw::HW_SHARE_SLACK)", sim::hw::HW_SHARE_SLACK);
    for s in &skipped {
        let _ = writeln!(out, "skipped {s}");
    }
    for f in &failed {
        let _ = writeln!(out, "FAILED {f}");
    }
    let _ = out.flush();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn bench_hw(image: &Path, runs: usize, guests: &Path) -> ExitCode {
    let accels = sim::hw::accels("all").unwrap_or_default();
    let hello = guests.join("hello");
    let nullcall = guests.join("nullcall");
    let (hp, np) = (scratch("hello.pack"), scratch("nullcall.pack"));
    // Under kvm_pvm every exit into the (emulated) ring 0 is very slow: fewer calls there.
    let kp = scratch("nullcall-kvm.pack");
    if let Err(e) = sim::hw::write_pack(None, Some(&hello), 16, "", None, guests, &hp)
        .and_then(|()| sim::hw::write_pack(None, Some(&nullcall), 16, "calls=20000 tsc=1", None, guests, &np))
        .and_then(|()| sim::hw::write_pack(None, Some(&nullcall), 16, "calls=50 tsc=1", None, guests, &kp))
    {
        eprintln!("xenolith: {e}");
        return ExitCode::from(2);
    }
    let timeout = std::time::Duration::from_secs(120);
    println!("launch-to-result of hello (QEMU start to isa-debug-exit), {runs} runs each:");
    for &a in &accels {
        let mut t = Vec::new();
        for _ in 0..runs {
            match sim::hw::qemu(image, &hp, a, 192, "", timeout) {
                Ok(r) if r.completed() => t.push(r.wall.as_secs_f64() * 1000.0),
                Ok(r) => {
                    eprintln!("xenolith: hello under {}: {}", a.name(), r.problem().unwrap_or_default());
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("xenolith: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        let (m, lo, hi) = sim::bench_shares::median_min_max(&t);
        println!("  {:<4} median {m:7.1} ms   spread {lo:.1} .. {hi:.1} ms", a.name());
    }
    // XTF's example kernel (Xen's own "hello"), when the suite is beside the repository.
    let xtf = repo_root().join("..").join("shared").join("xtf").join("bin").join("test-pv64-example");
    if xtf.is_file() {
        let xp = scratch("xtf-example.pack");
        if let Err(e) = sim::hw::write_pack(None, Some(&xtf), 128, "", None, guests, &xp) {
            eprintln!("xenolith: {e}");
            return ExitCode::from(2);
        }
        println!("launch-to-result of XTF test-pv64-example (128 MiB), {runs} runs each (Xen 4.17 under this QEMU's TCG: ~1.2 s):");
        for &a in &accels {
            let mut t = Vec::new();
            for _ in 0..runs {
                match sim::hw::qemu(image, &xp, a, sim::hw::qemu_memory(130), "", timeout) {
                    Ok(r) if r.completed() => t.push(r.wall.as_secs_f64() * 1000.0),
                    Ok(r) => eprintln!("xenolith: XTF example under {}: {}", a.name(), r.problem().unwrap_or_default()),
                    Err(e) => eprintln!("xenolith: {e}"),
                }
            }
            let (m, lo, hi) = sim::bench_shares::median_min_max(&t);
            println!("  {:<4} median {m:7.1} ms   spread {lo:.1} .. {hi:.1} ms", a.name());
        }
    }
    println!(
        "hypercall round trip measured by the guest (nullcall xen_version calls: 20000 under TCG, 50 under KVM; tracing off), TSC cycles:"
    );
    for &a in &accels {
        let gates: &[&str] = if a == sim::hw::Accel::Kvm { &["int3"] } else { &["syscall", "int3"] };
        for g in gates {
            let mut c = Vec::new();
            for _ in 0..runs.clamp(1, 3) {
                let pack = if a == sim::hw::Accel::Kvm { &kp } else { &np };
                match sim::hw::qemu(image, pack, a, 192, &format!("gate={g} trace=0"), timeout) {
                    Ok(r) if r.completed() => {
                        if let Some(v) = r
                            .output
                            .lines()
                            .find_map(|l| l.split("nullcall: cycles/call ").nth(1).and_then(|n| n.trim().parse::<f64>().ok()))
                        {
                            c.push(v);
                        }
                    }
                    Ok(r) => eprintln!("xenolith: nullcall under {} gate {g}: {}", a.name(), r.problem().unwrap_or_default()),
                    Err(e) => eprintln!("xenolith: {e}"),
                }
            }
            let (m, lo, hi) = sim::bench_shares::median_min_max(&c);
            println!("  {:<4} gate {:<8} median {m:8.0} cycles   spread {lo:.0} .. {hi:.0}", a.name(), g);
        }
    }
    println!("floors (PLATFORM-FACTS): TCG syscall/sysret 114-173 cycles, int 600-870; kvm_pvm int3 -> ring 0 -> iretq ~20k;");
    println!("  microvm launch-to-exit of a trivial kernel: KVM 66-90 ms, TCG 35-60 ms;");
    println!("  real Xen 4.17 under this QEMU's TCG: hello launch-to-poweroff 1.32 s median, XTF example ~1.2 s");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::smp;

    /// `pcpus = M` reaches QEMU as `-smp M` and the image as `cpus=M`; one pCPU adds nothing.
    #[test]
    fn pcpus_become_smp_and_cpus() {
        assert_eq!(smp(1, String::new()), (Vec::<String>::new(), String::new()));
        assert_eq!(smp(1, "gate=int3".into()), (Vec::<String>::new(), "gate=int3".to_string()));
        assert_eq!(smp(2, String::new()), (vec!["-smp".to_string(), "2".to_string()], "cpus=2".to_string()));
        assert_eq!(smp(4, "gate=int3".into()), (vec!["-smp".to_string(), "4".to_string()], "gate=int3 cpus=4".to_string()));
    }
}
