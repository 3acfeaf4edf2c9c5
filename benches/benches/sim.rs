//! Simulator benches (criterion):
//!
//! - `hypercall_roundtrip`: the nullcall guest makes N `xen_version` hypercalls; throughput =
//!   hypercalls/s (wall time of the run, domain built before the clock starts, nothing subtracted).
//! - `guest_mips/sim` and `guest_mips/bare`: the compute guest's xorshift loop in the simulator and
//!   the same machine code on a bare unicorn instance; throughput = instructions/s. After the
//!   criterion runs, an interleaved comparison prints `MIPS ratio sim/bare = x.xx` to stderr.
//! - `hello_end_to_end`: scenarios/hello.toml through the scenario runner (or, if that file does
//!   not exist, the hello guest built and run directly), including simulator creation.
//! - `domain_build`: a fresh simulator, and create_domain of hello alone.
//!
//! Kept short for a shared 2-core machine: 10 samples, 1 s warm-up, 3 s measurement (the command
//! line overrides these). Wall-clock numbers are reported, never asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::*;
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};

/// Hypercalls per nullcall run.
const CALLS: u64 = 20_000;
/// Compute-loop iterations per run (12 instructions each).
const ITERS: u64 = 5_000_000;

fn hypercall_roundtrip(c: &mut Criterion) {
    let elf = guest_elf("nullcall");
    let cmdline = format!("calls={CALLS}");
    // Sanity run: the guest must make (at least) CALLS hypercalls and power off.
    let mut hv = hypervisor_with("nullcall", &elf, &cmdline, 16);
    run_to_end(&mut hv, u64::MAX);
    assert_powered_off(&hv, "nullcall");
    assert!(hv.hypercalls >= CALLS, "nullcall made only {} hypercalls", hv.hypercalls);
    eprintln!("hypercall_roundtrip: one run = {} hypercalls, {} guest instructions", hv.hypercalls, hv.platform.instructions);

    let mut g = c.benchmark_group("hypercall_roundtrip");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(CALLS));
    g.bench_function(BenchmarkId::new("xen_version", CALLS), |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let mut hv = hypervisor_with("nullcall", &elf, &cmdline, 16);
                let t = Instant::now();
                run_to_end(&mut hv, u64::MAX);
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn guest_mips(c: &mut Criterion) {
    let elf = guest_elf("compute");
    check_compute_loop(&elf).unwrap_or_else(|e| panic!("benches: {e}"));
    // Calibration runs (also check both compute the right sum); counts are deterministic.
    let (_, sim_insns) = sim_compute_run(&elf, ITERS);
    let (_, bare_insns) = bare_compute_run(ITERS);
    eprintln!("guest_mips: {ITERS} iterations = {sim_insns} instructions in the simulator, {bare_insns} bare");

    let mut g = c.benchmark_group("guest_mips");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(sim_insns));
    g.bench_function("sim", |b| b.iter_custom(|n| (0..n).map(|_| sim_compute_run(&elf, ITERS).0).sum()));
    g.throughput(Throughput::Elements(bare_insns));
    g.bench_function("bare", |b| b.iter_custom(|n| (0..n).map(|_| bare_compute_run(ITERS).0).sum()));
    g.finish();
}

fn hello_end_to_end(c: &mut Criterion) {
    let path = repo_root().join("scenarios/hello.toml");
    let mut g = c.benchmark_group("hello_end_to_end");
    g.sampling_mode(SamplingMode::Flat);
    if path.is_file() {
        let sc = sim::scenario::load(&path).unwrap_or_else(|e| panic!("benches: {}: {e}", path.display()));
        let guests = ensure_guests().unwrap_or_else(|e| panic!("benches: {e}"));
        let o = sim::runner::run(&sc, &guests);
        assert!(o.passed(), "benches: scenario {} fails: {:?}", path.display(), o.failures);
        g.bench_function("scenario", |b| b.iter(|| sim::runner::run(&sc, &guests)));
    } else {
        eprintln!("hello_end_to_end: {} not found; building the hello domain directly", path.display());
        let elf = guest_elf("hello");
        g.bench_function("direct", |b| {
            b.iter(|| {
                let mut hv = hypervisor_with("hello", &elf, "", 16);
                run_to_end(&mut hv, 10_000_000_000);
                assert_powered_off(&hv, "hello");
                hv
            })
        });
    }
    g.finish();
}

fn domain_build(c: &mut Criterion) {
    let elf = guest_elf("hello");
    let mut g = c.benchmark_group("domain_build");
    g.bench_function("new_hypervisor", |b| b.iter(|| sim::new_hypervisor(32).expect("simulator")));
    g.bench_function("create_domain_hello", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let mut hv = sim::new_hypervisor(32).expect("simulator");
                hv.tracing = false;
                let mut cfg = hv::domain::DomainConfig::new("hello", "hello", Arc::clone(&elf));
                cfg.memory_mib = 16;
                let t = Instant::now();
                let id = hv.create_domain(cfg).expect("create_domain");
                total += t.elapsed();
                drop(std::hint::black_box((id, hv)));
            }
            total
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = hypercall_roundtrip, guest_mips, hello_end_to_end, domain_build
}

/// Print the sim/bare MIPS ratio, measured interleaved, when this is a real bench run (`--bench`)
/// whose filter (if any) selects guest_mips.
fn ratio_wanted() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list" || a == "--test") {
        return false;
    }
    // Positional args are criterion filters; flags with values are skipped by name.
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a.starts_with("--") {
            if !a.contains('=')
                && matches!(
                    a.as_str(),
                    "--warm-up-time"
                        | "--measurement-time"
                        | "--sample-size"
                        | "--save-baseline"
                        | "--baseline"
                        | "--baseline-lenient"
                        | "--load-baseline"
                        | "--output-format"
                        | "--color"
                        | "--profile-time"
                        | "--nresamples"
                        | "--noise-threshold"
                        | "--confidence-level"
                        | "--significance-level"
                        | "--plotting-backend"
                        | "--format"
                        | "--logfile"
                )
            {
                it.next();
            }
        } else if !a.starts_with('-') {
            filters.push(a.clone());
        }
    }
    filters.is_empty() || filters.iter().any(|f| "guest_mips/ratio".contains(f.as_str()) || f.contains("guest_mips"))
}

fn main() {
    let started = Instant::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    if ratio_wanted() {
        let elf = guest_elf("compute");
        let r = mips_ratio(&elf, ITERS, 5);
        eprintln!(
            "MIPS ratio sim/bare = {:.2}  (sim {:.0} MIPS, bare {:.0} MIPS; medians of {} interleaved runs of {} iterations)",
            r.ratio(),
            r.sim_mips,
            r.bare_mips,
            r.rounds,
            ITERS
        );
    }
    eprintln!("benches: total {:.1} s", started.elapsed().as_secs_f64());
}
