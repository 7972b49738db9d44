//! Line charts as inline SVG, drawn on the server: the sweep page's capacity-scaling plots and
//! the job page's curves. No script draws anything, so a page is complete as served (and a
//! test can read every line from the HTML); the live update swaps in the newly served markup.
//!
//! Every series is a `<g class="series" data-series="NAME">` holding one `<path class="line">`,
//! its markers, an optional min–max `<path class="band">` and optional `<circle class="dot">`s.
//! The legend (`<g class="legend">`) lies below the plot area (`<rect class="frame">`), in as
//! many rows as the names need, so it never covers a line; the `<svg>` grows to hold it.
//! [`render_events`] draws counters as marks (one lane per counter, a tick where it grows).

use std::fmt::Write as _;

use trainer_core::diagnostic_kind::{counter_steps, layer_of};

use crate::escape::esc;
use crate::ticks::{self, Marker, Rgb};

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 44.0;

/// How an axis maps values: logarithmic (values ≤ 0 are not drawn) or linear.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Log,
    Linear,
}

/// One series.
pub struct Series {
    pub name: String,
    pub color: Rgb,
    pub marker: Marker,
    /// The line, in x order; `None` where there is no value (a gap).
    pub points: Vec<(f64, Option<f64>)>,
    /// Markers on the points (off for dense series such as training curves).
    pub markers: bool,
    /// (x, low, high): a shaded band, e.g. min–max over seeds.
    pub band: Vec<(f64, f64, f64)>,
    /// Single values drawn as small dots, with a tooltip (e.g. each seed).
    pub dots: Vec<(f64, f64, String)>,
}

/// A chart: its title, axis labels and scales, and explicit x ticks (e.g. the widths).
pub struct Chart<'a> {
    pub class: &'a str,
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_scale: Scale,
    pub y_scale: Scale,
    pub x_ticks: Option<Vec<f64>>,
}

struct Axis {
    scale: Scale,
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Axis {
    fn fitted(scale: Scale, values: impl Iterator<Item = f64>, from: f64, to: f64) -> Axis {
        let (lo, hi) = values
            .filter(|v| v.is_finite() && (scale == Scale::Linear || *v > 0.0))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        let (lo, hi) = match scale {
            Scale::Log => ticks::fit_log_axis(lo, hi),
            Scale::Linear => ticks::fit_linear_axis(lo, hi),
        };
        Axis {
            scale,
            lo,
            hi,
            from,
            to,
        }
    }

    /// An axis over at least `lo..=hi`, wider where a value lies outside, with a margin of
    /// 2 % each side so that a line on a bound stays off the frame.
    fn covering(
        scale: Scale,
        values: impl Iterator<Item = f64>,
        lo: f64,
        hi: f64,
        from: f64,
        to: f64,
    ) -> Axis {
        let (lo, hi) = values
            .filter(|v| v.is_finite() && (scale == Scale::Linear || *v > 0.0))
            .fold((lo, hi), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = match scale {
            Scale::Log => ticks::fit_log_axis(lo, hi),
            Scale::Linear => {
                let m = (hi - lo) * 0.02;
                (lo - m, hi + m)
            }
        };
        Axis {
            scale,
            lo,
            hi,
            from,
            to,
        }
    }

    /// Pixel position of `v`, `None` when a log axis cannot show it.
    fn px(&self, v: f64) -> Option<f64> {
        let t = match self.scale {
            Scale::Log if v <= 0.0 || !v.is_finite() => return None,
            Scale::Log => (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln()),
            Scale::Linear if !v.is_finite() => return None,
            Scale::Linear => (v - self.lo) / (self.hi - self.lo),
        };
        Some(self.from + t * (self.to - self.from))
    }

    fn ticks(&self) -> Vec<f64> {
        match self.scale {
            Scale::Log => ticks::log_ticks(self.lo, self.hi, 8),
            Scale::Linear => ticks::linear_ticks(self.lo, self.hi, 6),
        }
    }

    /// The labels of `ticks` on this axis: on a linear one with the decimals of their step.
    fn labels(&self, ticks: &[f64]) -> Vec<String> {
        let step = ticks
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(f64::INFINITY, f64::min);
        ticks
            .iter()
            .map(|t| match self.scale {
                Scale::Linear if step.is_finite() => ticks::linear_tick_label(*t, step),
                _ => ticks::tick_label(*t),
            })
            .collect()
    }
}

/// The chart as an `<svg>` element. Without any drawable value it says so instead.
pub fn render(chart: &Chart, series: &[Series]) -> String {
    render_bounded(chart, series, None, None)
}

/// [`render`] with an x axis fitted to at least `x_span` (e.g. every iteration of a job, so that
/// a sparse series lines up with the job's other charts) and a y axis that covers at least
/// `y_range` (e.g. 0..1 for fractions), more only where a value lies outside them.
pub fn render_bounded(
    chart: &Chart,
    series: &[Series],
    x_span: Option<(f64, f64)>,
    y_range: Option<(f64, f64)>,
) -> String {
    let xs = series.iter().flat_map(|s| {
        s.points
            .iter()
            .map(|p| p.0)
            .chain(s.band.iter().map(|b| b.0))
            .chain(s.dots.iter().map(|d| d.0))
    });
    let ys = series.iter().flat_map(|s| {
        s.points
            .iter()
            .filter_map(|p| p.1)
            .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
            .chain(s.dots.iter().map(|d| d.1))
    });
    let has_y = ys
        .clone()
        .any(|v| v.is_finite() && (chart.y_scale == Scale::Linear || v > 0.0));
    if !has_y {
        return empty(chart, H);
    }
    let mut out = String::new();
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let rows = legend_rows(&names);
    open(&mut out, chart, H + legend_height(&rows));
    let span = x_span.into_iter().flat_map(|(a, b)| [a, b]);
    let x = Axis::fitted(chart.x_scale, xs.chain(span), LEFT, W - RIGHT);
    let y = match y_range {
        Some((lo, hi)) => Axis::covering(chart.y_scale, ys, lo, hi, H - BOTTOM, TOP),
        None => Axis::fitted(chart.y_scale, ys, H - BOTTOM, TOP),
    };
    axes(&mut out, chart, &x, &y);
    for s in series {
        draw_series(&mut out, s, &x, &y);
    }
    legend(&mut out, series, &rows, H);
    out.push_str("</svg>");
    out
}

/// A whole chart, `height` tall, that says it has nothing to draw yet.
fn empty(chart: &Chart, height: f64) -> String {
    let mut out = String::new();
    open(&mut out, chart, height);
    let _ = write!(
        out,
        r#"<text class="empty" x="{}" y="{}" text-anchor="middle">no values yet</text></svg>"#,
        W / 2.0,
        height / 2.0
    );
    out
}

/// The `<svg>` start tag, `height` tall, and the title.
fn open(out: &mut String, chart: &Chart, height: f64) {
    let _ = write!(
        out,
        r#"<svg class="chart {}" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(chart.class),
        esc(chart.title)
    );
    let _ = write!(
        out,
        r#"<text class="title" x="{}" y="18" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(chart.title)
    );
}

/// One counter of [`render_events`]: a lane, and a mark at each x where it grows, with a
/// tooltip.
pub struct Lane {
    pub name: String,
    /// The lane's label on the y axis (short: `l0`).
    pub label: String,
    pub color: Rgb,
    pub events: Vec<(f64, String)>,
}

impl Lane {
    /// A counter's lane (`resets_l3`), as the job page and `modsync history` draw it: labelled
    /// by its layer (`l3`), a mark where the count grows, the tooltip saying by how much and
    /// the count so far. `counts` are its values at `xs`, in order; a missing one is skipped.
    pub fn counter(name: &str, color: Rgb, xs: &[f64], counts: &[Option<f64>]) -> Lane {
        Lane {
            name: name.to_string(),
            label: layer_of(name).map_or_else(|| name.to_string(), |l| format!("l{l}")),
            color,
            events: counter_steps(counts)
                .into_iter()
                .filter_map(|(row, by)| {
                    let x = *xs.get(row)?;
                    let total = counts[row]?;
                    Some((x, format!("{name}: +{by} at iteration {x}, {total} in all")))
                })
                .collect(),
        }
    }
}

/// Height of one lane of [`render_events`].
const LANE: f64 = 22.0;

/// Counters as marks over `xs` (the x values of the chart's rows, so that its x axis is that
/// of a [`render`] chart of the same rows): one lane per counter, labelled on the y axis, and
/// a vertical mark (`<line class="mark">`, its tooltip in `<title>`) where it grows. Lanes
/// without a mark say so in one line.
pub fn render_events(chart: &Chart, xs: &[f64], lanes: &[Lane]) -> String {
    let plot_h = (LANE * lanes.len() as f64).max(2.0 * LANE);
    let height = TOP + plot_h + BOTTOM;
    if xs.iter().all(|x| !x.is_finite()) || lanes.is_empty() {
        return empty(chart, height);
    }
    let mut out = String::new();
    open(&mut out, chart, height);
    let x = Axis::fitted(chart.x_scale, xs.iter().copied(), LEFT, W - RIGHT);
    let bottom = TOP + plot_h;
    out.push_str(r#"<g class="axes">"#);
    x_grid(&mut out, chart, &x, bottom);
    let lane_y = |i: usize| TOP + plot_h * (i as f64 + 0.5) / lanes.len() as f64;
    for (i, lane) in lanes.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text class="tick y" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            lane_y(i) + 4.0,
            esc(&lane.label)
        );
    }
    let _ = write!(
        out,
        r#"<rect class="frame" x="{LEFT}" y="{TOP}" width="{}" height="{plot_h}"/><text class="label" x="{}" y="{}" text-anchor="middle">{}</text><text class="label" transform="translate(14 {}) rotate(-90)" text-anchor="middle">{}</text></g>"#,
        W - LEFT - RIGHT,
        (LEFT + W - RIGHT) / 2.0,
        height - 8.0,
        esc(chart.x_label),
        TOP + plot_h / 2.0,
        esc(chart.y_label)
    );
    let half = (plot_h / lanes.len() as f64 / 2.0 - 3.0).clamp(4.0, 9.0);
    for (i, lane) in lanes.iter().enumerate() {
        let cy = lane_y(i);
        let _ = write!(
            out,
            r#"<g class="series" data-series="{}" style="color:{}">"#,
            esc(&lane.name),
            lane.color.hex()
        );
        for (ex, tip) in &lane.events {
            let Some(px) = x.px(*ex) else { continue };
            let _ = write!(
                out,
                r#"<line class="mark" x1="{px:.1}" x2="{px:.1}" y1="{:.1}" y2="{:.1}" stroke="currentColor" stroke-width="2.5"><title>{}</title></line>"#,
                cy - half,
                cy + half,
                esc(tip)
            );
        }
        out.push_str("</g>");
    }
    if lanes.iter().all(|l| l.events.is_empty()) {
        let _ = write!(
            out,
            r#"<text class="empty" x="{}" y="{:.1}" text-anchor="middle">none in these rows</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            TOP + plot_h / 2.0 + 4.0
        );
    }
    out.push_str("</svg>");
    out
}

/// The x axis's grid lines from the top of the plot down to `bottom`, each with its label.
fn x_grid(out: &mut String, chart: &Chart, x: &Axis, bottom: f64) {
    let x_ticks = chart.x_ticks.clone().unwrap_or_else(|| x.ticks());
    for (t, label) in x_ticks.iter().zip(x.labels(&x_ticks)) {
        let Some(px) = x.px(*t) else { continue };
        if px < x.from - 0.5 || px > x.to + 0.5 {
            continue;
        }
        let _ = write!(
            out,
            r#"<line class="grid" x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{bottom}"/><text class="tick x" x="{px:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            bottom + 16.0,
        );
    }
}

fn axes(out: &mut String, chart: &Chart, x: &Axis, y: &Axis) {
    out.push_str(r#"<g class="axes">"#);
    x_grid(out, chart, x, H - BOTTOM);
    let y_ticks = y.ticks();
    for (t, label) in y_ticks.iter().zip(y.labels(&y_ticks)) {
        let Some(py) = y.px(*t) else { continue };
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}"/><text class="tick y" x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
        );
    }
    let _ = write!(
        out,
        r#"<rect class="frame" x="{LEFT}" y="{TOP}" width="{}" height="{}"/><text class="label" x="{}" y="{}" text-anchor="middle">{}</text><text class="label" transform="translate(14 {}) rotate(-90)" text-anchor="middle">{}</text></g>"#,
        W - LEFT - RIGHT,
        H - TOP - BOTTOM,
        (LEFT + W - RIGHT) / 2.0,
        H - 8.0,
        esc(chart.x_label),
        (TOP + H - BOTTOM) / 2.0,
        esc(chart.y_label)
    );
}

fn draw_series(out: &mut String, s: &Series, x: &Axis, y: &Axis) {
    let color = s.color.hex();
    let _ = write!(
        out,
        r#"<g class="series" data-series="{}" style="color:{color}">"#,
        esc(&s.name)
    );
    // The band: the upper edge left to right, then the lower edge back.
    let band: Vec<(f64, f64, f64)> = s
        .band
        .iter()
        .filter_map(|(bx, lo, hi)| Some((x.px(*bx)?, y.px(*lo)?, y.px(*hi)?)))
        .collect();
    if band.len() >= 2 {
        let mut d = String::new();
        for (i, (px, _, hi)) in band.iter().enumerate() {
            let _ = write!(d, "{}{px:.1},{hi:.1}", if i == 0 { "M" } else { "L" });
        }
        for (px, lo, _) in band.iter().rev() {
            let _ = write!(d, "L{px:.1},{lo:.1}");
        }
        let _ = write!(out, r#"<path class="band" d="{d}Z" fill="currentColor"/>"#);
    }
    // The line, broken where a value is missing.
    let mut d = String::new();
    let mut pen_down = false;
    let mut drawn = Vec::new();
    for (px, py) in s
        .points
        .iter()
        .map(|(a, b)| (x.px(*a), b.and_then(|b| y.px(b))))
    {
        match (px, py) {
            (Some(px), Some(py)) => {
                let _ = write!(d, "{}{px:.1},{py:.1}", if pen_down { "L" } else { "M" });
                pen_down = true;
                drawn.push((px, py));
            }
            _ => pen_down = false,
        }
    }
    let _ = write!(
        out,
        r#"<path class="line" d="{d}" fill="none" stroke="currentColor"/>"#
    );
    if s.markers {
        for (px, py) in &drawn {
            marker(out, s.marker, *px, *py, "marker");
        }
    }
    for (dx, dy, tip) in &s.dots {
        if let (Some(px), Some(py)) = (x.px(*dx), y.px(*dy)) {
            let _ = write!(
                out,
                r#"<circle class="dot" cx="{px:.1}" cy="{py:.1}" r="2.5" fill="currentColor"><title>{}</title></circle>"#,
                esc(tip)
            );
        }
    }
    out.push_str("</g>");
}

/// A marker shape centred at (`cx`, `cy`).
fn marker(out: &mut String, shape: Marker, cx: f64, cy: f64, class: &str) {
    const R: f64 = 4.5;
    let _ = match shape {
        Marker::Circle => write!(
            out,
            r#"<circle class="{class}" cx="{cx:.1}" cy="{cy:.1}" r="{R}" fill="currentColor"/>"#
        ),
        Marker::Square => write!(
            out,
            r#"<rect class="{class}" x="{:.1}" y="{:.1}" width="{}" height="{}" fill="currentColor"/>"#,
            cx - R + 0.5,
            cy - R + 0.5,
            2.0 * R - 1.0,
            2.0 * R - 1.0
        ),
        Marker::Triangle => write!(
            out,
            r#"<path class="{class}" d="M{cx:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}Z" fill="currentColor"/>"#,
            cy - R - 1.0,
            cx + R + 0.5,
            cy + R - 0.5,
            cx - R - 0.5,
            cy + R - 0.5
        ),
        Marker::Diamond => write!(
            out,
            r#"<path class="{class}" d="M{cx:.1},{:.1}L{:.1},{cy:.1}L{cx:.1},{:.1}L{:.1},{cy:.1}Z" fill="currentColor"/>"#,
            cy - R - 1.0,
            cx + R,
            cy + R + 1.0,
            cx - R
        ),
        Marker::Cross => write!(
            out,
            r#"<path class="{class}" d="M{:.1},{:.1}L{:.1},{:.1}M{:.1},{:.1}L{:.1},{:.1}" stroke="currentColor" stroke-width="2"/>"#,
            cx - R,
            cy - R,
            cx + R,
            cy + R,
            cx - R,
            cy + R,
            cx + R,
            cy - R
        ),
    };
}

/// Width of a legend entry's swatch (line and marker) and the gap to its text.
const SWATCH: f64 = 28.0;
/// Height of one legend row.
const LEGEND_ROW: f64 = 18.0;

/// An upper estimate of the width of `text` at the charts' 12 px sans-serif (wide letters
/// and digits count more), so that legend entries never run into each other.
fn text_width(text: &str) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | '\'' | '|' | '!' | ':' | ';' | ' ' | 'I' => 3.6,
            'f' | 't' | 'r' | '(' | ')' | '-' | '[' | ']' => 4.6,
            'm' | 'w' | 'M' | 'W' | '@' => 10.0,
            c if c.is_ascii_uppercase() => 8.2,
            _ => 7.0,
        })
        .sum()
}

/// The legend's entries laid out left to right in rows no wider than the plot area: for each
/// row, (index of the entry, x of its swatch).
fn legend_rows(names: &[&str]) -> Vec<Vec<(usize, f64)>> {
    const GAP: f64 = 18.0;
    let mut rows: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut x = LEFT;
    for (i, name) in names.iter().enumerate() {
        let w = SWATCH + text_width(name);
        if rows.is_empty() || (x + w > W - RIGHT && x > LEFT) {
            rows.push(Vec::new());
            x = LEFT;
        }
        rows.last_mut().expect("a row").push((i, x));
        x += w + GAP;
    }
    rows
}

/// The height the legend adds below the chart.
fn legend_height(rows: &[Vec<(usize, f64)>]) -> f64 {
    if rows.is_empty() {
        0.0
    } else {
        LEGEND_ROW * rows.len() as f64 + 10.0
    }
}

/// The legend, below the x axis's label (which ends at `top`).
fn legend(out: &mut String, series: &[Series], rows: &[Vec<(usize, f64)>], top: f64) {
    out.push_str(r#"<g class="legend">"#);
    for (r, row) in rows.iter().enumerate() {
        let y = top + 10.0 + LEGEND_ROW * r as f64;
        for &(i, x) in row {
            let s = &series[i];
            let _ = write!(
                out,
                r#"<g style="color:{}"><line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="currentColor" stroke-width="2"/>"#,
                s.color.hex(),
                x,
                x + 22.0
            );
            marker(out, s.marker, x + 11.0, y, "legend-marker");
            let _ = write!(
                out,
                r#"<text x="{}" y="{}">{}</text></g>"#,
                x + SWATCH,
                y + 4.0,
                esc(&s.name)
            );
        }
    }
    out.push_str("</g>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, points: Vec<(f64, Option<f64>)>) -> Series {
        let (color, marker) = ticks::style(0);
        Series {
            name: name.into(),
            color,
            marker,
            points,
            markers: true,
            band: vec![],
            dots: vec![],
        }
    }

    fn chart() -> Chart<'static> {
        Chart {
            class: "t",
            title: "t <1>",
            x_label: "x",
            y_label: "y",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            x_ticks: None,
        }
    }

    #[test]
    fn one_line_per_series_broken_at_missing_and_non_positive_values() {
        let svg = render(
            &chart(),
            &[
                series(
                    "a",
                    vec![
                        (1.0, Some(0.5)),
                        (2.0, None),
                        (4.0, Some(0.1)),
                        (8.0, Some(0.05)),
                    ],
                ),
                series(
                    "b",
                    vec![(1.0, Some(0.4)), (2.0, Some(-1.0)), (4.0, Some(0.2))],
                ),
            ],
        );
        assert_eq!(svg.matches(r#"class="line""#).count(), 2, "{svg}");
        // a: a gap at x = 2, so two pieces; b: its negative value cannot be on a log axis.
        let paths: Vec<&str> = svg
            .split(r#"<path class="line" d=""#)
            .skip(1)
            .map(|p| &p[..p.find('"').unwrap()])
            .collect();
        assert_eq!(paths[0].matches('M').count(), 2, "{}", paths[0]);
        assert_eq!(paths[1].matches('M').count(), 2, "{}", paths[1]);
        assert!(svg.contains("t &lt;1&gt;"), "the title is escaped");
        assert!(
            svg.contains(">0.1<") && svg.contains(">0.2<"),
            "labelled log ticks: {svg}"
        );
    }

    /// The `y` attributes of the `<text>`s inside the first `<g class="legend">`.
    fn legend_text_ys(svg: &str) -> Vec<f64> {
        let legend = &svg[svg.find(r#"<g class="legend">"#).unwrap()..];
        legend
            .split("<text ")
            .skip(1)
            .map(|t| {
                let y = &t[t.find(r#"y=""#).unwrap() + 3..];
                y[..y.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    }

    /// The legend lies below the plot area, never over it, in rows that fit the chart's
    /// width, and the `<svg>` is as tall as it needs.
    #[test]
    fn the_legend_lies_below_the_plot_area_in_rows_that_fit() {
        let names: Vec<String> = (0..6).map(|l| format!("exclusive_frac_l{l}")).collect();
        let many: Vec<Series> = names
            .iter()
            .map(|n| series(n, vec![(0.0, Some(0.5)), (10.0, Some(0.7))]))
            .collect();
        let svg = render(&chart(), &many);
        let ys = legend_text_ys(&svg);
        assert_eq!(ys.len(), 6);
        // Below the frame (which ends at H − BOTTOM) and the x axis's label (at H − 8).
        assert!(ys.iter().all(|y| y - 12.0 > H - 8.0), "{ys:?}");
        let rows = legend_rows(&names.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(rows.len() >= 2, "six long names in one row: {rows:?}");
        for row in &rows {
            let (i, x) = *row.last().unwrap();
            assert!(
                x + SWATCH + text_width(&names[i]) <= W - RIGHT,
                "row {row:?} runs out"
            );
        }
        let height = H + legend_height(&rows);
        assert!(
            svg.contains(&format!(r#"viewBox="0 0 {W} {height}""#)),
            "{}",
            &svg[..200]
        );
        assert!(
            ys.iter().all(|y| *y + 4.0 <= height),
            "{ys:?} past {height}"
        );
    }

    /// A bounded axis covers its range whatever the values (fractions 0..1), and more where
    /// a value lies outside; an x span widens the x axis to the job's iterations.
    #[test]
    fn bounded_axes_cover_their_range() {
        let mut c = chart();
        c.x_scale = Scale::Linear;
        c.y_scale = Scale::Linear;
        let flat = [series("f", vec![(100.0, Some(0.5)), (200.0, Some(0.52))])];
        let svg = render_bounded(&c, &flat, Some((0.0, 1000.0)), Some((0.0, 1.0)));
        for tick in [">0<", ">0.2<", ">1<", ">1000<"] {
            assert!(svg.contains(tick), "{tick}: {svg}");
        }
        let over = [series("f", vec![(0.0, Some(-0.5)), (1.0, Some(1.5))])];
        let svg = render_bounded(&c, &over, None, Some((0.0, 1.0)));
        assert!(svg.contains(">-0.5<") && svg.contains(">1.5<"), "{svg}");
    }

    /// Counters: a lane each, a mark where they grow (with its tooltip), no line; lanes
    /// without a mark say so.
    #[test]
    fn events_are_marks_in_lanes() {
        let lane = |name: &str, events: Vec<(f64, String)>| Lane {
            name: name.into(),
            label: name.into(),
            color: ticks::style(0).0,
            events,
        };
        let mut c = chart();
        c.x_scale = Scale::Linear;
        let xs = [0.0, 100.0, 200.0];
        let svg = render_events(
            &c,
            &xs,
            &[
                lane("a", vec![(100.0, "a +1 <at> 100".into())]),
                lane("b", vec![]),
            ],
        );
        assert_eq!(svg.matches(r#"class="mark""#).count(), 1, "{svg}");
        assert!(svg.contains("a +1 &lt;at&gt; 100"), "the tooltip, escaped");
        assert!(!svg.contains(r#"class="line""#) && !svg.contains("none in these rows"));
        let svg = render_events(&c, &xs, &[lane("a", vec![]), lane("b", vec![])]);
        assert!(svg.contains("none in these rows"), "{svg}");
        assert!(render_events(&c, &[], &[lane("a", vec![])]).contains("no values yet"));
    }

    #[test]
    fn a_chart_without_values_says_so() {
        let svg = render(&chart(), &[series("a", vec![(1.0, None)])]);
        assert!(svg.contains("no values yet"), "{svg}");
    }
}
