//! The capacity-scaling plot: relative L2 vs width, both axes logarithmic, one line per method
//! (the mean over seeds) with error bars (mean ± std; where mean − std ≤ 0, which a log axis
//! cannot show, the bar goes down to the smallest seed's value instead). SVG only, so no fonts
//! or native libraries are needed.
//!
//! Readable at a glance: both axes are fitted to the data (a small margin, not the next power
//! of ten), log ticks are labelled at 1-2-5 steps in plain decimals (0.05, 0.1, 0.2, …), the
//! widths label the x axis, and each method has an Okabe–Ito colour and its own marker shape.

use anyhow::{Result, anyhow};
use dashboard::ticks::{self, Marker, Rgb, fit_log_axis, log_ticks, tick_label};
use modsync_proto::CurvePoint;
use plotters::prelude::*;

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
    let mut methods: Vec<&str> = Vec::new();
    for p in points {
        if !methods.contains(&p.method.as_str()) {
            methods.push(&p.method);
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
    for (i, method) in methods.iter().enumerate() {
        let (rgb, marker) = ticks::style(i);
        let color = color(rgb);
        let mut line: Vec<&CurvePoint> = points
            .iter()
            .copied()
            .filter(|p| p.method == *method)
            .collect();
        line.sort_by_key(|p| p.width);
        chart
            .draw_series(LineSeries::new(
                line.iter().map(|p| (p.width as f64, p.mean)),
                color.stroke_width(2),
            ))?
            .label(*method)
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

/// One line of a history plot: a metric over iterations for one width, in a panel.
pub struct HistoryLine {
    /// The panel it is drawn in (e.g. "burgers, dcgd"); panels appear in order of first use.
    pub panel: String,
    pub width: u64,
    /// (iteration, value), in iteration order.
    pub points: Vec<(u64, f64)>,
}

/// A metric over iterations: one panel per `panel` side by side, one line per width (coloured
/// and marked by width, the same in every panel). The y axis is logarithmic when every value
/// is positive and they span more than a factor of 20, linear otherwise (a cosine that goes to
/// 0 or changes sign).
pub fn history_svg(title: &str, y_label: &str, lines: &[HistoryLine]) -> Result<String> {
    let mut svg = String::new();
    draw_history(&mut svg, title, y_label, lines)
        .map_err(|e| anyhow!("cannot draw the plot {title:?}: {e}"))?;
    Ok(svg)
}

fn draw_history(
    svg: &mut String,
    title: &str,
    y_label: &str,
    lines: &[HistoryLine],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut panels: Vec<&str> = Vec::new();
    let mut widths: Vec<u64> = Vec::new();
    for l in lines {
        if !panels.contains(&l.panel.as_str()) {
            panels.push(&l.panel);
        }
        if !widths.contains(&l.width) {
            widths.push(l.width);
        }
    }
    widths.sort_unstable();
    let values = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (lo, hi) = values().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let last_iter = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let log_y = lo > 0.0 && hi / lo > 20.0;
    // Up to three panels side by side; more (e.g. one per method and seed) in rows of two.
    let panel_count = panels.len().max(1);
    let columns = if panel_count <= 3 { panel_count } else { 2 };
    let rows = panel_count.div_ceil(columns);
    let size = (440 * columns as u32 + 40, 480 * rows as u32 + 40);
    let root = SVGBackend::with_string(svg, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    for (area, panel) in root.split_evenly((rows, columns)).iter().zip(&panels) {
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(*panel, ("sans-serif", 17))
            .margin(12)
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
            fill_history_panel(chart, y_label, &|v| tick_label(*v), of_panel, &widths)?;
        } else {
            let pad = ((hi - lo) * 0.05).max(1e-3);
            let chart = builder.build_cartesian_2d(0.0..last_iter, (lo - pad)..(hi + pad))?;
            // Two decimals, and no "-0.00" for a tick at zero.
            let decimal = |v: &f64| format!("{:.2}", if v.abs() < 5e-3 { 0.0 } else { *v });
            fill_history_panel(chart, y_label, &decimal, of_panel, &widths)?;
        }
    }
    root.present()?;
    Ok(())
}

/// One panel's grid, lines and legend, on a log or a linear y axis (`y_format` labels its ticks).
fn fill_history_panel<'a, 'l, DB: DrawingBackend + 'a, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    y_label: &str,
    y_format: &dyn Fn(&f64) -> String,
    lines: impl Iterator<Item = &'l HistoryLine>,
    widths: &[u64],
) -> Result<(), Box<dyn std::error::Error>>
where
    Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
    DB::ErrorType: 'static,
{
    chart
        .configure_mesh()
        .x_desc("iteration")
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(y_format)
        .draw()?;
    for l in lines {
        draw_history_line(&mut chart, l, widths)?;
    }
    legend(&mut chart)
}

fn draw_history_line<'a, DB: DrawingBackend + 'a, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    line: &HistoryLine,
    widths: &[u64],
) -> Result<(), Box<dyn std::error::Error>>
where
    Y: Ranged<ValueType = f64>,
    DB::ErrorType: 'static,
{
    let index = widths.iter().position(|w| *w == line.width).unwrap_or(0);
    let (rgb, marker) = ticks::style(index);
    let color = color(rgb);
    let points: Vec<(f64, f64)> = line.points.iter().map(|&(i, v)| (i as f64, v)).collect();
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
        .label(format!("width {}", line.width))
        .legend(move |(x, y)| {
            EmptyElement::at((x + 10, y))
                + PathElement::new(vec![(-10, 0), (10, 0)], color.stroke_width(2))
                + marker_shape(marker, color)
        });
    // A marker on every few points keeps lines of the same colour family apart in print.
    let step = (points.len() / 10).max(1);
    chart.draw_series(
        points
            .iter()
            .step_by(step)
            .map(|&p| EmptyElement::at(p) + marker_shape(marker, color)),
    )?;
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 13))
        .border_style(BLACK.mix(0.4))
        .background_style(WHITE.mix(0.85))
        .draw()?;
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

    #[test]
    fn history_plots_one_panel_per_method_and_one_line_per_width() {
        let line = |panel: &str, width, points: Vec<(u64, f64)>| HistoryLine {
            panel: panel.into(),
            width,
            points,
        };
        let lines = [
            line("burgers, dcgd", 64, vec![(0, -0.5), (100, -0.1)]),
            line("burgers, dcgd", 512, vec![(0, -0.4), (100, 0.0)]),
            line("burgers, modsync+dcgd", 512, vec![(0, -0.3), (100, -0.2)]),
        ];
        let svg = history_svg("t", "cos_rb", &lines).unwrap();
        for text in [
            "burgers, dcgd",
            "burgers, modsync+dcgd",
            "width 64",
            "width 512",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Widths keep their colour across panels: 512 is the second width everywhere.
        let second = format!(
            "#{:02X}{:02X}{:02X}",
            ticks::style(1).0.0,
            ticks::style(1).0.1,
            ticks::style(1).0.2
        );
        assert_eq!(svg.matches(&second).count() >= 2, true, "{second}");
        assert!(history_svg("none", "x", &[]).is_ok());
    }

    #[test]
    fn single_point_and_empty_plots_work() {
        let pts = [point("adam", 10, 0.5, 0.0)];
        assert!(scaling_svg("one", &[&pts[0]]).is_ok());
        assert!(scaling_svg("none", &[]).is_ok());
    }
}
