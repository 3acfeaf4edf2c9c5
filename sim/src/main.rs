//! The `xenolith` command: run scenarios in the simulator, or boot one Xen PV64 kernel.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use hv::abi::ShutdownReason;
use hv::domain::{Action, DomainConfig};
use hv::RecordState;
use rayon::prelude::*;
use sim::runner::{self, Outcome};
use sim::scenario;

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
        #[arg(long)]
        guests: Option<PathBuf>,
        /// Output file.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Boot one Xen PV64 kernel as one domain and stream its console (like `xl create -c`).
    Boot {
        kernel: PathBuf,
        #[arg(long, default_value_t = 16)]
        memory: u64,
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Stop after this many guest instructions (virtual ns).
        #[arg(long, default_value_t = 2_000_000_000)]
        max_insns: u64,
        #[arg(long)]
        trace: Option<PathBuf>,
    },
}

fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { paths, trace, guests, quiet } => run(&paths, trace, guests, quiet),
        Cmd::Boot { kernel, memory, cmdline, max_insns, trace } => boot(&kernel, memory, &cmdline, max_insns, trace),
        Cmd::Pack { scenario, kernel, memory, cmdline, guests, out } => {
            let guests = guests.unwrap_or_else(|| runner::guests_dir(&repo_root()));
            match sim::hw::write_pack(scenario.as_deref(), kernel.as_deref(), memory, &cmdline, &guests, &out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xenolith: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn run(paths: &[PathBuf], trace: Option<PathBuf>, guests: Option<PathBuf>, quiet: bool) -> ExitCode {
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
    let outcomes: Vec<Outcome> = scenarios.par_iter().map(|s| runner::run(s, &guests)).collect();
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
    let _ = writeln!(out, "\n{:<28} {:<6} {:>14} {:>10} {:>10} {:>9}", "scenario", "result", "instructions", "hypercalls", "virtual", "wall");
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
        for f in &o.failures {
            let _ = writeln!(out, "    {}: {f}", o.path.display());
        }
        failed += (!o.passed()) as usize;
    }
    let _ = writeln!(out, "{} passed, {} failed", outcomes.len() - failed, failed);
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn boot(kernel: &Path, memory: u64, cmdline: &str, max_insns: u64, trace: Option<PathBuf>) -> ExitCode {
    let bytes = match std::fs::read(kernel) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("xenolith: {}: {e}", kernel.display());
            return ExitCode::from(2);
        }
    };
    if !(1..=4096).contains(&memory) {
        eprintln!("xenolith: --memory {memory}: must be 1..=4096 MiB");
        return ExitCode::from(2);
    }
    let mut hv = match sim::new_hypervisor(memory + 16) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("xenolith: {e}");
            return ExitCode::from(2);
        }
    };
    hv.platform.console_sink = Some(Box::new(|_, _, b| {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(b);
        let _ = o.flush();
    }));
    let name = kernel.file_stem().and_then(|s| s.to_str()).unwrap_or("guest").to_string();
    let mut c = DomainConfig::new(&name, &kernel.display().to_string(), Arc::from(bytes));
    c.memory_mib = memory;
    c.cmdline = cmdline.into();
    c.on_reboot = Action::Destroy;
    if let Err(e) = hv.create_domain(c) {
        eprintln!("xenolith: {}: {e}", kernel.display());
        return ExitCode::from(2);
    }
    while hv.any_running() && hv.now < max_insns {
        let next = (hv.now + 10_000_000).min(max_insns);
        hv.run_until(next);
    }
    if let Some(t) = trace {
        let mut text = hv.platform.trace.join("\n");
        text.push('\n');
        if let Err(e) = std::fs::write(&t, text) {
            eprintln!("xenolith: cannot write {}: {e}", t.display());
        }
    }
    let rec = hv.record(&name).cloned();
    match rec {
        Some(r) if r.state == RecordState::Running || r.state == RecordState::Paused => {
            eprintln!("xenolith: {name}: still running after {max_insns} instructions (budget exhausted)");
            ExitCode::from(3)
        }
        Some(r) => match r.shutdowns.last() {
            Some(ShutdownReason::Poweroff) => {
                eprintln!("xenolith: {name}: powered off");
                ExitCode::SUCCESS
            }
            Some(ShutdownReason::Crash) => {
                let why = r.crash_reason.unwrap_or_else(|| "the guest asked".into());
                eprintln!("xenolith: {name}: crashed ({why})");
                ExitCode::from(1)
            }
            Some(other) => {
                eprintln!("xenolith: {name}: shut down ({})", other.name());
                ExitCode::from(4)
            }
            None => {
                eprintln!("xenolith: {name}: destroyed");
                ExitCode::from(4)
            }
        },
        None => ExitCode::from(2),
    }
}
