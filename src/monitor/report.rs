//! One self-contained HTML page: a price chart per product (inline SVG) and the latest
//! changes. No scripts, fonts, styles or images from anywhere: it opens offline, and the only
//! URLs in it are the monitored links themselves.

use std::fmt::Write as _;

use super::change::ChangeEvent;
use super::clock::{now_ms, rfc3339};
use super::store::{PriceSeries, Store, StoreError};

/// At most this many products get a chart (the most recently changed first would need another
/// query; we keep URL order and say how many were left out).
pub const MAX_CHARTS: usize = 1000;
/// Latest changes listed.
pub const MAX_EVENTS: usize = 100;

/// HTML-escapes text for element content and attribute values.
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

/// One product's chart: a step line of the price over time, out-of-stock points in red.
pub fn svg_chart(series: &PriceSeries) -> String {
    const W: f64 = 640.0;
    const H: f64 = 160.0;
    const PAD: f64 = 36.0;
    let points: Vec<(i64, f64, &str)> = series
        .points
        .iter()
        .filter_map(|(t, p, a)| p.parse::<f64>().ok().map(|v| (*t, v, a.as_str())))
        .collect();
    let mut svg = format!(r#"<svg width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img">"#);
    if points.is_empty() {
        svg.push_str("</svg>");
        return svg;
    }
    let (t0, t1) = (points[0].0, points[points.len() - 1].0.max(points[0].0 + 1));
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi - lo < 1e-9 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    };
    let x = |t: i64| PAD + (t - t0) as f64 / (t1 - t0) as f64 * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD / 2.0 - (v - lo) / (hi - lo) * (H - 1.5 * PAD);
    let _ = write!(
        svg,
        r##"<rect x="0" y="0" width="{W}" height="{H}" fill="#fafafa"/><text x="4" y="{:.1}" font-size="10">{}</text><text x="4" y="{:.1}" font-size="10">{}</text>"##,
        y(hi) + 3.0,
        escape(&format_price(hi)),
        y(lo) + 3.0,
        escape(&format_price(lo)),
    );
    let mut path = String::new();
    for (i, (t, v, _)) in points.iter().enumerate() {
        if i == 0 {
            let _ = write!(path, "M{:.1},{:.1}", x(*t), y(*v));
        } else {
            let _ = write!(path, " H{:.1} V{:.1}", x(*t), y(*v));
        }
    }
    let _ = write!(
        svg,
        r##"<path d="{path} H{:.1}" fill="none" stroke="#2a6fdb" stroke-width="2"/>"##,
        W - PAD
    );
    for (t, v, a) in &points {
        let colour = if *a == "out_of_stock" {
            "#d33"
        } else {
            "#2a6fdb"
        };
        let _ = write!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"><title>{} {} {}</title></circle>"#,
            x(*t),
            y(*v),
            escape(&rfc3339(*t)),
            format_price(*v),
            escape(a)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn format_price(v: f64) -> String {
    format!("{v:.2}")
}

/// Writes the report; returns (charts, events) shown.
pub fn write_report(store: &dyn Store, out: &mut String) -> Result<(usize, usize), StoreError> {
    let status = store.status(now_ms())?;
    let events = store.latest_events(MAX_EVENTS)?;
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>scraipe price monitor report</title>\n<style>\
body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}\
td,th{border:1px solid #ddd;padding:4px 8px;font-size:13px}section{margin:1.5em 0}\
h2{font-size:15px;margin:0.2em 0}.meta{color:#666;font-size:12px}</style></head><body>\n",
    );
    let _ = writeln!(
        out,
        "<h1>Price monitor</h1><p class=\"meta\">Generated {} · {} active links · {} observations · {} change events · last check {}</p>",
        rfc3339(now_ms()),
        status.active_links,
        status.observations,
        status.events,
        status.last_check_ms.map(rfc3339).unwrap_or_else(|| "never".into())
    );
    out.push_str("<h2>Latest changes</h2>\n<table><tr><th>observed</th><th>product</th><th>price</th><th>availability</th><th>before</th></tr>\n");
    for e in &events {
        let Ok(ev) = serde_json::from_str::<ChangeEvent>(&e.payload) else {
            continue;
        };
        let opt = |v: &Option<String>| escape(v.as_deref().unwrap_or("–"));
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td>{} {}</td><td>{}</td><td>{} {} {}</td></tr>",
            escape(&ev.observed_at),
            escape(&ev.link),
            escape(ev.name.as_deref().unwrap_or(&ev.link)),
            opt(&ev.price),
            opt(&ev.currency),
            opt(&ev.availability),
            opt(&ev.previous_price),
            opt(&ev.previous_currency),
            opt(&ev.previous_availability),
        );
    }
    out.push_str("</table>\n<h2>Prices</h2>\n");
    let mut charts = 0usize;
    let mut left_out = 0usize;
    store.price_series(&mut |s: PriceSeries| {
        if charts >= MAX_CHARTS {
            left_out += 1;
            return Ok(());
        }
        charts += 1;
        let last = s.points.last().cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "<section><h2><a href=\"{}\">{}</a></h2><p class=\"meta\">now {} {} · {} · {} observation(s)</p>{}</section>",
            escape(&s.link),
            escape(s.name.as_deref().unwrap_or(&s.link)),
            escape(&last.1),
            escape(s.currency.as_deref().unwrap_or("")),
            escape(&last.2),
            s.points.len(),
            svg_chart(&s)
        );
        Ok(())
    })?;
    if left_out > 0 {
        let _ = write!(
            out,
            "<p class=\"meta\">{left_out} more product(s) not charted (use `scraipe monitor export`).</p>"
        );
    }
    out.push_str("</body></html>\n");
    Ok((charts, events.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_escapes_and_scales() {
        let s = PriceSeries {
            link: "http://x/<p>".into(),
            name: None,
            currency: Some("EUR".into()),
            points: vec![
                (1000, "10.00".into(), "in_stock".into()),
                (2000, "12.50".into(), "out_of_stock".into()),
            ],
        };
        let svg = svg_chart(&s);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("#d33"), "out of stock point marked");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
