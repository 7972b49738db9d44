//! The worker side of the queue: lease a job, then fenced writes (heartbeat, progress,
//! complete, fail, release).
//!
//! Invariant kept here: a job is `running` with exactly one live fencing token, and every write
//! after the lease checks `(job_id, token, state = 'running')` *in the same `BEGIN IMMEDIATE`
//! transaction* as the write itself. A worker whose lease expired and was taken over holds an
//! old token, so its writes are refused with `FAILED_PRECONDITION` and nothing is written: it can
//! never overwrite the metrics, checkpoint or result of the worker that took over.
//!
//! The worker's identity (`worker_id` in each request) is recorded (`workers.last_seen_ms`,
//! `results.worker_id` comes from the lease owner) but is not part of the fence: the token alone
//! identifies one lease of one job.
//!
//! Input is parsed and validated before the transaction starts, so a bad request never holds the
//! write lock and never writes half of itself.

use std::collections::BTreeMap;

use modsync_proto::{
    CompleteJobRequest, FailJobRequest, HeartbeatRequest, Job, LeaseJobRequest, ReleaseJobRequest,
    ReportProgressRequest,
};
use serde::Deserialize;
use sqlx::SqliteConnection;
use trainer_core::{Checkpoint, RunResult, RunStatus};

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

/// The job row as the fence check sees it.
#[derive(sqlx::FromRow)]
struct Fenced {
    pde: String,
    method: String,
    width: i64,
    seed: i64,
    cancel_requested: bool,
    lease_owner: Option<String>,
}

/// A `trainer_core::MetricsRow` as it arrives over the wire. Numbers are optional because
/// serde_json writes NaN and ±inf as `null`: such rows (a diverging run) are kept, with SQL NULL
/// in the non-finite columns, rather than refused — refusing would also refuse the checkpoint
/// that travels with them. A unit test keeps this in step with `MetricsRow`.
#[derive(Debug, Deserialize)]
struct WireMetricsRow {
    iter: u64,
    lr: Option<f64>,
    loss_r: Option<f64>,
    loss_b: Option<f64>,
    rel_l2: Option<f64>,
    abs_err: Option<f64>,
    abs_err_max: Option<f64>,
    skipped_steps: u64,
    elapsed_s: Option<f64>,
    #[serde(default)]
    extra: BTreeMap<String, Option<f64>>,
}

/// `Some(x)` only for finite `x`.
fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

fn parse_metrics(req: &ReportProgressRequest) -> Result<Vec<WireMetricsRow>> {
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

/// The fence: the job exists (else NOT_FOUND) and `token` holds its lease (else
/// FAILED_PRECONDITION). Must run inside the write transaction of the write it guards.
async fn fence(conn: &mut SqliteConnection, job_id: i64, token: i64) -> Result<Fenced> {
    let row: Option<(String, i64)> = sqlx::query_as("SELECT state, token FROM jobs WHERE id = ?")
        .bind(job_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((state, current)) = row else {
        return Err(Error::NotFound(format!("no job {job_id}")));
    };
    if state != "running" || current != token {
        return Err(Error::Stale(format!(
            "job {job_id}: token {token} does not hold the lease (job is {state}, current token {current})"
        )));
    }
    Ok(sqlx::query_as(
        "SELECT pde, method, width, seed, cancel_requested, lease_owner FROM jobs WHERE id = ?",
    )
    .bind(job_id)
    .fetch_one(&mut *conn)
    .await?)
}

/// Pushes the lease expiry out by `lease_ms` and notes that the owner is alive.
async fn extend(
    conn: &mut SqliteConnection,
    job_id: i64,
    owner: Option<&str>,
    lease_ms: u64,
) -> Result<()> {
    let now = now_ms();
    sqlx::query("UPDATE jobs SET lease_expires_at_ms = ?, updated_at_ms = ? WHERE id = ?")
        .bind(now.saturating_add(to_i64(lease_ms)))
        .bind(now)
        .bind(job_id)
        .execute(&mut *conn)
        .await?;
    touch_worker(conn, owner, now).await
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
    /// Moves the highest-priority, oldest queued job to running for this worker: new fencing
    /// token (+1), attempts + 1, lease expiry now + lease_ms. Returns it with its last
    /// checkpoint, or `None` when nothing is queued. One transaction, so two workers can never
    /// lease the same job.
    pub async fn lease_job(&self, req: &LeaseJobRequest, terms: LeaseTerms) -> Result<Option<Job>> {
        check_name("worker_id", &req.worker_id, true)?;
        check_name("host", &req.host, false)?;
        check_name("device", &req.device, false)?;
        let now = now_ms();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO workers (id, host, device, first_seen_ms, last_seen_ms)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, device = excluded.device,
                 last_seen_ms = excluded.last_seen_ms",
        )
        .bind(&req.worker_id)
        .bind(&req.host)
        .bind(&req.device)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let leased: Option<(i64, String, String, i64, i64)> = sqlx::query_as(
            "UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires_at_ms = ?,
                 token = token + 1, attempts = attempts + 1, cancel_requested = 0,
                 updated_at_ms = ?
             WHERE id = (SELECT id FROM jobs WHERE state = 'queued'
                         ORDER BY priority DESC, id LIMIT 1)
             RETURNING id, sweep_id, config_json, token, attempts",
        )
        .bind(&req.worker_id)
        .bind(now.saturating_add(to_i64(terms.lease_ms)))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((job_id, sweep_id, config_json, token, attempts)) = leased else {
            tx.commit().await?;
            return Ok(None);
        };
        let checkpoint: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT bytes FROM checkpoints WHERE job_id = ?")
                .bind(job_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        tracing::info!(job = job_id, worker = %req.worker_id, token, attempts, "job leased");
        Ok(Some(Job {
            job_id,
            sweep_id,
            config_json,
            token,
            attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
            checkpoint: checkpoint.unwrap_or_default(),
            heartbeat_ms: terms.heartbeat_ms,
            lease_ms: terms.lease_ms,
        }))
    }

    /// Extends the lease; returns whether the worker should stop (sweep cancelled).
    pub async fn heartbeat(&self, req: &HeartbeatRequest, terms: LeaseTerms) -> Result<bool> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let job = fence(&mut tx, req.job_id, req.token).await?;
        extend(
            &mut tx,
            req.job_id,
            job.lease_owner.as_deref(),
            terms.lease_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(job.cancel_requested)
    }

    /// Stores metric rows (a re-reported iteration replaces its row) and, when present, the
    /// checkpoint (replacing the previous one); extends the lease. Returns the cancel flag.
    pub async fn report_progress(
        &self,
        req: &ReportProgressRequest,
        terms: LeaseTerms,
    ) -> Result<bool> {
        let rows = parse_metrics(req)?;
        let checkpoint_iter = check_checkpoint(req)?;
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let job = fence(&mut tx, req.job_id, req.token).await?;
        for row in &rows {
            let extra: BTreeMap<&String, Option<f64>> =
                row.extra.iter().map(|(k, v)| (k, finite(*v))).collect();
            sqlx::query(
                "INSERT OR REPLACE INTO metrics (job_id, iter, lr, loss_r, loss_b, rel_l2,
                     abs_err, abs_err_max, skipped_steps, elapsed_s, extra, token)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(req.job_id)
            .bind(to_i64(row.iter))
            .bind(finite(row.lr))
            .bind(finite(row.loss_r))
            .bind(finite(row.loss_b))
            .bind(finite(row.rel_l2))
            .bind(finite(row.abs_err))
            .bind(finite(row.abs_err_max))
            .bind(to_i64(row.skipped_steps))
            .bind(finite(row.elapsed_s))
            .bind(serde_json::to_string(&extra).unwrap_or_else(|_| "{}".into()))
            .bind(req.token)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(iter) = checkpoint_iter {
            sqlx::query(
                "INSERT OR REPLACE INTO checkpoints (job_id, iter, bytes, token, created_at_ms)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(req.job_id)
            .bind(iter)
            .bind(&req.checkpoint)
            .bind(req.token)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        extend(
            &mut tx,
            req.job_id,
            job.lease_owner.as_deref(),
            terms.lease_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(job.cancel_requested)
    }

    /// Writes the job's result row and marks it done, in one transaction. The result must be
    /// of this job (same pde/method/width/seed) and contain no non-finite error.
    pub async fn complete_job(&self, req: &CompleteJobRequest) -> Result<()> {
        check_name("device", &req.device, false)?;
        let r = parse_result(&req.result_json)?;
        let now = now_ms();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let job = fence(&mut tx, req.job_id, req.token).await?;
        let theirs = (
            r.config.pde.as_str(),
            r.config.method.as_str(),
            to_i64(r.config.width as u64),
            to_i64(r.config.seed),
        );
        let ours = (job.pde.as_str(), job.method.as_str(), job.width, job.seed);
        if theirs != ours {
            return Err(Error::invalid(
                "result_json.config",
                format!(
                    "is for (pde, method, width, seed) = {theirs:?}, but job {} is {ours:?}",
                    req.job_id
                ),
            ));
        }
        let owner = job.lease_owner.clone().unwrap_or_default();
        let device = if req.device.is_empty() {
            sqlx::query_scalar("SELECT device FROM workers WHERE id = ?")
                .bind(&owner)
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or_default()
        } else {
            req.device.clone()
        };
        let status = match r.status {
            RunStatus::Diverged => "diverged",
            _ => "finished",
        };
        sqlx::query(
            "INSERT INTO results (job_id, rel_l2_best, rel_l2_min_loss, rel_l2_last, abs_err_best,
                 abs_err_max_best, best_iter, min_loss_iter, iters_done, wall_s, iters_per_s,
                 num_params, diverged, skipped_steps, status, device, worker_id, result,
                 finished_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(req.job_id)
        .bind(r.rel_l2_best)
        .bind(r.rel_l2_min_loss)
        .bind(r.rel_l2_last)
        .bind(r.abs_err_best)
        .bind(r.abs_err_max_best)
        .bind(to_i64(r.best_iter))
        .bind(to_i64(r.min_loss_iter))
        .bind(to_i64(r.iters_done))
        .bind(r.wall_s)
        .bind(r.iters_per_s)
        .bind(to_i64(r.num_params as u64))
        .bind(r.diverged)
        .bind(to_i64(r.skipped_steps))
        .bind(status)
        .bind(device)
        .bind(&owner)
        .bind(&req.result_json)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE jobs SET state = 'done', lease_expires_at_ms = NULL, cancel_requested = 0,
                 updated_at_ms = ? WHERE id = ?",
        )
        .bind(now)
        .bind(req.job_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE workers SET jobs_done = jobs_done + 1, last_seen_ms = ? WHERE id = ?")
            .bind(now)
            .bind(&owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(job = req.job_id, rel_l2_best = r.rel_l2_best, "job done");
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
        let job = fence(&mut tx, req.job_id, req.token).await?;
        let state: String = sqlx::query_scalar(
            "UPDATE jobs SET
                 state = CASE WHEN cancel_requested = 1 THEN 'cancelled'
                              WHEN attempts >= max_attempts THEN 'failed'
                              ELSE 'queued' END,
                 last_error = ?, lease_expires_at_ms = NULL, cancel_requested = 0,
                 updated_at_ms = ?
             WHERE id = ? RETURNING state",
        )
        .bind(error)
        .bind(now)
        .bind(req.job_id)
        .fetch_one(&mut *tx)
        .await?;
        touch_worker(&mut tx, job.lease_owner.as_deref(), now).await?;
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
        let job = fence(&mut tx, req.job_id, req.token).await?;
        sqlx::query(
            "UPDATE jobs SET
                 state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END,
                 attempts = MAX(attempts - 1, 0), lease_expires_at_ms = NULL,
                 cancel_requested = 0, updated_at_ms = ?
             WHERE id = ?",
        )
        .bind(now)
        .bind(req.job_id)
        .execute(&mut *tx)
        .await?;
        touch_worker(&mut tx, job.lease_owner.as_deref(), now).await?;
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
