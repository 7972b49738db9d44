//! `modsync retry SWEEP`: failed and cancelled jobs go back to the queue with fresh attempts.

use anyhow::Result;
use clap::Args;
use modsync_proto::RetryFailedRequest;

use crate::client::ClientArgs;
use crate::cmd::status::summary_table;

#[derive(Args)]
pub struct RetryArgs {
    /// Sweep id (its name).
    sweep: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: RetryArgs) -> Result<()> {
    let (rt, mut client) = args.client.connect()?;
    let summary = rt
        .block_on(client.retry_failed(RetryFailedRequest {
            sweep_id: args.sweep.clone(),
        }))
        .map_err(|s| args.client.error("retry", s))?
        .into_inner();
    print!("{}", summary_table(&[summary]));
    Ok(())
}
