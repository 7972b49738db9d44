//! One simulated worker: the RPC sequence of `worker::slot` without the training.
//!
//! A normal cycle is LeaseJob → (work/2) → Heartbeat → (work/2) → ReportProgress (metric rows
//! and optionally a small checkpoint) → CompleteJob. A stalling worker instead stops talking
//! after its first lease until the reaper has taken the job back and another worker has leased
//! it (fencing token moved on), then sends every kind of fenced write with its stale token and
//! counts the ones the coordinator accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use modsync_proto::sweeps_client::SweepsClient;
use modsync_proto::value::Kind;
use modsync_proto::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;
use tonic::{Code, Status};
use trainer_core::{Checkpoint, MetricsRow, RunResult, RunStatus, TrainConfig};

pub type Client = SweepsClient<Channel>;

/// Metric rows, checkpoints and results written with a stale token carry these markers, so the
/// final check can also look for them in the database (any row found = a stale write stuck).
pub const STALE_ITER: u64 = 987_654;
pub const STALE_REL_L2: f64 = 4242.0;

/// The RPCs whose latency is measured, in table order.
pub const RPC_NAMES: [&str; 4] = ["LeaseJob", "Heartbeat", "ReportProgress", "CompleteJob"];
const LEASE: usize = 0;
const HEARTBEAT: usize = 1;
const PROGRESS: usize = 2;
const COMPLETE: usize = 3;

/// What every worker shares: the plan and the run's live counters.
pub struct Shared {
    pub work: Duration,
    pub ramp: Duration,
    pub metric_rows: u64,
    pub checkpoint_floats: usize,
    pub lease_ms: u64,
    pub reap_every_ms: u64,
    pub seed: u64,
    /// Completions the coordinator acknowledged so far.
    pub acked: AtomicU64,
    pub jobs: u64,
    /// Set by the monitor when no job is queued or running any more, or at the deadline.
    pub stop: AtomicBool,
    pub deadline: Instant,
}

impl Shared {
    fn finished(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self.acked.load(Ordering::Relaxed) >= self.jobs
            || Instant::now() > self.deadline
    }
}

/// Everything one worker observed; merged by the caller.
#[derive(Default)]
pub struct WorkerStats {
    /// Latency in microseconds per RPC of [`RPC_NAMES`] (stale writes and monitor calls are not
    /// here).
    pub lat_us: [Vec<u32>; 4],
    pub empty_leases: u64,
    /// (job id, worker id) of every completion the coordinator acknowledged.
    pub acked: Vec<(i64, String)>,
    /// Writes of a live (non-stalling) worker refused as stale: its lease expired under load.
    pub leases_lost: u64,
    pub transient_errors: u64,
    /// The first few transient errors, for the report.
    pub transient_seen: Vec<String>,
    pub stale_sent: u64,
    pub stale_accepted: u64,
    pub stale_refused: u64,
    /// Of those, refused while another worker held the job's lease (not after it was done).
    pub stale_vs_live: u64,
    /// Stalled jobs that another worker had leased before the stale writes were sent.
    pub taken_over: u64,
    pub stalled: u64,
    /// Anything that should not happen (wrong status codes, …), one line each.
    pub unexpected: Vec<String>,
    pub last_ack: Option<Instant>,
    /// When each acknowledgement arrived (for the steady-state rate).
    pub ack_times: Vec<Instant>,
}

pub struct Worker {
    pub index: usize,
    pub id: String,
    pub client: Client,
    pub shared: Arc<Shared>,
    /// Stall (and then write stale) on the first job this worker leases.
    pub stall: bool,
    rng: StdRng,
    stats: WorkerStats,
}

/// How a fenced write ended.
enum Write<T> {
    Ok(T),
    /// FAILED_PRECONDITION: the lease is gone.
    Stale,
    /// Anything else, already recorded.
    Failed,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn transient(s: &Status) -> bool {
    modsync_client::is_transient(s)
}

impl Worker {
    pub fn new(index: usize, client: Client, shared: Arc<Shared>, stall: bool) -> Self {
        let rng = StdRng::seed_from_u64(shared.seed ^ (index as u64).wrapping_mul(0x9E37_79B9));
        Worker {
            index,
            id: format!("load-w{index:05}"),
            client,
            shared,
            stall,
            rng,
            stats: WorkerStats::default(),
        }
    }

    pub async fn run(mut self) -> WorkerStats {
        // Real workers do not start in the same millisecond; spread the first leases.
        if !self.shared.ramp.is_zero() {
            let ramp = self.shared.ramp.as_micros() as u64;
            let d = Duration::from_micros(self.rng.random_range(0..=ramp));
            tokio::time::sleep(d).await;
        }
        let mut idle =
            modsync_client::Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
        let mut stall_pending = self.stall;
        while !self.shared.finished() {
            let req = LeaseJobRequest {
                worker_id: self.id.clone(),
                host: "load".into(),
                device: "sim".into(),
                ..Default::default()
            };
            let t = Instant::now();
            let r = self.client.lease_job(req).await;
            self.stats.lat_us[LEASE].push(micros(t.elapsed()));
            match r {
                Ok(resp) => match resp.into_inner().job {
                    Some(job) if stall_pending => {
                        stall_pending = false;
                        idle.reset();
                        self.stall_then_write_stale(job).await;
                    }
                    Some(job) => {
                        idle.reset();
                        self.cycle(job).await;
                    }
                    None => {
                        self.stats.empty_leases += 1;
                        tokio::time::sleep(idle.next_delay()).await;
                    }
                },
                Err(s) if transient(&s) => {
                    self.transient("LeaseJob", &s);
                    tokio::time::sleep(idle.next_delay()).await;
                }
                Err(s) => {
                    self.unexpected("LeaseJob", &s);
                    tokio::time::sleep(idle.next_delay()).await;
                }
            }
        }
        self.stats
    }

    fn transient(&mut self, rpc: &str, s: &Status) {
        self.stats.transient_errors += 1;
        if self.stats.transient_seen.len() < 3 {
            let line = format!("{}: {rpc}: {}", self.id, modsync_client::describe(s));
            self.stats.transient_seen.push(line);
        }
    }

    fn unexpected(&mut self, rpc: &str, s: &Status) {
        self.stats.unexpected.push(format!(
            "{}: {rpc}: {}",
            self.id,
            modsync_client::describe(s)
        ));
    }

    /// The simulated training time of one job: `work` ± 50 %, uniformly.
    fn work_time(&mut self) -> Duration {
        let w = self.shared.work.as_micros() as u64;
        if w == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.rng.random_range(w / 2..=w + w / 2))
    }

    /// Sends one fenced write, retrying transient failures like a real worker, and records its
    /// latency under `slot`.
    async fn fenced<T, F, Fut>(&mut self, slot: usize, mut call: F) -> Write<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        for attempt in 0..5u32 {
            let t = Instant::now();
            let r = call(self.client.clone()).await;
            self.stats.lat_us[slot].push(micros(t.elapsed()));
            match r {
                Ok(resp) => return Write::Ok(resp.into_inner()),
                Err(s) if s.code() == Code::FailedPrecondition => return Write::Stale,
                Err(s) if transient(&s) && attempt < 4 => {
                    self.transient(RPC_NAMES[slot], &s);
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                Err(s) => {
                    self.unexpected(RPC_NAMES[slot], &s);
                    return Write::Failed;
                }
            }
        }
        Write::Failed
    }

    async fn cycle(&mut self, job: Job) {
        let work = self.work_time();
        tokio::time::sleep(work / 2).await;
        let hb = self.heartbeat(&job, 5);
        match self
            .fenced(HEARTBEAT, |mut c| {
                let hb = hb.clone();
                async move { c.heartbeat(hb).await }
            })
            .await
        {
            Write::Ok(_) => {}
            Write::Stale => return self.stats.leases_lost += 1,
            Write::Failed => return,
        }
        tokio::time::sleep(work - work / 2).await;
        let progress = match self.progress(&job, false) {
            Ok(p) => p,
            Err(e) => return self.stats.unexpected.push(e),
        };
        match self
            .fenced(PROGRESS, |mut c| {
                let p = progress.clone();
                async move { c.report_progress(p).await }
            })
            .await
        {
            Write::Ok(_) => {}
            Write::Stale => return self.stats.leases_lost += 1,
            Write::Failed => return,
        }
        let complete = match self.complete(&job, false) {
            Ok(c) => c,
            Err(e) => return self.stats.unexpected.push(e),
        };
        match self
            .fenced(COMPLETE, |mut c| {
                let r = complete.clone();
                async move { c.complete_job(r).await }
            })
            .await
        {
            Write::Ok(_) => {
                let now = Instant::now();
                self.stats.acked.push((job.job_id, self.id.clone()));
                self.stats.last_ack = Some(now);
                self.stats.ack_times.push(now);
                self.shared.acked.fetch_add(1, Ordering::Relaxed);
            }
            Write::Stale => self.stats.leases_lost += 1,
            Write::Failed => {}
        }
    }

    /// Holds `job` without a word until its lease expired and another worker leased it, then
    /// tries every fenced write with the stale token.
    async fn stall_then_write_stale(&mut self, job: Job) {
        self.stats.stalled += 1;
        let shared = self.shared.clone();
        tokio::time::sleep(Duration::from_millis(
            shared.lease_ms + 2 * shared.reap_every_ms,
        ))
        .await;
        // Wait (bounded) until the fencing token moved on: someone else holds the job now (or
        // finished it). Query is not counted in the latency figures.
        let give_up = Instant::now() + Duration::from_secs(30);
        let sql = format!("SELECT token FROM jobs WHERE id = {}", job.job_id);
        while Instant::now() < give_up {
            let r = self
                .client
                .query(QueryRequest {
                    sql: sql.clone(),
                    max_rows: 1,
                })
                .await;
            let current =
                r.ok().and_then(
                    |r| match r.into_inner().rows.first()?.values.first()?.kind {
                        Some(Kind::Integer(t)) => Some(t),
                        _ => None,
                    },
                );
            if current.is_some_and(|t| t > job.token) {
                self.stats.taken_over += 1;
                break;
            }
            // Poll fast: the stale writes should land while the new holder still runs the job.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let hb = self.heartbeat(&job, STALE_ITER);
        let r = self.client.heartbeat(hb).await.map(drop);
        self.stale_outcome("Heartbeat", r);
        match self.progress(&job, true) {
            Ok(p) => {
                let r = self.client.report_progress(p).await.map(drop);
                self.stale_outcome("ReportProgress", r);
            }
            Err(e) => self.stats.unexpected.push(e),
        }
        match self.complete(&job, true) {
            Ok(c) => {
                let r = self.client.complete_job(c).await.map(drop);
                self.stale_outcome("CompleteJob", r);
            }
            Err(e) => self.stats.unexpected.push(e),
        }
        // A stale release must not put someone else's job back in the queue either.
        let r = self
            .client
            .release_job(ReleaseJobRequest {
                job_id: job.job_id,
                token: job.token,
                worker_id: self.id.clone(),
            })
            .await
            .map(drop);
        self.stale_outcome("ReleaseJob", r);
    }

    fn stale_outcome(&mut self, rpc: &str, r: Result<(), Status>) {
        self.stats.stale_sent += 1;
        match r {
            Ok(()) => {
                self.stats.stale_accepted += 1;
                self.stats
                    .unexpected
                    .push(format!("{}: stale {rpc} was ACCEPTED", self.id));
            }
            Err(s) if s.code() == Code::FailedPrecondition => {
                self.stats.stale_refused += 1;
                // The coordinator names the job's state: "running" = another worker held it.
                if s.message().contains("job is running") {
                    self.stats.stale_vs_live += 1;
                }
            }
            Err(s) => self.unexpected(&format!("stale {rpc}"), &s),
        }
    }

    fn heartbeat(&self, job: &Job, iter: u64) -> HeartbeatRequest {
        HeartbeatRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: self.id.clone(),
            iter,
        }
    }

    fn progress(&self, job: &Job, stale: bool) -> Result<ReportProgressRequest, String> {
        let n = self.shared.metric_rows;
        let iters: Vec<u64> = if stale {
            vec![STALE_ITER]
        } else {
            (1..=n).map(|i| i * 10).collect()
        };
        let metrics = iters
            .iter()
            .map(|&iter| {
                let row = MetricsRow {
                    iter,
                    lr: 1e-3,
                    loss_r: 1.0 / iter as f64,
                    loss_b: 0.5 / iter as f64,
                    rel_l2: 0.1,
                    abs_err: 0.01,
                    abs_err_max: 0.1,
                    skipped_steps: 0,
                    elapsed_s: iter as f64 * 1e-3,
                    extra: Default::default(),
                };
                serde_json::to_string(&row)
                    .map(|row_json| MetricRow { iter, row_json })
                    .map_err(|e| format!("{}: metrics row: {e}", self.id))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ckpt_iter = iters.last().copied().unwrap_or(0);
        let checkpoint = if self.shared.checkpoint_floats > 0 || stale {
            self.checkpoint(job, ckpt_iter)?
        } else {
            Vec::new()
        };
        Ok(ReportProgressRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: self.id.clone(),
            metrics,
            checkpoint_iter: if checkpoint.is_empty() { 0 } else { ckpt_iter },
            checkpoint,
        })
    }

    fn checkpoint(&self, job: &Job, iter: u64) -> Result<Vec<u8>, String> {
        let bad = |e: serde_json::Error| format!("{}: checkpoint: {e}", self.id);
        let config: serde_json::Value = serde_json::from_str(&job.config_json).map_err(bad)?;
        let mut ckpt: Checkpoint = serde_json::from_value(serde_json::json!({
            "iter": iter,
            "config": config,
            "rng_word_pos": "0",
            "skipped_steps": 0,
            "consecutive_skips": 0,
            "elapsed_s": 0.1,
            "tracker": {"best": null, "min_loss": null, "last": null},
            "adam_t": iter,
            "method_state": null,
        }))
        .map_err(bad)?;
        let n = self.shared.checkpoint_floats.max(1);
        ckpt.vectors = vec![("theta".into(), (0..n).map(|i| i as f64 * 0.5).collect())];
        Ok(ckpt.to_bytes())
    }

    fn complete(&self, job: &Job, stale: bool) -> Result<CompleteJobRequest, String> {
        let config: TrainConfig = serde_json::from_str(&job.config_json)
            .map_err(|e| format!("{}: job {} config: {e}", self.id, job.job_id))?;
        let best = if stale {
            STALE_REL_L2
        } else {
            0.01 + (self.index % 97) as f64 * 1e-4
        };
        let r = RunResult {
            status: RunStatus::Finished,
            rel_l2_best: best,
            rel_l2_min_loss: best * 1.5,
            rel_l2_last: best * 2.0,
            abs_err_best: best / 10.0,
            abs_err_max_best: best * 3.0,
            best_iter: 10,
            min_loss_iter: 20,
            iters_done: config.iters,
            diverged: false,
            skipped_steps: 0,
            wall_s: self.shared.work.as_secs_f64(),
            iters_per_s: 1000.0,
            num_params: 123,
            config,
        };
        let result_json =
            serde_json::to_string(&r).map_err(|e| format!("{}: result: {e}", self.id))?;
        Ok(CompleteJobRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: self.id.clone(),
            result_json,
            device: "sim".into(),
        })
    }
}
