//! One domain in a fresh simulator, its console streamed to stdout: what `xenolith boot KERNEL`
//! and `xenolith create FILE.cfg` (like `xl create -c`) share.
//!
//! Both end with the same exit codes (the README's "Limits and exit codes"): 0 the guest powered
//! off, 1 it crashed, [`EXIT_BAD_INPUT`], [`EXIT_BUDGET`], [`EXIT_OTHER`], [`EXIT_HOST`].

use std::io::Write;
use std::path::{Path, PathBuf};

use hv::abi::ShutdownReason;
use hv::domain::DomainConfig;
use hv::hv::ControlError;
use hv::RecordState;

use crate::input;
use crate::platform::StartError;
use crate::scenario::DomainSpec;

/// Bad input: options, a file refused by [`crate::input`], a config that does not parse, a
/// kernel that is not a loadable Xen PV64 ELF.
pub const EXIT_BAD_INPUT: u8 = 2;
/// The instruction budget ran out with the guest still running.
pub const EXIT_BUDGET: u8 = 3;
/// The guest shut down otherwise (reboot, watchdog) or was destroyed.
pub const EXIT_OTHER: u8 = 4;
/// The hypervisor itself could not run the guest: the host could not give the simulator its
/// machine memory or a vCPU its unicorn instance; on hardware, the image reset, failed or gave no
/// result.
pub const EXIT_HOST: u8 = 5;

/// How long one domain may run, and where its trace goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop after this many guest instructions (virtual ns).
    pub max_insns: u64,
    /// Write the whole trace here at the end.
    pub trace: Option<PathBuf>,
    /// Wait for gdb on this address first (`--gdb`, see [`crate::gdb`]).
    pub gdb: Option<String>,
    /// `-c`: stdin goes to the domain's console ring (see [`crate::console`]).
    pub console_input: bool,
}

/// Reads an xl.cfg file as `xl create` does (unknown keys ignored with a warning on stderr) and
/// builds its domain: the kernel is read relative to the file's directory (an absolute path as
/// it is) and checked. Errors name the file (file:line: field for the config itself).
pub fn config_from_file(cfg: &Path) -> Result<(DomainSpec, DomainConfig), String> {
    let (spec, warnings) = crate::xlcfg::load_lenient(cfg).map_err(|e| e.to_string())?;
    for w in warnings {
        eprintln!("xenolith: warning: {w}");
    }
    let config = crate::runner::domain_config_at(&spec, &kernel_path(&spec))?;
    Ok((spec, config))
}

/// Where an xl.cfg's kernel is: relative to the config file's directory, as `xl create` run
/// from there would find it (unlike a scenario's bare guest names, which name guests/).
pub fn kernel_path(spec: &DomainSpec) -> PathBuf {
    let k = Path::new(&spec.kernel);
    if k.is_absolute() {
        k.to_path_buf()
    } else if spec.kernel_base.as_os_str().is_empty() {
        Path::new(".").join(k)
    } else {
        spec.kernel_base.join(k)
    }
}

/// The domain an xl.cfg file describes, as `key=value` lines (`create --dry-run`): what
/// `cargo xtask xtf` passes on to `boot-hw`.
pub fn describe(spec: &DomainSpec, kernel: &Path) -> String {
    format!(
        "name={}\nkernel={}\nmemory={}\nvcpus={}\ncmdline={}\n",
        spec.name,
        kernel.display(),
        spec.memory_mib,
        spec.vcpus,
        spec.cmdline.replace('\n', " ")
    )
}

/// Creates one domain from `c` in a fresh simulator, streams its console to stdout, runs it until
/// it is gone or `opts.max_insns` have run, and returns the exit code. `what` names the domain's
/// source (kernel or config file) in messages. With `opts.gdb`, gdb drives the run.
pub fn run_domain(c: DomainConfig, what: &Path, opts: &RunOptions) -> u8 {
    if let Some(addr) = &opts.gdb {
        return crate::gdb::serve(c, what, opts, addr);
    }
    let name = c.name.clone();
    let mut hv = match build(&c, what) {
        Ok(h) => h,
        Err(code) => return code,
    };
    if let Err(code) = create_in(&mut hv, c, what) {
        return code;
    }
    let max = opts.max_insns;
    if opts.console_input {
        return session(&mut hv, &name, opts);
    }
    while hv.any_running() && hv.now < max {
        let next = (hv.now + 10_000_000).min(max);
        hv.run_until(next);
    }
    finish(&mut hv, &name, opts)
}

/// The run of `boot -c` / `create -c`: stdin to the console ring at the ends of
/// [`crate::console::CHUNK_NS`] chunks of virtual time, idle time paced to real time, Ctrl-]
/// ends it (see [`crate::console`]).
fn session(hv: &mut hv::Hypervisor<crate::SimPlatform>, name: &str, opts: &RunOptions) -> u8 {
    use crate::console::{Session, CHUNK_NS};
    let max = opts.max_insns;
    let mut s = Session::start();
    let mut detached_at: Option<u64> = None;
    while hv.any_running() && hv.now < max {
        s.poll();
        if !s.pending().is_empty() {
            let bytes = s.pending().to_vec();
            match hv.console_input(name, &bytes) {
                Ok(n) => s.consumed(n),
                Err(_) => break,
            }
        }
        // After Ctrl-]: the guest gets DETACH_GRACE_NS of virtual time to read what was typed
        // before it, then the session (and the domain) ends.
        if s.detach && detached_at.get_or_insert(hv.now).saturating_add(crate::console::DETACH_GRACE_NS) <= hv.now {
            s.end();
            let _ = hv.destroy(name);
            eprintln!("\r\nxenolith: {name}: console left with Ctrl-]: the domain is destroyed with the session");
            break;
        }
        let (t0, cpu0) = (hv.now, hv.record(name).map_or(0, |r| r.cpu_ns));
        hv.run_until((hv.now + CHUNK_NS).min(max));
        let ran = hv.record(name).map_or(0, |r| r.cpu_ns) - cpu0;
        let idle = (hv.now - t0).saturating_sub(ran);
        if idle > 0 && hv.any_running() {
            s.wait(std::time::Duration::from_nanos(idle.min(CHUNK_NS)));
        }
    }
    s.end();
    finish(hv, name, opts)
}

/// A fresh simulator for domain `c`, its consoles streamed to stdout; or the exit code.
pub fn build(c: &DomainConfig, what: &Path) -> Result<hv::Hypervisor<crate::SimPlatform>, u8> {
    let mut hv = match crate::new_hypervisor(c.memory_mib + 16) {
        Ok(h) => h,
        Err(e @ StartError::Host(_)) => {
            eprintln!("xenolith: {}: domain {}: cannot start the simulator: {e}", what.display(), input::quote(&c.name));
            return Err(EXIT_HOST);
        }
        Err(e) => {
            eprintln!("xenolith: {e}");
            return Err(EXIT_BAD_INPUT);
        }
    };
    hv.platform.console_sink = Some(Box::new(|_, _, b| {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(b);
        let _ = o.flush();
    }));
    Ok(hv)
}

/// Create domain `c` in `hv`; or the exit code.
pub fn create_in(hv: &mut hv::Hypervisor<crate::SimPlatform>, c: DomainConfig, what: &Path) -> Result<(), u8> {
    let name = c.name.clone();
    match hv.create_domain(c) {
        Ok(_) => Ok(()),
        Err(e @ ControlError::Platform(_)) => {
            let why = hv.platform.vcpu_error.take().unwrap_or_else(|| e.to_string());
            eprintln!("xenolith: {}: domain {}: {why}", what.display(), input::quote(&name));
            Err(EXIT_HOST)
        }
        Err(e) => {
            eprintln!("xenolith: {}: {e}", what.display());
            Err(EXIT_BAD_INPUT)
        }
    }
}

/// After the run: write the trace, say how the domain ended, and return the exit code.
pub fn finish(hv: &mut hv::Hypervisor<crate::SimPlatform>, name: &str, opts: &RunOptions) -> u8 {
    let max = opts.max_insns;
    if std::env::var_os("XENOLITH_STATS").is_some() {
        eprint!("{}", hv.platform.stats().report(hv.platform.instructions));
    }
    if let Some(t) = &opts.trace {
        let mut text = hv.platform.trace.join("\n");
        text.push('\n');
        if let Err(e) = std::fs::write(t, text) {
            eprintln!("xenolith: cannot write {}: {e}", t.display());
        }
    }
    let Some(r) = hv.record(name).cloned() else {
        return EXIT_BAD_INPUT;
    };
    if matches!(r.state, RecordState::Running | RecordState::Paused) {
        eprintln!("xenolith: {name}: still running after {max} instructions (budget exhausted)");
        return EXIT_BUDGET;
    }
    match r.shutdowns.last() {
        Some(ShutdownReason::Poweroff) => {
            eprintln!("xenolith: {name}: powered off");
            0
        }
        Some(ShutdownReason::Crash) => {
            let why = r.crash_reason.unwrap_or_else(|| "the guest asked".into());
            eprintln!("xenolith: {name}: crashed ({why})");
            1
        }
        Some(other) => {
            eprintln!("xenolith: {name}: shut down ({})", other.name());
            EXIT_OTHER
        }
        None => {
            eprintln!("xenolith: {name}: destroyed");
            EXIT_OTHER
        }
    }
}

/// `xenolith create FILE.cfg [--dry-run]`: the exit code.
pub fn create(cfg: &Path, opts: &RunOptions, dry_run: bool) -> u8 {
    let (spec, config) = match config_from_file(cfg) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("xenolith: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    if dry_run {
        print!("{}", describe(&spec, &kernel_path(&spec)));
        return 0;
    }
    run_domain(config, cfg, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str, file: &str) -> DomainSpec {
        crate::xlcfg::parse_str_lenient(text, Path::new(file)).unwrap().0
    }

    #[test]
    fn kernel_is_relative_to_the_config() {
        let k = |text, file| kernel_path(&spec(text, file));
        assert_eq!(k("name=\"a\"\nkernel=\"k\"", "d/e/x.cfg"), Path::new("d/e/k"));
        assert_eq!(k("name=\"a\"\nkernel=\"../k\"", "d/x.cfg"), Path::new("d/../k"));
        assert_eq!(k("name=\"a\"\nkernel=\"/abs/k\"", "d/x.cfg"), Path::new("/abs/k"));
        assert_eq!(k("name=\"a\"\nkernel=\"k\"", "x.cfg"), Path::new("./k"));
    }

    #[test]
    fn xtf_configs_parse_and_unknown_keys_warn() {
        let text = "name=\"test-pv64-pv-iopl~vmassist\"\n\nvcpus=1 \n\ntype=\"pv\"\nloader=\"generic\" # Legacy\n\nmemory=128\nkernel=\"test-pv64-pv-iopl\"\n\n# Test Variation Configuration:\ncmdline=\"vmassist\"\non_watchdog=\"destroy\"\n";
        let (s, w) = crate::xlcfg::parse_str_lenient(text, Path::new("bin/t.cfg")).unwrap();
        assert_eq!((s.memory_mib, s.vcpus, s.cmdline.as_str()), (128, 1, "vmassist"));
        assert_eq!(w, ["bin/t.cfg:13: on_watchdog: unknown key \"on_watchdog\" ignored (as xl does)"]);
        // Strict parsing (scenarios' config = files) still rejects it; `loader` is known to both.
        let e = crate::xlcfg::parse_str(text, Path::new("bin/t.cfg")).unwrap_err().to_string();
        assert!(e.starts_with("bin/t.cfg:13: on_watchdog: unknown key"), "{e}");
        assert!(describe(&s, Path::new("bin/test-pv64-pv-iopl")).contains("\nmemory=128\n"));
    }
}
