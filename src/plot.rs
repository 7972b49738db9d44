//! The capacity-scaling plot: relative L2 vs width, both axes logarithmic, one line per method
//! (the mean over seeds) with error bars (mean ± std; where mean − std ≤ 0, which a log axis
//! cannot show, the bar goes down to the smallest seed's value instead). SVG only, so no fonts
//! or native libraries are needed.
//!
//! Readable at a glance: both axes are fitted to the data (a small margin, not the next power
//! of ten), log ticks are labelled at 1-2-5 steps in plain decimals (0.05, 0.1, 0.2, …), the
//! widths label the x axis, and each method has an Okabe–Ito colour and its own marker shape.

use anyhow::{Result, anyhow};
use dashboard::ticks::{self, Marker, Rgb, fit_log_axis, linear_tick_label, log_ticks, tick_label};
use modsync_proto::CurvePoint;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use trainer_core::AxisScale;

/// The shared palette's colour in plotters' type.
fn color(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// An 800×560 SVG of `points` (one PDE), titled `title`.
pub fn scaling_svg(title: &str, points: &[&CurvePoint]) -> Result<String> {
    let usable: Vec<&CurvePoint> = points
        .iter()
        .copied()
        .filter(|p| p.width > 0 && p.mean.is_finite() && p.mean > 0.0)
        .collect();
    let mut svg = String::new();
    draw(&mut svg, title, &usable).map_err(|e| anyhow!("cannot draw the plot {title:?}: {e}"))?;
    Ok(svg)
}

/// (low, high) end of a point's error bar.
fn bar(p: &CurvePoint) -> (f64, f64) {
    let std = if p.std.is_finite() { p.std } else { 0.0 };
    let low = if p.mean - std > 0.0 {
        p.mean - std
    } else if p.min.is_finite() && p.min > 0.0 {
        p.min.min(p.mean)
    } else {
        p.mean
    };
    (low, p.mean + std)
}

fn draw(
    svg: &mut String,
    title: &str,
    points: &[&CurvePoint],
) -> Result<(), Box<dyn std::error::Error>> {
    // One line per method, or per method and series in a sweep with extra axes.
    let mut lines: Vec<(&str, &str)> = Vec::new();
    for p in points {
        if !lines.contains(&(p.method.as_str(), p.series.as_str())) {
            lines.push((&p.method, &p.series));
        }
    }
    let mut widths: Vec<f64> = points.iter().map(|p| p.width as f64).collect();
    widths.sort_by(f64::total_cmp);
    widths.dedup();
    let x = fit_log_axis(
        widths.first().copied().unwrap_or(1.0),
        widths.last().copied().unwrap_or(1.0),
    );
    // The widths of a sweep are its natural ticks, unless there are too many to label.
    let x_ticks = if (1..=12).contains(&widths.len()) {
        widths.clone()
    } else {
        log_ticks(x.0, x.1, 10)
    };
    let (ylo, yhi) = points
        .iter()
        .map(|p| bar(p))
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), (l, h)| {
            (lo.min(l), hi.max(h))
        });
    let y = fit_log_axis(ylo, yhi);
    let y_ticks = log_ticks(y.0, y.1, 10);

    let root = SVGBackend::with_string(svg, (800, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (x.0..x.1).log_scale().with_key_points(x_ticks),
            (y.0..y.1).log_scale().with_key_points(y_ticks),
        )?;
    chart
        .configure_mesh()
        .x_desc("width (hidden units per layer)")
        .y_desc("relative L2 (mean over seeds, bar: ± std)")
        .label_style(("sans-serif", 15))
        .bold_line_style(BLACK.mix(0.12))
        .y_label_formatter(&|v| tick_label(*v))
        .x_label_formatter(&|v| tick_label(*v))
        .draw()?;
    for (i, &(method, series)) in lines.iter().enumerate() {
        let (rgb, marker) = ticks::style(i);
        let color = color(rgb);
        let mut line: Vec<&CurvePoint> = points
            .iter()
            .copied()
            .filter(|p| p.method == method && p.series == series)
            .collect();
        let name = if series.is_empty() {
            method.to_string()
        } else {
            format!("{method} · {series}")
        };
        line.sort_by_key(|p| p.width);
        chart
            .draw_series(LineSeries::new(
                line.iter().map(|p| (p.width as f64, p.mean)),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| {
                EmptyElement::at((x + 10, y))
                    + PathElement::new(vec![(-10, 0), (10, 0)], color.stroke_width(2))
                    + marker_shape(marker, color)
            });
        chart.draw_series(line.iter().map(|p| {
            let (lo, hi) = bar(p);
            ErrorBar::new_vertical(p.width as f64, lo, p.mean, hi, color.stroke_width(1), 8)
        }))?;
        chart
            .draw_series(line.iter().map(|p| {
                EmptyElement::at((p.width as f64, p.mean)) + marker_shape(marker, color)
            }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 15))
        .border_style(BLACK.mix(0.4))
        .background_style(WHITE.mix(0.85))
        .draw()?;
    root.present()?;
    Ok(())
}

/// One line of a history plot: a metric over iterations (for one width, or one member of a
/// kind of diagnostics), in a panel.
pub struct HistoryLine {
    /// The panel it is drawn in (e.g. "burgers, dcgd"); panels appear in order of first use.
    pub panel: String,
    /// Its name in the legend ("width 512", "kept_frac_l0"): one entry however many panels.
    pub name: String,
    /// Its colour and marker ([`ticks::style`]), the same in every panel.
    pub style: usize,
    /// (iteration, value), in iteration order.
    pub points: Vec<(u64, f64)>,
}

/// How a history plot draws its values.
pub struct HistoryStyle<'a> {
    pub y_label: &'a str,
    /// The y axis, shared by every panel: `Auto` is log when every value is positive and they
    /// span more than a factor of [`WIDE`](trainer_core::diagnostic_kind::WIDE), linear
    /// otherwise (a cosine that goes to 0 or changes sign).
    pub scale: AxisScale,
    /// A range the y axis covers at least (0..1 for fractions), as the job page draws it.
    pub y_range: Option<(f64, f64)>,
    /// Counters (resets): a mark where the value grows, no line.
    pub counter: bool,
    /// Panels per row; default up to three side by side, more in rows of two.
    pub columns: Option<usize>,
}

impl HistoryStyle<'_> {
    /// A single metric's plot as it always was: `Auto` axis, lines, default columns.
    pub fn metric(y_label: &str) -> HistoryStyle<'_> {
        HistoryStyle {
            y_label,
            scale: AxisScale::Auto,
            y_range: None,
            counter: false,
            columns: None,
        }
    }
}

/// Values over iterations: one panel per `panel` (in a grid), one line per line name (the
/// same colour and marker in every panel), one y axis for all panels (`style`), and the
/// legend below the panels, outside every plot area.
pub fn history_svg(title: &str, style: &HistoryStyle, lines: &[HistoryLine]) -> Result<String> {
    let mut svg = String::new();
    draw_history(&mut svg, title, style, lines)
        .map_err(|e| anyhow!("cannot draw the plot {title:?}: {e}"))?;
    Ok(svg)
}

/// Pixels of one legend row of a history plot, and an upper estimate of a character's width
/// at its 14 px font.
const LEGEND_ROW: u32 = 24;
const LEGEND_CHAR: u32 = 8;

/// The legend's entries (name, style) in rows no wider than `width`: (x, row) of each.
fn legend_layout(entries: &[(&str, usize)], width: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let (mut x, mut row) = (20u32, 0u32);
    for (name, _) in entries {
        let w = 34 + LEGEND_CHAR * name.chars().count() as u32;
        if x + w > width && x > 20 {
            row += 1;
            x = 20;
        }
        out.push((x, row));
        x += w + 24;
    }
    out
}

fn draw_history(
    svg: &mut String,
    title: &str,
    style: &HistoryStyle,
    lines: &[HistoryLine],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut panels: Vec<&str> = Vec::new();
    let mut entries: Vec<(&str, usize)> = Vec::new();
    for l in lines {
        if !panels.contains(&l.panel.as_str()) {
            panels.push(&l.panel);
        }
        if !entries.iter().any(|e| e.0 == l.name) {
            entries.push((&l.name, l.style));
        }
    }
    entries.sort_by_key(|e| e.1);
    let log_y = style
        .scale
        .resolve(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)))
        == AxisScale::Log;
    // What the axis shows: on a log axis only positive values.
    let shown = |v: f64| v.is_finite() && (!log_y || v > 0.0);
    let (lo, hi) = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| shown(*v))
        .chain(style.y_range.iter().flat_map(|r| [r.0, r.1]))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let last_iter = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let panel_count = panels.len().max(1);
    let columns = match style.columns {
        Some(c) => c.clamp(1, panel_count),
        // Up to three panels side by side; more (e.g. one per method and seed) in rows of two.
        None if panel_count <= 3 => panel_count,
        None => 2,
    };
    let rows = panel_count.div_ceil(columns);
    let width = 440 * columns as u32 + 40;
    let layout = legend_layout(&entries, width);
    let legend_rows = layout.last().map_or(0, |l| l.1 + 1);
    let legend_h = LEGEND_ROW * legend_rows + 12;
    let size = (width, 480 * rows as u32 + 40 + legend_h);
    let root = SVGBackend::with_string(svg, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let grid_h = root.dim_in_pixel().1.saturating_sub(legend_h);
    let (grid, legend_area) = root.split_vertically(grid_h);
    for (area, panel) in grid.split_evenly((rows, columns)).iter().zip(&panels) {
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(*panel, ("sans-serif", 17))
            .margin(12)
            // Room for the last x tick's label ("2000"), centred on the plot's edge.
            .margin_right(24)
            .x_label_area_size(44)
            .y_label_area_size(70);
        let of_panel = lines.iter().filter(|l| l.panel == *panel);
        if log_y {
            let y = fit_log_axis(lo, hi);
            let chart = builder.build_cartesian_2d(
                0.0..last_iter,
                (y.0..y.1)
                    .log_scale()
                    .with_key_points(log_ticks(y.0, y.1, 10)),
            )?;
            fill_history_panel(chart, style, &|v| tick_label(*v), of_panel, &shown)?;
        } else {
            let (lo, hi) = match style.y_range {
                // Covering the range, 2 % each side so that a line on a bound stays visible.
                Some(_) => {
                    let m = (hi - lo) * 0.02;
                    (lo - m, hi + m)
                }
                None => {
                    let pad = ((hi - lo) * 0.05).max(1e-3);
                    (lo - pad, hi + pad)
                }
            };
            let chart = builder.build_cartesian_2d(0.0..last_iter, lo..hi)?;
            // The decimals of plotters' steps (about a tenth of the axis), "0" at zero.
            let step = (hi - lo) / 10.0;
            let label = move |v: &f64| linear_tick_label(*v, step);
            fill_history_panel(chart, style, &label, of_panel, &shown)?;
        }
    }
    // One legend for every panel, below them.
    for ((name, style_index), (x, row)) in entries.iter().zip(&layout) {
        let (rgb, marker) = ticks::style(*style_index);
        let color = color(rgb);
        let y = (LEGEND_ROW * row + LEGEND_ROW / 2) as i32;
        let text = TextStyle::from(("sans-serif", 14).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        legend_area.draw(
            &(EmptyElement::at((*x as i32 + 11, y))
                + PathElement::new(vec![(-11, 0), (11, 0)], color.stroke_width(2))
                + marker_shape(marker, color)
                + Text::new(name.to_string(), (17, 0), text)),
        )?;
    }
    root.present()?;
    Ok(())
}

/// One panel's grid and lines, on a log or a linear y axis (`y_format` labels its ticks);
/// `shown` says which values the axis can show.
fn fill_history_panel<'a, 'l, DB: DrawingBackend + 'a, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    style: &HistoryStyle,
    y_format: &dyn Fn(&f64) -> String,
    lines: impl Iterator<Item = &'l HistoryLine>,
    shown: &dyn Fn(f64) -> bool,
) -> Result<(), Box<dyn std::error::Error>>
where
    Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
    DB::ErrorType: 'static,
{
    chart
        .configure_mesh()
        .x_desc("iteration")
        .y_desc(style.y_label)
        .label_style(("sans-serif", 14))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(y_format)
        .draw()?;
    for l in lines {
        let (rgb, marker) = ticks::style(l.style);
        let color = color(rgb);
        let points: Vec<(f64, f64)> = l
            .points
            .iter()
            .filter(|p| shown(p.1))
            .map(|&(i, v)| (i as f64, v))
            .collect();
        if style.counter {
            // A mark where the count grows (from 0 before the first value).
            let mut last = 0.0;
            let grew: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| {
                    let up = p.1 > last;
                    last = p.1;
                    up
                })
                .copied()
                .collect();
            chart.draw_series(
                grew.iter()
                    .map(|&p| EmptyElement::at(p) + marker_shape(marker, color)),
            )?;
            continue;
        }
        chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
        // A marker on every few points keeps lines of the same colour family apart in print.
        let step = (points.len() / 10).max(1);
        chart.draw_series(
            points
                .iter()
                .step_by(step)
                .map(|&p| EmptyElement::at(p) + marker_shape(marker, color)),
        )?;
    }
    Ok(())
}

/// A marker of `shape` centred on (0, 0) in pixels, to add to an `EmptyElement` at the point.
fn marker_shape<DB: DrawingBackend>(
    shape: Marker,
    color: RGBColor,
) -> DynElement<'static, DB, (i32, i32)> {
    const R: i32 = 5;
    let fill = color.filled();
    match shape {
        Marker::Circle => Circle::new((0, 0), R, fill).into_dyn(),
        Marker::Square => Rectangle::new([(-R + 1, -R + 1), (R - 1, R - 1)], fill).into_dyn(),
        Marker::Triangle => TriangleMarker::new((0, 0), R + 1, fill).into_dyn(),
        Marker::Diamond => {
            Polygon::new(vec![(0, -R - 1), (R, 0), (0, R + 1), (-R, 0)], fill).into_dyn()
        }
        Marker::Cross => Cross::new((0, 0), R, color.stroke_width(2)).into_dyn(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(method: &str, width: u64, mean: f64, std: f64) -> CurvePoint {
        CurvePoint {
            pde: "burgers".into(),
            method: method.into(),
            width,
            n: 2,
            mean,
            std,
            median: mean,
            min: mean * 0.9,
            series: String::new(),
        }
    }

    #[test]
    fn draws_lines_legend_and_bars() {
        let pts = [
            point("adam", 10, 0.5, 0.1),
            point("adam", 20, 0.2, 0.3),
            point("dcgd", 10, 0.4, 0.0),
        ];
        let refs: Vec<&CurvePoint> = pts.iter().collect();
        let svg = scaling_svg("t: burgers", &refs).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        assert!(svg.contains("adam") && svg.contains("dcgd"));
        // mean − std < 0 → the bar stops at the min, still positive.
        assert_eq!(bar(&pts[1]), (0.2 * 0.9, 0.5));
    }

    /// The plot uses the shared colour-blind-safe palette, fitted axes and labelled ticks.
    #[test]
    fn plots_use_okabe_ito_colours_and_labelled_log_ticks() {
        let pts = [point("adam", 10, 0.5, 0.1), point("dcgd", 10, 0.4, 0.0)];
        let svg = scaling_svg("t", &[&pts[0], &pts[1]]).unwrap();
        assert!(svg.contains("#0072B2") && svg.contains("#D55E00"), "{svg}");
        // y data 0.4..0.6 (with the bars): ticks 0.4, 0.5, 0.6 and nothing past the data.
        // (plotters writes a label as ">\nTEXT\n<".)
        for label in ["0.4", "0.5", "0.6", "10"] {
            assert!(
                svg.contains(&format!(">\n{label}\n<")),
                "tick {label} missing"
            );
        }
        for past in ["0.3", "0.7", "1", "1.0e0", "20"] {
            assert!(
                !svg.contains(&format!(">\n{past}\n<")),
                "the axis runs past the data to {past}"
            );
        }
    }

    fn line(panel: &str, name: &str, style: usize, points: Vec<(u64, f64)>) -> HistoryLine {
        HistoryLine {
            panel: panel.into(),
            name: name.into(),
            style,
            points,
        }
    }

    /// The `x` attribute of the `<text>` that reads `text` (plotters writes ">\nTEXT\n<").
    fn text_x(svg: &str, text: &str) -> f64 {
        let at = svg
            .find(&format!(">\n{text}\n<"))
            .unwrap_or_else(|| panic!("no text {text}"));
        let tag = &svg[svg[..at].rfind("<text").unwrap()..at];
        let x = &tag[tag.find(" x=\"").unwrap() + 4..];
        x[..x.find('"').unwrap()].parse().unwrap()
    }

    /// The `y` attribute of that `<text>`.
    fn text_y(svg: &str, text: &str) -> f64 {
        let at = svg.find(&format!(">\n{text}\n<")).unwrap();
        let tag = &svg[svg[..at].rfind("<text").unwrap()..at];
        let y = &tag[tag.find(" y=\"").unwrap() + 4..];
        y[..y.find('"').unwrap()].parse().unwrap()
    }

    #[test]
    fn history_plots_one_panel_per_method_and_one_line_per_width() {
        let lines = [
            line("burgers, dcgd", "width 64", 0, vec![(0, -0.5), (100, -0.1)]),
            line("burgers, dcgd", "width 512", 1, vec![(0, -0.4), (100, 0.0)]),
            line(
                "burgers, modsync+dcgd",
                "width 512",
                1,
                vec![(0, -0.3), (100, -0.2)],
            ),
        ];
        let svg = history_svg("t", &HistoryStyle::metric("cos_rb"), &lines).unwrap();
        for text in [
            "burgers, dcgd",
            "burgers, modsync+dcgd",
            "width 64",
            "width 512",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // One legend entry per width, however many panels draw it.
        assert_eq!(svg.matches(">\nwidth 512\n<").count(), 1);
        // Widths keep their colour across panels: 512 is the second width everywhere.
        let second = format!(
            "#{:02X}{:02X}{:02X}",
            ticks::style(1).0.0,
            ticks::style(1).0.1,
            ticks::style(1).0.2
        );
        assert_eq!(svg.matches(&second).count() >= 2, true, "{second}");
        assert!(history_svg("none", &HistoryStyle::metric("x"), &[]).is_ok());
    }

    /// A kind of diagnostics: fractions on an axis over at least 0..1, the legend below every
    /// panel (no plot area holds it), norms on a log axis, counters as marks only.
    #[test]
    fn history_of_a_kind_uses_its_axis_and_keeps_the_legend_outside() {
        let fractions = HistoryStyle {
            y_label: "fraction",
            scale: AxisScale::Linear,
            y_range: Some((0.0, 1.0)),
            counter: false,
            columns: Some(2),
        };
        let lines = [
            line(
                "burgers, m, width 8",
                "kept_frac_l0",
                0,
                vec![(0, 0.9), (100, 0.8)],
            ),
            line(
                "burgers, m, width 8",
                "kept_frac_l1",
                1,
                vec![(0, 0.85), (100, 0.7)],
            ),
            line(
                "burgers, m, width 16",
                "kept_frac_l0",
                0,
                vec![(0, 0.95), (100, 0.75)],
            ),
        ];
        let svg = history_svg("t", &fractions, &lines).unwrap();
        for tick in ["0", "0.2", "1"] {
            assert!(svg.contains(&format!(">\n{tick}\n<")), "tick {tick}: {svg}");
        }
        // The panels end where the legend starts: its text lies below every x axis label.
        let legend_y = text_y(&svg, "kept_frac_l0");
        let axis_label_y = svg
            .match_indices(">\niteration\n<")
            .map(|(at, _)| {
                let tag = &svg[svg[..at].rfind("<text").unwrap()..at];
                let y = &tag[tag.find(" y=\"").unwrap() + 4..];
                y[..y.find('"').unwrap()].parse::<f64>().unwrap()
            })
            .fold(0.0, f64::max);
        assert!(
            legend_y > axis_label_y,
            "legend at {legend_y}, x axis label at {axis_label_y}"
        );
        assert!(text_x(&svg, "kept_frac_l1") > text_x(&svg, "kept_frac_l0"));

        let norms = HistoryStyle {
            y_label: "norm",
            scale: AxisScale::Log,
            y_range: None,
            counter: false,
            columns: None,
        };
        let lines = [line(
            "p",
            "norm_g_r",
            0,
            vec![(0, 2.0), (50, 0.0), (100, 0.9)],
        )];
        let svg = history_svg("t", &norms, &lines).unwrap();
        // Log ticks at 1-2-5 steps; the zero is left out, not drawn at −∞.
        assert!(svg.contains(">\n1\n<") && svg.contains(">\n2\n<"), "{svg}");

        let counter = HistoryStyle {
            y_label: "resets",
            scale: AxisScale::Linear,
            y_range: None,
            counter: true,
            columns: None,
        };
        let lines = [line(
            "p",
            "resets_l0",
            0,
            vec![(0, 0.0), (100, 1.0), (200, 1.0), (300, 2.0)],
        )];
        let svg = history_svg("t", &counter, &lines).unwrap();
        // A counter is not a line: the only polyline in its colour is the legend's swatch.
        let colour = format!(r#"stroke="{}""#, ticks::style(0).0.hex());
        let lines = svg
            .split("<polyline")
            .skip(1)
            .filter(|p| p[..p.find('>').unwrap()].contains(&colour))
            .count();
        assert_eq!(lines, 1, "{svg}");
        // Two marks (100 and 300) plus the legend's: circles of the first style.
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
    }

    #[test]
    fn single_point_and_empty_plots_work() {
        let pts = [point("adam", 10, 0.5, 0.0)];
        assert!(scaling_svg("one", &[&pts[0]]).is_ok());
        assert!(scaling_svg("none", &[]).is_ok());
    }
}
