//! `modsync curves SWEEP [--out DIR] [--db FILE]`: the capacity-scaling curves (per pde, method,
//! series (a sweep's extra axes and variants, when it has them) and width:
//! n, mean, std, median, min of the best relative L2 over seeds) as a table, and with `--out`
//! as `DIR/<pde>.csv` and `DIR/<pde>.svg` ([`report::curves`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use report::files::prepare_dir;

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
    report::curves::report(&args.sweep, &points, args.out.as_deref())
}
