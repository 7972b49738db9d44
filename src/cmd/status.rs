//! `modsync status [SWEEP]`: job counts by state, of one sweep or of every sweep.

use anyhow::Result;
use clap::Args;
use modsync_proto::{GetSweepRequest, ListSweepsRequest, SweepSummary};

use crate::client::ClientArgs;
use crate::cmd::sql::format_table;

#[derive(Args)]
pub struct StatusArgs {
    /// Sweep id (its name); all sweeps when left out.
    sweep: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: StatusArgs) -> Result<()> {
    let (rt, mut client) = args.client.connect()?;
    let sweeps = match &args.sweep {
        Some(id) => vec![
            rt.block_on(client.get_sweep(GetSweepRequest {
                sweep_id: id.clone(),
            }))
            .map_err(|s| args.client.error("status", s))?
            .into_inner(),
        ],
        None => {
            rt.block_on(client.list_sweeps(ListSweepsRequest {}))
                .map_err(|s| args.client.error("status", s))?
                .into_inner()
                .sweeps
        }
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
