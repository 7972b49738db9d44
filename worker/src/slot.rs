//! One worker slot: keep a pack of up to `--pack` jobs training, until shutdown.
//!
//! Continuous batching: the slot leases jobs of one pack key (up to the free places in one
//! `LeaseJob` call), each leased job runs as a task of its own (`job.rs`) whose network joins
//! the slot's training thread (`pack_host.rs`), and whenever a job ends — finished, failed,
//! diverged, cancelled, lease lost — the slot leases a compatible job into its place. With
//! `--pack 1` (the default) this is one job at a time, as before packs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use burn::tensor::Device;
use modsync_client::{Backoff, Client, describe, is_auth_error, is_transient};
use modsync_proto::{Job, LeaseJobRequest};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::WorkerConfig;
use crate::job::JobRun;
use crate::pack_host::PackHost;

/// Longest wait between two `LeaseJob` calls while the queue (of the pack's key) is empty.
const IDLE_POLL_MAX: Duration = Duration::from_secs(1);

pub struct Slot {
    pub index: usize,
    pub client: Client,
    pub config: Arc<WorkerConfig>,
    pub device: Device,
    /// Cancelled when the worker shuts down (also by this slot, when it must stop with an error).
    pub shutdown: CancellationToken,
}

impl Slot {
    pub async fn run(mut self) -> Result<()> {
        let host = PackHost::spawn(self.device.clone(), self.index)?;
        let run = JobRun {
            slot: self.index,
            client: self.client.clone(),
            config: self.config.clone(),
            shutdown: self.shutdown.clone(),
            host,
        };
        let mut jobs: JoinSet<Result<()>> = JoinSet::new();
        // The pack key of the jobs in `jobs` (one key per pack); None while it is empty.
        let mut pack_key: Option<String> = None;
        let mut first_error: Option<anyhow::Error> = None;
        let mut idle = Backoff::new(Duration::from_millis(100), IDLE_POLL_MAX);
        let mut errors = Backoff::default();
        let mut unreachable_since: Option<Instant> = None;
        // Unreachable time counts as idle too: a worker whose coordinator is gone for good
        // should not hold its GPU for ever either.
        let mut busy_until = Instant::now();
        while !self.shutdown.is_cancelled() {
            if jobs.is_empty() {
                pack_key = None;
            } else {
                busy_until = Instant::now();
            }
            if let Some(limit) = self.config.exit_when_idle
                && jobs.is_empty()
                && busy_until.elapsed() >= limit
            {
                tracing::info!(
                    slot = self.index,
                    "no job for {} s (--exit-when-idle): slot done",
                    limit.as_secs_f64()
                );
                return Ok(());
            }
            let free = self.config.pack.saturating_sub(jobs.len());
            // How long to wait for a job to end before leasing again; None: until one ends.
            let mut wait = None;
            if free > 0 {
                match self.lease(free, pack_key.as_deref()).await {
                    Ok(leased) => {
                        if unreachable_since.take().is_some() {
                            tracing::info!(slot = self.index, "coordinator reachable again");
                        }
                        errors.reset();
                        if leased.len() < free {
                            wait = Some(idle.next_delay());
                        }
                        if !leased.is_empty() {
                            idle.reset();
                        }
                        for job in leased {
                            pack_key.get_or_insert_with(|| job.pack_key.clone());
                            jobs.spawn(run.clone().run(job));
                        }
                    }
                    Err(status) if is_auth_error(&status) => {
                        first_error.get_or_insert(anyhow::anyhow!(
                            "the coordinator refused this worker: {}",
                            describe(&status)
                        ));
                        break;
                    }
                    Err(status) if is_transient(&status) => {
                        if unreachable_since.is_none() {
                            tracing::warn!(
                                slot = self.index,
                                "coordinator unreachable, retrying with backoff: {}",
                                describe(&status)
                            );
                            unreachable_since = Some(Instant::now());
                        }
                        wait = Some(errors.next_delay());
                    }
                    Err(status) => {
                        first_error.get_or_insert(anyhow::anyhow!(
                            "LeaseJob failed: {}",
                            describe(&status)
                        ));
                        break;
                    }
                }
            }
            // Wait for a job to end (a place to fill), the delay, or shutdown.
            tokio::select! {
                Some(ended) = jobs.join_next(), if !jobs.is_empty() => {
                    // Idle time starts when the last job ends, not when it was last seen.
                    busy_until = Instant::now();
                    if let Err(e) = job_outcome(ended) {
                        first_error.get_or_insert(e);
                        break;
                    }
                }
                _ = sleep_or_forever(wait) => {}
                _ = self.shutdown.cancelled() => {}
            }
        }
        if first_error.is_some() {
            // Every slot stops; the jobs still running hand themselves back.
            self.shutdown.cancel();
        }
        // Shutdown: each running job stops its network, sends the final checkpoint and releases.
        while let Some(ended) = jobs.join_next().await {
            if let Err(e) = job_outcome(ended) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Leases up to `free` jobs, only of `pack_key` when the pack already has one. Not raced
    /// against shutdown: a lease granted while we stop must be seen, so that it is released at
    /// once (by its job task) instead of lingering until it expires.
    async fn lease(
        &mut self,
        free: usize,
        pack_key: Option<&str>,
    ) -> Result<Vec<Job>, tonic::Status> {
        let request = LeaseJobRequest {
            worker_id: self.config.worker_id.clone(),
            host: self.config.host.clone(),
            device: self.config.device.clone(),
            max_jobs: u32::try_from(free).unwrap_or(u32::MAX),
            pack_key: pack_key.unwrap_or_default().to_string(),
        };
        let answer = self.client.lease_job(request).await?.into_inner();
        Ok(answer.job.into_iter().chain(answer.more).collect())
    }
}

/// A job task's end: its error (a refused token) or its panic, which stop the worker.
fn job_outcome(ended: Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    match ended {
        Ok(outcome) => outcome,
        Err(e) => bail!("a job task crashed: {e}"),
    }
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
