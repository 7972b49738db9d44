//! One leased job, from lease to result: hands its network to the slot's training thread,
//! heartbeats, ships metric rows and checkpoints, and ends with CompleteJob, FailJob or
//! ReleaseJob — or with nothing at all when its lease was taken over.
//!
//! This async side owns every RPC; the training thread (`pack_host.rs`) never waits on the
//! network. That split keeps heartbeats on time however long a step takes, and lets one thread
//! train a whole pack while each of its jobs keeps its own lease, token, checkpoints and result.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use modsync_client::{Backoff, Client, describe, is_auth_error, is_transient};
use modsync_proto::{
    CompleteJobRequest, FailJobRequest, HeartbeatRequest, Job, MetricRow, ReleaseJobRequest,
    ReportProgressRequest,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};
use trainer_core::{Checkpoint, RunResult, RunStatus, TrainConfig};

use crate::WorkerConfig;
use crate::observer::{Control, Event};
use crate::pack_host::{Joining, PackHost, Start};

/// How long a stopping worker keeps trying to hand back a job (final checkpoint, release)
/// before it gives up and lets the lease expire instead.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What one job needs besides its lease: the slot's connection, settings and training thread.
#[derive(Clone)]
pub struct JobRun {
    pub slot: usize,
    pub client: Client,
    pub config: Arc<WorkerConfig>,
    /// Cancelled when the worker shuts down.
    pub shutdown: CancellationToken,
    pub host: PackHost,
}

/// Why a running job is being stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    /// The worker is shutting down: checkpoint and release.
    Shutdown,
    /// The coordinator answered a heartbeat with `cancel`: release.
    Cancelled,
    /// A write was refused with FAILED_PRECONDITION: someone else owns the job now.
    LeaseLost,
    /// The coordinator refused our token: the whole worker stops with an error.
    Unauthenticated,
}

/// Data produced by the trainer and not yet accepted by the coordinator.
#[derive(Default)]
struct Pending {
    metrics: Vec<MetricRow>,
    /// Only the newest checkpoint matters; an older unsent one is replaced.
    checkpoint: Option<(Vec<u8>, u64)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.checkpoint.is_none()
    }

    /// The coordinator accepted a report of the first `rows` metric rows (and, when they were
    /// all of them, the checkpoint): forget what it has.
    fn sent(&mut self, rows: usize) {
        if rows >= self.metrics.len() {
            self.checkpoint = None;
        }
        self.metrics.drain(..rows.min(self.metrics.len()));
    }
}

/// The identity every write after the lease carries.
#[derive(Clone)]
struct Lease {
    job_id: i64,
    token: i64,
    lease_ms: u64,
}

impl JobRun {
    /// Trains one leased job to its end and reports the outcome. Errors only for a refused token.
    pub async fn run(mut self, job: Job) -> Result<()> {
        let lease = Lease {
            job_id: job.job_id,
            token: job.token,
            lease_ms: job.lease_ms,
        };
        let heartbeat = Duration::from_millis(job.heartbeat_ms.clamp(50, 60_000));
        let start = match prepare(&job) {
            Ok(start) => start,
            Err(error) => {
                tracing::warn!(job_id = job.job_id, "job cannot run: {error}");
                return self.finish_failed(&lease, error).await;
            }
        };
        let (config, resume_at) = match &start {
            Start::Fresh(c) => ((**c).clone(), 0),
            Start::Resume(ck) => (ck.config.clone(), ck.iter),
        };
        tracing::info!(
            slot = self.slot,
            job_id = job.job_id,
            attempt = job.attempt,
            "training {} {} width {} depth {} seed {} ({} iterations{})",
            config.pde,
            config.method,
            config.width,
            config.depth,
            config.seed,
            config.iters,
            if resume_at > 0 {
                format!(", resuming at {resume_at}")
            } else {
                String::new()
            }
        );
        if self.shutdown.is_cancelled() {
            // Leased while stopping: hand it straight back.
            self.release(&lease).await;
            return Ok(());
        }

        let (events_tx, mut events) = mpsc::unbounded_channel();
        let control = Arc::new(Control::default());
        control.iter.store(resume_at, Ordering::Relaxed);
        self.host.join(Joining {
            job_id: job.job_id,
            start,
            events: events_tx,
            control: control.clone(),
        });

        let mut pending = Pending::default();
        let mut stop: Option<StopReason> = None;
        let mut ticks = tokio::time::interval(heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let outcome = loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(Event::Metrics(row)) => pending.metrics.push(row),
                    Some(Event::Checkpoint(bytes, iter)) => {
                        pending.checkpoint = Some((bytes, iter));
                        if stop.is_none() {
                            self.report(&lease, &mut pending, &control, &mut stop).await;
                        }
                    }
                    Some(Event::Done(outcome)) => break outcome,
                    None => break Err("the training thread ended without a result".to_string()),
                },
                _ = ticks.tick() => {
                    if !matches!(stop, Some(StopReason::LeaseLost | StopReason::Unauthenticated)) {
                        self.report(&lease, &mut pending, &control, &mut stop).await;
                    }
                }
                _ = self.shutdown.cancelled(), if stop.is_none() => {
                    stop = Some(StopReason::Shutdown);
                    control.stop.store(true, Ordering::Relaxed);
                }
            }
        };
        // Everything the trainer sent before Done is already in `pending` (one channel, in order).
        match (stop, outcome) {
            (Some(StopReason::Unauthenticated), _) => {
                bail!("the coordinator refused this worker's token")
            }
            (Some(StopReason::LeaseLost), _) => {
                tracing::warn!(
                    job_id = lease.job_id,
                    "lease lost (the job was taken over or cancelled); abandoning it"
                );
                Ok(())
            }
            (_, Ok(result))
                if matches!(result.status, RunStatus::Finished | RunStatus::Diverged) =>
            {
                self.finish_done(&lease, pending, result).await
            }
            (_, Ok(result)) => {
                // Cancelled: by shutdown or by the coordinator. The final checkpoint is pending.
                tracing::info!(
                    job_id = lease.job_id,
                    iter = result.iters_done,
                    "stopped ({}); releasing the job",
                    if stop == Some(StopReason::Cancelled) {
                        "sweep cancelled"
                    } else {
                        "worker shutting down"
                    }
                );
                if self.flush(&lease, &mut pending, true).await? {
                    self.release(&lease).await;
                }
                Ok(())
            }
            (_, Err(error)) => {
                tracing::warn!(job_id = lease.job_id, "job failed: {error}");
                // Metrics up to the failure are still worth keeping.
                if self.flush(&lease, &mut pending, true).await? {
                    self.finish_failed(&lease, error).await?;
                }
                Ok(())
            }
        }
    }

    /// One progress report (or a bare heartbeat when nothing is pending), from the reporting loop.
    /// Transient failures keep the data pending for the next tick.
    async fn report(
        &mut self,
        lease: &Lease,
        pending: &mut Pending,
        control: &Control,
        stop: &mut Option<StopReason>,
    ) {
        let iter = control.iter.load(Ordering::Relaxed);
        let answer = if pending.is_empty() {
            self.client
                .heartbeat(HeartbeatRequest {
                    job_id: lease.job_id,
                    token: lease.token,
                    worker_id: self.config.worker_id.clone(),
                    iter,
                })
                .await
        } else {
            let (request, rows, checkpoint) =
                progress_request(lease, &self.config.worker_id, pending);
            let answer = self.client.report_progress(request).await;
            if answer.is_ok() {
                pending.sent(rows);
                log_stored(lease, checkpoint);
            }
            answer
        };
        match answer {
            Ok(response) => {
                if response.into_inner().cancel && stop.is_none() {
                    tracing::info!(job_id = lease.job_id, "the coordinator cancelled this job");
                    *stop = Some(StopReason::Cancelled);
                    control.stop.store(true, Ordering::Relaxed);
                }
            }
            Err(status) => {
                if let Some(reason) = self.classify(lease, pending, &status) {
                    *stop = Some(reason);
                    control.stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// What a failed write means for the job: `Some` stops it. Unusable data is dropped.
    fn classify(
        &self,
        lease: &Lease,
        pending: &mut Pending,
        status: &Status,
    ) -> Option<StopReason> {
        if is_auth_error(status) {
            return Some(StopReason::Unauthenticated);
        }
        match status.code() {
            Code::FailedPrecondition | Code::NotFound => Some(StopReason::LeaseLost),
            _ if is_transient(status) => {
                tracing::debug!(
                    job_id = lease.job_id,
                    "report failed, will retry: {}",
                    describe(status)
                );
                None
            }
            _ => {
                // The coordinator will never take this data. Most likely a checkpoint over its
                // message cap (--max-message-bytes): drop the checkpoint and keep the metrics
                // for the next report; otherwise drop everything rather than retry forever.
                if let Some((bytes, iter)) = pending.checkpoint.take() {
                    tracing::warn!(
                        job_id = lease.job_id,
                        "the coordinator refused the checkpoint of iteration {iter} ({} bytes), \
                         continuing without it: {}",
                        bytes.len(),
                        describe(status)
                    );
                } else {
                    tracing::warn!(
                        job_id = lease.job_id,
                        "the coordinator refused a progress report, dropping it: {}",
                        describe(status)
                    );
                    *pending = Pending::default();
                }
                None
            }
        }
    }

    /// Sends what is pending, retrying transient failures (for `SHUTDOWN_GRACE` once shutdown
    /// began). `Ok(false)`: the lease is gone, say nothing more about this job.
    async fn flush(&mut self, lease: &Lease, pending: &mut Pending, retry: bool) -> Result<bool> {
        if pending.is_empty() {
            return Ok(true);
        }
        let mut outcome = self.send_progress(lease, pending, retry).await;
        if let Err(status) = &outcome
            && pending.checkpoint.is_some()
            && !is_transient(status)
            && !is_auth_error(status)
            && status.code() != Code::FailedPrecondition
        {
            // A checkpoint too large for the coordinator: the metrics still count.
            tracing::warn!(
                job_id = lease.job_id,
                "the coordinator refused a checkpoint, sending the metrics without it: {}",
                describe(status)
            );
            pending.checkpoint = None;
            outcome = self.send_progress(lease, pending, retry).await;
        }
        *pending = Pending::default();
        self.settle(lease, outcome, "progress report")
    }

    /// Sends everything pending, in reports of at most [`MAX_REPORT_ROWS`] rows; what was
    /// accepted leaves `pending`, so after an error it holds exactly what was not sent.
    async fn send_progress(
        &self,
        lease: &Lease,
        pending: &mut Pending,
        retry: bool,
    ) -> Result<(), Status> {
        while !pending.is_empty() {
            let (request, rows, checkpoint) =
                progress_request(lease, &self.config.worker_id, pending);
            self.retry("ReportProgress", retry, |mut c| {
                let r = request.clone();
                async move { c.report_progress(r).await.map(|_| ()) }
            })
            .await?;
            pending.sent(rows);
            log_stored(lease, checkpoint);
        }
        Ok(())
    }

    /// Sends the result; keeps retrying while the coordinator is away (the lease may well still
    /// be valid when it returns), until it accepts or refuses.
    async fn finish_done(
        &mut self,
        lease: &Lease,
        mut pending: Pending,
        result: Box<RunResult>,
    ) -> Result<()> {
        if !self.flush(lease, &mut pending, true).await? {
            return Ok(());
        }
        let request = CompleteJobRequest {
            job_id: lease.job_id,
            token: lease.token,
            worker_id: self.config.worker_id.clone(),
            result_json: serde_json::to_string(&result).expect("results serialise"),
            device: self.config.device.clone(),
        };
        let outcome = self
            .retry("CompleteJob", true, |mut c| {
                let r = request.clone();
                async move { c.complete_job(r).await.map(|_| ()) }
            })
            .await;
        if self.settle(lease, outcome, "result")? {
            tracing::info!(
                job_id = lease.job_id,
                "done: {:?}, rel_l2 best {:.3e}, {} iterations, {:.1} it/s",
                result.status,
                result.rel_l2_best,
                result.iters_done,
                result.iters_per_s
            );
        }
        Ok(())
    }

    async fn finish_failed(&mut self, lease: &Lease, error: String) -> Result<()> {
        let request = FailJobRequest {
            job_id: lease.job_id,
            token: lease.token,
            worker_id: self.config.worker_id.clone(),
            error,
        };
        let outcome = self
            .retry("FailJob", true, |mut c| {
                let r = request.clone();
                async move { c.fail_job(r).await.map(|_| ()) }
            })
            .await;
        self.settle(lease, outcome, "failure").map(|_| ())
    }

    /// Gives the job back without counting an attempt. Best effort: if it cannot be sent in the
    /// grace period, the lease simply expires and the job is re-queued later.
    async fn release(&mut self, lease: &Lease) {
        let request = ReleaseJobRequest {
            job_id: lease.job_id,
            token: lease.token,
            worker_id: self.config.worker_id.clone(),
        };
        let outcome = self
            .retry("ReleaseJob", true, |mut c| {
                let r = request.clone();
                async move { c.release_job(r).await.map(|_| ()) }
            })
            .await;
        match outcome {
            Ok(()) => tracing::info!(job_id = lease.job_id, "released"),
            Err(status) => tracing::warn!(
                job_id = lease.job_id,
                "could not release (the lease will expire in {} ms): {}",
                lease.lease_ms,
                describe(&status)
            ),
        }
    }

    /// `Ok(true)`: accepted. `Ok(false)`: the lease is gone or the data was refused (logged).
    fn settle(&self, lease: &Lease, outcome: Result<(), Status>, what: &str) -> Result<bool> {
        match outcome {
            Ok(()) => Ok(true),
            Err(status) if is_auth_error(&status) => {
                bail!("the coordinator refused this worker: {}", describe(&status))
            }
            Err(status) if status.code() == Code::FailedPrecondition => {
                tracing::warn!(
                    job_id = lease.job_id,
                    "lease lost, {what} not recorded (the job belongs to another worker now): {}",
                    describe(&status)
                );
                Ok(false)
            }
            Err(status) => {
                tracing::warn!(
                    job_id = lease.job_id,
                    "{what} not recorded: {}",
                    describe(&status)
                );
                Ok(false)
            }
        }
    }

    /// Calls `op` until it succeeds or fails for good. Transient failures are retried with
    /// backoff: indefinitely while the worker runs (when `patient`), for `SHUTDOWN_GRACE` once it
    /// is shutting down.
    async fn retry<F, Fut>(&self, what: &str, patient: bool, op: F) -> Result<(), Status>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<(), Status>>,
    {
        let mut backoff = Backoff::default();
        let mut stopping_since: Option<Instant> = None;
        let mut warned = false;
        loop {
            match op(self.client.clone()).await {
                Ok(()) => return Ok(()),
                Err(status) if is_transient(&status) && patient => {
                    if self.shutdown.is_cancelled() {
                        let since = *stopping_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= SHUTDOWN_GRACE {
                            return Err(status);
                        }
                    }
                    if !warned {
                        tracing::warn!("{what} failed, retrying: {}", describe(&status));
                        warned = true;
                    }
                    // Not cut short by shutdown: the grace period above bounds it instead.
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(status) => return Err(status),
            }
        }
    }
}

/// Reads the job's config and checkpoint. A checkpoint that cannot be used (corrupt, or taken
/// with another config) is ignored with a warning: starting over is slower but still correct.
fn prepare(job: &Job) -> Result<Start, String> {
    let mut config: TrainConfig =
        serde_json::from_str(&job.config_json).map_err(|e| format!("invalid config_json: {e}"))?;
    config.validate().map_err(|e| e.to_string())?;
    if config.checkpoint_every == 0 {
        config.checkpoint_every = crate::default_checkpoint_every(&config);
    }
    if job.checkpoint.is_empty() {
        return Ok(Start::Fresh(Box::new(config)));
    }
    match Checkpoint::from_bytes(&job.checkpoint) {
        Ok(mut checkpoint) => {
            let mut theirs = checkpoint.config.clone();
            theirs.checkpoint_every = config.checkpoint_every;
            if theirs != config {
                tracing::warn!(
                    job_id = job.job_id,
                    "the checkpoint was taken with another config; starting from iteration 0"
                );
                return Ok(Start::Fresh(Box::new(config)));
            }
            checkpoint.config = config;
            Ok(Start::Resume(Box::new(checkpoint)))
        }
        Err(e) => {
            tracing::warn!(
                job_id = job.job_id,
                "unusable checkpoint ({e}); starting from iteration 0"
            );
            Ok(Start::Fresh(Box::new(config)))
        }
    }
}

/// Most metric rows in one report. The coordinator refuses more than its `--max-metric-rows`
/// (at least this many) per report; a backlog (rows piled up while the coordinator was away)
/// goes out in several reports.
const MAX_REPORT_ROWS: usize = 1_000;

/// The next report of `pending`: its first [`MAX_REPORT_ROWS`] rows, and the checkpoint only
/// with the last of them (a checkpoint is never stored ahead of the rows before it), how many
/// rows it carries, and the iteration of the checkpoint it carries, if it carries one (for the
/// log: on the wire the iteration is only in the checkpoint's header).
fn progress_request(
    lease: &Lease,
    worker_id: &str,
    pending: &Pending,
) -> (ReportProgressRequest, usize, Option<u64>) {
    let rows = pending.metrics.len().min(MAX_REPORT_ROWS);
    let (checkpoint, checkpoint_iter) = match &pending.checkpoint {
        Some((bytes, iter)) if rows == pending.metrics.len() => {
            (bytes.clone(), (!bytes.is_empty()).then_some(*iter))
        }
        _ => (Vec::new(), None),
    };
    let request = ReportProgressRequest {
        job_id: lease.job_id,
        token: lease.token,
        worker_id: worker_id.to_string(),
        metrics: pending.metrics[..rows].to_vec(),
        checkpoint,
    };
    (request, rows, checkpoint_iter)
}

/// Debug log of an accepted checkpoint: what a crash now loses is the training since then.
/// (The numbers are in the message so that they survive the log's colouring of fields.)
fn log_stored(lease: &Lease, checkpoint: Option<u64>) {
    if let Some(iter) = checkpoint {
        tracing::debug!(
            "checkpoint of job {} at iteration {iter} stored (token {})",
            lease.job_id,
            lease.token
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_goes_out_in_reports_of_bounded_size_checkpoint_last() {
        let lease = Lease {
            job_id: 1,
            token: 2,
            lease_ms: 1000,
        };
        let mut pending = Pending {
            metrics: (0..2_500)
                .map(|i| MetricRow {
                    row_json: i.to_string(),
                })
                .collect(),
            checkpoint: Some((vec![1, 2, 3], 2_499)),
        };
        let mut reports = Vec::new();
        while !pending.is_empty() {
            let (r, rows, checkpoint_iter) = progress_request(&lease, "w", &pending);
            assert_eq!(rows, r.metrics.len());
            assert_eq!(checkpoint_iter.is_some(), !r.checkpoint.is_empty());
            reports.push((
                r.metrics.len(),
                r.checkpoint.len(),
                r.metrics[0].row_json.clone(),
            ));
            pending.sent(rows);
        }
        let expected = [(1_000, 0, "0"), (1_000, 0, "1000"), (500, 3, "2000")];
        assert_eq!(
            reports,
            expected.map(|(n, c, first)| (n, c, first.to_string()))
        );
        // A checkpoint alone goes out alone.
        let mut pending = Pending {
            metrics: Vec::new(),
            checkpoint: Some((vec![9], 7)),
        };
        let (r, rows, checkpoint_iter) = progress_request(&lease, "w", &pending);
        assert_eq!((rows, checkpoint_iter, r.checkpoint.len()), (0, Some(7), 1));
        pending.sent(rows);
        assert!(pending.is_empty());
    }
}
