//! `modsync submit FILE`: validate a sweep file and send it; prints the sweep id on stdout.

use anyhow::Result;
use clap::Args;
use modsync_proto::SubmitSweepRequest;

use crate::client::ClientArgs;
use crate::cmd::SweepFileArgs;

#[derive(Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    sweep: SweepFileArgs,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: SubmitArgs) -> Result<()> {
    // Validated here first: a bad file is refused before anything is sent or written.
    let sweep = args.sweep.load()?;
    let (rt, mut client) = args.client.connect()?;
    let response = rt
        .block_on(client.submit_sweep(SubmitSweepRequest {
            spec: Some(sweep.spec),
        }))
        .map_err(|s| args.client.error("submit", s))?
        .into_inner();
    eprintln!(
        "sweep {}: {} jobs, {} created",
        response.sweep_id, response.jobs_total, response.jobs_created
    );
    println!("{}", response.sweep_id);
    Ok(())
}
