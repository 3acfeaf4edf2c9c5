//! The simulator's side of `cargo xtask boot-hw`: packing a scenario's domains for the bootable
//! image, and comparing the image's trace with the simulator's snapshot, domain by domain.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hv::domain::{Action, DomainConfig};

use crate::{runner, scenario};

/// Write the boot pack for a scenario, or for one kernel.
pub fn write_pack(sc: Option<&Path>, kernel: Option<&Path>, memory: u64, cmdline: &str, guests: &Path, out: &Path) -> Result<(), String> {
    let (run_for, domains) = match (sc, kernel) {
        (Some(p), _) => {
            let s = scenario::load(p).map_err(|e| e.to_string())?;
            if !s.steps.is_empty() {
                return Err(format!("{}: has timed steps; the image runs only scenarios without steps", p.display()));
            }
            let d = s.domains.iter().map(|d| runner::domain_config(d, guests)).collect::<Result<Vec<_>, _>>()?;
            (s.run_for_ns, d)
        }
        (None, Some(k)) => {
            let bytes = std::fs::read(k).map_err(|e| format!("{}: {e}", k.display()))?;
            let name = k.file_stem().and_then(|s| s.to_str()).unwrap_or("guest");
            let mut c = DomainConfig::new(name, &k.display().to_string(), Arc::from(bytes));
            c.memory_mib = memory;
            c.cmdline = cmdline.into();
            c.on_reboot = Action::Destroy;
            (0, vec![c])
        }
        (None, None) => return Err("pack: give --scenario or --kernel".into()),
    };
    std::fs::write(out, hv::pack::write(run_for, &domains)).map_err(|e| format!("{}: {e}", out.display()))
}

/// Split trace lines by domain (`d1 …` and `d1v0 …` both belong to d1); other lines are dropped.
pub fn by_domain(lines: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines.lines() {
        let Some(first) = l.split_whitespace().next() else { continue };
        let Some(rest) = first.strip_prefix('d') else { continue };
        let id: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let after = &rest[id.len()..];
        if id.is_empty() || !(after.is_empty() || after.starts_with('v')) {
            continue;
        }
        m.entry(format!("d{id}")).or_default().push(l.to_string());
    }
    m
}

/// The trace body of an insta snapshot file (after its `---` header).
pub fn snapshot_body(text: &str) -> String {
    let mut parts = text.splitn(3, "---\n");
    let _ = parts.next();
    let _ = parts.next();
    parts.next().unwrap_or(text).to_string()
}

/// Compare per-domain event sequences; returns a readable diff, or None when they match.
pub fn compare(expected: &str, got: &str) -> Option<String> {
    let (a, b) = (by_domain(expected), by_domain(got));
    let mut out = String::new();
    for dom in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        let (x, y) = (a.get(dom).cloned().unwrap_or_default(), b.get(dom).cloned().unwrap_or_default());
        if x == y {
            continue;
        }
        let i = x.iter().zip(&y).take_while(|(p, q)| p == q).count();
        out.push_str(&format!("{dom}: traces differ at event {} (simulator {} events, image {} events)\n", i + 1, x.len(), y.len()));
        for l in x.iter().skip(i.saturating_sub(2)).take(2.min(i)) {
            out.push_str(&format!("    {l}\n"));
        }
        for l in x.iter().skip(i).take(4) {
            out.push_str(&format!("  - {l}\n"));
        }
        for l in y.iter().skip(i).take(4) {
            out.push_str(&format!("  + {l}\n"));
        }
    }
    (!out.is_empty()).then_some(out)
}
