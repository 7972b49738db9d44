//! The job transitions that run their own transaction (they are rare, so the writer does not
//! batch them): a sweep's jobs created, cancelled or re-queued; a job failed or released by its
//! worker (each one fenced `UPDATE … RETURNING`); expired leases reaped.
//!
//! Each function takes the connection of a transaction its caller opened with `BEGIN
//! IMMEDIATE` on the write connection, and runs its statements there; the caller commits.

use modsync_proto::{FailJobRequest, ReleaseJobRequest};
use sqlx::SqliteConnection;

use crate::error::Result;
use crate::fence::to_i64;
use crate::grid::GridJob;
use crate::jobs::sql::{refusal, touch_worker};

/// A sweep's expanded job with its canonical JSON and hash (`grid::canonical_config`).
pub(crate) type NewJob<'a> = (&'a GridJob, (String, String));

/// Inserts the jobs of sweep `sweep_id` that it does not have yet (unique per config hash) and
/// their `job_axes`; returns how many were created. A job that is already there keeps
/// everything but its series label and axis values, which follow the latest spec: a sweep that
/// gains an axis whose first value is the old setting (`lr = [1e-3, 3e-3]` where `lr` was
/// 1e-3) labels its old jobs `lr=0.001` rather than leaving them without a series.
pub(crate) async fn insert_sweep_jobs(
    conn: &mut SqliteConnection,
    sweep_id: &str,
    jobs: &[NewJob<'_>],
    max_attempts: u32,
    priority: i32,
    now: i64,
) -> Result<u64> {
    let mut created = 0u64;
    for (job, (json, hash)) in jobs {
        let config = &job.config;
        let done = sqlx::query(
            "INSERT INTO jobs (sweep_id, pde, method, width, seed, series, config_json,
                               config_hash, pack_key, max_attempts, priority, created_at_ms,
                               updated_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (sweep_id, config_hash) DO NOTHING",
        )
        .bind(sweep_id)
        .bind(&config.pde)
        .bind(&config.method)
        .bind(to_i64(config.width as u64))
        .bind(to_i64(config.seed))
        .bind(&job.series)
        .bind(json)
        .bind(hash)
        .bind(trainer_core::pack_key(config).encode())
        .bind(max_attempts)
        .bind(priority)
        .bind(now)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let job_id = if done.rows_affected() == 1 {
            created += 1;
            Some(done.last_insert_rowid())
        } else {
            relabel(conn, sweep_id, hash, &job.series).await?
        };
        if let Some(job_id) = job_id {
            write_axes(conn, job_id, &job.settings).await?;
        }
    }
    Ok(created)
}

/// Gives the existing job of `hash` the series `series` when it has another one; returns its
/// id then (its axes are rewritten), `None` when nothing changed.
async fn relabel(
    conn: &mut SqliteConnection,
    sweep_id: &str,
    hash: &str,
    series: &str,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "UPDATE jobs SET series = ? WHERE sweep_id = ? AND config_hash = ? AND series <> ?
         RETURNING id",
    )
    .bind(series)
    .bind(sweep_id)
    .bind(hash)
    .bind(series)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Replaces the `job_axes` rows of job `job_id` by `settings`.
async fn write_axes(
    conn: &mut SqliteConnection,
    job_id: i64,
    settings: &[(String, String)],
) -> Result<()> {
    sqlx::query("DELETE FROM job_axes WHERE job_id = ?")
        .bind(job_id)
        .execute(&mut *conn)
        .await?;
    for (axis, value) in settings {
        sqlx::query("INSERT INTO job_axes (job_id, axis, value) VALUES (?, ?, ?)")
            .bind(job_id)
            .bind(axis)
            .bind(value)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// How many jobs sweep `sweep_id` has.
pub(crate) async fn count_sweep_jobs(conn: &mut SqliteConnection, sweep_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE sweep_id = ?")
            .bind(sweep_id)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Queued jobs of the sweep → cancelled; running ones are flagged `cancel_requested`.
pub(crate) async fn cancel_sweep_jobs(
    conn: &mut SqliteConnection,
    sweep_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'cancelled', updated_at_ms = ?
         WHERE sweep_id = ? AND state = 'queued'",
    )
    .bind(now)
    .bind(sweep_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE jobs SET cancel_requested = 1, updated_at_ms = ?
         WHERE sweep_id = ? AND state = 'running'",
    )
    .bind(now)
    .bind(sweep_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Failed and cancelled jobs of the sweep → queued with attempts reset to 0; a pending cancel
/// of its running jobs is withdrawn.
pub(crate) async fn requeue_sweep_jobs(
    conn: &mut SqliteConnection,
    sweep_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = 0, cancel_requested = 0,
             lease_expires_at_ms = NULL, updated_at_ms = ?
         WHERE sweep_id = ? AND state IN ('failed', 'cancelled')",
    )
    .bind(now)
    .bind(sweep_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE jobs SET cancel_requested = 0, updated_at_ms = ?
         WHERE sweep_id = ? AND state = 'running' AND cancel_requested = 1",
    )
    .bind(now)
    .bind(sweep_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What a fenced FailJob returns: where the job went and who held it.
#[derive(sqlx::FromRow)]
struct FailedRow {
    state: String,
    lease_owner: Option<String>,
}

/// A failed attempt: back to the queue while attempts < max_attempts, else `failed` (a pending
/// cancel wins: `cancelled`), with `error` in `last_error`. One fenced UPDATE; a stale token is
/// refused and writes nothing. Returns the job's new state.
pub(crate) async fn fail(
    conn: &mut SqliteConnection,
    req: &FailJobRequest,
    error: &str,
    now: i64,
) -> Result<String> {
    let failed: Option<FailedRow> = sqlx::query_as(
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
    .fetch_optional(&mut *conn)
    .await?;
    let Some(FailedRow { state, lease_owner }) = failed else {
        return Err(refusal(conn, req.job_id, req.token).await);
    };
    touch_worker(conn, lease_owner.as_deref(), now).await?;
    Ok(state)
}

/// A released job: queued again without counting the attempt (attempts − 1), or `cancelled`
/// if its sweep was cancelled meanwhile. One fenced UPDATE; a stale token is refused and writes
/// nothing.
pub(crate) async fn release(
    conn: &mut SqliteConnection,
    req: &ReleaseJobRequest,
    now: i64,
) -> Result<()> {
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
    .fetch_optional(&mut *conn)
    .await?;
    let Some(owner) = released else {
        return Err(refusal(conn, req.job_id, req.token).await);
    };
    touch_worker(conn, owner.as_deref(), now).await
}

/// A job whose expired lease was reaped, and where it went.
#[derive(sqlx::FromRow)]
pub(crate) struct ReapedJob {
    pub(crate) id: i64,
    pub(crate) state: String,
    pub(crate) attempts: i64,
}

/// Every running job whose lease expired before `now_ms` → queued, or `failed` once it used
/// its attempts, or `cancelled` if its sweep was cancelled; `last_error` says why.
pub(crate) async fn reap_expired(
    conn: &mut SqliteConnection,
    now_ms: i64,
) -> Result<Vec<ReapedJob>> {
    Ok(sqlx::query_as(
        "UPDATE jobs SET
             state = CASE WHEN cancel_requested = 1 THEN 'cancelled'
                          WHEN attempts >= max_attempts THEN 'failed'
                          ELSE 'queued' END,
             last_error = CASE WHEN cancel_requested = 1 THEN last_error
                 WHEN attempts >= max_attempts
                     THEN 'lease expired after ' || attempts || ' attempts'
                 ELSE 'lease of ' || COALESCE(lease_owner, '?') || ' expired (attempt '
                      || attempts || ' of ' || max_attempts || ')' END,
             lease_expires_at_ms = NULL, cancel_requested = 0, updated_at_ms = ?
         WHERE state = 'running' AND lease_expires_at_ms < ?
         RETURNING id, state, attempts",
    )
    .bind(now_ms)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?)
}
