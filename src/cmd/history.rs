//! `modsync history SWEEP --metric M [--method X]… [--out DIR] [--db FILE]`: one metric of the
//! metric rows over the iterations, per method and width — the median over seeds with the
//! seeds' range — as `DIR/<metric>.csv` and `DIR/<metric>.svg` ([`report::history`] says
//! what is drawn, for a metric, a diagnostic and a kind of diagnostics).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use report::files::{prepare_dir, write_atomic};
use report::history::{Request, history};
use trainer_core::diagnostic_kind::DiagnosticKind;
use trainer_core::real_metrics_columns;

use crate::source::SourceArgs;

/// `--metric`'s help, naming the columns and the kinds.
fn metric_help() -> String {
    let columns: Vec<&str> = real_metrics_columns().collect();
    let kinds: Vec<&str> = DiagnosticKind::ALL.iter().map(|k| k.name()).collect();
    format!(
        "A metric column ({}), a diagnostic of the metric rows (cos_rb, norm_g_r, norm_g_b, \
         kept_frac_l0, …), or a kind of diagnostics ({}): then every diagnostic of that kind, one \
         panel per method and width, one line per diagnostic, on the kind's axis (fractions \
         0..1, norms log, resets as marks), and a `member` column in the CSV",
        columns.join(", "),
        kinds.join(", ")
    )
}

#[derive(Args)]
pub struct HistoryArgs {
    /// Sweep id (its name).
    sweep: String,
    #[arg(long, help = metric_help())]
    metric: String,
    /// Only these methods (repeatable; default: every method of the sweep).
    #[arg(long = "method")]
    methods: Vec<String>,
    /// Plot |metric| (e.g. for a cosine near 0 on a log axis); default: the value as it is.
    #[arg(long)]
    abs: bool,
    /// One line per seed (a panel per method and seed) instead of the median over seeds;
    /// writes <metric>_per_seed.csv/.svg.
    #[arg(long)]
    per_seed: bool,
    /// Directory for <metric>.csv and <metric>.svg.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    source: SourceArgs,
}

pub fn run(args: HistoryArgs) -> Result<()> {
    report::history::check_metric(&args.metric)?;
    prepare_dir(&args.out, "--out")?;
    let mut source = args.source.open()?;
    let files = history(
        &mut source,
        &Request {
            sweep: &args.sweep,
            metric: &args.metric,
            methods: &args.methods,
            abs: args.abs,
            per_seed: args.per_seed,
        },
    )?;
    let stem = &files.stem;
    write_atomic(&args.out.join(format!("{stem}.csv")), files.csv.as_bytes())?;
    write_atomic(&args.out.join(format!("{stem}.svg")), files.svg.as_bytes())?;
    eprintln!(
        "wrote {}/{stem}.csv and .svg ({} lines)",
        args.out.display(),
        files.lines
    );
    Ok(())
}
