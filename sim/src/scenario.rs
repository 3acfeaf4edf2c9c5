//! Scenario files: which domains to create, what to do at which virtual time, how long to run, and
//! what must hold at the end.
//!
//! ```toml
//! description = "one domain prints and powers off"
//! run_for = "50ms"                # virtual time, required: ns, us, ms or s suffix ("1.5ms" is fine)
//! pcpus = 1                       # physical CPUs of the simulated machine, 1..=64, default 1
//! hw_unsupported = { kvm = "why" } # optional: boot-hw skips the scenario on these accelerators
//!
//! [[domain]]
//! name = "hello"                  # [A-Za-z0-9_.-]{1,64}, not all digits (xl would take it for a domid)
//! kernel = "hello"                # bare name: a guest (see `resolve_kernel`); else a path relative to this file
//! memory = 16                     # MiB, 1..=4096, default 16
//! vcpus = 1                       # 1..=32, default 1
//! cmdline = "loglevel=3"          # default ""; `extra` is an alias (xl's name)
//! on_poweroff = "destroy"         # default destroy; on_reboot default restart; on_crash default destroy
//! weight = 256                    # credit weight 1..=65535 (alias cpu_weight); cap 0..=100*vcpus
//! privileged = false              # true: a control domain (Xen's is_privileged, as dom0): domctl works
//! disk = ["..."]                  # xl disk spec strings, stored verbatim; vif likewise
//!
//! [[domain]]
//! config = "domains/spin.cfg"     # xl.cfg syntax (see `xlcfg`), relative to this file...
//! name = "spin2"                  # ...and any key written here overrides the config file's value,
//! weight = 512                    # like `xl create spin.cfg name=spin2 cpu_weight=512`
//!
//! [[step]]
//! at = "10ms"                     # must be before run_for; steps run in `at` order, ties in file order
//! do = "pause hello"              # see `StepAction` for the commands
//!
//! [expect]
//! console.hello = ["Hello from xenolith"]   # each a substring of a distinct console line, in this order
//! shutdown.hello = "poweroff"               # see `DomainEnd`
//! trace.hello = ["sched_op(shutdown, poweroff) = 0"]  # likewise, over the domain's trace lines
//! cpu_percent.hello = [40, 60]              # CPU time over run_for, % of one pCPU, inclusive range
//! share_within.hello = 1                    # CPU share within ±N points of the credit target
//! store.hello = ["data/x=1"]                # xenstore PATH=VALUE at the end (relative to its home)
//! ```
//!
//! Every error names the file, the line and the field (`x.toml:12: step[2].do: unknown action ...`);
//! no input makes this module panic. Indices in field names (`domain[0]`, `step[2]`) count from 0.
//! Keys shared with xl.cfg are handled by one `DomainBuilder`, so both formats accept the same values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::input::{self, clip, quote, InputKind};
use super::xlcfg;

/// A loaded, validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub path: PathBuf,
    /// The file stem, e.g. `hello` for `scenarios/hello.toml`.
    pub name: String,
    pub description: String,
    pub run_for_ns: u64,
    /// Physical CPUs (`pcpus = M`, default 1).
    pub pcpus: u32,
    pub domains: Vec<DomainSpec>,
    /// Sorted stably by `at_ns`.
    pub steps: Vec<Step>,
    pub expect: Expect,
    /// Accelerators of `boot-hw` the scenario cannot run on, with why (`hw_unsupported`).
    pub hw_unsupported: Vec<(String, String)>,
}

impl Scenario {
    /// The domain named `name`, if the scenario defines it.
    pub fn domain(&self, name: &str) -> Option<&DomainSpec> {
        self.domains.iter().find(|d| d.name == name)
    }
}

/// One domain to create, from a scenario's `[[domain]]` table or an xl.cfg file.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainSpec {
    pub name: String,
    /// As written: a bare guest name or a path; see [`resolve_kernel`].
    pub kernel: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub cmdline: String,
    /// The initial ramdisk (`ramdisk =` in xl.cfg, `initrd =` in a scenario domain), resolved
    /// against the directory of the file that names it.
    pub ramdisk: Option<PathBuf>,
    pub on_poweroff: Action,
    pub on_reboot: Action,
    pub on_crash: Action,
    pub weight: Option<u16>,
    pub cap: Option<u16>,
    /// `privileged = true` (scenario files only): a control domain, as Xen's dom0 is (see the
    /// README's "A privileged domain").
    pub privileged: bool,
    pub disks: Vec<String>,
    pub vifs: Vec<String>,
    /// The file the domain came from: its xl.cfg file if it has one, else the scenario.
    pub source: PathBuf,
    /// The directory a relative kernel path is resolved against (that of the file naming the kernel).
    pub kernel_base: PathBuf,
}

/// What xl does when a domain shuts down (`on_poweroff`, `on_reboot`, `on_crash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Destroy,
    Restart,
    Preserve,
    RenameRestart,
    CoredumpDestroy,
    CoredumpRestart,
}

impl Action {
    const ALL: [(&'static str, Action); 6] = [
        ("destroy", Action::Destroy),
        ("restart", Action::Restart),
        ("preserve", Action::Preserve),
        ("rename-restart", Action::RenameRestart),
        ("coredump-destroy", Action::CoredumpDestroy),
        ("coredump-restart", Action::CoredumpRestart),
    ];

    /// Parses xl's spelling (`rename-restart`...).
    pub fn parse(s: &str) -> Option<Action> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|&(_, a)| a)
    }

    /// xl's spelling.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, a)| *a == self).map_or("?", |(n, _)| n)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A timed toolstack operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at_ns: u64,
    pub action: StepAction,
    /// The step's `do` as written (timelines mark it).
    pub text: String,
    /// Line of the step's `do` in the scenario file.
    pub line: usize,
}

/// The commands of a step's `do`, in xl's words:
/// `pause D`, `unpause D`, `shutdown D [poweroff|reboot]` (a request to the guest, poweroff by default),
/// `reboot D` (same as `shutdown D reboot`, xl's `reboot`), `destroy D` (immediate),
/// `sched-credit -d D [-w WEIGHT] [-c CAP]` (long forms --domain/--weight/--cap; with neither -w
/// nor -c it reads the current values into the trace, like `xl sched-credit -d D`),
/// `console D` (a no-op marker in the trace), `input D TEXT` (TEXT, the rest of the command after
/// one space, typed on D's console: put in its console ring, `\n`, `\r`, `\t`, `\\` and `\xNN`
/// escapes understood; see [`parse_input_text`]).
#[derive(Debug, Clone, PartialEq)]
pub enum StepAction {
    Pause(String),
    Unpause(String),
    Shutdown { domain: String, reason: ShutdownKind },
    Reboot(String),
    Destroy(String),
    SchedCredit { domain: String, weight: Option<u16>, cap: Option<u16> },
    Console(String),
    Input { domain: String, bytes: Vec<u8> },
}

impl StepAction {
    /// The domain the step acts on.
    pub fn domain(&self) -> &str {
        match self {
            StepAction::Pause(d) | StepAction::Unpause(d) | StepAction::Reboot(d) | StepAction::Destroy(d) | StepAction::Console(d) => d,
            StepAction::Shutdown { domain, .. } | StepAction::SchedCredit { domain, .. } | StepAction::Input { domain, .. } => domain,
        }
    }
}

/// The reason a toolstack shutdown request asks the guest for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShutdownKind {
    Poweroff,
    Reboot,
}

/// What must hold when the run ends. Keys are domain names, all checked to exist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    /// Each line a substring of a distinct console line, in this order (see [`first_missing`]).
    pub console: BTreeMap<String, Vec<String>>,
    pub shutdown: BTreeMap<String, DomainEnd>,
    /// Like `console`, over the domain's trace lines (e.g. `"mmu_update(1 req) = -EPERM"`).
    pub trace: BTreeMap<String, Vec<String>>,
    /// Inclusive range of the domain's CPU time over `run_for`, in % of one physical CPU (xentop's CPU(%)).
    pub cpu_percent: BTreeMap<String, (u32, u32)>,
    /// The domain's CPU share within ± this many points of the credit scheduler's target (see
    /// `runner::Share`).
    pub share_within: BTreeMap<String, u32>,
    /// xenstore values at the end of the run, as (path, value): a path relative to the domain's
    /// home `/local/domain/N` or absolute (`store.NAME = ["data/x=1"]`).
    pub store: BTreeMap<String, Vec<(String, String)>>,
}

/// How a domain's run ended, for `shutdown.NAME = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainEnd {
    /// Its last shutdown (through any restarts) had this reason (crash includes the hypervisor
    /// crashing the domain).
    Poweroff,
    Reboot,
    Crash,
    /// Never shut down; still running (or paused) at the end.
    Running,
    /// Destroyed by a `destroy` step.
    Destroyed,
}

impl DomainEnd {
    const ALL: [(&'static str, DomainEnd); 5] = [
        ("poweroff", DomainEnd::Poweroff),
        ("reboot", DomainEnd::Reboot),
        ("crash", DomainEnd::Crash),
        ("running", DomainEnd::Running),
        ("destroyed", DomainEnd::Destroyed),
    ];

    pub fn parse(s: &str) -> Option<DomainEnd> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|&(_, e)| e)
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, e)| *e == self).map_or("?", |(n, _)| n)
    }
}

impl fmt::Display for DomainEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bad scenario or xl.cfg file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("{}:{line}: {field}: {message}", file.display())]
    Invalid { file: PathBuf, line: usize, field: String, message: String },
}

/// Where a value was written: for error messages.
#[derive(Debug, Clone)]
pub(crate) struct At {
    pub file: PathBuf,
    pub line: usize,
    pub field: String,
}

impl At {
    pub(crate) fn err(&self, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid { file: self.file.clone(), line: self.line, field: clip(&self.field), message: message.into() }
    }
}

/// A domain field's value, as either format writes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue {
    Str(String),
    Int(i64),
    List(Vec<String>),
}

/// Domain keys, as `(key, canonical key)`; the ignored ones are checked, then dropped.
const DOMAIN_KEYS: &[(&str, &str)] = &[
    ("name", "name"),
    ("kernel", "kernel"),
    ("memory", "memory"),
    ("vcpus", "vcpus"),
    ("cmdline", "cmdline"),
    ("extra", "cmdline"),
    ("root", "root"),
    ("ramdisk", "ramdisk"),
    ("initrd", "ramdisk"),
    ("on_poweroff", "on_poweroff"),
    ("on_reboot", "on_reboot"),
    ("on_crash", "on_crash"),
    ("weight", "weight"),
    ("cpu_weight", "weight"),
    ("cap", "cap"),
    ("disk", "disk"),
    ("vif", "vif"),
    // Accepted because xl.cfg files commonly carry them; checked, otherwise ignored.
    ("type", "type"),
    ("builder", "builder"),
    ("loader", "loader"),
    ("maxmem", "maxmem"),
    ("maxvcpus", "maxvcpus"),
    ("uuid", "uuid"),
];

/// The canonical name of a domain key (`extra` → `cmdline`, `cpu_weight` → `weight`).
pub(crate) fn canonical_key(key: &str) -> Option<&'static str> {
    DOMAIN_KEYS.iter().find(|(k, _)| *k == key).map(|&(_, c)| c)
}

/// The error for an unknown domain key.
pub(crate) fn unknown_key(at: &At, key: &str, extra: &str) -> ScenarioError {
    let known: Vec<&str> = DOMAIN_KEYS.iter().map(|(k, _)| *k).collect();
    at.err(format!("unknown key {} (expected {extra}{})", quote(key), known.join(", ")))
}

type Set<T> = Option<(T, At)>;

/// Collects domain fields from a scenario table and/or an xl.cfg file, later values overriding earlier
/// ones, then checks them as a whole. Shared by both formats so they accept exactly the same values.
#[derive(Debug, Default)]
pub(crate) struct DomainBuilder {
    name: Set<String>,
    kernel: Set<String>,
    memory: Set<u64>,
    maxmem: Set<u64>,
    vcpus: Set<u32>,
    maxvcpus: Set<u32>,
    cmdline: Set<String>,
    ramdisk: Set<String>,
    root: Set<String>,
    on_poweroff: Set<Action>,
    on_reboot: Set<Action>,
    on_crash: Set<Action>,
    weight: Set<u16>,
    cap: Set<u16>,
    disks: Set<Vec<String>>,
    vifs: Set<Vec<String>>,
}

fn want_str(v: FieldValue, at: &At) -> Result<String, ScenarioError> {
    match v {
        FieldValue::Str(s) => Ok(s),
        FieldValue::Int(i) => Err(at.err(format!("expected a string, found integer {i}"))),
        FieldValue::List(_) => Err(at.err("expected a string, found a list")),
    }
}

fn want_int(v: FieldValue, at: &At, range: Range<i64>) -> Result<i64, ScenarioError> {
    let i = match v {
        FieldValue::Int(i) => i,
        FieldValue::Str(s) => return Err(at.err(format!("expected an integer, found string {}", quote(&s)))),
        FieldValue::List(_) => return Err(at.err("expected an integer, found a list")),
    };
    if range.contains(&i) {
        Ok(i)
    } else {
        Err(at.err(format!("{i} is out of range {}..={}", range.start, range.end - 1)))
    }
}

fn want_action(v: FieldValue, at: &At) -> Result<Action, ScenarioError> {
    let s = want_str(v, at)?;
    Action::parse(&s).ok_or_else(|| {
        let all: Vec<&str> = Action::ALL.iter().map(|(n, _)| *n).collect();
        at.err(format!("unknown action {} (expected {})", quote(&s), all.join(", ")))
    })
}

/// Checks a domain name: `[A-Za-z0-9_.~-]{1,64}`, not all digits (`~` as in XTF's variation
/// names, `test-pv64-pv-iopl~vmassist`).
pub fn check_domain_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("domain name {} must be 1 to 64 characters", quote(name)));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.~-".contains(*c))) {
        return Err(format!("domain name {} has {c:?}; allowed are A-Z a-z 0-9 _ . ~ -", quote(name)));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("domain name {} is all digits (xl would read it as a domain id)", quote(name)));
    }
    Ok(())
}

impl DomainBuilder {
    /// Sets `key` (already canonical, see [`canonical_key`]), checking the value on its own.
    pub(crate) fn set(&mut self, key: &str, v: FieldValue, at: At) -> Result<(), ScenarioError> {
        match key {
            "name" => {
                let s = want_str(v, &at)?;
                check_domain_name(&s).map_err(|m| at.err(m))?;
                self.name = Some((s, at));
            }
            "kernel" => {
                let s = want_str(v, &at)?;
                if s.trim().is_empty() {
                    return Err(at.err("kernel must not be empty"));
                }
                self.kernel = Some((s, at));
            }
            "memory" => self.memory = Some((want_int(v, &at, 1..4097)? as u64, at)),
            "maxmem" => self.maxmem = Some((want_int(v, &at, 1..4097)? as u64, at)),
            "vcpus" => self.vcpus = Some((want_int(v, &at, 1..33)? as u32, at)),
            "maxvcpus" => self.maxvcpus = Some((want_int(v, &at, 1..33)? as u32, at)),
            "cmdline" => self.cmdline = Some((want_str(v, &at)?, at)),
            "ramdisk" => {
                let s = want_str(v, &at)?;
                if s.trim().is_empty() {
                    return Err(at.err("ramdisk must not be empty"));
                }
                self.ramdisk = Some((s, at));
            }
            "root" => self.root = Some((want_str(v, &at)?, at)),
            "on_poweroff" => self.on_poweroff = Some((want_action(v, &at)?, at)),
            "on_reboot" => self.on_reboot = Some((want_action(v, &at)?, at)),
            "on_crash" => self.on_crash = Some((want_action(v, &at)?, at)),
            "weight" => self.weight = Some((want_int(v, &at, 1..65536)? as u16, at)),
            "cap" => self.cap = Some((want_int(v, &at, 0..65536)? as u16, at)),
            "disk" | "vif" => {
                let list = match v {
                    FieldValue::List(l) => l,
                    _ => return Err(at.err("expected a list of strings, e.g. [\"...\"]")),
                };
                if key == "disk" {
                    self.disks = Some((list, at));
                } else {
                    self.vifs = Some((list, at));
                }
            }
            "type" => {
                let s = want_str(v, &at)?;
                if s != "pv" {
                    return Err(at.err(format!("type {} is not supported (xenolith runs PV guests: \"pv\")", quote(&s))));
                }
            }
            "builder" => {
                let s = want_str(v, &at)?;
                if s != "generic" && s != "linux" {
                    return Err(at.err(format!("builder {} is not supported (PV: \"generic\")", quote(&s))));
                }
            }
            // `loader` is HVM firmware in xl.cfg(5), meaningless for PV; XTF's configs carry
            // `loader="generic"` (a legacy spelling of `builder`): any string is accepted.
            "uuid" | "loader" => {
                want_str(v, &at)?;
            }
            other => return Err(unknown_key(&at, other, "")),
        }
        Ok(())
    }

    /// Checks the fields together and produces the spec. `whole` locates the domain as a whole, for
    /// missing fields.
    pub(crate) fn finish(self, source: PathBuf, whole: &At) -> Result<DomainSpec, ScenarioError> {
        let missing = |what: &str| {
            let mut at = whole.clone();
            at.field = format!("{}{what}", field_prefix(&whole.field));
            at.err(format!("missing {what}"))
        };
        let (name, _) = self.name.ok_or_else(|| missing("name"))?;
        let (kernel, kernel_at) = self.kernel.ok_or_else(|| missing("kernel"))?;
        let memory_mib = self.memory.as_ref().map_or(16, |(m, _)| *m);
        let vcpus = self.vcpus.as_ref().map_or(1, |(v, _)| *v);
        if let Some((maxmem, at)) = &self.maxmem {
            if *maxmem < memory_mib {
                return Err(at.err(format!("maxmem {maxmem} is below memory {memory_mib}")));
            }
        }
        if let Some((maxvcpus, at)) = &self.maxvcpus {
            if *maxvcpus < vcpus {
                return Err(at.err(format!("maxvcpus {maxvcpus} is below vcpus {vcpus}")));
            }
        }
        if let Some((cap, at)) = &self.cap {
            if u32::from(*cap) > 100 * vcpus {
                return Err(at.err(format!("cap {cap} is out of range 0..={} for {vcpus} vcpus", 100 * vcpus)));
            }
        }
        let mut cmdline = self.cmdline.map(|(c, _)| c).unwrap_or_default();
        if let Some((root, _)) = self.root {
            cmdline = format!("root={root} {cmdline}").trim_end().to_string();
        }
        let kernel_base = kernel_at.file.parent().map(Path::to_path_buf).unwrap_or_default();
        let ramdisk = self.ramdisk.map(|(r, at)| match at.file.parent() {
            Some(dir) => dir.join(r),
            None => PathBuf::from(r),
        });
        Ok(DomainSpec {
            name,
            kernel,
            memory_mib,
            vcpus,
            cmdline,
            ramdisk,
            on_poweroff: self.on_poweroff.map_or(Action::Destroy, |(a, _)| a),
            on_reboot: self.on_reboot.map_or(Action::Restart, |(a, _)| a),
            on_crash: self.on_crash.map_or(Action::Destroy, |(a, _)| a),
            weight: self.weight.map(|(w, _)| w),
            cap: self.cap.map(|(c, _)| c),
            privileged: false,
            disks: self.disks.map(|(d, _)| d).unwrap_or_default(),
            vifs: self.vifs.map(|(v, _)| v).unwrap_or_default(),
            source,
            kernel_base,
        })
    }
}

/// `"domain[0]"` → `"domain[0]."`, `""` → `""`.
fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}.")
    }
}

/// Where to find a domain's kernel: a bare name (no `/`) is a guest, `guests_dir/<name>`; anything else
/// is a path relative to the directory of the file that named it.
pub fn resolve_kernel(spec: &DomainSpec, guests_dir: &Path) -> PathBuf {
    if spec.kernel.contains('/') {
        spec.kernel_base.join(&spec.kernel)
    } else {
        guests_dir.join(&spec.kernel)
    }
}

/// Parses a virtual-time duration: a number (decimals allowed) and a unit `ns`, `us`, `ms` or `s`,
/// e.g. `"50ms"`, `"1.5 us"`. The result must be a whole number of nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("bad duration {} (expected a number and ns, us, ms or s, e.g. \"50ms\")", quote(s));
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let scale: u64 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => return Err(bad()),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || frac.contains('.') || (num.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let too_big = || format!("duration {} is too large", quote(s));
    let mut ns = int.parse::<u64>().map_err(|_| too_big())?.checked_mul(scale).ok_or_else(too_big)?;
    let mut place = scale;
    for d in frac.bytes() {
        place /= 10;
        let digit = u64::from(d - b'0');
        if place == 0 {
            if digit != 0 {
                return Err(format!("duration {} is not a whole number of nanoseconds", quote(s)));
            }
            continue;
        }
        ns = ns.checked_add(digit * place).ok_or_else(too_big)?;
    }
    Ok(ns)
}

/// Checks that each of `expected` is a substring of a distinct line of `text`, in order; returns the
/// first that is not found. The matching rule of `expect.console` and `expect.trace`.
pub fn first_missing<'a>(expected: &'a [String], text: &str) -> Option<&'a str> {
    let mut lines = text.lines();
    expected.iter().find(|want| !lines.any(|l| l.contains(want.as_str()))).map(String::as_str)
}

/// The scenario files under `path`: `path` itself if it is a file, else the `*.toml` directly in the
/// directory, sorted. A directory without any is an error (so CI cannot pass vacuously).
pub fn load_dir_or_file(path: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let io = |source| ScenarioError::Io { path: path.to_path_buf(), source };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(io)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        if p.extension().is_some_and(|e| e == "toml") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        let e = std::io::Error::new(std::io::ErrorKind::NotFound, "no *.toml scenario files in directory");
        return Err(io(e));
    }
    Ok(files)
}

/// Reads and validates one scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = input::read_text(path, InputKind::Scenario)?;
    parse_str(&text, path)
}

/// A TOML value with spans all the way down (`toml::Value` drops them).
#[derive(Debug)]
enum Tv {
    Str(String),
    Int(i64),
    Bool(bool),
    Other(&'static str),
    Array(Vec<Sp>),
    Table(Vec<(String, Sp)>),
}

/// A [`Tv`] and where it was written. Like `toml::Spanned`, but tolerant of values the toml crate has no
/// span for (implicit tables from dotted keys such as `console.hello = [...]`); [`Sp::settle`] then
/// gives those the span of their first child.
#[derive(Debug)]
struct Sp {
    span: Option<Range<usize>>,
    v: Tv,
}

/// The serde protocol by which the toml crate hands out spans (`serde_spanned`'s private names). Were it
/// ever to change, values would simply arrive without spans and errors would point at line 1.
const SPANNED: &str = "$__serde_spanned_private_Spanned";
const SPANNED_FIELDS: [&str; 3] = ["$__serde_spanned_private_start", "$__serde_spanned_private_end", "$__serde_spanned_private_value"];

/// Builds [`Tv`]s; with `spanned`, a map may be the span protocol's `{start, end, value}`.
struct TvVisitor {
    spanned: bool,
}

impl<'de> Visitor<'de> for TvVisitor {
    type Value = Sp;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_str<E>(self, s: &str) -> Result<Sp, E> {
        Ok(Sp { span: None, v: Tv::Str(s.to_string()) })
    }
    fn visit_i64<E>(self, i: i64) -> Result<Sp, E> {
        Ok(Sp { span: None, v: Tv::Int(i) })
    }
    fn visit_u64<E>(self, i: u64) -> Result<Sp, E> {
        Ok(Sp { span: None, v: i64::try_from(i).map_or(Tv::Other("a huge integer"), Tv::Int) })
    }
    fn visit_f64<E>(self, _: f64) -> Result<Sp, E> {
        Ok(Sp { span: None, v: Tv::Other("a float") })
    }
    fn visit_bool<E>(self, b: bool) -> Result<Sp, E> {
        Ok(Sp { span: None, v: Tv::Bool(b) })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sp, A::Error> {
        let mut v = Vec::new();
        while let Some(e) = seq.next_element()? {
            v.push(e);
        }
        Ok(Sp { span: None, v: Tv::Array(v) })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sp, A::Error> {
        let mut entries = Vec::new();
        let (mut start, mut end) = (None, None);
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                k if self.spanned && k == SPANNED_FIELDS[0] => start = Some(map.next_value::<usize>()?),
                k if self.spanned && k == SPANNED_FIELDS[1] => end = Some(map.next_value::<usize>()?),
                k if self.spanned && k == SPANNED_FIELDS[2] => {
                    let Unspanned(inner) = map.next_value()?;
                    return Ok(Sp { span: start.zip(end).map(|(s, e)| s..e), v: inner.v });
                }
                _ => {
                    let value = map.next_value::<Sp>()?;
                    entries.push((k, value));
                }
            }
        }
        Ok(Sp { span: None, v: Tv::Table(entries) })
    }
}

/// A value deserialized without asking for its span: the span protocol's inner value, and the document.
struct Unspanned(Sp);

impl<'de> Deserialize<'de> for Unspanned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TvVisitor { spanned: false }).map(Unspanned)
    }
}

impl<'de> Deserialize<'de> for Sp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(SPANNED, &SPANNED_FIELDS, TvVisitor { spanned: true })
    }
}

impl Sp {
    fn span(&self) -> Range<usize> {
        self.span.clone().unwrap_or(0..0)
    }

    fn get_ref(&self) -> &Tv {
        &self.v
    }

    /// Gives every value without a span that of its first child, or else of its parent.
    fn settle(&mut self, parent: &Range<usize>) {
        let own = self.span.clone().unwrap_or_else(|| parent.clone());
        let children: Vec<&mut Sp> = match &mut self.v {
            Tv::Array(a) => a.iter_mut().collect(),
            Tv::Table(t) => t.iter_mut().map(|(_, v)| v).collect(),
            _ => Vec::new(),
        };
        let mut first = None;
        for c in children {
            c.settle(&own);
            first = first.or_else(|| c.span.clone());
        }
        if self.span.is_none() {
            self.span = first.or(Some(own));
        }
    }
}

impl Tv {
    fn kind(&self) -> &'static str {
        match self {
            Tv::Str(_) => "a string",
            Tv::Int(_) => "an integer",
            Tv::Bool(_) => "a boolean",
            Tv::Other(k) => k,
            Tv::Array(_) => "an array",
            Tv::Table(_) => "a table",
        }
    }
}

type Entries = Vec<(String, Sp)>;

/// The file being parsed, to turn spans into lines.
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        let bytes = self.text.as_bytes();
        bytes[..offset.min(bytes.len())].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn at(&self, span: Range<usize>, field: impl Into<String>) -> At {
        At { file: self.file.to_path_buf(), line: self.line(span.start), field: field.into() }
    }

    fn str(&self, v: &Sp, field: &str) -> Result<String, ScenarioError> {
        match v.get_ref() {
            Tv::Str(s) => Ok(s.clone()),
            other => Err(self.at(v.span(), field).err(format!("expected a string, found {}", other.kind()))),
        }
    }

    fn table<'v>(&self, v: &'v Sp, field: &str) -> Result<&'v Entries, ScenarioError> {
        match v.get_ref() {
            Tv::Table(t) => Ok(t),
            other => Err(self.at(v.span(), field).err(format!("expected a table, found {}", other.kind()))),
        }
    }

    fn array<'v>(&self, v: &'v Sp, field: &str) -> Result<&'v [Sp], ScenarioError> {
        match v.get_ref() {
            Tv::Array(a) => Ok(a),
            other => Err(self.at(v.span(), field).err(format!("expected an array, found {}", other.kind()))),
        }
    }

    fn duration(&self, v: &Sp, field: &str) -> Result<u64, ScenarioError> {
        let s = self.str(v, field)?;
        parse_duration(&s).map_err(|m| self.at(v.span(), field).err(m))
    }

    /// A syntax error from the toml crate, located and named by the line it points at.
    fn syntax(&self, e: &toml::de::Error) -> ScenarioError {
        let offset = e.span().map_or(0, |s| s.start);
        let line = self.line(offset);
        let text = self.text.lines().nth(line - 1).unwrap_or("").trim();
        let field =
            if text.starts_with('[') { text.to_string() } else { text.split_once('=').map_or("syntax", |(k, _)| k.trim()).to_string() };
        let message = e.message().trim().to_string();
        At { file: self.file.to_path_buf(), line, field }.err(format!("syntax error: {message}"))
    }
}

/// Parses scenario text; `path` names it in errors and anchors relative paths.
/// The most physical CPUs a scenario may ask for.
pub const MAX_PCPUS: u32 = 64;

pub fn parse_str(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let cx = Ctx { file: path, text };
    let top = match toml::from_str::<Unspanned>(text) {
        Ok(Unspanned(mut top)) => {
            top.settle(&(0..0));
            match top.v {
                Tv::Table(t) => t,
                _ => return Err(cx.at(0..0, "(top)").err("expected a table")),
            }
        }
        Err(e) => return Err(cx.syntax(&e)),
    };
    let get = |key: &str| top.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    for (k, v) in &top {
        if !["description", "run_for", "pcpus", "domain", "step", "expect", "hw_unsupported"].contains(&k.as_str()) {
            let msg = format!("unknown key {} (expected description, run_for, pcpus, domain, step, expect, hw_unsupported)", quote(k));
            return Err(cx.at(v.span(), k.clone()).err(msg));
        }
    }
    let description = get("description").map(|v| cx.str(v, "description")).transpose()?.unwrap_or_default();
    let run_for_ns = match get("run_for") {
        Some(v) => cx.duration(v, "run_for")?,
        None => return Err(cx.at(0..0, "run_for").err("missing (how long to run, e.g. \"50ms\")")),
    };
    if run_for_ns == 0 {
        return Err(cx.at(get("run_for").map_or(0..0, |v| v.span()), "run_for").err("must be more than 0"));
    }

    let pcpus = match get("pcpus") {
        Some(v) => match v.get_ref() {
            Tv::Int(i) if (1..=MAX_PCPUS as i64).contains(i) => *i as u32,
            _ => return Err(cx.at(v.span(), "pcpus").err(format!("expected an integer in 1..={MAX_PCPUS}"))),
        },
        None => 1,
    };

    let mut domains: Vec<DomainSpec> = Vec::new();
    for (i, d) in get("domain").map(|v| cx.array(v, "domain")).transpose()?.unwrap_or_default().iter().enumerate() {
        let field = format!("domain[{i}]");
        let spec = parse_domain(&cx, d, &field)?;
        if domains.iter().any(|o| o.name == spec.name) {
            let name_line = cx.table(d, &field)?.iter().find(|(k, _)| k == "name").map_or(d.span(), |(_, v)| v.span());
            return Err(cx.at(name_line, format!("{field}.name")).err(format!("duplicate domain name {}", quote(&spec.name))));
        }
        domains.push(spec);
    }
    if domains.is_empty() {
        return Err(cx.at(0..0, "domain").err("no [[domain]] tables: a scenario needs at least one domain"));
    }

    let mut steps = Vec::new();
    for (i, s) in get("step").map(|v| cx.array(v, "step")).transpose()?.unwrap_or_default().iter().enumerate() {
        steps.push(parse_step(&cx, s, i, run_for_ns, &domains)?);
    }
    steps.sort_by_key(|s: &Step| s.at_ns);

    let expect = match get("expect") {
        Some(v) => parse_expect(&cx, v, &domains)?,
        None => Expect::default(),
    };
    // hw_unsupported = { kvm = "why" }: boot-hw skips the scenario on that accelerator.
    let mut hw_unsupported = Vec::new();
    if let Some(v) = get("hw_unsupported") {
        for (k, why) in cx.table(v, "hw_unsupported")? {
            let field = format!("hw_unsupported.{k}");
            if k != "kvm" && k != "tcg" {
                return Err(cx.at(why.span(), field).err(format!("unknown accelerator {} (expected kvm or tcg)", quote(k))));
            }
            hw_unsupported.push((k.clone(), cx.str(why, &field)?));
        }
    }
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Scenario { hw_unsupported, path: path.to_path_buf(), name, description, run_for_ns, pcpus, domains, steps, expect })
}

fn parse_domain(cx: &Ctx, d: &Sp, field: &str) -> Result<DomainSpec, ScenarioError> {
    let entries = cx.table(d, field)?;
    let mut b = DomainBuilder::default();
    let mut source = cx.file.to_path_buf();
    if let Some((_, v)) = entries.iter().find(|(k, _)| k == "config") {
        let cfg_field = format!("{field}.config");
        let rel = cx.str(v, &cfg_field)?;
        let cfg = cx.file.parent().unwrap_or(Path::new("")).join(&rel);
        let text = input::read_text(&cfg, InputKind::XlConfig).map_err(|e| cx.at(v.span(), &cfg_field).err(e.to_string()))?;
        xlcfg::apply(&text, &cfg, &mut b)?;
        source = cfg;
    }
    let mut seen = BTreeSet::new();
    let mut privileged = false;
    for (k, v) in entries {
        let key = k.as_str();
        if key == "config" {
            continue;
        }
        // Scenario-only (xl has no such key: in Xen the control domain is dom0).
        if key == "privileged" {
            let at = cx.at(v.span(), format!("{field}.{key}"));
            privileged = match v.get_ref() {
                Tv::Bool(b) => *b,
                other => return Err(at.err(format!("expected true or false, found {}", other.kind()))),
            };
            continue;
        }
        let at = cx.at(v.span(), format!("{field}.{key}"));
        let canon = canonical_key(key).ok_or_else(|| unknown_key(&at, key, "config, "))?;
        if !seen.insert(canon) {
            return Err(at.err(format!("{} given twice (aliases: cmdline/extra, weight/cpu_weight)", quote(key))));
        }
        let value = match v.get_ref() {
            Tv::Str(s) => FieldValue::Str(s.clone()),
            Tv::Int(i) => FieldValue::Int(*i),
            Tv::Array(a) => FieldValue::List(a.iter().map(|e| cx.str(e, &format!("{field}.{key}"))).collect::<Result<_, _>>()?),
            other => return Err(at.err(format!("unexpected {}", other.kind()))),
        };
        b.set(canon, value, at)?;
    }
    let mut spec = b.finish(source, &cx.at(d.span(), field))?;
    spec.privileged = privileged;
    Ok(spec)
}

fn parse_step(cx: &Ctx, s: &Sp, i: usize, run_for: u64, domains: &[DomainSpec]) -> Result<Step, ScenarioError> {
    let field = format!("step[{i}]");
    let entries = cx.table(s, &field)?;
    let (mut at, mut action) = (None, None);
    for (k, v) in entries {
        match k.as_str() {
            "at" => at = Some((cx.duration(v, &format!("{field}.at"))?, v.span())),
            "do" => action = Some((cx.str(v, &format!("{field}.do"))?, v.span())),
            other => {
                let msg = format!("unknown key {} (expected at, do)", quote(other));
                return Err(cx.at(v.span(), format!("{field}.{other}")).err(msg));
            }
        }
    }
    let (at_ns, at_span) = at.ok_or_else(|| cx.at(s.span(), format!("{field}.at")).err("missing (e.g. at = \"10ms\")"))?;
    if at_ns >= run_for {
        let msg = format!("step at {at_ns} ns is not before run_for ({run_for} ns)");
        return Err(cx.at(at_span, format!("{field}.at")).err(msg));
    }
    let (text, do_span) = action.ok_or_else(|| cx.at(s.span(), format!("{field}.do")).err("missing (e.g. do = \"pause NAME\")"))?;
    let do_at = cx.at(do_span, format!("{field}.do"));
    let action = parse_action(&text, domains).map_err(|m| do_at.err(m))?;
    Ok(Step { at_ns, action, text: text.split_whitespace().collect::<Vec<_>>().join(" "), line: do_at.line })
}

/// Parses a step's `do` command (see [`StepAction`]), checking the domain exists.
pub fn parse_action(text: &str, domains: &[DomainSpec]) -> Result<StepAction, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some((&cmd, args)) = words.split_first() else {
        return Err("empty command".into());
    };
    let domain = |name: &str| -> Result<String, String> {
        match domains.iter().find(|d| d.name == name) {
            Some(_) => Ok(name.to_string()),
            None => Err(format!("no domain named {} in this scenario", quote(name))),
        }
    };
    let one = |args: &[&str]| -> Result<String, String> {
        match args {
            [name] => domain(name),
            _ => Err(format!("usage: {} DOMAIN", clip(cmd))),
        }
    };
    Ok(match cmd {
        "pause" => StepAction::Pause(one(args)?),
        "unpause" => StepAction::Unpause(one(args)?),
        "reboot" => StepAction::Reboot(one(args)?),
        "destroy" => StepAction::Destroy(one(args)?),
        "console" => StepAction::Console(one(args)?),
        "shutdown" => match args {
            [name] => StepAction::Shutdown { domain: domain(name)?, reason: ShutdownKind::Poweroff },
            [name, "poweroff"] => StepAction::Shutdown { domain: domain(name)?, reason: ShutdownKind::Poweroff },
            [name, "reboot"] => StepAction::Shutdown { domain: domain(name)?, reason: ShutdownKind::Reboot },
            _ => return Err("usage: shutdown DOMAIN [poweroff|reboot]".into()),
        },
        "sched-credit" => parse_sched_credit(args, domains, &domain)?,
        "input" => {
            const USAGE: &str = "usage: input DOMAIN TEXT (e.g. input echo hello\\n)";
            let rest = text.trim_start().strip_prefix("input").unwrap_or("").trim_start();
            let (name, typed) = rest.split_once(char::is_whitespace).ok_or(USAGE)?;
            let bytes = parse_input_text(typed)?;
            if bytes.is_empty() {
                return Err(USAGE.into());
            }
            StepAction::Input { domain: domain(name)?, bytes }
        }
        other => {
            return Err(format!(
                "unknown action {} (expected pause, unpause, shutdown, reboot, destroy, sched-credit, console, input)",
                quote(other)
            ))
        }
    })
}

/// The TEXT of `input D TEXT`: its bytes, with `\n`, `\r`, `\t`, `\\` and `\xNN` turned into
/// the bytes they name (so a TOML literal string `'input echo hi\n'` types `hi` and Enter).
pub fn parse_input_text(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = text
                    .get(i + 2..i + 4)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(hex.ok_or_else(|| format!("bad escape at byte {i}: \\x needs two hex digits"))?);
                i += 2;
            }
            _ => return Err(format!("bad escape at byte {i} (expected \\n, \\r, \\t, \\\\ or \\xNN)")),
        }
        i += 2;
    }
    if out.len() > 4096 {
        return Err(format!("input text of {} bytes is longer than 4096", out.len()));
    }
    Ok(out)
}

fn parse_sched_credit(
    args: &[&str],
    domains: &[DomainSpec],
    domain: &dyn Fn(&str) -> Result<String, String>,
) -> Result<StepAction, String> {
    const USAGE: &str = "usage: sched-credit -d DOMAIN [-w WEIGHT] [-c CAP]";
    let (mut dom, mut weight, mut cap) = (None, None, None);
    let mut it = args.iter();
    while let Some(&opt) = it.next() {
        let (name, inline) = match opt.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (opt, None),
        };
        let Some(value) = inline.or_else(|| it.next().copied()) else {
            return Err(format!("{} needs a value; {USAGE}", clip(opt)));
        };
        let number = |lo: u32, hi: u32| -> Result<u16, String> {
            match value.parse::<u32>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(n as u16),
                _ => Err(format!("{} {}: expected an integer in {lo}..={hi}", clip(name), clip(value))),
            }
        };
        match name {
            "-d" | "--domain" => dom = Some(domain(value)?),
            "-w" | "--weight" => weight = Some(number(1, 65535)?),
            "-c" | "--cap" => cap = Some(number(0, 65535)?),
            _ => return Err(format!("unknown option {}; {USAGE}", quote(opt))),
        }
    }
    let Some(dom) = dom else {
        return Err(format!("missing -d DOMAIN; {USAGE}"));
    };
    if let (Some(c), Some(d)) = (cap, domains.iter().find(|d| d.name == dom)) {
        if u32::from(c) > 100 * d.vcpus {
            return Err(format!("cap {c} is out of range 0..={} for {} vcpus", 100 * d.vcpus, d.vcpus));
        }
    }
    Ok(StepAction::SchedCredit { domain: dom, weight, cap })
}

fn parse_expect(cx: &Ctx, v: &Sp, domains: &[DomainSpec]) -> Result<Expect, ScenarioError> {
    let mut expect = Expect::default();
    for (kind, table) in cx.table(v, "expect")? {
        let kind = kind.as_str();
        if !["console", "shutdown", "trace", "cpu_percent", "share_within", "store"].contains(&kind) {
            let msg = format!("unknown key {} (expected console, shutdown, trace, cpu_percent, share_within, store)", quote(kind));
            return Err(cx.at(table.span(), format!("expect.{kind}")).err(msg));
        }
        for (name, value) in cx.table(table, &format!("expect.{kind}"))? {
            let field = format!("expect.{kind}.{}", name);
            let at = cx.at(value.span(), &field);
            let Some(dom) = domains.iter().find(|d| d.name == *name) else {
                return Err(at.err(format!("no domain named {} in this scenario", quote(name))));
            };
            let name = dom.name.clone();
            match kind {
                "console" | "trace" => {
                    let lines = cx.array(value, &field)?.iter().map(|l| cx.str(l, &field)).collect::<Result<_, _>>()?;
                    if kind == "console" { &mut expect.console } else { &mut expect.trace }.insert(name, lines);
                }
                "share_within" => match value.get_ref() {
                    Tv::Int(i) if (0..=100).contains(i) => {
                        expect.share_within.insert(name, *i as u32);
                    }
                    _ => return Err(at.err("expected an integer number of points in 0..=100")),
                },
                "store" => {
                    let mut pairs = Vec::new();
                    for l in cx.array(value, &field)? {
                        let s = cx.str(l, &field)?;
                        let Some((p, v)) = s.split_once('=').filter(|(p, _)| !p.is_empty()) else {
                            return Err(cx.at(l.span(), &field).err(format!("expected \"PATH=VALUE\", found {}", quote(&s))));
                        };
                        pairs.push((p.to_string(), v.to_string()));
                    }
                    expect.store.insert(name, pairs);
                }
                "shutdown" => {
                    let s = cx.str(value, &field)?;
                    let end = DomainEnd::parse(&s).ok_or_else(|| {
                        at.err(format!("unknown end {} (expected poweroff, reboot, crash, running, destroyed)", quote(&s)))
                    })?;
                    expect.shutdown.insert(name, end);
                }
                _ => {
                    let range = cx.array(value, &field)?;
                    let max = 100 * dom.vcpus;
                    let bounds: Vec<u32> = range
                        .iter()
                        .filter_map(|b| match b.get_ref() {
                            Tv::Int(i) => u32::try_from(*i).ok().filter(|&i| i <= max),
                            _ => None,
                        })
                        .collect();
                    match bounds[..] {
                        [lo, hi] if range.len() == 2 && lo <= hi => expect.cpu_percent.insert(name, (lo, hi)),
                        _ => return Err(at.err(format!("expected [LOW, HIGH] with 0 <= LOW <= HIGH <= {max}"))),
                    };
                }
            }
        }
    }
    Ok(expect)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        parse_str(text, Path::new("scenarios/x.toml"))
    }

    /// The error's Display, which must name file, line and field.
    fn err(text: &str) -> String {
        parse(text).expect_err("should fail").to_string()
    }

    #[test]
    fn hw_unsupported_names_accelerators_and_why() {
        let base = "run_for = \"1ms\"\n[[domain]]\nname = \"a\"\nkernel = \"hello\"\n";
        let s = parse(&format!("hw_unsupported = {{ kvm = \"no breakpoints\" }}\n{base}")).expect("parses");
        assert_eq!(s.hw_unsupported, vec![("kvm".to_string(), "no breakpoints".to_string())]);
        assert!(parse(base).expect("parses").hw_unsupported.is_empty());
        let e = err(&format!("hw_unsupported = {{ xen = \"x\" }}\n{base}"));
        assert!(e.contains("scenarios/x.toml:1: hw_unsupported.xen: unknown accelerator"), "{e}");
        let e = err(&format!("hw_unsupported = {{ tcg = 3 }}\n{base}"));
        assert!(e.contains("hw_unsupported.tcg: expected a string"), "{e}");
    }

    const GOOD: &str = r#"
description = "two domains"
run_for = "50ms"

[[domain]]
name = "hello"
kernel = "hello"
cmdline = "loglevel=3"

[[domain]]
name = "spin"
kernel = "../elf/spin"
memory = 32
vcpus = 2
on_crash = "preserve"
weight = 512
cap = 150
disk = ["file:/x,xvda,w"]

[[step]]
at = "20ms"
do = "sched-credit -d spin -w 64 -c 25"

[[step]]
at = "10ms"
do = "pause   hello"

[[step]]
at = "10ms"
do = "shutdown spin reboot"

[expect]
console.hello = ["Hello from xenolith"]
shutdown.hello = "poweroff"
shutdown.spin = "running"
trace.spin = ["sched_op(yield)"]
cpu_percent.spin = [10, 200]
"#;

    #[test]
    fn good_file() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.name, "x");
        assert_eq!(s.description, "two domains");
        assert_eq!(s.run_for_ns, 50_000_000);
        let h = &s.domains[0];
        assert_eq!((h.memory_mib, h.vcpus, h.cmdline.as_str()), (16, 1, "loglevel=3"));
        assert_eq!((h.on_poweroff, h.on_reboot, h.on_crash), (Action::Destroy, Action::Restart, Action::Destroy));
        assert_eq!(resolve_kernel(h, Path::new("guests/bin")), Path::new("guests/bin/hello"));
        let sp = s.domain("spin").unwrap();
        assert_eq!((sp.memory_mib, sp.vcpus, sp.weight, sp.cap), (32, 2, Some(512), Some(150)));
        assert_eq!(sp.on_crash, Action::Preserve);
        assert_eq!(sp.disks, ["file:/x,xvda,w"]);
        assert_eq!(resolve_kernel(sp, Path::new("g")), Path::new("scenarios/../elf/spin"));
        let order: Vec<(u64, usize)> = s.steps.iter().map(|s| (s.at_ns, s.line)).collect();
        assert_eq!(order, [(10_000_000, 26), (10_000_000, 30), (20_000_000, 22)]);
        assert_eq!(s.steps[0].action, StepAction::Pause("hello".into()));
        assert_eq!(s.steps[1].action, StepAction::Shutdown { domain: "spin".into(), reason: ShutdownKind::Reboot });
        assert_eq!(s.steps[2].action, StepAction::SchedCredit { domain: "spin".into(), weight: Some(64), cap: Some(25) });
        assert_eq!(s.expect.console["hello"], ["Hello from xenolith"]);
        assert_eq!(s.expect.shutdown["spin"], DomainEnd::Running);
        assert_eq!(s.expect.cpu_percent["spin"], (10, 200));
    }

    #[test]
    fn input_text_escapes() {
        assert_eq!(parse_input_text(r"ls -l\n").unwrap(), b"ls -l\n");
        assert_eq!(parse_input_text(r"a\tb\r\\\x1d\x7F").unwrap(), b"a\tb\r\\\x1d\x7f");
        assert!(parse_input_text(r"\x+1").is_err());
        assert!(parse_input_text("\\").is_err());
        assert!(parse_input_text(&"a".repeat(4097)).is_err());
    }

    const DOM: &str = "run_for = \"1s\"\n[[domain]]\nname = \"a\"\nkernel = \"k\"\n"; // domain at lines 2-4

    #[test]
    fn errors_name_file_line_and_field() {
        let cases: &[(&str, &str)] = &[
            ("run_for = \"1s\"\nrun_fr = 3\n", "scenarios/x.toml:2: run_fr: unknown key \"run_fr\""),
            ("description = \"x\"\n", "scenarios/x.toml:1: run_for: missing"),
            ("run_for = \"5 parsecs\"\n", "scenarios/x.toml:1: run_for: bad duration \"5 parsecs\""),
            ("run_for = 5\n", "scenarios/x.toml:1: run_for: expected a string, found an integer"),
            ("run_for = \"1s\"\n", "scenarios/x.toml:1: domain: no [[domain]] tables"),
            ("run_for = \"1s\"\n\n[[domain]]\nkernel = \"k\"\n", "scenarios/x.toml:3: domain[0].name: missing name"),
            ("run_for = \"1s\"\n[[domain]]\nname = \"a\"\n", "scenarios/x.toml:2: domain[0].kernel: missing kernel"),
            (&format!("{DOM}memroy = 3\n"), "scenarios/x.toml:5: domain[0].memroy: unknown key \"memroy\" (expected config, name,"),
            (&format!("{DOM}memory = 0\n"), "scenarios/x.toml:5: domain[0].memory: 0 is out of range 1..=4096"),
            (&format!("{DOM}memory = \"16M\"\n"), "scenarios/x.toml:5: domain[0].memory: expected an integer, found string \"16M\""),
            (&format!("{DOM}vcpus = 33\n"), "scenarios/x.toml:5: domain[0].vcpus: 33 is out of range 1..=32"),
            (&format!("{DOM}on_crash = \"explode\"\n"), "scenarios/x.toml:5: domain[0].on_crash: unknown action \"explode\""),
            (&format!("{DOM}weight = 0\n"), "scenarios/x.toml:5: domain[0].weight: 0 is out of range 1..=65535"),
            (&format!("{DOM}\ncap = 101\n"), "scenarios/x.toml:6: domain[0].cap: cap 101 is out of range 0..=100 for 1 vcpus"),
            (&format!("{DOM}extra = \"a\"\ncmdline = \"b\"\n"), "scenarios/x.toml:6: domain[0].cmdline: \"cmdline\" given twice"),
            (&format!("{DOM}disk = \"x\"\n"), "scenarios/x.toml:5: domain[0].disk: expected a list of strings"),
            (&format!("{DOM}flag = true\n"), "scenarios/x.toml:5: domain[0].flag: unknown key"),
            (&format!("{DOM}privileged = \"yes\"\n"), "scenarios/x.toml:5: domain[0].privileged: expected true or false, found a string"),
            (&format!("{DOM}[[step]]\nat = \"1ms\"\ndo = \"input a\"\n"), "scenarios/x.toml:7: step[0].do: usage: input DOMAIN TEXT"),
            (&format!("{DOM}[[step]]\nat = \"1ms\"\ndo = 'input a x\\q'\n"), "scenarios/x.toml:7: step[0].do: bad escape at byte 1"),
            (
                &format!("{DOM}[[step]]\nat = \"1ms\"\ndo = 'input a \\x4'\n"),
                "scenarios/x.toml:7: step[0].do: bad escape at byte 0: \\x needs two hex digits",
            ),
            (&format!("{DOM}[[step]]\nat = \"1ms\"\ndo = 'input b hi'\n"), "scenarios/x.toml:7: step[0].do: no domain named \"b\""),
            (&format!("{DOM}type = \"hvm\"\n"), "scenarios/x.toml:5: domain[0].type: type \"hvm\" is not supported"),
            (
                &format!("{DOM}[[domain]]\nname = \"a\"\nkernel = \"k\"\n"),
                "scenarios/x.toml:6: domain[1].name: duplicate domain name \"a\"",
            ),
            ("run_for = \"1s\"\n[[domain]]\nname = \"a b\"\n", "scenarios/x.toml:3: domain[0].name: domain name \"a b\" has ' '"),
            ("run_for = \"1s\"\n[[domain]]\nname = \"\"\n", "scenarios/x.toml:3: domain[0].name: domain name \"\" must be 1 to 64"),
            ("run_for = \"1s\"\n[[domain]]\nname = \"12\"\n", "scenarios/x.toml:3: domain[0].name: domain name \"12\" is all digits"),
            (
                &format!("{DOM}[[step]]\nat = \"1ms\"\ndo = \"paws a\"\n"),
                "scenarios/x.toml:7: step[0].do: unknown action \"paws\" (expected pause, unpause,",
            ),
            (&format!("{DOM}[[step]]\nat = \"1ms\"\ndo = \"pause b\"\n"), "scenarios/x.toml:7: step[0].do: no domain named \"b\""),
            (&format!("{DOM}[[step]]\nat = \"1ms\"\ndo = \"pause a b\"\n"), "scenarios/x.toml:7: step[0].do: usage: pause DOMAIN"),
            (&format!("{DOM}[[step]]\nat = \"1ms\"\ndo = \"\"\n"), "scenarios/x.toml:7: step[0].do: empty command"),
            (&format!("{DOM}[[step]]\nat = \"1ms\"\ndo = \"shutdown a halt\"\n"), "scenarios/x.toml:7: step[0].do: usage: shutdown"),
            (
                &format!("{DOM}[[step]]\nat = \"1ms\"\ndo = \"sched-credit -d a -w 0\"\n"),
                "scenarios/x.toml:7: step[0].do: -w 0: expected an integer in 1..=65535",
            ),
            (
                &format!("{DOM}[[step]]\nat = \"1ms\"\ndo = \"sched-credit -d a -c 200\"\n"),
                "scenarios/x.toml:7: step[0].do: cap 200 is out of range 0..=100",
            ),
            (&format!("{DOM}[[step]]\nat = \"1ms\"\ndo = \"sched-credit -w\"\n"), "scenarios/x.toml:7: step[0].do: -w needs a value"),
            (
                &format!("{DOM}[[step]]\nat = \"1ms\"\ndo = \"sched-credit -x 1\"\n"),
                "scenarios/x.toml:7: step[0].do: unknown option \"-x\"",
            ),
            (
                &format!("{DOM}[[step]]\nat = \"2s\"\ndo = \"pause a\"\n"),
                "scenarios/x.toml:6: step[0].at: step at 2000000000 ns is not before run_for",
            ),
            (&format!("{DOM}[[step]]\ndo = \"pause a\"\n"), "scenarios/x.toml:5: step[0].at: missing"),
            (&format!("{DOM}[[step]]\nat = \"1ms\"\n"), "scenarios/x.toml:5: step[0].do: missing"),
            (&format!("{DOM}[[step]]\nwhen = \"1ms\"\n"), "scenarios/x.toml:6: step[0].when: unknown key \"when\" (expected at, do)"),
            (&format!("{DOM}[expect]\nconsole.b = [\"x\"]\n"), "scenarios/x.toml:6: expect.console.b: no domain named \"b\""),
            (&format!("{DOM}[expect]\nconsole.a = \"x\"\n"), "scenarios/x.toml:6: expect.console.a: expected an array, found a string"),
            (&format!("{DOM}[expect]\nshutdown.a = \"melted\"\n"), "scenarios/x.toml:6: expect.shutdown.a: unknown end \"melted\""),
            (&format!("{DOM}[expect]\ncpu_percent.a = [50, 10]\n"), "scenarios/x.toml:6: expect.cpu_percent.a: expected [LOW, HIGH]"),
            (&format!("{DOM}[expect]\nlogs.a = 1\n"), "scenarios/x.toml:6: expect.logs: unknown key \"logs\""),
            (
                &format!("{DOM}[expect]\nstore.a = [\"domid\"]\n"),
                "scenarios/x.toml:6: expect.store.a: expected \"PATH=VALUE\", found \"domid\"",
            ),
            (
                &format!("{DOM}config = \"nope.cfg\"\n"),
                "scenarios/x.toml:5: domain[0].config: scenarios/nope.cfg: cannot read xl.cfg file: No such file",
            ),
            ("run_for = \"1s\"\n[[domain]\n", "scenarios/x.toml:2: [[domain]: syntax error:"),
            ("run_for = \"1s\"\nmemory = = 3\n", "scenarios/x.toml:2: memory: syntax error:"),
            ("run_for = \"1s\"\nrun_for = \"2s\"\n", "scenarios/x.toml:2: run_for: syntax error:"),
            ("when = 1979-05-27\n", "scenarios/x.toml:1: when:"),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(got.starts_with(want), "for {text:?}\n got: {got}\nwant: {want}...");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50ms"), Ok(50_000_000));
        assert_eq!(parse_duration("7ns"), Ok(7));
        assert_eq!(parse_duration(" 3 us "), Ok(3_000));
        assert_eq!(parse_duration("2s"), Ok(2_000_000_000));
        assert_eq!(parse_duration("1.5ms"), Ok(1_500_000));
        assert_eq!(parse_duration("0.000000001s"), Ok(1));
        assert_eq!(parse_duration("1.50ns"), Err("duration \"1.50ns\" is not a whole number of nanoseconds".into()));
        for bad in ["", "ms", "5", "5m", "1.ms", ".5ms", "1.2.3ms", "-1ms", "1e3ns", "99999999999999999999s", "18446744073709551615s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert!(parse_duration("1.5ns").is_err());
    }

    #[test]
    fn first_missing_is_an_ordered_subsequence() {
        let want = vec!["b".to_string(), "d".to_string()];
        assert_eq!(first_missing(&want, "a\nxbx\nc\nd\n"), None);
        assert_eq!(first_missing(&want, "d\nb\n"), Some("d"));
        let twice = vec!["x".to_string(), "x".to_string()];
        assert_eq!(first_missing(&twice, "x\n"), Some("x"));
    }

    #[test]
    fn config_include_with_overrides() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("domains")).unwrap();
        std::fs::write(
            dir.path().join("domains/spin.cfg"),
            "name = \"spin\"\nkernel = \"../k/spin\"\nmemory = 64\nextra = \"quiet\"\ncpu_weight = 128\n",
        )
        .unwrap();
        let scen = dir.path().join("s.toml");
        let text = "run_for = \"1s\"\n[[domain]]\nconfig = \"domains/spin.cfg\"\n\
                    [[domain]]\nconfig = \"domains/spin.cfg\"\nname = \"spin2\"\nweight = 512\n";
        std::fs::write(&scen, text).unwrap();
        let s = load(&scen).unwrap();
        let (a, b) = (&s.domains[0], &s.domains[1]);
        assert_eq!((a.name.as_str(), a.memory_mib, a.weight, a.cmdline.as_str()), ("spin", 64, Some(128), "quiet"));
        assert_eq!((b.name.as_str(), b.memory_mib, b.weight), ("spin2", 64, Some(512)));
        assert_eq!(a.source, dir.path().join("domains/spin.cfg"));
        assert_eq!(resolve_kernel(a, Path::new("g")), dir.path().join("domains/../k/spin"));

        // An error inside the config file names the config file and its line.
        std::fs::write(dir.path().join("domains/spin.cfg"), "name = \"spin\"\n\nmemory = 99999\n").unwrap();
        let e = load(&scen).unwrap_err().to_string();
        assert!(e.ends_with("domains/spin.cfg:3: memory: 99999 is out of range 1..=4096"), "{e}");

        let files = load_dir_or_file(dir.path()).unwrap();
        assert_eq!(files, std::slice::from_ref(&scen));
        assert!(load_dir_or_file(&dir.path().join("domains")).is_err());
        assert!(load(&dir.path().join("missing.toml")).unwrap_err().to_string().contains("missing.toml: cannot read scenario file"));
    }

    #[test]
    fn never_panics_on_garbage() {
        let samples = [GOOD, DOM, "", "\u{0}", "[[[[", "a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"];
        for s in samples {
            for cut in 0..=s.len() {
                if let Some(prefix) = s.get(..cut) {
                    let _ = parse(prefix);
                }
            }
        }
    }
}
