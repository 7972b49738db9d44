//! `modsync worker`: lease and train jobs until SIGTERM/Ctrl-C, then checkpoint and release.

use anyhow::Result;
use clap::Args;

use crate::client::{ClientArgs, hostname, runtime, shutdown_signal};

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Jobs trained at the same time.
    #[arg(long, default_value_t = 1)]
    slots: usize,
    /// cpu (Burn's CPU backend); cuda:N and cpu-tch need a build with --features tch.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Name of this worker in leases and the `workers` table (default: HOST-PID).
    #[arg(long)]
    worker_id: Option<String>,
}

pub fn run(args: WorkerArgs) -> Result<()> {
    let host = hostname();
    let config = worker::WorkerConfig {
        coordinator: args.client.coordinator.clone(),
        token: args.client.token.clone(),
        slots: args.slots,
        device: args.device,
        worker_id: args
            .worker_id
            .unwrap_or_else(|| format!("{host}-{}", std::process::id())),
        host,
    };
    // Checked before the runtime starts so a bad flag fails at once.
    worker::parse_device(&config.device)?;
    runtime()?.block_on(worker::run(config, shutdown_signal()))
}
