//! Line charts as inline SVG, drawn on the server: the sweep page's capacity-scaling plots and
//! the job page's curves. No script draws anything, so a page is complete as served (and a
//! test can read every line from the HTML); the live update swaps in the newly served markup.
//!
//! Every series is a `<g class="series" data-series="NAME">` holding one `<path class="line">`,
//! its markers, an optional min–max `<path class="band">` and optional `<circle class="dot">`s.

use std::fmt::Write as _;

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
}

/// The chart as an `<svg>` element. Without any drawable value it says so instead.
pub fn render(chart: &Chart, series: &[Series]) -> String {
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
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart {}" viewBox="0 0 {W} {H}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(chart.class),
        esc(chart.title)
    );
    let _ = write!(
        out,
        r#"<text class="title" x="{}" y="18" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(chart.title)
    );
    if !has_y {
        let _ = write!(
            out,
            r#"<text class="empty" x="{}" y="{}" text-anchor="middle">no values yet</text></svg>"#,
            W / 2.0,
            H / 2.0
        );
        return out;
    }
    let x = Axis::fitted(chart.x_scale, xs, LEFT, W - RIGHT);
    let y = Axis::fitted(chart.y_scale, ys, H - BOTTOM, TOP);
    axes(&mut out, chart, &x, &y);
    for s in series {
        draw_series(&mut out, s, &x, &y);
    }
    legend(&mut out, series);
    out.push_str("</svg>");
    out
}

fn axes(out: &mut String, chart: &Chart, x: &Axis, y: &Axis) {
    out.push_str(r#"<g class="axes">"#);
    let x_ticks = chart.x_ticks.clone().unwrap_or_else(|| x.ticks());
    for t in x_ticks {
        let Some(px) = x.px(t) else { continue };
        if px < x.from - 0.5 || px > x.to + 0.5 {
            continue;
        }
        let _ = write!(
            out,
            r#"<line class="grid" x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{}"/><text class="tick x" x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
            H - BOTTOM,
            H - BOTTOM + 16.0,
            ticks::tick_label(t)
        );
    }
    for t in y.ticks() {
        let Some(py) = y.px(t) else { continue };
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}"/><text class="tick y" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            ticks::tick_label(t)
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

fn legend(out: &mut String, series: &[Series]) {
    out.push_str(r#"<g class="legend">"#);
    let x = W - RIGHT - 150.0;
    for (i, s) in series.iter().enumerate() {
        let y = TOP + 14.0 + 18.0 * i as f64;
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
            x + 28.0,
            y + 4.0,
            esc(&s.name)
        );
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

    #[test]
    fn a_chart_without_values_says_so() {
        let svg = render(&chart(), &[series("a", vec![(1.0, None)])]);
        assert!(svg.contains("no values yet"), "{svg}");
    }
}
