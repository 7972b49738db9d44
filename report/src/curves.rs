//! The capacity-scaling curves of a sweep as the CLI gives them (`modsync curves`, the end of
//! `sweep run`): a table on the terminal, and per PDE `<pde>.csv` (the dashboard's curves.csv)
//! and `<pde>.svg` (the dashboard's chart, [`dashboard::scaling`]).

use std::path::Path;

use anyhow::Result;
use dashboard::scaling::{self, Cell, Line, distinct};
use dashboard::sheet::sheet;
use modsync_proto::CurvePoint;

use crate::files::write_atomic;
use crate::table::format_table;

/// Prints the table and, with `out`, writes the CSV and SVG files.
pub fn report(sweep: &str, points: &[CurvePoint], out: Option<&Path>) -> Result<()> {
    if points.is_empty() {
        eprintln!("sweep {sweep} has no finished jobs yet");
        return Ok(());
    }
    print!("{}", table(points));
    if let Some(dir) = out {
        // Every line of the sweep: a method keeps its colour across the PDEs' charts.
        let lines = distinct(
            points
                .iter()
                .map(|p| (p.method.as_str(), p.series.as_str())),
        );
        for pde in distinct(points.iter().map(|p| p.pde.as_str())) {
            let of_pde: Vec<&CurvePoint> = points.iter().filter(|p| p.pde == pde).collect();
            write_atomic(&dir.join(format!("{pde}.csv")), to_csv(&of_pde).as_bytes())?;
            let svg = chart(&format!("{sweep}: {pde}"), &lines, &of_pde);
            write_atomic(&dir.join(format!("{pde}.svg")), svg.as_bytes())?;
        }
        eprintln!("wrote {}/<pde>.csv and .svg", dir.display());
    }
    Ok(())
}

/// One PDE's chart as an SVG file: the median over seeds with the min–max band.
fn chart(title: &str, lines: &[Line], points: &[&CurvePoint]) -> String {
    let cells: Vec<Cell> = points
        .iter()
        .map(|p| Cell {
            line: (&p.method, &p.series),
            width: p.width,
            median: p.median,
            min: p.min,
            max: p.max,
        })
        .collect();
    let y_label = "relative L2 (best), median over seeds";
    sheet(
        title,
        &[scaling::chart(title, y_label, lines, &cells, &[])],
        1,
    )
}

/// The curve points as CSV, every number in shortest round-trip form (exact): the dashboard's
/// curves.csv, one PDE.
pub fn to_csv(points: &[&CurvePoint]) -> String {
    dashboard::csv::curves(points)
}

/// The printed table: four significant digits; a `series` column only for a sweep with extra
/// axes or variants.
pub fn table(points: &[CurvePoint]) -> String {
    let with_series = points.iter().any(|p| !p.series.is_empty());
    let mut headers = vec!["pde", "method"];
    if with_series {
        headers.push("series");
    }
    headers.extend(["width", "n", "mean", "std", "median", "min"]);
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            let series = with_series.then(|| p.series.clone());
            [p.pde.clone(), p.method.clone()]
                .into_iter()
                .chain(series)
                .chain([
                    p.width.to_string(),
                    p.n.to_string(),
                    format!("{:.4e}", p.mean),
                    format!("{:.4e}", p.std),
                    format!("{:.4e}", p.median),
                    format!("{:.4e}", p.min),
                ])
                .collect()
        })
        .collect();
    format_table(&headers, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(pde: &str, method: &str, width: u64, median: f64) -> CurvePoint {
        CurvePoint {
            pde: pde.into(),
            method: method.into(),
            width,
            n: 3,
            // Not the median, so that a chart of means would be seen.
            mean: 3.0 * median,
            std: 0.1 * median,
            median,
            min: 0.5 * median,
            max: 2.0 * median,
            series: String::new(),
        }
    }

    /// The points of the `d` attribute of the first `<path class="{class}"` in `svg`.
    fn path(svg: &str, class: &str) -> Vec<(f64, f64)> {
        let at = svg.find(&format!(r#"<path class="{class}" d=""#)).unwrap();
        let d = svg[at..].split('"').nth(3).unwrap();
        d.trim_end_matches('Z')
            .split(['M', 'L'])
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    /// The part of `svg` that draws the line named `name`.
    fn series<'a>(svg: &'a str, name: &str) -> &'a str {
        let start = svg.find(&format!(r#"data-series="{name}""#)).unwrap();
        &svg[start..start + svg[start..].find("</g>").unwrap()]
    }

    #[test]
    fn a_chart_draws_each_method_through_its_medians_with_the_seeds_band() {
        let points = vec![
            point("burgers", "adam", 64, 0.3),
            point("burgers", "adam", 512, 0.4),
            point("burgers", "dcgd", 64, 0.2),
            point("burgers", "dcgd", 512, 0.6),
            point("helmholtz2d", "dcgd", 64, 0.1),
        ];
        let lines = distinct(
            points
                .iter()
                .map(|p| (p.method.as_str(), p.series.as_str())),
        );
        let burgers: Vec<&CurvePoint> = points.iter().filter(|p| p.pde == "burgers").collect();
        let svg = chart("s: burgers", &lines, &burgers);
        for method in ["adam", "dcgd"] {
            // On the log axis the median (m) lies halfway between the band's max (2m) and min
            // (m/2): the line runs through the middle of its band at every width.
            let s = series(&svg, method);
            let (line, band) = (path(s, "line"), path(s, "band"));
            assert_eq!((line.len(), band.len()), (2, 4), "{s}");
            for (i, (x, y)) in line.iter().enumerate() {
                let (top, bottom) = (band[i], band[band.len() - 1 - i]);
                assert_eq!((top.0, bottom.0), (*x, *x), "{s}");
                assert!((y - (top.1 + bottom.1) / 2.0).abs() <= 0.1, "{s}");
            }
        }
        assert!(svg.starts_with("<svg") && svg.contains(dashboard::sheet::CHART_CSS));
        // dcgd is the second line of the sweep: its colour in the helmholtz2d chart too, where
        // it is the only line.
        let helmholtz: Vec<&CurvePoint> =
            points.iter().filter(|p| p.pde == "helmholtz2d").collect();
        let other = chart("s: helmholtz2d", &lines, &helmholtz);
        let colour = |svg: &str| {
            let s = series(svg, "dcgd");
            s[s.find("color:").unwrap()..][..13].to_string()
        };
        assert_eq!(colour(&svg), colour(&other));
        assert!(!other.contains(r#"data-series="adam""#));
    }
}
