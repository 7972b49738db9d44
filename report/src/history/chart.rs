//! A history as one SVG file: a panel per method (and width, or seed), drawn by the
//! dashboard's renderer as the job page draws a job's curves — the median over seeds with the
//! seeds' min–max band, counters as marks in a lane per member — on one y axis and one
//! iteration axis for every panel, laid out by [`dashboard::sheet`].

use dashboard::scaling::distinct;
use dashboard::sheet::sheet;
use dashboard::svg::{self, Chart, Lane, Scale, Series};
use dashboard::ticks;
use trainer_core::AxisScale;

use super::HistoryPoint;

/// One line: a metric over iterations in a panel.
pub struct ChartLine<'a> {
    /// The panel it is drawn in (e.g. "burgers, dcgd"); panels appear in order of first use.
    pub panel: String,
    /// Its name in the legend ("width 512", "kept_frac_l0").
    pub name: String,
    /// Its colour and marker ([`ticks::style`]), the same in every panel.
    pub style: usize,
    pub points: &'a [HistoryPoint],
}

/// How the panels draw their values.
pub struct ChartStyle<'a> {
    pub y_label: &'a str,
    /// The y axis of every panel: `Auto` is log when every value is positive and they span
    /// more than a factor of [`WIDE`](trainer_core::diagnostic_kind::WIDE), linear otherwise.
    pub scale: AxisScale,
    /// A range the y axis covers at least (0..1 for fractions), as the job page draws it.
    pub y_range: Option<(f64, f64)>,
    /// Counters (resets): a lane per line, a mark where the value grows.
    pub counter: bool,
    /// Panels per row; default up to three side by side, more in rows of two.
    pub columns: Option<usize>,
}

impl ChartStyle<'_> {
    /// A metric column or one diagnostic: `Auto` axis, lines, default columns.
    pub fn metric(y_label: &str) -> ChartStyle<'_> {
        ChartStyle {
            y_label,
            scale: AxisScale::Auto,
            y_range: None,
            counter: false,
            columns: None,
        }
    }
}

/// The SVG file of `lines`, titled `title`.
pub fn svg(title: &str, style: &ChartStyle, lines: &[ChartLine]) -> String {
    let panels = distinct(lines.iter().map(|l| l.panel.as_str()));
    let values = || lines.iter().flat_map(|l| l.points.iter());
    let y_scale = match style.scale.resolve(values().map(|p| p.median)) {
        AxisScale::Log => Scale::Log,
        _ => Scale::Linear,
    };
    // One y axis for all panels: each covers every value shown in any of them.
    let shown = |v: &f64| v.is_finite() && (y_scale == Scale::Linear || *v > 0.0);
    let y_range = values()
        .flat_map(|p| [p.min, p.max])
        .filter(shown)
        .chain(style.y_range.iter().flat_map(|r| [r.0, r.1]))
        .fold(None, |range: Option<(f64, f64)>, v| match range {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        });
    let last_iter = values().map(|p| p.iter).max().unwrap_or(1).max(1) as f64;
    let charts: Vec<String> = panels
        .iter()
        .map(|panel| {
            let of_panel: Vec<&ChartLine> = lines.iter().filter(|l| l.panel == *panel).collect();
            let chart = Chart {
                class: "history",
                title: panel,
                x_label: "iteration",
                y_label: style.y_label,
                x_scale: Scale::Linear,
                y_scale,
                x_ticks: None,
            };
            if style.counter {
                svg::render_events(&chart, &[0.0, last_iter], &lanes(&of_panel))
            } else {
                let series: Vec<Series> = of_panel.iter().map(|l| series(l)).collect();
                svg::render_bounded(&chart, &series, Some((0.0, last_iter)), y_range)
            }
        })
        .collect();
    let columns = match style.columns {
        Some(c) => c,
        None if panels.len() <= 3 => panels.len(),
        None => 2,
    };
    sheet(title, &charts, columns)
}

/// A line through the medians, with the seeds' band where a point has more than one seed.
fn series(line: &ChartLine) -> Series {
    let (color, marker) = ticks::style(line.style);
    let pooled = line.points.iter().any(|p| p.n > 1);
    Series {
        name: line.name.clone(),
        color,
        marker,
        points: line
            .points
            .iter()
            .map(|p| (p.iter as f64, Some(p.median)))
            .collect(),
        markers: false,
        band: match pooled {
            true => line
                .points
                .iter()
                .map(|p| (p.iter as f64, p.min, p.max))
                .collect(),
            false => Vec::new(),
        },
        dots: Vec::new(),
    }
}

/// Counters as the job page draws them: a lane per line, a mark where the count (the median
/// over seeds) grows.
fn lanes(lines: &[&ChartLine]) -> Vec<Lane> {
    lines
        .iter()
        .map(|l| {
            let xs: Vec<f64> = l.points.iter().map(|p| p.iter as f64).collect();
            let counts: Vec<Option<f64>> = l.points.iter().map(|p| Some(p.median)).collect();
            Lane::counter(&l.name, ticks::style(l.style).0, &xs, &counts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[(u64, f64)]) -> Vec<HistoryPoint> {
        values
            .iter()
            .map(|&(iter, v)| HistoryPoint {
                iter,
                n: 3,
                median: v,
                min: 0.9 * v,
                max: 1.1 * v,
            })
            .collect()
    }

    /// The y tick labels of each panel of a sheet, in order.
    fn y_ticks_per_panel(svg: &str) -> Vec<Vec<String>> {
        svg.split("<g transform=")
            .skip(1)
            .map(|panel| {
                panel
                    .split(r#"<text class="tick y""#)
                    .skip(1)
                    .map(|t| t[t.find('>').unwrap() + 1..t.find('<').unwrap()].to_string())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn every_panel_shares_one_y_axis_and_one_iteration_axis_with_bands() {
        let small = points(&[(0, 0.1), (100, 0.2)]);
        let large = points(&[(0, 10.0), (50, 20.0)]);
        let lines = [
            ChartLine {
                panel: "burgers, adam".into(),
                name: "width 8".into(),
                style: 0,
                points: &small,
            },
            ChartLine {
                panel: "burgers, dcgd".into(),
                name: "width 8".into(),
                style: 0,
                points: &large,
            },
        ];
        let svg = svg("s: rel_l2", &ChartStyle::metric("rel_l2"), &lines);
        let ticks = y_ticks_per_panel(&svg);
        assert_eq!(ticks.len(), 2, "{svg}");
        assert!(!ticks[0].is_empty() && ticks[0] == ticks[1], "{ticks:?}");
        // Values spanning 200×: a log axis (1-2-5 ticks from 0.1 to 20).
        assert!(ticks[0].contains(&"1".to_string()), "{ticks:?}");
        assert_eq!(svg.matches(r#"class="band""#).count(), 2);
        // Both panels run to the last iteration of either: the same x ticks.
        let x_ticks = |panel: &str| panel.matches(r#"<text class="tick x""#).count();
        let panels: Vec<&str> = svg.split("<g transform=").skip(1).collect();
        assert_eq!(x_ticks(panels[0]), x_ticks(panels[1]));
    }
}
