//! A small SVG chart module (bars and stacked monthly bars) for the HTML
//! report. Written here rather than pulling `plotters` or `charts-rs`: the
//! charts are simple, the output must be inline and self-contained, and this
//! keeps the build lean (no font files, no extra crates).

use std::fmt::Write as _;

/// Colour of incoming flows.
pub const INCOMING: &str = "#0033a0";
/// Colour of outgoing flows.
pub const OUTGOING: &str = "#5b92e5";
/// Colour of single-series bars.
pub const BAR: &str = "#0033a0";

/// Escapes text for XML and HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Horizontal bars of (label, per cent), one row each, scaled to 100 %.
pub fn hbar(title: &str, rows: &[(String, u32)]) -> String {
    let row_h = 22.0;
    let (w, label_w, bar_w) = (300.0, 112.0, 150.0);
    let h = 24.0 + row_h * rows.len() as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"##,
        t = escape(title)
    );
    for (i, (label, pct)) in rows.iter().enumerate() {
        let y = 8.0 + row_h * i as f64;
        let len = bar_w * f64::from(*pct).min(100.0) / 100.0;
        let _ = write!(
            s,
            r##"<text x="{lx}" y="{ty}" text-anchor="end" font-size="11" font-family="sans-serif" fill="#222">{l}</text><rect x="{label_w}" y="{y}" width="{len:.1}" height="14" fill="{BAR}"/><text x="{vx:.1}" y="{ty}" font-size="11" font-family="sans-serif" fill="#222">{pct}%</text>"##,
            lx = label_w - 6.0,
            ty = y + 11.0,
            l = escape(label),
            vx = label_w + len + 4.0,
        );
    }
    s.push_str("</svg>");
    s
}

/// Stacked monthly bars of incoming and outgoing, with a legend.
pub fn monthly(title: &str, points: &[(String, u64, u64)]) -> String {
    let (w, h) = (420.0, 200.0);
    let (left, right, top, bottom) = (48.0, 8.0, 24.0, 40.0);
    let max = points
        .iter()
        .map(|(_, i, o)| i + o)
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = nice(max);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let n = points.len().max(1) as f64;
    let slot = plot_w / n;
    let bar = (slot * 0.7).max(1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="chart monthly" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"##,
        t = escape(title)
    );
    for k in 0..=4 {
        let v = scale * k / 4;
        let y = top + plot_h - plot_h * v as f64 / scale as f64;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end" font-size="11" font-family="sans-serif" fill="#555">{v}</text>"##,
            x2 = w - right,
            tx = left - 4.0,
            ty = y + 3.0,
        );
    }
    let every = (points.len() / 12).max(1);
    for (i, (label, inc, out)) in points.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let hi = plot_h * *inc as f64 / scale as f64;
        let ho = plot_h * *out as f64 / scale as f64;
        let base = top + plot_h;
        let _ = write!(
            s,
            r##"<rect x="{x:.1}" y="{yi:.1}" width="{bar:.1}" height="{hi:.1}" fill="{INCOMING}"><title>{l}: {inc} incoming</title></rect><rect x="{x:.1}" y="{yo:.1}" width="{bar:.1}" height="{ho:.1}" fill="{OUTGOING}"><title>{l}: {out} outgoing</title></rect>"##,
            yi = base - hi,
            yo = base - hi - ho,
            l = escape(label),
        );
        if i % every == 0 {
            let _ = write!(
                s,
                r##"<text x="{cx:.1}" y="{ty}" text-anchor="middle" font-size="11" font-family="sans-serif" fill="#555">{l}</text>"##,
                cx = x + bar / 2.0,
                ty = base + 14.0,
                l = escape(label),
            );
        }
    }
    let ly = h - 10.0;
    let _ = write!(
        s,
        r##"<rect x="{left}" y="{ry}" width="10" height="10" fill="{INCOMING}"/><text x="{t1}" y="{ly}" font-size="11" font-family="sans-serif" fill="#222">Incoming</text><rect x="{x2}" y="{ry}" width="10" height="10" fill="{OUTGOING}"/><text x="{t2}" y="{ly}" font-size="11" font-family="sans-serif" fill="#222">Outgoing</text>"##,
        ry = ly - 9.0,
        t1 = left + 14.0,
        x2 = left + 90.0,
        t2 = left + 104.0,
    );
    s.push_str("</svg>");
    s
}

/// A round axis maximum at or above `max` (1, 2 or 5 times a power of ten).
fn nice(max: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if p.saturating_mul(m) >= max {
                return p.saturating_mul(m);
            }
        }
        p = p.saturating_mul(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice(1), 1);
        assert_eq!(nice(7), 10);
        assert_eq!(nice(12_414), 20_000);
        assert_eq!(nice(150), 200);
    }

    #[test]
    fn labels_are_escaped() {
        let s = hbar("t", &[("<Côte d'Ivoire>".into(), 50)]);
        assert!(s.contains("&lt;Côte d&#39;Ivoire&gt;"));
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
    }
}
