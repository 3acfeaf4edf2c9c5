//! Pictures of a run: which vCPU ran on which pCPU when. `--timeline FILE.svg` draws one lane
//! per pCPU per scenario, a colour per domain; `--perfetto FILE.json` writes the same spans in
//! the Chrome trace-event format (one process per scenario, one thread per pCPU), which the
//! Perfetto UI (ui.perfetto.dev) and chrome://tracing open.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::runner::Outcome;

/// Colour-blind-friendly palette (Okabe–Ito, then Tableau), one per domain in scenario order.
const PALETTE: [&str; 12] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#8C564B", "#7F7F7F",
    "#BCBD22", "#17BECF",
];

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
        let _ = writeln!(body, r#"<text x="10" y="{:.1}" font-weight="bold">{} ({} pCPU{}, {})</text>"#, y + 14.0, esc(&o.name), o.pcpus, if o.pcpus == 1 { "" } else { "s" }, fmt_ns(total));
        y += 24.0;
        // Legend: each domain with its colour, measured share and target.
        let mut x = 10.0;
        for s in &o.shares {
            let c = col.get(&s.name).copied().unwrap_or("#999");
            let t = s.target.map_or(String::new(), |t| format!(" / target {t:.1}%"));
            let label = format!("{} {:.1}%{t}", s.name, s.measured);
            let _ = writeln!(body, r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{c}"/><text x="{:.1}" y="{:.1}">{}</text>"#, y, x + 16.0, y + 11.0, esc(&label));
            x += 30.0 + 7.0 * label.len() as f64;
        }
        y += 20.0;
        let top = y;
        for p in 0..o.pcpus {
            let _ = writeln!(body, r##"<text x="10" y="{:.1}">pCPU {p}</text><rect x="{LEFT}" y="{:.1}" width="{plot:.1}" height="{:.1}" fill="#f4f4f4"/>"##, y + LANE * 0.65, y, LANE - 4.0);
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
            }
            y += LANE;
        }
        // Time axis.
        let step = tick_step(total);
        let mut t = 0;
        while t <= total {
            let x = LEFT + plot * t as f64 / total as f64;
            let _ = writeln!(body, r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{:.1}" stroke="#888" stroke-width="0.5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"##, y + 2.0, y + 14.0, fmt_ns(t));
            t += step;
        }
        y += 34.0;
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
        ev.push(format!(r#"{{"ph":"M","name":"process_name","pid":{pid},"args":{{"name":{}}}}}"#, json_str(&format!("scenario {}", o.name))));
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
    }
    format!("[\n{}\n]\n", ev.join(",\n"))
}
