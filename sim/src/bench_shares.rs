//! `xenolith bench-shares`: how far each domain's measured CPU share is from the credit
//! scheduler's target, in the simulator and on the image. The runs are in `main.rs`; this module
//! holds the pure parts: which accelerators `--accel` names, gathering the runs' samples into one
//! row per scenario × accelerator × domain (median, min..max over the runs), and the table.

use crate::hw::Accel;

/// Where a scenario runs: the simulator, or the image under QEMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Sim,
    Image(Accel),
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::Sim => "sim",
            Platform::Image(a) => a.name(),
        }
    }
}

/// The platforms `--accel` names: `sim`, `tcg`, `kvm`; `auto` is sim, TCG and KVM where it works
/// (`kvm_usable`); `all` is all three (KVM asked for even where it does not work, so the run says
/// why); or a list such as `sim,tcg`.
pub fn parse_accels(spec: &str, kvm_usable: bool) -> Result<Vec<Platform>, String> {
    let mut out = Vec::new();
    for p in spec.split(',') {
        let add: &[Platform] = match p {
            "sim" => &[Platform::Sim],
            "tcg" => &[Platform::Image(Accel::Tcg)],
            "kvm" => &[Platform::Image(Accel::Kvm)],
            "auto" if kvm_usable => &[Platform::Sim, Platform::Image(Accel::Tcg), Platform::Image(Accel::Kvm)],
            "auto" => &[Platform::Sim, Platform::Image(Accel::Tcg)],
            "all" => &[Platform::Sim, Platform::Image(Accel::Tcg), Platform::Image(Accel::Kvm)],
            _ => return Err(format!("--accel {spec:?}: expected sim, tcg, kvm, auto or all, or a list such as sim,tcg")),
        };
        for a in add {
            if !out.contains(a) {
                out.push(*a);
            }
        }
    }
    Ok(out)
}

/// One domain's share in one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub scenario: String,
    pub accel: String,
    pub domain: String,
    /// % of one pCPU.
    pub measured: f64,
    /// The credit target (% of one pCPU); None when the domain did not run to the end.
    pub target: Option<f64>,
    /// The tolerance that `xenolith run`/`boot-hw` check on this platform (`share_within`, plus
    /// [`crate::hw::HW_SHARE_SLACK`] on the image); None when the scenario sets none.
    pub tolerance: Option<f64>,
}

/// The median (the mean of the two middle values for an even count), min and max; zeros when empty.
pub fn median_min_max(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let m = match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    (m, v.first().copied().unwrap_or(0.0), v.last().copied().unwrap_or(0.0))
}

/// One scenario × accelerator × domain over its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub scenario: String,
    pub accel: String,
    pub domain: String,
    /// The median of the runs' targets that are known (the same in every run here).
    pub target: Option<f64>,
    pub measured: Vec<f64>,
    pub tolerance: Option<f64>,
}

impl Row {
    /// (median, min, max) of the measured shares.
    pub fn stats(&self) -> (f64, f64, f64) {
        median_min_max(&self.measured)
    }
    /// |median measured − target|; None without a target.
    pub fn error(&self) -> Option<f64> {
        self.target.map(|t| (self.stats().0 - t).abs())
    }
    pub fn within(&self) -> Option<bool> {
        Some(self.error()? <= self.tolerance?)
    }
}

/// Gather samples into rows, in the order each scenario × accelerator × domain first appears.
pub fn aggregate(samples: &[Sample]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut targets: Vec<Vec<f64>> = Vec::new();
    for s in samples {
        let i = match rows.iter().position(|r| r.scenario == s.scenario && r.accel == s.accel && r.domain == s.domain) {
            Some(i) => i,
            None => {
                rows.push(Row {
                    scenario: s.scenario.clone(),
                    accel: s.accel.clone(),
                    domain: s.domain.clone(),
                    target: None,
                    measured: Vec::new(),
                    tolerance: s.tolerance,
                });
                targets.push(Vec::new());
                rows.len() - 1
            }
        };
        rows[i].measured.push(s.measured);
        targets[i].extend(s.target);
    }
    for (r, t) in rows.iter_mut().zip(targets) {
        r.target = (!t.is_empty()).then(|| median_min_max(&t).0);
    }
    rows
}

/// One accelerator's errors over its rows that have a target.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub accel: String,
    /// Rows with a target (the others have no error).
    pub rows: usize,
    /// The worst |error| and its row's `scenario/domain`.
    pub worst: Option<(f64, String)>,
    pub mean: Option<f64>,
    /// Rows within their tolerance, of those with one.
    pub within: usize,
    pub with_tolerance: usize,
    /// The tolerances seen (sorted, deduplicated).
    pub tolerances: Vec<f64>,
}

/// One summary per accelerator, in the order they first appear in `rows`.
pub fn summarize(rows: &[Row]) -> Vec<Summary> {
    let mut accels: Vec<&str> = Vec::new();
    for r in rows {
        if !accels.contains(&r.accel.as_str()) {
            accels.push(&r.accel);
        }
    }
    accels
        .into_iter()
        .map(|a| {
            let mine: Vec<&Row> = rows.iter().filter(|r| r.accel == a).collect();
            let errs: Vec<(f64, &Row)> = mine.iter().filter_map(|r| Some((r.error()?, *r))).collect();
            let worst = errs.iter().max_by(|x, y| x.0.total_cmp(&y.0)).map(|(e, r)| (*e, format!("{}/{}", r.scenario, r.domain)));
            let mean = (!errs.is_empty()).then(|| errs.iter().map(|e| e.0).sum::<f64>() / errs.len() as f64);
            let checked: Vec<bool> = mine.iter().filter_map(|r| r.within()).collect();
            let mut tolerances: Vec<f64> = mine.iter().filter_map(|r| r.tolerance).collect();
            tolerances.sort_by(|x, y| x.total_cmp(y));
            tolerances.dedup();
            Summary {
                accel: a.to_string(),
                rows: errs.len(),
                worst,
                mean,
                within: checked.iter().filter(|w| **w).count(),
                with_tolerance: checked.len(),
                tolerances,
            }
        })
        .collect()
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.2}"))
}

/// The table: one line per row, then one per accelerator with its worst and mean |error|.
pub fn format_table(rows: &[Row], runs: usize) -> String {
    let mut out = format!(
        "{:<18} {:<5} {:<8} {:>7} {:>8} {:>15} {:>7} {:>5}\n",
        "scenario", "accel", "domain", "target", "measured", "min..max", "|error|", "tol"
    );
    for r in rows {
        let (m, lo, hi) = r.stats();
        let tol = r.tolerance.map_or("-".to_string(), |t| format!("±{t}"));
        let flag = if r.within() == Some(false) { "  outside" } else { "" };
        out.push_str(&format!(
            "{:<18} {:<5} {:<8} {:>7} {:>8.2} {:>15} {:>7} {:>5}{flag}\n",
            r.scenario,
            r.accel,
            r.domain,
            pct(r.target),
            m,
            format!("{lo:.2}..{hi:.2}"),
            pct(r.error()),
            tol
        ));
    }
    out.push_str(&format!("shares in % of one pCPU; measured: median over {runs} run(s) per accelerator\n"));
    for s in summarize(rows) {
        let worst = s.worst.as_ref().map_or("-".to_string(), |(e, w)| format!("{e:.2} ({w})"));
        let tols: Vec<String> = s.tolerances.iter().map(|t| format!("±{t}")).collect();
        out.push_str(&format!(
            "{:<4} worst |error| {worst}, mean {} over {} domain(s); {}/{} within the tolerance {}\n",
            s.accel,
            pct(s.mean),
            s.rows,
            s.within,
            s.with_tolerance,
            if tols.is_empty() { "-".to_string() } else { tols.join("/") }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(scenario: &str, accel: &str, domain: &str, measured: f64, target: Option<f64>) -> Sample {
        let tolerance = Some(if accel == "sim" { 1.0 } else { 3.0 });
        Sample { scenario: scenario.into(), accel: accel.into(), domain: domain.into(), measured, target, tolerance }
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median_min_max(&[4.0, 1.0, 3.0, 2.0]), (2.5, 1.0, 4.0));
        assert_eq!(median_min_max(&[5.0, 1.0, 3.0]), (3.0, 1.0, 5.0));
        assert_eq!(median_min_max(&[7.0]), (7.0, 7.0, 7.0));
        assert_eq!(median_min_max(&[]), (0.0, 0.0, 0.0));
    }

    #[test]
    fn runs_of_one_domain_make_one_row() {
        let s = [
            sample("weights", "tcg", "w256", 14.0, Some(14.29)),
            sample("weights", "tcg", "w512", 28.0, Some(28.57)),
            sample("weights", "tcg", "w256", 15.0, Some(14.29)),
            sample("weights", "sim", "w256", 14.33, Some(14.29)),
        ];
        let rows = aggregate(&s);
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].accel.as_str(), rows[0].domain.as_str()), ("tcg", "w256"));
        assert_eq!(rows[0].measured, vec![14.0, 15.0]);
        assert_eq!(rows[0].stats(), (14.5, 14.0, 15.0));
        assert!((rows[0].error().unwrap() - 0.21).abs() < 1e-9);
        assert_eq!(rows[2].accel, "sim");
    }

    #[test]
    fn worst_error_names_its_row_and_a_missing_target_is_not_an_error() {
        let s = [
            sample("weights", "sim", "w256", 14.33, Some(14.29)),
            sample("cap", "sim", "capped", 25.9, Some(25.0)),
            // Destroyed before the end: far off, but no target, so no error.
            sample("cap", "sim", "hog", 37.67, None),
            sample("reweight", "sim", "a", 37.33, Some(37.5)),
            sample("weights", "tcg", "w256", 16.29, Some(14.29)),
        ];
        let rows = aggregate(&s);
        assert_eq!(rows[2].error(), None);
        assert_eq!(rows[2].within(), None);
        let sums = summarize(&rows);
        assert_eq!(sums.len(), 2);
        let sim = &sums[0];
        assert_eq!(sim.accel, "sim");
        assert_eq!(sim.rows, 3);
        let (worst, at) = sim.worst.clone().unwrap();
        assert!((worst - 0.9).abs() < 1e-9, "{worst}");
        assert_eq!(at, "cap/capped");
        assert!((sim.mean.unwrap() - (0.04 + 0.9 + 0.17) / 3.0).abs() < 1e-9);
        assert_eq!((sim.within, sim.with_tolerance), (3, 3));
        let tcg = &sums[1];
        assert_eq!(tcg.worst.as_ref().map(|w| w.1.as_str()), Some("weights/w256"));
        assert_eq!(tcg.tolerances, vec![3.0]);
    }

    #[test]
    fn a_row_outside_its_tolerance_is_flagged_in_the_table() {
        let rows = aggregate(&[
            sample("weights", "sim", "w256", 16.0, Some(14.29)),
            sample("weights", "sim", "w512", 28.6, Some(28.57)),
            sample("cap", "sim", "hog", 37.67, None),
        ]);
        let t = format_table(&rows, 1);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("weights") && lines[1].contains("1.71") && lines[1].ends_with("outside"), "{t}");
        assert!(!lines[2].ends_with("outside"), "{t}");
        assert!(lines[3].contains(" - ") && !lines[3].ends_with("outside"), "{t}");
        assert!(t.contains("sim  worst |error| 1.71 (weights/w256), mean 0.87 over 2 domain(s); 1/2 within the tolerance ±1"), "{t}");
    }

    #[test]
    fn accel_specs() {
        let (sim, tcg, kvm) = (Platform::Sim, Platform::Image(Accel::Tcg), Platform::Image(Accel::Kvm));
        assert_eq!(parse_accels("auto", true).unwrap(), vec![sim, tcg, kvm]);
        assert_eq!(parse_accels("auto", false).unwrap(), vec![sim, tcg]);
        assert_eq!(parse_accels("all", false).unwrap(), vec![sim, tcg, kvm]);
        assert_eq!(parse_accels("tcg,sim,tcg", true).unwrap(), vec![tcg, sim]);
        assert!(parse_accels("xen", true).is_err());
        assert!(parse_accels("", true).is_err());
    }
}
