//! One simulated worker: the RPC sequence of `worker::slot` without the training.
//!
//! A normal cycle is LeaseJob → (work/2) → Heartbeat → (work/2) → ReportProgress (metric rows
//! and optionally a small checkpoint) → CompleteJob. A stalling worker instead stops talking
//! after its first lease until the reaper has taken the job back and another worker has leased
//! it (fencing token moved on), then sends every kind of fenced write with its stale token and
//! counts the ones the coordinator accepted.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use modsync_proto::value::Kind;
use modsync_proto::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::{Code, Status};

use crate::shared::{Client, RPC_NAMES, STALE_ITER, Shared, WorkerStats};

const LEASE: usize = 0;
const HEARTBEAT: usize = 1;
const PROGRESS: usize = 2;
const COMPLETE: usize = 3;

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
}
