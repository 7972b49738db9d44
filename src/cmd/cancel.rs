//! `modsync cancel SWEEP`: queued jobs become cancelled; running ones stop at their next heartbeat.

use anyhow::Result;
use clap::Args;
use modsync_proto::CancelSweepRequest;

use crate::client::ClientArgs;
use crate::cmd::status::summary_table;

#[derive(Args)]
pub struct CancelArgs {
    /// Sweep id (its name).
    sweep: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: CancelArgs) -> Result<()> {
    let (rt, mut client) = args.client.connect()?;
    let summary = rt
        .block_on(client.cancel_sweep(CancelSweepRequest {
            sweep_id: args.sweep.clone(),
        }))
        .map_err(|s| args.client.error("cancel", s))?
        .into_inner();
    print!("{}", summary_table(&[summary]));
    Ok(())
}
