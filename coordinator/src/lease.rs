//! The worker side of the queue: lease a job, then fenced writes (heartbeat, progress,
//! complete, fail, release).
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
//! here and then go to the writer task of `batch.rs`, which group-commits them with one
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

use std::collections::BTreeMap;

use modsync_proto::{
    CompleteJobRequest, FailJobRequest, HeartbeatRequest, Job, LeaseJobRequest, MAX_LEASE_JOBS,
    ReleaseJobRequest, ReportProgressRequest,
};
use serde::Deserialize;
use sqlx::SqliteConnection;
use tokio::sync::oneshot;
use trainer_core::{Checkpoint, RunResult, RunStatus};

use crate::batch::{Answer, OpKind, WriteOp};
use crate::error::{Error, Result};
use crate::store::{Store, now_ms, to_i64};

/// Longest worker id/host/device we store; longer ones are refused (they are names, not logs).
const MAX_NAME: usize = 256;
/// Longest `last_error` kept; a longer message is cut (the start of an error says most).
const MAX_ERROR: usize = 16 * 1024;

/// How long leases last and how often workers heartbeat; from the `ServeConfig`.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTerms {
    pub lease_ms: u64,
    pub heartbeat_ms: u64,
}

/// A `trainer_core::MetricsRow` as it arrives over the wire. Numbers are optional because
/// serde_json writes NaN and ±inf as `null`: such rows (a diverging run) are kept, with SQL NULL
/// in the non-finite columns, rather than refused — refusing would also refuse the checkpoint
/// that travels with them. A unit test keeps this in step with `MetricsRow`.
#[derive(Debug, Deserialize)]
pub(crate) struct WireMetricsRow {
    pub(crate) iter: u64,
    pub(crate) lr: Option<f64>,
    pub(crate) loss_r: Option<f64>,
    pub(crate) loss_b: Option<f64>,
    pub(crate) rel_l2: Option<f64>,
    pub(crate) abs_err: Option<f64>,
    pub(crate) abs_err_max: Option<f64>,
    pub(crate) skipped_steps: u64,
    pub(crate) elapsed_s: Option<f64>,
    #[serde(default)]
    pub(crate) extra: BTreeMap<String, Option<f64>>,
}

/// `Some(x)` only for finite `x`.
pub(crate) fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

pub(crate) fn parse_metrics(req: &ReportProgressRequest) -> Result<Vec<WireMetricsRow>> {
    req.metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let row: WireMetricsRow = serde_json::from_str(&m.row_json).map_err(|e| {
                Error::invalid(
                    format!("metrics[{i}].row_json"),
                    format!("not a MetricsRow: {e}"),
                )
            })?;
            if row.iter != m.iter {
                return Err(Error::invalid(
                    format!("metrics[{i}].iter"),
                    format!("{} differs from row_json.iter {}", m.iter, row.iter),
                ));
            }
            Ok(row)
        })
        .collect()
}

/// Checks that the checkpoint bytes decode (so a corrupt upload never replaces a good
/// checkpoint) and that they are taken at `checkpoint_iter`.
fn check_checkpoint(req: &ReportProgressRequest) -> Result<Option<i64>> {
    if req.checkpoint.is_empty() {
        return Ok(None);
    }
    let ckpt = Checkpoint::from_bytes(&req.checkpoint)
        .map_err(|e| Error::invalid("checkpoint", e.to_string()))?;
    if ckpt.iter != req.checkpoint_iter {
        return Err(Error::invalid(
            "checkpoint_iter",
            format!(
                "{} differs from the checkpoint's iter {}",
                req.checkpoint_iter, ckpt.iter
            ),
        ));
    }
    Ok(Some(to_i64(ckpt.iter)))
}

/// Parses a RunResult and refuses what must never reach the `results` table.
fn parse_result(json: &str) -> Result<RunResult> {
    let r: RunResult = serde_json::from_str(json).map_err(|e| {
        Error::invalid(
            "result_json",
            format!("not a RunResult (NaN/inf arrive as null and are refused): {e}"),
        )
    })?;
    if r.status == RunStatus::Cancelled {
        return Err(Error::invalid(
            "result_json.status",
            "a cancelled run has no result; send ReleaseJob (or FailJob) instead",
        ));
    }
    let numbers = [
        ("rel_l2_best", r.rel_l2_best),
        ("rel_l2_min_loss", r.rel_l2_min_loss),
        ("rel_l2_last", r.rel_l2_last),
        ("abs_err_best", r.abs_err_best),
        ("abs_err_max_best", r.abs_err_max_best),
        ("wall_s", r.wall_s),
        ("iters_per_s", r.iters_per_s),
    ];
    for (field, v) in numbers {
        if !v.is_finite() {
            return Err(Error::invalid(
                format!("result_json.{field}"),
                format!("must be finite, got {v}"),
            ));
        }
    }
    Ok(r)
}

fn check_name(field: &str, v: &str, required: bool) -> Result<()> {
    if required && v.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if v.len() > MAX_NAME {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_NAME} bytes"),
        ));
    }
    Ok(())
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Why a fenced write matched no live lease: the job does not exist (NOT_FOUND) or `token`
/// does not hold its lease (FAILED_PRECONDITION). Only called after the fenced statement changed
/// nothing, so it never decides anything: tokens only grow, a token that did not hold the lease
/// then never holds it later.
pub(crate) async fn refusal(conn: &mut SqliteConnection, job_id: i64, token: i64) -> Error {
    let row: std::result::Result<Option<(String, i64)>, _> =
        sqlx::query_as("SELECT state, token FROM jobs WHERE id = ?")
            .bind(job_id)
            .fetch_optional(&mut *conn)
            .await;
    match row {
        Err(e) => e.into(),
        Ok(None) => Error::NotFound(format!("no job {job_id}")),
        Ok(Some((state, current))) => stale(job_id, token, &state, current),
    }
}

pub(crate) fn stale(job_id: i64, token: i64, state: &str, current: i64) -> Error {
    Error::Stale(format!(
        "job {job_id}: token {token} does not hold the lease (job is {state}, current token {current})"
    ))
}

async fn touch_worker(conn: &mut SqliteConnection, owner: Option<&str>, now: i64) -> Result<()> {
    if let Some(owner) = owner {
        sqlx::query("UPDATE workers SET last_seen_ms = ? WHERE id = ?")
            .bind(now)
            .bind(owner)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Hands `kind` to the writer task and waits for its answer (after the COMMIT).
    async fn write_op(&self, kind: OpKind) -> Result<Answer> {
        let (reply, answer) = oneshot::channel();
        let gone = || Error::Db(sqlx::Error::PoolClosed);
        self.writer
            .send(WriteOp { kind, reply })
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

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
            .write_op(OpKind::Lease {
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
            .write_op(OpKind::Extend {
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
    /// The first statement is the fenced extension: a stale token writes nothing.
    pub async fn report_progress(
        &self,
        req: &ReportProgressRequest,
        terms: LeaseTerms,
    ) -> Result<bool> {
        let rows = parse_metrics(req)?;
        let checkpoint_iter = check_checkpoint(req)?;
        match self
            .write_op(OpKind::Progress {
                req: req.clone(),
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
    pub async fn complete_job(&self, req: &CompleteJobRequest) -> Result<()> {
        check_name("device", &req.device, false)?;
        let result = Box::new(parse_result(&req.result_json)?);
        let rel_l2_best = result.rel_l2_best;
        self.write_op(OpKind::Complete {
            req: req.clone(),
            result,
        })
        .await?;
        tracing::info!(job = req.job_id, rel_l2_best, "job done");
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
        let state: Option<(String, Option<String>)> = sqlx::query_as(
            "UPDATE jobs SET
                 state = CASE WHEN cancel_requested = 1 THEN 'cancelled'
                              WHEN attempts >= max_attempts THEN 'failed'
                              ELSE 'queued' END,
                 last_error = ?, lease_expires_at_ms = NULL, cancel_requested = 0,
                 updated_at_ms = ?
             WHERE id = ? AND token = ? AND state = 'running'
             RETURNING state, lease_owner",
        )
        .bind(error)
        .bind(now)
        .bind(req.job_id)
        .bind(req.token)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((state, owner)) = state else {
            return Err(refusal(&mut tx, req.job_id, req.token).await);
        };
        touch_worker(&mut tx, owner.as_deref(), now).await?;
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
        let released: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE jobs SET
                 state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END,
                 attempts = MAX(attempts - 1, 0), lease_expires_at_ms = NULL,
                 cancel_requested = 0, updated_at_ms = ?
             WHERE id = ? AND token = ? AND state = 'running'
             RETURNING lease_owner",
        )
        .bind(now)
        .bind(req.job_id)
        .bind(req.token)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(owner) = released else {
            return Err(refusal(&mut tx, req.job_id, req.token).await);
        };
        touch_worker(&mut tx, owner.as_deref(), now).await?;
        tx.commit().await?;
        tracing::info!(job = req.job_id, "job released");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trainer_core::MetricsRow;

    #[test]
    fn wire_metrics_row_reads_every_metrics_row_field() {
        let row = MetricsRow {
            iter: 7,
            lr: 1e-3,
            loss_r: 0.5,
            loss_b: 0.25,
            rel_l2: 0.125,
            abs_err: 0.0625,
            abs_err_max: 2.0,
            skipped_steps: 3,
            elapsed_s: 1.5,
            extra: [("cos".to_string(), -0.5)].into_iter().collect(),
        };
        let json = serde_json::to_value(&row).unwrap();
        let wire: WireMetricsRow = serde_json::from_value(json.clone()).unwrap();
        // Every key MetricsRow writes is one the wire struct knows (so nothing is dropped).
        let known = [
            "iter",
            "lr",
            "loss_r",
            "loss_b",
            "rel_l2",
            "abs_err",
            "abs_err_max",
            "skipped_steps",
            "elapsed_s",
            "extra",
        ];
        for key in json.as_object().unwrap().keys() {
            assert!(known.contains(&key.as_str()), "MetricsRow gained {key}");
        }
        assert_eq!(wire.iter, 7);
        assert_eq!(wire.rel_l2, Some(0.125));
        assert_eq!(wire.extra["cos"], Some(-0.5));
        // NaN becomes null on the wire and then SQL NULL, not an error.
        let nan = MetricsRow {
            loss_r: f64::NAN,
            ..row
        };
        let wire: WireMetricsRow =
            serde_json::from_str(&serde_json::to_string(&nan).unwrap()).unwrap();
        assert_eq!(finite(wire.loss_r), None);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
