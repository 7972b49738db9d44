//! The modsync worker: pulls jobs from the coordinator, trains them with trainer-core, and
//! reports back.
//!
//! A worker runs `slots` independent loops (`slot.rs`). Each keeps a pack of up to `pack` jobs
//! of one pack key training on one thread of its own (`pack_host.rs`; training is CPU-heavy and
//! blocking): it leases up to the free places in one `LeaseJob` call, and leases again whenever
//! a job ends (continuous batching). Each leased job has an async task of its own (`job.rs`) that
//! heartbeats every `heartbeat_ms` of the job, ships metric rows and every checkpoint with
//! `ReportProgress`, and finally sends `CompleteJob` (finished or diverged) or `FailJob` (bad
//! config, trainer error, panic) — with its own lease and fencing token, exactly as a job trained
//! alone. A job that comes with a checkpoint resumes from it: its iteration counter continues
//! where the last attempt stopped, whatever pack it trained in before.
//!
//! Stopping: when the shutdown future resolves (SIGTERM, Ctrl-C), every running job asks its
//! network to stop, sends the final checkpoint and releases the lease, so another worker picks
//! the job up from there and no attempt is counted. A heartbeat answered with `cancel` (the sweep
//! was cancelled) stops and releases the same way. A write refused with `FAILED_PRECONDITION`
//! means this lease was taken over: the job is abandoned without another word to the
//! coordinator, because the new holder owns it now.
//!
//! Failures of the coordinator itself are waited out: every call is retried with capped
//! exponential backoff (100 ms → 5 s), and a finished result is re-sent until the coordinator
//! accepts or definitively refuses it. Only a refused token ends the worker with an error.

mod job;
mod observer;
mod pack_host;
mod slot;

#[doc(hidden)]
pub use pack_host::PANIC_NEXT_STEP_OF_PACK;

use std::future::Future;
use std::sync::Arc;

use anyhow::{Result, bail};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use trainer_core::TrainConfig;

/// Everything a worker process needs to know. `Debug` shows whether a token is set, never the
/// token.
#[derive(Clone)]
pub struct WorkerConfig {
    /// The coordinator's URL, e.g. `http://10.0.0.5:50051`.
    pub coordinator: String,
    /// Bearer token sent on every call, when the coordinator requires one.
    pub token: Option<String>,
    /// CA certificate (PEM) to trust for an `https://` coordinator; see `modsync_client::connect_with`.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Packs trained at the same time by this process, each on a thread of its own.
    pub slots: usize,
    /// Most jobs (networks) one slot trains together in one batched step; 1: one at a time.
    pub pack: usize,
    /// Device name: `cpu` (Burn's pure-Rust CPU backend). `cuda:N` and `cpu-tch` need the `tch`
    /// feature.
    pub device: String,
    /// Identifies this worker in leases and the coordinator's `workers` table; unique per process.
    pub worker_id: String,
    /// Stop (exit 0) once no slot has had a job for this long, so batch jobs holding a GPU end
    /// when the queue is empty. `None`: poll for ever.
    pub exit_when_idle: Option<std::time::Duration>,
    /// The machine's name, shown in `workers`.
    pub host: String,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("coordinator", &self.coordinator)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls_ca", &self.tls_ca)
            .field("exit_when_idle", &self.exit_when_idle)
            .field("slots", &self.slots)
            .field("pack", &self.pack)
            .field("device", &self.device)
            .field("worker_id", &self.worker_id)
            .field("host", &self.host)
            .finish()
    }
}

/// `--pack` when none is given. On the CPU backend a pack trains no more network-steps per core
/// than one network does (the step is compute-bound: +0-6 % per thread, bench/README.md,
/// "Benchmark: packs"), while it delays every result of the pack to the pack's end: one network
/// per slot.
/// GPU users raise it (docs/operations.md, "Packs").
pub const DEFAULT_PACK: usize = 1;

/// Most jobs one slot packs together: the coordinator's limit per lease.
pub const MAX_PACK: usize = modsync_proto::MAX_LEASE_JOBS as usize;

/// Checkpoint interval used when a job's config leaves `checkpoint_every` at 0: ten evaluations.
/// A crash then loses at most that much training, and the checkpoint traffic stays small next to
/// the training time (a checkpoint is three f64 copies of the parameters).
pub fn default_checkpoint_every(config: &TrainConfig) -> u64 {
    config.eval_every.saturating_mul(10).max(1)
}

/// Turns a `--device` name into a Burn device, or says why it cannot (see
/// [`trainer_core::device`]: `cpu`, and with the `tch` feature `cuda:N` and `cpu-tch`).
pub fn parse_device(name: &str) -> Result<burn::tensor::Device> {
    Ok(trainer_core::parse_device(name)?)
}

/// Refuses a slot count or pack size a worker cannot run, naming the flag: `run` checks it, and
/// the CLI before anything starts (`sweep run` before it creates its store).
pub fn check_slots(slots: usize, pack: usize) -> Result<()> {
    if slots == 0 {
        bail!("invalid --slots: must be at least 1");
    }
    if pack == 0 || pack > MAX_PACK {
        bail!("invalid --pack: must be in 1..={MAX_PACK}, got {pack}");
    }
    Ok(())
}

/// Runs a worker until `shutdown` resolves, then checkpoints and releases every running job and
/// returns. Returns an error at once for a bad device, slot count or URL, and later only when the
/// coordinator refuses this worker's token.
pub async fn run(config: WorkerConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    check_slots(config.slots, config.pack)?;
    if config.worker_id.is_empty() {
        bail!("invalid --worker-id: must not be empty");
    }
    let device = parse_device(&config.device)?;
    let client = modsync_client::connect_with(
        &config.coordinator,
        config.token.as_deref(),
        config.tls_ca.as_deref(),
    )?;
    let stop = CancellationToken::new();
    let config = Arc::new(config);
    let mut slots = JoinSet::new();
    for index in 0..config.slots {
        slots.spawn(
            slot::Slot {
                index,
                client: client.clone(),
                config: config.clone(),
                device: device.clone(),
                shutdown: stop.clone(),
            }
            .run(),
        );
    }
    tracing::info!(
        worker_id = %config.worker_id,
        slots = config.slots,
        pack = config.pack,
        coordinator = %config.coordinator,
        "worker started"
    );
    tokio::pin!(shutdown);
    let mut first_error: Option<anyhow::Error> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown, if !stop.is_cancelled() => {
                tracing::info!("shutting down: stopping running jobs, checkpointing, releasing leases");
                stop.cancel();
            }
            joined = slots.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    first_error.get_or_insert(e);
                    stop.cancel();
                }
                Some(Err(e)) => {
                    first_error.get_or_insert(anyhow::anyhow!("worker slot crashed: {e}"));
                    stop.cancel();
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// This machine's name, for the coordinator's `workers` table.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let c = WorkerConfig {
            coordinator: "https://h:1".into(),
            token: Some("hunter2".into()),
            tls_ca: None,
            slots: 1,
            pack: 1,
            device: "cpu".into(),
            worker_id: "w".into(),
            exit_when_idle: None,
            host: "h".into(),
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn devices() {
        assert!(parse_device("cpu").is_ok());
        let e = parse_device("gpu").unwrap_err().to_string();
        assert!(e.starts_with("invalid --device: unknown device"), "{e}");
        if !trainer_core::device::HAS_TCH {
            let e = parse_device("cuda:0").unwrap_err().to_string();
            assert_eq!(
                e,
                "invalid --device: device cuda:0 needs a modsync built with --features tch (this build has only cpu)"
            );
            let e = parse_device("cpu-tch").unwrap_err().to_string();
            assert!(e.contains("--features tch"), "{e}");
        } else {
            assert!(parse_device("cpu-tch").is_ok());
        }
    }

    #[test]
    fn default_checkpoint_interval() {
        let c = TrainConfig {
            eval_every: 100,
            ..TrainConfig::default()
        };
        assert_eq!(default_checkpoint_every(&c), 1000);
    }
}
