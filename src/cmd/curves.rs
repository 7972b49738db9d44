//! `modsync curves SWEEP [--out DIR] [--db FILE]`: the capacity-scaling curves (per pde, method,
//! series (a sweep's extra axes and variants, when it has them) and width:
//! n, mean, std, median, min of the best relative L2 over seeds) as a table, and with `--out`
//! as `DIR/<pde>.csv` and `DIR/<pde>.svg`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use modsync_proto::CurvePoint;

use crate::cmd::sql::format_table;
use crate::output::{prepare_dir, write_atomic};
use crate::plot;
use crate::source::SourceArgs;

#[derive(Args)]
pub struct CurvesArgs {
    /// Sweep id (its name).
    sweep: String,
    /// Directory for one CSV and one SVG plot per PDE.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    source: SourceArgs,
}

pub fn run(args: CurvesArgs) -> Result<()> {
    if let Some(dir) = &args.out {
        prepare_dir(dir, "--out")?;
    }
    let points = args.source.open()?.curves("curves", &args.sweep)?;
    report(&args.sweep, &points, args.out.as_deref())
}

/// Prints the table and, with `out`, writes the CSV and SVG files (shared with `sweep run`).
pub fn report(sweep: &str, points: &[CurvePoint], out: Option<&Path>) -> Result<()> {
    if points.is_empty() {
        eprintln!("sweep {sweep} has no finished jobs yet");
        return Ok(());
    }
    print!("{}", table(points));
    if let Some(dir) = out {
        for pde in pdes(points) {
            let of_pde: Vec<&CurvePoint> = points.iter().filter(|p| p.pde == pde).collect();
            write_atomic(&dir.join(format!("{pde}.csv")), to_csv(&of_pde).as_bytes())?;
            let svg = plot::scaling_svg(&format!("{sweep}: {pde}"), &of_pde)?;
            write_atomic(&dir.join(format!("{pde}.svg")), svg.as_bytes())?;
        }
        eprintln!("wrote {}/<pde>.csv and .svg", dir.display());
    }
    Ok(())
}

/// The PDEs in order of first appearance.
fn pdes(points: &[CurvePoint]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for p in points {
        if !seen.contains(&p.pde) {
            seen.push(p.pde.clone());
        }
    }
    seen
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
