//! The capacity-scaling chart, drawn the same way on the sweep page and in the CLI's files
//! (`modsync curves --out`, `sweep run`): error against width, log–log, per line (a method, or
//! a method and a series of a sweep with extra axes) the median over seeds with the min–max
//! band, and where the caller has them each seed as a dot.

use crate::svg::{self, Chart, Scale, Series};
use crate::ticks;

/// A line of the chart: (method, series); the series is empty in a sweep without axes.
pub type Line<'a> = (&'a str, &'a str);

/// One cell's statistics over its seeds.
pub struct Cell<'a> {
    pub line: Line<'a>,
    pub width: u64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// One seed's value, with its tooltip.
pub struct Dot<'a> {
    pub line: Line<'a>,
    pub width: u64,
    pub value: f64,
    pub tip: String,
}

/// `items` without repeats, in order of first appearance: a chart's PDEs, lines or panels
/// (a method keeps its colour and place in every PDE's chart).
pub fn distinct<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen: Vec<T> = Vec::new();
    for i in items {
        if !seen.contains(&i) {
            seen.push(i);
        }
    }
    seen
}

/// A line's name in legends and tables: `method`, or `method · series`.
pub fn line_name((method, series): Line) -> String {
    if series.is_empty() {
        method.to_string()
    } else {
        format!("{method} · {series}")
    }
}

/// The chart of `cells` (one PDE). `lines` fixes each line's colour and marker by its place,
/// so one method looks the same in every PDE's chart; a line without cells is left out.
pub fn chart(title: &str, y_label: &str, lines: &[Line], cells: &[Cell], dots: &[Dot]) -> String {
    let mut widths: Vec<f64> = cells.iter().map(|c| c.width as f64).collect();
    widths.sort_by(f64::total_cmp);
    widths.dedup();
    let series: Vec<Series> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let mut of: Vec<&Cell> = cells.iter().filter(|c| c.line == *line).collect();
            if of.is_empty() {
                return None;
            }
            of.sort_by_key(|c| c.width);
            let (color, marker) = ticks::style(i);
            Some(Series {
                name: line_name(*line),
                color,
                marker,
                points: of
                    .iter()
                    .map(|c| (c.width as f64, Some(c.median)))
                    .collect(),
                markers: true,
                band: of.iter().map(|c| (c.width as f64, c.min, c.max)).collect(),
                dots: dots
                    .iter()
                    .filter(|d| d.line == *line)
                    .map(|d| (d.width as f64, d.value, d.tip.clone()))
                    .collect(),
            })
        })
        .collect();
    svg::render(
        &Chart {
            class: "scaling",
            title,
            x_label: "width (hidden units per layer)",
            y_label,
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            x_ticks: (widths.len() <= 12).then_some(widths),
        },
        &series,
    )
}
