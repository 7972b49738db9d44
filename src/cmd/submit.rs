//! `modsync submit FILE`: validate a sweep file and send it; prints the sweep id on stdout.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Args;
use modsync_proto::SubmitSweepRequest;

use crate::client::ClientArgs;

#[derive(Args)]
pub struct SubmitArgs {
    /// Sweep file (TOML): name, [grid] axes, [train] settings; see examples/quick.toml.
    file: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: SubmitArgs) -> Result<()> {
    // Validated here first: a bad file is refused before anything is sent or written.
    let sweep = coordinator::sweep_file::load(&args.file).map_err(|e| anyhow!(e))?;
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
