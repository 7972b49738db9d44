//! `modsync status [SWEEP] [--db FILE]`: job counts by state, of one sweep or of every sweep.

use anyhow::Result;
use clap::Args;
use modsync_proto::SweepSummary;

use crate::source::SourceArgs;
use report::table::format_table;

#[derive(Args)]
pub struct StatusArgs {
    /// Sweep id (its name); all sweeps when left out.
    sweep: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
}

pub fn run(args: StatusArgs) -> Result<()> {
    let mut source = args.source.open()?;
    let sweeps = match &args.sweep {
        Some(id) => vec![source.get_sweep("status", id)?],
        None => source.list_sweeps("status")?,
    };
    print!("{}", summary_table(&sweeps));
    Ok(())
}

/// One row per sweep: counts by state.
pub fn summary_table(sweeps: &[SweepSummary]) -> String {
    let headers = [
        "sweep",
        "total",
        "queued",
        "running",
        "done",
        "failed",
        "cancelled",
    ];
    let rows: Vec<Vec<String>> = sweeps
        .iter()
        .map(|s| {
            vec![
                s.sweep_id.clone(),
                s.total.to_string(),
                s.queued.to_string(),
                s.running.to_string(),
                s.done.to_string(),
                s.failed.to_string(),
                s.cancelled.to_string(),
            ]
        })
        .collect();
    format_table(&headers, &rows)
}
