//! `stats --format html`: one self-contained page (inline CSS and SVG, no script, no external
//! resource) with a bar chart of the requests per group, one of the median response time, and
//! the table of every figure. Group names come from the database or the directory: escaped.

use super::stats::{FIELDS, GroupStats};

/// Escapes text for HTML and SVG.
fn esc(s: &str) -> String {
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

/// A "nice" axis maximum (1, 2, 5 × 10ⁿ) at or above `max`, and its tick step.
fn axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 1.0);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let step = if step < 1.0 { 1.0 } else { step };
    ((max / step).ceil() * step, step)
}

/// A vertical bar chart: `title`, the y axis' label, one bar per `(label, value)` with the
/// value written above it (`—` and no bar for a group without a value).
fn bar_chart(title: &str, y_label: &str, bars: &[(String, Option<f64>)]) -> String {
    let (w, h) = (720.0_f64, 320.0_f64);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 70.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = bars.iter().filter_map(|b| b.1).fold(0.0, f64::max);
    let (ymax, step) = axis(max);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"12\">\n\
         <title>{t}</title>\n<text x=\"{cx}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" \
         font-weight=\"bold\">{t}</text>\n",
        t = esc(title),
        cx = w / 2.0
    );
    // The y axis: ticks, grid lines, and its label.
    let mut v = 0.0;
    while v <= ymax + 1e-9 {
        let y = top + plot_h - v / ymax * plot_h;
        svg.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{x2}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{v}</text>\n",
            x2 = w - right,
            tx = left - 6.0,
            ty = y + 4.0,
        ));
        v += step;
    }
    svg.push_str(&format!(
        "<text transform=\"translate(16 {my}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{b}\" stroke=\"#333\"/>\n\
         <line x1=\"{left}\" y1=\"{b}\" x2=\"{x2}\" y2=\"{b}\" stroke=\"#333\"/>\n",
        esc(y_label),
        my = top + plot_h / 2.0,
        b = top + plot_h,
        x2 = w - right,
    ));
    let n = bars.len().max(1) as f64;
    let slot = plot_w / n;
    for (i, (label, value)) in bars.iter().enumerate() {
        let bh = value.unwrap_or(0.0) / ymax * plot_h;
        let bw = (slot * 0.7).min(90.0);
        let x = left + slot * i as f64 + (slot - bw) / 2.0;
        let y = top + plot_h - bh;
        let cx = x + bw / 2.0;
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" \
             fill=\"#2b6cb0\"/>\n\
             <text x=\"{cx:.1}\" y=\"{vy:.1}\" text-anchor=\"middle\">{val}</text>\n\
             <text x=\"{cx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\">{l}</text>\n",
            vy = y - 5.0,
            val = value.map(fmt_num).unwrap_or_else(|| "—".into()),
            ly = top + plot_h + 18.0,
            l = esc(label),
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The response-time classes of the distribution chart: (label, upper bound in minutes).
const CLASSES: [(&str, i64); 6] = [
    ("< 30 min", 30),
    ("30 min – 2 h", 120),
    ("2 – 6 h", 360),
    ("6 – 24 h", 1440),
    ("24 – 48 h", 2880),
    ("> 48 h", i64::MAX),
];

/// The page: for each `(by, groups)` a chart of the requests per group, then the distribution
/// of the response times (`minutes`, one per answered request), then each grouping's table.
pub fn render(
    title: &str,
    sections: &[(&str, Vec<(String, GroupStats)>)],
    minutes: &[i64],
) -> String {
    let mut charts = String::new();
    for (by, table) in sections {
        let bars: Vec<(String, Option<f64>)> = table
            .iter()
            .map(|(k, g)| (k.clone(), Some(g.requests as f64)))
            .collect();
        charts.push_str(&bar_chart(
            &format!("Demandes par {}", by_word(by)),
            "Demandes",
            &bars,
        ));
    }
    let mut counts = [0usize; CLASSES.len()];
    for m in minutes {
        if let Some(i) = CLASSES.iter().position(|(_, upper)| m < upper) {
            counts[i] += 1;
        }
    }
    let bars: Vec<(String, Option<f64>)> = CLASSES
        .iter()
        .zip(counts)
        .map(|((label, _), n)| (label.to_string(), Some(n as f64)))
        .collect();
    charts.push_str(&bar_chart(
        "Délais de première réponse",
        "Demandes répondues",
        &bars,
    ));
    let mut tables = String::new();
    for (by, table) in sections {
        tables.push_str(&table_html(by, table));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{t}</title>\n<style>\n@page {{ size: A4; margin: 12mm; }}\n\
         body {{ font-family: 'DejaVu Sans', sans-serif; margin: 0 1em; color: #222; }}\n\
         h1 {{ font-size: 20px; }}\nh2 {{ font-size: 15px; margin-top: 1.5em; break-after: avoid; \
         page-break-after: avoid; }}\n\
         table {{ border-collapse: collapse; margin-top: 0.5em; font-size: 11px; \
         page-break-inside: avoid; }}\n\
         th, td {{ border: 1px solid #999; padding: 3px 6px; text-align: right; }}\n\
         th {{ background: #eee; }}\ntd:first-child, th:first-child {{ white-space: nowrap; }}\n\
         svg {{ display: block; margin: 1em 0; max-width: 100%; height: auto; \
         page-break-inside: avoid; }}\n</style>\n</head>\n<body>\n<h1>{t}</h1>\n{charts}{tables}\
         </body>\n</html>\n",
        t = esc(title),
    )
}

/// One grouping's table: the columns in the contract's order (`FIELDS`), named for people;
/// the field's name is the cell's title.
fn table_html(by: &str, table: &[(String, GroupStats)]) -> String {
    let head: String = std::iter::once((by, by_title(by)))
        .chain(FIELDS.into_iter().zip(COLUMNS))
        .map(|(field, label)| format!("<th title=\"{}\">{}</th>", esc(field), esc(label)))
        .collect();
    let mut rows = String::new();
    for (k, g) in table {
        rows.push_str(&format!("<tr><th>{}</th>", esc(k)));
        for c in g.cells() {
            rows.push_str(&format!("<td>{}</td>", esc(&c)));
        }
        rows.push_str("</tr>\n");
    }
    format!(
        "<h2>Par {}</h2>\n<table>\n<tr>{head}</tr>\n{rows}</table>\n",
        by_word(by)
    )
}

/// What each of `FIELDS` is called in the page's table.
const COLUMNS: [&str; 8] = [
    "Demandes",
    "Requérants distincts",
    "Répondues",
    "Délai médian (min)",
    "Délai p90 (min)",
    "Délai moyen (min)",
    "Dans le délai (%)",
    "Closes",
];

fn by_title(by: &str) -> &'static str {
    match by {
        "month" => "Mois",
        "category" => "Catégorie",
        "department" => "Département",
        _ => "Spécialité",
    }
}

fn by_word(by: &str) -> &'static str {
    match by {
        "month" => "mois",
        "category" => "catégorie",
        "department" => "département",
        _ => "spécialité",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained_and_escaped() {
        let g = GroupStats {
            requests: 3,
            median_response_minutes: Some(12),
            ..GroupStats::default()
        };
        let page = render(
            "Hôpital <test>",
            &[("category", vec![("a<b".into(), g)])],
            &[5, 45, 3000],
        );
        assert!(page.contains("Hôpital &lt;test&gt;") && page.contains("a&lt;b"));
        assert!(!page.contains("a<b") && !page.contains("<script"));
        // Only the SVG namespace, which names no resource to fetch.
        assert_eq!(page.matches("http://").count(), 2);
        assert!(page.contains(">Délais de première réponse<"));
        assert!(!page.contains("https://") && !page.contains("src="));
        assert_eq!(axis(3.0), (3.0, 1.0));
        assert_eq!(axis(12.0), (15.0, 5.0));
        assert_eq!(axis(0.0), (1.0, 1.0));
    }
}
