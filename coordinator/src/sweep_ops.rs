//! Operations on whole sweeps in the store: submit (idempotent), cancel, retry; and the reads
//! of a sweep's status: summaries (job counts by state) and its failed jobs. The statements
//! that change `jobs` rows are in `jobs/queue.rs`; validating and expanding the grid is
//! `grid.rs` of the sweep-spec crate.
//!
//! Resubmission rules (how an interrupted or extended sweep is resumed):
//! - the sweep id is the name, so a resubmission finds the existing sweep;
//! - every expanded config is inserted with `ON CONFLICT (sweep_id, config_hash) DO NOTHING`:
//!   jobs already present (in any state, with their results, metrics and checkpoints) are left
//!   exactly as they are, and only grid points that are new get a job (a value added to an
//!   axis adds only its jobs) — but for their series label and `job_axes`, which follow the
//!   new spec;
//! - jobs whose grid point is no longer in the spec are kept too: nothing is ever deleted;
//! - the sweep row takes the new spec, priority and max_attempts; they apply to the jobs created
//!   by this call (existing jobs keep theirs).

use modsync_proto::{SubmitSweepResponse, SweepSpec, SweepSummary};
use serde_json::json;
use sqlx::SqliteConnection;

use crate::error::{Error, Result};
use crate::fence::{now_ms, to_u64};
use crate::grid;
use crate::jobs::queue;
use crate::reader::Reader;
use crate::series;
use crate::store::Store;

/// A row of [`SUMMARY_SQL`]: a sweep and its job counts.
#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: String,
    name: String,
    created_at_ms: i64,
    queued: i64,
    running: i64,
    done: i64,
    failed: i64,
    cancelled: i64,
    total: i64,
}

/// Counts by state for sweeps; `WHERE` is appended by the caller.
const SUMMARY_SQL: &str = "SELECT s.id, s.name, s.created_at_ms, \
       COALESCE(SUM(j.state = 'queued'), 0) AS queued, \
       COALESCE(SUM(j.state = 'running'), 0) AS running, \
       COALESCE(SUM(j.state = 'done'), 0) AS done, \
       COALESCE(SUM(j.state = 'failed'), 0) AS failed, \
       COALESCE(SUM(j.state = 'cancelled'), 0) AS cancelled, COUNT(j.id) AS total \
     FROM sweeps s LEFT JOIN jobs j ON j.sweep_id = s.id";

fn summary(r: SummaryRow) -> SweepSummary {
    SweepSummary {
        sweep_id: r.id,
        name: r.name,
        created_at_ms: r.created_at_ms,
        queued: to_u64(r.queued),
        running: to_u64(r.running),
        done: to_u64(r.done),
        failed: to_u64(r.failed),
        cancelled: to_u64(r.cancelled),
        total: to_u64(r.total),
    }
}

/// The spec as stored in `sweeps.spec`: the parsed base config rather than a string in a string,
/// and the effective max_attempts.
fn spec_json(spec: &SweepSpec, max_attempts: u32) -> String {
    let base: serde_json::Value =
        serde_json::from_str(&spec.base_config_json).unwrap_or_else(|_| json!({})); // validated by expand(); empty means {}
    json!({
        "name": spec.name,
        "pdes": spec.pdes,
        "methods": spec.methods,
        "widths": spec.widths,
        "seeds": spec.seeds,
        "base_config": base,
        "axes": series::axes_json(spec),
        "variants": series::variants_json(spec),
        "max_attempts": max_attempts,
        "priority": spec.priority,
    })
    .to_string()
}

impl Store {
    /// Validates and expands `spec`, then creates the sweep and the jobs it does not have yet,
    /// in one transaction (all or nothing).
    pub async fn submit_sweep(&self, spec: &SweepSpec) -> Result<SubmitSweepResponse> {
        let grid_jobs = grid::expand_jobs(spec)?;
        let max_attempts = grid::max_attempts(spec)?;
        let id = grid::sweep_id(&spec.name);
        // Hash outside the transaction: it is the only CPU-heavy part.
        let jobs: Vec<_> = grid_jobs
            .iter()
            .map(|j| (j, grid::canonical_config(&j.config)))
            .collect();
        let now = now_ms();

        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO sweeps (id, name, spec, priority, max_attempts, created_at_ms, updated_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, priority = excluded.priority,
                 max_attempts = excluded.max_attempts, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(&id)
        .bind(&spec.name)
        .bind(spec_json(spec, max_attempts))
        .bind(spec.priority)
        .bind(max_attempts)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;

        let created =
            queue::insert_sweep_jobs(&mut tx, &id, &jobs, max_attempts, spec.priority, now).await?;
        let total = queue::count_sweep_jobs(&mut tx, &id).await?;
        tx.commit().await?;
        tracing::info!(sweep = %id, created, total, "sweep submitted");
        Ok(SubmitSweepResponse {
            sweep_id: id,
            jobs_total: to_u64(total),
            jobs_created: created,
        })
    }

    /// Queued jobs → cancelled; running jobs are flagged so that their next heartbeat answers
    /// `cancel = true` (and their release/failure/expiry ends them as cancelled).
    pub async fn cancel_sweep(&self, sweep_id: &str) -> Result<SweepSummary> {
        let now = now_ms();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        sweep_summary(&mut tx, sweep_id).await?; // NOT_FOUND before writing anything
        queue::cancel_sweep_jobs(&mut tx, sweep_id, now).await?;
        let out = sweep_summary(&mut tx, sweep_id).await?;
        tx.commit().await?;
        tracing::info!(sweep = %sweep_id, "sweep cancelled");
        Ok(out)
    }

    /// Failed and cancelled jobs → queued with attempts reset to 0 (their last_error stays as a
    /// record until the next attempt overwrites it); a pending cancel of running jobs is
    /// withdrawn, so "cancel, then retry" resumes the whole sweep.
    pub async fn retry_failed(&self, sweep_id: &str) -> Result<SweepSummary> {
        let now = now_ms();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        sweep_summary(&mut tx, sweep_id).await?;
        queue::requeue_sweep_jobs(&mut tx, sweep_id, now).await?;
        let out = sweep_summary(&mut tx, sweep_id).await?;
        tx.commit().await?;
        tracing::info!(sweep = %sweep_id, "failed jobs requeued");
        Ok(out)
    }
}

/// A failed job of a sweep and why its last attempt failed: what a user needs to find the
/// job (`jobs.id`) and its grid point, and to decide whether a retry can help.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FailedJob {
    /// `jobs.id`, as `modsync sql` shows it.
    pub id: i64,
    /// The grid point: PDE, method, width and seed.
    pub pde: String,
    pub method: String,
    pub width: i64,
    pub seed: i64,
    /// The last attempt's error (`jobs.last_error`); `None` only if no attempt left one.
    pub last_error: Option<String>,
}

impl Reader {
    /// All sweeps, oldest first, with their job counts.
    pub async fn list_sweeps(&self) -> Result<Vec<SweepSummary>> {
        let sql = format!("{SUMMARY_SQL} GROUP BY s.id ORDER BY s.created_at_ms, s.id");
        let rows: Vec<SummaryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(summary).collect())
    }

    /// One page of sweeps, newest first, with their job counts (the counts of `list_sweeps`);
    /// and how many sweeps there are in all.
    pub async fn list_sweeps_page(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<SweepSummary>, u64)> {
        let sql = format!(
            "{SUMMARY_SQL} WHERE s.id IN (SELECT id FROM sweeps \
             ORDER BY created_at_ms DESC, id LIMIT ? OFFSET ?) \
             GROUP BY s.id ORDER BY s.created_at_ms DESC, s.id"
        );
        let mut conn = self.pool.acquire().await?;
        let rows: Vec<SummaryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&mut *conn)
            .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sweeps")
            .fetch_one(&mut *conn)
            .await?;
        Ok((rows.into_iter().map(summary).collect(), to_u64(total)))
    }

    /// The first `limit` failed jobs of a sweep, oldest first, with their last errors (what
    /// `modsync sweep run` prints when a sweep ends with failures). Empty for an unknown sweep.
    pub async fn failed_jobs(&self, sweep_id: &str, limit: u32) -> Result<Vec<FailedJob>> {
        Ok(sqlx::query_as(
            "SELECT id, pde, method, width, seed, last_error FROM jobs
             WHERE sweep_id = ? AND state = 'failed' ORDER BY id LIMIT ?",
        )
        .bind(sweep_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    /// One sweep with its job counts; NOT_FOUND if there is no such sweep.
    pub async fn get_sweep(&self, sweep_id: &str) -> Result<SweepSummary> {
        let mut conn = self.pool.acquire().await?;
        sweep_summary(&mut conn, sweep_id).await
    }
}

/// The summary of one sweep on `conn` (inside a transaction when the caller has one).
pub(crate) async fn sweep_summary(
    conn: &mut SqliteConnection,
    sweep_id: &str,
) -> Result<SweepSummary> {
    let sql = format!("{SUMMARY_SQL} WHERE s.id = ? GROUP BY s.id");
    let row: Option<SummaryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(sweep_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(summary).ok_or_else(|| not_found(sweep_id))
}

pub(crate) fn not_found(sweep_id: &str) -> Error {
    Error::NotFound(format!("no sweep {sweep_id:?}"))
}
