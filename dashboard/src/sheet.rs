//! Charts as SVG files of their own (`modsync curves --out`, `modsync history`): charts drawn by
//! [`svg`](crate::svg), laid out in a grid on a white page with a title, and the charts' rules
//! of the dashboard's stylesheet (`assets/chart.css`) inlined, so that a file shows a curve
//! exactly as the dashboard's page does, without the page.

use std::fmt::Write as _;

use crate::escape::esc;

/// The charts' stylesheet (also the start of every page's).
pub const CHART_CSS: &str = include_str!("../assets/chart.css");

/// Space around and between the charts, and the height of the sheet's title.
const GAP: f64 = 12.0;
const TITLE: f64 = 34.0;

/// The size a chart of [`svg`](crate::svg) declares in its `width` and `height` attributes.
fn size(chart: &str) -> (f64, f64) {
    let attr = |name: &str| {
        let tag = &chart[..chart.find('>').unwrap_or(chart.len())];
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        tag[start..].split('"').next()?.parse::<f64>().ok()
    };
    (attr("width").unwrap_or(0.0), attr("height").unwrap_or(0.0))
}

/// One SVG document: `title` on top (none when empty: a single chart has its own), then
/// `charts` (each the output of an `svg` renderer) in rows of `columns`, each row as tall as
/// its tallest chart.
pub fn sheet(title: &str, charts: &[String], columns: usize) -> String {
    let title_height = if title.is_empty() { GAP } else { TITLE };
    let columns = columns.clamp(1, charts.len().max(1));
    let sizes: Vec<(f64, f64)> = charts.iter().map(|c| size(c)).collect();
    let column_width = sizes.iter().map(|s| s.0).fold(0.0, f64::max);
    let row_heights: Vec<f64> = sizes
        .chunks(columns)
        .map(|row| row.iter().map(|s| s.1).fold(0.0, f64::max))
        .collect();
    let width = GAP + columns as f64 * (column_width + GAP);
    let height = title_height + row_heights.iter().map(|h| h + GAP).sum::<f64>();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-family="sans-serif"><style>{CHART_CSS}</style><rect width="100%" height="100%" fill="white"/>"#
    );
    if !title.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{}" y="23" text-anchor="middle" font-size="16" font-weight="600">{}</text>"#,
            width / 2.0,
            esc(title)
        );
    }
    let mut top = title_height;
    for (row, row_height) in charts.chunks(columns).zip(&row_heights) {
        for (i, chart) in row.iter().enumerate() {
            let left = GAP + i as f64 * (column_width + GAP);
            let _ = write!(out, r#"<g transform="translate({left} {top})">{chart}</g>"#);
        }
        top += row_height + GAP;
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(width: u32, height: u32, name: &str) -> String {
        format!(
            r#"<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}"><text>{name}</text></svg>"#
        )
    }

    /// The `translate` of the group that holds the chart named `name`.
    fn placed_at(sheet: &str, name: &str) -> (f64, f64) {
        let at = sheet.find(&format!("<text>{name}</text>")).unwrap();
        let group = sheet[..at].rfind("translate(").unwrap() + "translate(".len();
        let mut xy = sheet[group..].split(')').next().unwrap().split(' ');
        let mut next = || xy.next().unwrap().parse::<f64>().unwrap();
        (next(), next())
    }

    #[test]
    fn charts_lie_in_rows_that_never_overlap_and_the_page_holds_them_all() {
        let charts = vec![
            chart(640, 360, "a"),
            chart(640, 400, "b"),
            chart(640, 380, "c"),
        ];
        let s = sheet("sweep: kept", &charts, 2);
        assert_eq!(placed_at(&s, "a"), (GAP, TITLE));
        assert_eq!(placed_at(&s, "b"), (GAP + 640.0 + GAP, TITLE));
        // The second row starts below the first row's tallest chart.
        assert_eq!(placed_at(&s, "c"), (GAP, TITLE + 400.0 + GAP));
        let (w, h) = size(&s);
        assert_eq!(
            (w, h),
            (GAP + 2.0 * (640.0 + GAP), TITLE + 400.0 + GAP + 380.0 + GAP)
        );
        assert!(s.contains(CHART_CSS) && s.contains("sweep: kept"));
    }

    #[test]
    fn one_chart_gets_a_page_of_its_size_and_a_title_is_escaped() {
        let s = sheet("a <b>", &[chart(640, 300, "x")], 3);
        assert_eq!(size(&s), (640.0 + 2.0 * GAP, TITLE + 300.0 + GAP));
        assert!(s.contains("a &lt;b&gt;"));
        // Without a title the chart starts near the top.
        let untitled = sheet("", &[chart(640, 300, "x")], 1);
        assert_eq!(placed_at(&untitled, "x"), (GAP, GAP));
        assert!(!untitled.contains("font-weight=\"600\">"));
    }
}
