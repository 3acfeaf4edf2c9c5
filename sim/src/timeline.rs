//! Pictures of a run: which vCPU ran on which pCPU when. `--timeline FILE.svg` draws one lane
//! per pCPU per scenario, a colour per domain; `--perfetto FILE.json` writes the same spans in
//! the Chrome trace-event format (one process per scenario, one thread per pCPU), which the
//! Perfetto UI (ui.perfetto.dev) and chrome://tracing open.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::runner::Outcome;

/// Colour-blind-friendly palette (Okabe–Ito, then Tableau), one per domain in scenario order.
const PALETTE: [&str; 12] =
    ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn colours(o: &Outcome) -> BTreeMap<String, &'static str> {
    o.shares.iter().enumerate().map(|(i, s)| (s.name.clone(), PALETTE[i % PALETTE.len()])).collect()
}

/// A tick spacing (ns) giving about 10 ticks over `total` ns.
fn tick_step(total: u64) -> u64 {
    let raw = (total / 10).max(1);
    let mag = 10u64.pow(raw.ilog10());
    [1, 2, 5, 10].iter().map(|m| m * mag).find(|&s| s >= raw).unwrap_or(10 * mag)
}

/// `1.5s`, `30ms`, `12.25us`, `7ns`: at most three decimals, trailing zeros dropped.
fn fmt_ns(ns: u64) -> String {
    let (v, unit) = match ns {
        n if n >= 1_000_000_000 => (n as f64 / 1e9, "s"),
        n if n >= 1_000_000 => (n as f64 / 1e6, "ms"),
        n if n >= 1_000 => (n as f64 / 1e3, "us"),
        n => (n as f64, "ns"),
    };
    let s = format!("{v:.3}");
    format!("{}{unit}", s.trim_end_matches('0').trim_end_matches('.'))
}

/// The SVG picture of every outcome's spans.
pub fn svg(outcomes: &[Outcome]) -> String {
    const W: f64 = 1200.0;
    const LEFT: f64 = 150.0;
    const LANE: f64 = 26.0;
    let plot = W - LEFT - 20.0;
    let mut body = String::new();
    let mut y = 10.0;
    for o in outcomes {
        let total = o.virtual_ns.max(1);
        let col = colours(o);
        let _ = writeln!(
            body,
            r#"<text x="10" y="{:.1}" font-weight="bold">{} ({} pCPU{}, {})</text>"#,
            y + 14.0,
            esc(&o.name),
            o.pcpus,
            if o.pcpus == 1 { "" } else { "s" },
            fmt_ns(total)
        );
        y += 24.0;
        // Legend: each domain with its colour, measured share and target.
        let mut x = 10.0;
        for s in &o.shares {
            let c = col.get(&s.name).copied().unwrap_or("#999");
            let t = s.target.map_or(String::new(), |t| format!(" / target {t:.1}%"));
            let label = format!("{} {:.1}%{t}", s.name, s.measured);
            let _ = writeln!(
                body,
                r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{c}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                y,
                x + 16.0,
                y + 11.0,
                esc(&label)
            );
            x += 30.0 + 7.0 * label.len() as f64;
        }
        let _ = writeln!(
            body,
            r##"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="#f4f4f4" stroke="#ccc"/><text x="{:.1}" y="{:.1}">idle</text>"##,
            y,
            x + 16.0,
            y + 11.0
        );
        y += 20.0;
        // The steps, one mark per distinct time: numbered above the lanes, spelled out below the axis.
        let mut marks: Vec<(u64, Vec<&str>)> = Vec::new();
        for (at, text) in &o.marks {
            match marks.last_mut() {
                Some((t, texts)) if t == at => texts.push(text),
                _ => marks.push((*at, vec![text])),
            }
        }
        if !marks.is_empty() {
            y += 12.0;
        }
        let top = y;
        // Name the vCPU in each wide enough block when some domain ran more than one.
        let many_vcpus = o.spans.iter().any(|s| s.vcpu != 0);
        for p in 0..o.pcpus {
            let _ = writeln!(
                body,
                r##"<text x="10" y="{:.1}">pCPU {p}</text><rect x="{LEFT}" y="{:.1}" width="{plot:.1}" height="{:.1}" fill="#f4f4f4"/>"##,
                y + LANE * 0.65,
                y,
                LANE - 4.0
            );
            for s in o.spans.iter().filter(|s| s.pcpu == p) {
                let x0 = LEFT + plot * s.start_ns as f64 / total as f64;
                let w = (plot * (s.end_ns - s.start_ns) as f64 / total as f64).max(0.5);
                let c = col.get(&s.domain).copied().unwrap_or("#999");
                let _ = writeln!(
                    body,
                    r#"<rect x="{x0:.2}" y="{y:.1}" width="{w:.2}" height="{:.1}" fill="{c}"><title>{} v{} on pCPU {p}: {} .. {}</title></rect>"#,
                    LANE - 4.0,
                    esc(&s.domain),
                    s.vcpu,
                    fmt_ns(s.start_ns),
                    fmt_ns(s.end_ns)
                );
                if many_vcpus && w >= 16.0 {
                    let _ = writeln!(
                        body,
                        r#"<text x="{:.2}" y="{:.1}" text-anchor="middle" font-size="9" fill="white">v{}</text>"#,
                        x0 + w / 2.0,
                        y + LANE * 0.55,
                        s.vcpu
                    );
                }
            }
            y += LANE;
        }
        for (i, (at, _)) in marks.iter().enumerate() {
            let x = LEFT + plot * *at as f64 / total as f64;
            let _ = writeln!(
                body,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#c00" stroke-width="1.5" stroke-dasharray="4 3"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="10" font-weight="bold" fill="#c00">{}</text>"##,
                top - 10.0,
                y - 4.0,
                top - 2.0,
                i + 1
            );
        }
        // Time axis.
        let step = tick_step(total);
        let mut t = 0;
        while t <= total {
            let x = LEFT + plot * t as f64 / total as f64;
            let _ = writeln!(
                body,
                r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{:.1}" stroke="#888" stroke-width="0.5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"##,
                y + 2.0,
                y + 14.0,
                fmt_ns(t)
            );
            t += step;
        }
        y += 20.0;
        for (i, (at, texts)) in marks.iter().enumerate() {
            let _ = writeln!(
                body,
                r##"<text x="{LEFT}" y="{:.1}" font-size="11"><tspan fill="#c00" font-weight="bold">{}</tspan> at {}: {}</text>"##,
                y + 10.0,
                i + 1,
                fmt_ns(*at),
                esc(&texts.join("; "))
            );
            y += 15.0;
        }
        y += 14.0;
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{y:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n"
    )
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The spans as a Chrome trace (JSON array format: `X` complete events, times in µs).
pub fn perfetto(outcomes: &[Outcome]) -> String {
    let mut ev = Vec::new();
    for (pid, o) in outcomes.iter().enumerate() {
        ev.push(format!(
            r#"{{"ph":"M","name":"process_name","pid":{pid},"args":{{"name":{}}}}}"#,
            json_str(&format!("scenario {}", o.name))
        ));
        for p in 0..o.pcpus {
            ev.push(format!(r#"{{"ph":"M","name":"thread_name","pid":{pid},"tid":{p},"args":{{"name":"pCPU {p}"}}}}"#));
        }
        for s in &o.spans {
            ev.push(format!(
                r#"{{"ph":"X","name":{},"cat":{},"pid":{pid},"tid":{},"ts":{:.3},"dur":{:.3},"args":{{"vcpu":{}}}}}"#,
                json_str(&format!("{} v{}", s.domain, s.vcpu)),
                json_str(&s.domain),
                s.pcpu,
                s.start_ns as f64 / 1e3,
                (s.end_ns - s.start_ns) as f64 / 1e3,
                s.vcpu
            ));
        }
        for (at, text) in &o.marks {
            ev.push(format!(
                r#"{{"ph":"i","s":"p","name":{},"cat":"step","pid":{pid},"tid":0,"ts":{:.3}}}"#,
                json_str(text),
                *at as f64 / 1e3
            ));
        }
    }
    format!("[\n{}\n]\n", ev.join(",\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Outcome, Share, Span};

    fn outcome() -> Outcome {
        let span = |pcpu, domain: &str, vcpu, start_ns, end_ns| Span { pcpu, domain: domain.into(), vcpu, start_ns, end_ns };
        Outcome {
            name: "t".into(),
            path: "t.toml".into(),
            trace: vec![],
            failures: vec![],
            records: BTreeMap::new(),
            instructions: 0,
            hypercalls: 0,
            virtual_ns: 1_000_000_000,
            wall: std::time::Duration::ZERO,
            input_errors: vec![],
            host_errors: vec![],
            shares: vec![
                Share { name: "a".into(), measured: 60.0, target: Some(60.0) },
                Share { name: "b<x>".into(), measured: 40.0, target: None },
            ],
            pcpus: 2,
            spans: vec![span(0, "a", 0, 0, 500_000_000), span(1, "a", 1, 0, 600_000_000), span(0, "b<x>", 0, 500_000_000, 1_000_000_000)],
            marks: vec![
                (250_000_000, "pause a".into()),
                (250_000_000, "unpause a".into()),
                (700_000_000, "sched-credit -d a -w 512".into()),
            ],
        }
    }

    #[test]
    fn svg_draws_each_span_and_numbers_each_step_time_once() {
        let s = svg(&[outcome()]);
        assert_eq!(s.matches("<title>").count(), 3, "{s}");
        assert!(s.contains("<title>a v1 on pCPU 1: 0ns .. 600ms</title>"), "{s}");
        assert!(s.contains("b&lt;x&gt; 40.0%</text>"), "names are escaped, no target shown: {s}");
        // Two steps at 250 ms share mark 1; the one at 700 ms is mark 2.
        assert!(s.contains("</tspan> at 250ms: pause a; unpause a</text>"), "{s}");
        assert!(s.contains("</tspan> at 700ms: sched-credit -d a -w 512</text>"), "{s}");
        assert_eq!(s.matches("stroke-dasharray").count(), 2, "{s}");
        // a ran two vCPUs, so blocks are labelled with their vCPU.
        assert!(s.contains(">v1</text>"), "{s}");
    }

    #[test]
    fn perfetto_has_a_complete_event_per_span_and_an_instant_per_step() {
        let j = perfetto(&[outcome()]);
        assert_eq!(j.matches(r#""ph":"X""#).count(), 3, "{j}");
        assert_eq!(j.matches(r#""ph":"i""#).count(), 3, "{j}");
        assert!(j.contains(r#""name":"a v1","cat":"a","pid":0,"tid":1,"ts":0.000,"dur":600000.000"#), "{j}");
        assert!(j.contains(r#""name":"sched-credit -d a -w 512","cat":"step","pid":0,"tid":0,"ts":700000.000"#), "{j}");
    }

    #[test]
    fn ticks_and_times_read_well() {
        assert_eq!(tick_step(3_000_000_000), 500_000_000);
        assert_eq!(tick_step(6_000_000_000), 1_000_000_000);
        assert_eq!(fmt_ns(1_500_000_000), "1.5s");
        assert_eq!(fmt_ns(30_000_000), "30ms");
        assert_eq!(fmt_ns(12_250), "12.25us");
        assert_eq!(fmt_ns(7), "7ns");
    }
}
