//! The worker side of the queue, as `Store` operations (one per worker RPC): lease jobs, then
//! the fenced writes (heartbeat, progress, complete, fail, release). Each validates its request
//! (with the checks of `fence.rs`) and hands it to the writer or runs its own transaction; the
//! SQL is in `jobs/`.
//!
//! Invariant kept here: a job is `running` with exactly one live fencing token, and every write
//! after the lease checks `(job_id, token, state = 'running')` *in the same transaction, before
//! writing anything*: heartbeat, progress, fail and release start with an `UPDATE jobs … WHERE
//! id = ? AND token = ? AND state = 'running'` that matches no row for a stale token (and then
//! nothing else runs); completion reads the job's state and token first and writes only if they
//! hold. A worker whose lease expired and was taken over holds an old token, so its writes are
//! refused with `FAILED_PRECONDITION` and nothing is written: it can never overwrite the metrics,
//! checkpoint or result of the worker that took over.
//!
//! Neither condition is redundant. The token changes only when a job is leased, so a worker
//! whose lease expired and whose job the reaper re-queued (or failed, or a cancel ended) still
//! holds the job's current token until someone leases it again — for good, if no one does.
//! Only `state = 'running'` refuses its writes then (`tests/it/fencing.rs`).
//!
//! Hot path (measured with `bench/coordinator-load`, 1,000 simulated workers): the four worker
//! writes that every job makes (LeaseJob, Heartbeat, ReportProgress, CompleteJob) are validated
//! here and then go to the writer thread (`writer.rs`), which group-commits them with one
//! statement per kind of write per batch; the `workers` bookkeeping (`last_seen_ms`,
//! `jobs_done`) follows job updates through the triggers of migration 0002 instead of separate
//! statements. FailJob and ReleaseJob (rare) run their own transaction.
//!
//! The worker's identity (`worker_id` in each request) is recorded (`workers.last_seen_ms`,
//! `results.worker_id` comes from the lease owner) but is not part of the fence: the token alone
//! identifies one lease of one job.
//!
//! Input is parsed and validated before the transaction starts, so a bad request never holds the
//! write lock and never writes half of itself.

use modsync_proto::{
    CompleteJobRequest, FailJobRequest, HeartbeatRequest, Job, LeaseJobRequest, MAX_LEASE_JOBS,
    ReleaseJobRequest, ReportProgressRequest,
};

use crate::error::{Error, Result};
use crate::fence::{
    LeaseTerms, MAX_ERROR, check_checkpoint, check_name, now_ms, parse_metrics, parse_result,
    truncate,
};
use crate::jobs::ops::{Answer, OpKind};
use crate::jobs::queue;
use crate::store::Store;

impl Store {
    /// Moves the highest-priority, oldest queued job to running for this worker — with
    /// `max_jobs` > 1 up to that many queued jobs of one pack key (`pack_key`, or else the first
    /// job's), in the same order — each with a new fencing token (+1), attempts + 1 and lease
    /// expiry now + lease_ms. Returns them with their last checkpoints; none when nothing is
    /// queued. The lease itself is one UPDATE … RETURNING statement on the one write
    /// connection, so two workers can never lease the same job.
    ///
    /// The worker's row (host, device) is written when it is new or changed, or its last write
    /// is older than `store::WORKER_REFRESH_MS`; otherwise the lease is the only statement (the
    /// trigger of migration 0002 updates `last_seen_ms` of the new owner).
    pub async fn lease_jobs(&self, req: &LeaseJobRequest, terms: LeaseTerms) -> Result<Vec<Job>> {
        check_name("worker_id", &req.worker_id, true)?;
        check_name("host", &req.host, false)?;
        check_name("device", &req.device, false)?;
        check_name("pack_key", &req.pack_key, false)?;
        if req.max_jobs > MAX_LEASE_JOBS {
            return Err(Error::invalid(
                "max_jobs",
                format!("must be at most {MAX_LEASE_JOBS}, got {}", req.max_jobs),
            ));
        }
        let now = now_ms();
        let register = self.worker_needs_write(req, now);
        let answer = self
            .writer
            .write(OpKind::Lease {
                req: req.clone(),
                terms,
                register,
                now,
            })
            .await?;
        if register {
            self.worker_written(req, now);
        }
        let Answer::Leased(jobs) = answer else {
            unreachable!("a lease op answers Leased")
        };
        for job in &jobs {
            tracing::info!(job = job.job_id, worker = %req.worker_id, token = job.token,
                attempts = job.attempt, pack_key = %job.pack_key, "job leased");
        }
        Ok(jobs)
    }

    /// Extends the lease; returns whether the worker should stop (sweep cancelled). One
    /// statement: the fence and the extension are the same UPDATE.
    pub async fn heartbeat(&self, req: &HeartbeatRequest, terms: LeaseTerms) -> Result<bool> {
        match self
            .writer
            .write(OpKind::Extend {
                job_id: req.job_id,
                token: req.token,
                lease_ms: terms.lease_ms,
            })
            .await?
        {
            Answer::Extended(cancel) => Ok(cancel),
            _ => unreachable!("an extend op answers Extended"),
        }
    }

    /// Stores metric rows (a re-reported iteration replaces its row) and, when present, the
    /// checkpoint (replacing the previous one); extends the lease. Returns the cancel flag.
    /// The first statement is the fenced extension: a stale token writes nothing. Takes the
    /// request by value: its checkpoint (up to --max-checkpoint-bytes) moves to the writer
    /// uncopied.
    pub async fn report_progress(
        &self,
        req: ReportProgressRequest,
        terms: LeaseTerms,
    ) -> Result<bool> {
        let rows = parse_metrics(&req)?;
        let checkpoint_iter = check_checkpoint(&req)?;
        match self
            .writer
            .write(OpKind::Progress {
                req,
                rows,
                checkpoint_iter,
                lease_ms: terms.lease_ms,
            })
            .await?
        {
            Answer::Extended(cancel) => Ok(cancel),
            _ => unreachable!("a progress op answers Extended"),
        }
    }

    /// Writes the job's result row and marks it done, in one transaction. The result must be
    /// of this job (same pde/method/width/seed) and contain no non-finite error.
    pub async fn complete_job(&self, req: CompleteJobRequest) -> Result<()> {
        check_name("device", &req.device, false)?;
        let result = Box::new(parse_result(&req.result_json)?);
        let (job_id, rel_l2_best) = (req.job_id, result.rel_l2_best);
        self.writer.write(OpKind::Complete { req, result }).await?;
        tracing::info!(job = job_id, rel_l2_best, "job done");
        Ok(())
    }

    /// This attempt failed: back to the queue while attempts < max_attempts, else `failed`
    /// (a pending cancel wins: `cancelled`). The error is kept in `last_error`.
    pub async fn fail_job(&self, req: &FailJobRequest) -> Result<()> {
        let error = match req.error.trim() {
            "" => "(the worker sent no error message)",
            e => truncate(e, MAX_ERROR),
        };
        let now = now_ms();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let state = queue::fail(&mut tx, req, error, now).await?;
        tx.commit().await?;
        tracing::warn!(job = req.job_id, now = %state, error, "job attempt failed");
        Ok(())
    }

    /// The worker gives the job back (shutdown, preemption): queued again without counting the
    /// attempt (attempts − 1), or `cancelled` if its sweep was cancelled meanwhile. The last
    /// checkpoint stays, so the next lease resumes from it.
    pub async fn release_job(&self, req: &ReleaseJobRequest) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        queue::release(&mut tx, req, now).await?;
        tx.commit().await?;
        tracing::info!(job = req.job_id, "job released");
        Ok(())
    }
}
