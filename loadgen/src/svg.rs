//! The run's picture as a standalone SVG: the delivery latency histogram (log scale) with its
//! percentiles, throughput and open sockets per second, and latency per second.
//!
//! Written directly rather than with a plotting library: three panels of bars, lines and labels
//! are a few hundred lines of `write!`, with no dependencies and an output that stays small and
//! readable. plotters, the usual choice, would bring its font stack for the labels (on by
//! default) and draw nothing this needs that this file does not.

use std::fmt::Write;

use crate::coord::Point;
use crate::hist::Histogram;

const W: f64 = 960.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 80.0;
const PANEL_H: f64 = 220.0;
const GAP: f64 = 70.0;
const TOP: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Round axis maximum: 1, 2 or 5 times a power of ten.
fn nice(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v >= 1.0 || v == 0.0 {
        format!("{v}")
    } else {
        format!("{v:.2}")
    }
}

fn frame(out: &mut String, y0: f64, title: &str) {
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{y0}" width="{}" height="{PANEL_H}" fill="#fafafa" stroke="#999"/><text x="{LEFT}" y="{}" font-size="14" font-weight="bold">{}</text>"##,
        W - LEFT - RIGHT,
        y0 - 8.0,
        esc(title)
    );
}

fn polyline(out: &mut String, pts: &[(f64, f64)], color: &str, width: f64) {
    if pts.is_empty() {
        return;
    }
    let d: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(
        out,
        r#"<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{}"/>"#,
        d.join(" ")
    );
}

fn legend(out: &mut String, x: f64, y: f64, items: &[(&str, &str)]) {
    let mut x = x;
    for (label, color) in items {
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{y}" font-size="12">{}</text>"#,
            y - 4.0,
            x + 18.0,
            esc(label)
        );
        x += 30.0 + label.len() as f64 * 7.0;
    }
}

pub fn render(title: &str, latency: &Histogram, series: &[Point]) -> String {
    let height = TOP + 3.0 * PANEL_H + 2.0 * GAP + 50.0;
    let pw = W - LEFT - RIGHT;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="28" font-size="16" font-weight="bold">{}</text>"#,
        esc(title)
    );

    // 1. Histogram on a log latency axis (ms).
    let y0 = TOP;
    frame(&mut out, y0, "Delivery latency (send → receive), log scale");
    if latency.total > 0 {
        let lo_ms = latency
            .buckets()
            .next()
            .map(|(lo, _, _)| (lo as f64 / 1000.0).max(0.01))
            .unwrap_or(0.01);
        let lo = 10f64.powf(lo_ms.log10().floor());
        let hi = 10f64.powf(
            ((latency.max as f64 / 1000.0).max(lo * 10.0))
                .log10()
                .ceil(),
        );
        let (llo, lhi) = (lo.log10(), hi.log10());
        let x_of = |v_ms: f64| LEFT + (v_ms.max(lo).log10() - llo) / (lhi - llo) * pw;
        const BINS: usize = 100;
        let mut bins = [0u64; BINS];
        for (blo, bhi, c) in latency.buckets() {
            let mid = (blo + bhi) as f64 / 2.0 / 1000.0;
            let i = (((mid.max(lo).log10() - llo) / (lhi - llo)) * BINS as f64) as usize;
            bins[i.min(BINS - 1)] += c;
        }
        let ymax = nice(*bins.iter().max().unwrap_or(&1) as f64);
        let bw = pw / BINS as f64;
        for (i, c) in bins.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            let h = *c as f64 / ymax * PANEL_H;
            let _ = write!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#4878a8"/>"##,
                LEFT + i as f64 * bw,
                y0 + PANEL_H - h,
                (bw - 0.5).max(0.5),
                h
            );
        }
        let mut d = lo;
        while d <= hi * 1.0001 {
            let x = x_of(d);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ccc"/><text x="{x:.1}" y="{}" font-size="11" text-anchor="middle">{} ms</text>"##,
                y0,
                y0 + PANEL_H,
                y0 + PANEL_H + 15.0,
                fmt_num(d)
            );
            d *= 10.0;
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text><text x="{}" y="{}" font-size="11" text-anchor="end">0</text>"#,
            LEFT - 6.0,
            y0 + 10.0,
            fmt_num(ymax),
            LEFT - 6.0,
            y0 + PANEL_H
        );
        for (i, (name, q, color)) in [
            ("p50", 0.5, "#2a9d8f"),
            ("p90", 0.9, "#e9c46a"),
            ("p99", 0.99, "#f4a261"),
            ("p99.9", 0.999, "#e76f51"),
        ]
        .iter()
        .enumerate()
        {
            let v = latency.quantile(*q) as f64 / 1000.0;
            let x = x_of(v);
            let _ = write!(
                out,
                r#"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="{color}" stroke-width="2" stroke-dasharray="5,3"/><text x="{:.1}" y="{}" font-size="11" fill="{color}">{name} {v:.2} ms</text>"#,
                y0 + PANEL_H,
                x + 3.0,
                y0 + 14.0 + i as f64 * 13.0
            );
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{} deliveries, max {:.2} ms</text>"#,
            W - RIGHT - 4.0,
            y0 + 14.0,
            latency.total,
            latency.max as f64 / 1000.0
        );
    } else {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="13" text-anchor="middle">no deliveries in this run</text>"#,
            LEFT + pw / 2.0,
            y0 + PANEL_H / 2.0
        );
    }

    // Shared time axis for panels 2 and 3.
    let (tmin, tmax) = match (series.first(), series.last()) {
        (Some(a), Some(b)) if b.t > a.t => (a.t as f64, b.t as f64),
        (Some(a), _) => (a.t as f64, a.t as f64 + 1.0),
        _ => (0.0, 1.0),
    };
    let x_t = |t: f64| LEFT + (t - tmin) / (tmax - tmin) * pw;
    let time_axis = |out: &mut String, y0: f64| {
        let span = tmax - tmin;
        let step = nice(span / 10.0).max(1.0);
        let mut t = (tmin / step).ceil() * step;
        while t <= tmax {
            let x = x_t(t);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="#e4e4e4"/><text x="{x:.1}" y="{}" font-size="11" text-anchor="middle">{t}</text>"##,
                y0 + PANEL_H,
                y0 + PANEL_H + 15.0
            );
            t += step;
        }
        if tmin <= 0.0 && tmax >= 0.0 {
            let x = x_t(0.0);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="#555" stroke-dasharray="2,2"/>"##,
                y0 + PANEL_H
            );
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">seconds after sending started</text>"#,
            LEFT + pw / 2.0,
            y0 + PANEL_H + 30.0
        );
    };

    // 2. Throughput and open sockets.
    let y0 = TOP + PANEL_H + GAP;
    frame(
        &mut out,
        y0,
        "Per second: deliveries out, messages in; open sockets",
    );
    time_axis(&mut out, y0);
    let rmax = nice(
        series
            .iter()
            .map(|p| p.delivered.max(p.sent) as f64)
            .fold(0.0, f64::max)
            * 1.1,
    );
    let omax = nice(series.iter().map(|p| p.open as f64).fold(0.0, f64::max) * 1.1);
    let ys = |v: f64, max: f64| y0 + PANEL_H - v / max * PANEL_H;
    polyline(
        &mut out,
        &series
            .iter()
            .map(|p| (x_t(p.t as f64), ys(p.open as f64, omax)))
            .collect::<Vec<_>>(),
        "#bbbbbb",
        2.0,
    );
    polyline(
        &mut out,
        &series
            .iter()
            .map(|p| (x_t(p.t as f64), ys(p.sent as f64, rmax)))
            .collect::<Vec<_>>(),
        "#e76f51",
        1.5,
    );
    polyline(
        &mut out,
        &series
            .iter()
            .map(|p| (x_t(p.t as f64), ys(p.delivered as f64, rmax)))
            .collect::<Vec<_>>(),
        "#4878a8",
        2.0,
    );
    let _ = write!(
        out,
        r##"<text x="{}" y="{}" font-size="11" text-anchor="end">{}/s</text><text x="{}" y="{}" font-size="11" fill="#888">{} open</text>"##,
        LEFT - 6.0,
        y0 + 10.0,
        fmt_num(rmax),
        W - RIGHT + 6.0,
        y0 + 10.0,
        fmt_num(omax)
    );
    legend(
        &mut out,
        LEFT + 8.0,
        y0 + 18.0,
        &[
            ("deliveries/s", "#4878a8"),
            ("messages/s in", "#e76f51"),
            ("open sockets (right axis)", "#bbbbbb"),
        ],
    );

    // 3. Latency per second.
    let y0 = TOP + 2.0 * (PANEL_H + GAP);
    frame(&mut out, y0, "Delivery latency per second (ms)");
    time_axis(&mut out, y0);
    let with = |f: fn(&Point) -> u64| -> Vec<(f64, f64)> {
        series
            .iter()
            .filter(|p| p.delivered > 0)
            .map(|p| (p.t as f64, f(p) as f64 / 1000.0))
            .collect()
    };
    let (p50, p99, max) = (with(|p| p.p50), with(|p| p.p99), with(|p| p.max));
    let lmax = nice(p99.iter().map(|(_, v)| *v).fold(0.0, f64::max) * 1.2);
    let ys = |v: f64| y0 + PANEL_H - v.min(lmax) / lmax * PANEL_H;
    for (pts, color, w) in [
        (&max, "#dddddd", 1.0),
        (&p99, "#e76f51", 2.0),
        (&p50, "#2a9d8f", 2.0),
    ] {
        polyline(
            &mut out,
            &pts.iter()
                .map(|(t, v)| (x_t(*t), ys(*v)))
                .collect::<Vec<_>>(),
            color,
            w,
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{} ms</text><text x="{}" y="{}" font-size="11" text-anchor="end">0</text>"#,
        LEFT - 6.0,
        y0 + 10.0,
        fmt_num(lmax),
        LEFT - 6.0,
        y0 + PANEL_H
    );
    legend(
        &mut out,
        LEFT + 8.0,
        y0 + 18.0,
        &[
            ("p50", "#2a9d8f"),
            ("p99", "#e76f51"),
            ("max (clipped)", "#cccccc"),
        ],
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_and_without_data() {
        let empty = render("t", &Histogram::default(), &[]);
        assert!(empty.starts_with("<svg") && empty.ends_with("</svg>\n"));
        let mut h = Histogram::default();
        for v in [500u64, 1200, 3000, 80_000] {
            h.record(v);
        }
        let pts = vec![
            Point {
                t: -1,
                open: 10,
                connected: 10,
                sent: 0,
                acked: 0,
                delivered: 0,
                p50: 0,
                p99: 0,
                max: 0,
            },
            Point {
                t: 0,
                open: 10,
                connected: 0,
                sent: 5,
                acked: 5,
                delivered: 50,
                p50: 1000,
                p99: 3000,
                max: 80_000,
            },
        ];
        let s = render("a < b", &h, &pts);
        assert!(s.contains("a &lt; b"));
        assert!(s.contains("p99.9"));
    }
}
