//! The capacity-scaling plot: relative L2 vs width, both axes logarithmic, one line per method
//! (the mean over seeds) with error bars (mean ± std; where mean − std ≤ 0, which a log axis
//! cannot show, the bar goes down to the smallest seed's value instead). SVG only, so no fonts
//! or native libraries are needed.

use anyhow::{Result, anyhow};
use modsync_proto::CurvePoint;
use plotters::prelude::*;

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

/// A log-axis range around `lo..hi` with some margin, never empty.
fn log_range(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && lo > 0.0 && hi >= lo {
        (lo, hi)
    } else {
        (1e-3, 1.0)
    };
    lo / 1.5..hi * 1.5
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
    let xs = points.iter().map(|p| p.width as f64);
    let x = log_range(
        xs.clone().fold(f64::INFINITY, f64::min),
        xs.fold(0.0, f64::max),
    );
    let (ylo, yhi) = points
        .iter()
        .map(|p| bar(p))
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), (l, h)| {
            (lo.min(l), hi.max(h))
        });
    let y = log_range(ylo, yhi);

    let root = SVGBackend::with_string(svg, (800, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x.log_scale(), y.log_scale())?;
    chart
        .configure_mesh()
        .x_desc("width (hidden units per layer)")
        .y_desc("relative L2 (mean over seeds)")
        .y_labels(8)
        .y_label_formatter(&|v| format!("{v:.1e}"))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for (i, method) in methods.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
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
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(line.iter().map(|p| {
            let (lo, hi) = bar(p);
            ErrorBar::new_vertical(p.width as f64, lo, p.mean, hi, color.stroke_width(1), 8)
        }))?;
        chart.draw_series(
            line.iter()
                .map(|p| Circle::new((p.width as f64, p.mean), 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    root.present()?;
    Ok(())
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

    #[test]
    fn single_point_and_empty_plots_work() {
        let pts = [point("adam", 10, 0.5, 0.0)];
        assert!(scaling_svg("one", &[&pts[0]]).is_ok());
        assert!(scaling_svg("none", &[]).is_ok());
    }
}
