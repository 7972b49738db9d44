//! `modsync worker`: lease and train jobs until SIGTERM/Ctrl-C, then checkpoint and release.

use anyhow::Result;
use clap::Args;

use embedded::shutdown_signal;
use worker::hostname;

use crate::client::{ClientArgs, runtime};

/// Where a worker trains and how much at once: `modsync worker`'s and `sweep run`'s local
/// workers' flags, declared once.
#[derive(Args)]
pub struct SlotArgs {
    /// Packs trained at the same time, each on a thread of its own.
    #[arg(long, default_value_t = 1)]
    pub slots: usize,
    /// Jobs of one shape (PDE, width, depth, precision) each slot trains together in one
    /// batched step; a finished job's place goes to the next compatible job at once. See the
    /// "Packs" section of docs/operations.md for how to pick it on a GPU.
    #[arg(long, default_value_t = worker::DEFAULT_PACK, value_name = "K")]
    pub pack: usize,
    /// cpu (Burn's pure-Rust CPU backend); cuda:N (LibTorch on CUDA device N) and cpu-tch
    /// (LibTorch on the CPU) need a modsync built with --features tch. Slots share the device.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl SlotArgs {
    /// Refuses a bad value before anything starts, naming its flag.
    pub fn check(&self) -> Result<()> {
        worker::parse_device(&self.device)?;
        worker::check_slots(self.slots, self.pack)
    }
}

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    slots: SlotArgs,
    /// Name of this worker in leases and the `workers` table (default: HOST-PID).
    #[arg(long)]
    worker_id: Option<String>,
    /// Exit (status 0) once each slot has gone this many seconds without a job, so a batch
    /// job stops holding its GPU when the queue is empty. Default: poll for ever.
    #[arg(long, env = "MODSYNC_EXIT_WHEN_IDLE", value_name = "SECS")]
    exit_when_idle: Option<u64>,
}

pub fn run(args: WorkerArgs) -> Result<()> {
    // Checked before the runtime starts so a bad flag fails at once.
    args.slots.check()?;
    if args.exit_when_idle == Some(0) {
        anyhow::bail!("invalid --exit-when-idle: must be at least 1 second");
    }
    let host = hostname();
    let config = worker::WorkerConfig {
        coordinator: args.client.coordinator.clone(),
        token: args.client.token()?,
        tls_ca: args.client.tls_ca.clone(),
        slots: args.slots.slots,
        pack: args.slots.pack,
        device: args.slots.device,
        worker_id: args
            .worker_id
            .unwrap_or_else(|| format!("{host}-{}", std::process::id())),
        host,
        exit_when_idle: args.exit_when_idle.map(std::time::Duration::from_secs),
    };
    // A bad URL, CA file or token (or TLS flags that do not match the URL) fails at once too:
    // `worker::run` connects before it starts any slot.
    runtime()?.block_on(worker::run(config, shutdown_signal()))
}
