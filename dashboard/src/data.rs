//! What the pages show, read from the store: one function per page, each a few SQL statements
//! on the read-only pool that aggregate in SQLite (counts, medians, rates) and return at most a
//! page of rows, using the store's indexes (`jobs_sweep`, `jobs_lease`, the primary keys of
//! `results` and `metrics`). The same structs are the pages' JSON (`/api/...`).

use std::collections::BTreeMap;

use coordinator::Reader;
use serde::Serialize;
use sqlx::Row;

use crate::error::{Error, Result};

/// Rows per page of the sweeps, jobs and workers lists.
pub const PAGE: u32 = 50;
/// Most metric rows drawn per job (longer runs are thinned evenly, the last row always kept).
pub const MAX_POINTS: i64 = 2_000;
/// Most per-seed dots on a sweep page.
const MAX_SEED_DOTS: i64 = 20_000;
/// Failed jobs listed with their errors on a sweep page.
const MAX_FAILED: i64 = 50;
/// Characters of an error shown in a list (the job page shows all of it).
const ERROR_PREVIEW: usize = 300;
/// The window of the jobs-per-hour rate.
const RATE_WINDOW_MS: i64 = 3_600_000;

/// One sweep in the sweeps list.
#[derive(Clone, Debug, Serialize)]
pub struct SweepRow {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub total: u64,
    /// Finished jobs (done, failed or cancelled) over the total, in percent.
    pub progress_pct: f64,
    /// Results stored per hour over the last hour (or since the sweep was created, if later).
    pub jobs_per_hour: f64,
    /// Queued and running jobs at that rate; `None` while nothing finishes.
    pub eta_s: Option<f64>,
}

/// A page of sweeps.
#[derive(Debug, Serialize)]
pub struct SweepsPage {
    pub sweeps: Vec<SweepRow>,
    pub page: u32,
    pub pages: u32,
}

/// Which relative L2 of a result the sweep page plots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The smallest over the evaluations (`rel_l2_best`, the `curves` view's).
    #[default]
    Best,
    /// At the evaluation with the smallest training loss (`rel_l2_min_loss`).
    MinLoss,
    /// At the last evaluation (`rel_l2_last`).
    Last,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 3] = [ErrorKind::Best, ErrorKind::MinLoss, ErrorKind::Last];

    /// The `results` column: one of three fixed names, never user text.
    fn column(self) -> &'static str {
        match self {
            ErrorKind::Best => "rel_l2_best",
            ErrorKind::MinLoss => "rel_l2_min_loss",
            ErrorKind::Last => "rel_l2_last",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Best => "best",
            ErrorKind::MinLoss => "min_loss",
            ErrorKind::Last => "last",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Best => "best",
            ErrorKind::MinLoss => "at minimum loss",
            ErrorKind::Last => "last",
        }
    }
}

/// Statistics over the seeds of one (pde, method, width): the `curves` view's definitions
/// (sample std, median of the middle one or two), plus the max for the band.
#[derive(Clone, Debug, Serialize)]
pub struct CurveStat {
    pub pde: String,
    pub method: String,
    pub width: i64,
    pub n: i64,
    pub median: f64,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

/// One finished job's error, a dot on the plot.
#[derive(Clone, Debug, Serialize)]
pub struct SeedDot {
    pub job_id: i64,
    pub pde: String,
    pub method: String,
    pub width: i64,
    pub seed: i64,
    pub value: f64,
}

/// A job in a list.
#[derive(Clone, Debug, Serialize)]
pub struct JobRow {
    pub id: i64,
    pub pde: String,
    pub method: String,
    pub width: i64,
    pub seed: i64,
    pub state: String,
    pub attempts: i64,
    pub worker: Option<String>,
    /// The first `ERROR_PREVIEW` characters of the last error.
    pub error: Option<String>,
}

/// Everything on a sweep page.
#[derive(Debug, Serialize)]
pub struct SweepPage {
    pub sweep: SweepRow,
    pub error: ErrorKind,
    pub stats: Vec<CurveStat>,
    pub dots: Vec<SeedDot>,
    /// Whether `dots` was cut at its limit.
    pub dots_truncated: bool,
    pub failed: Vec<JobRow>,
    pub jobs: Vec<JobRow>,
    pub page: u32,
    pub pages: u32,
}

/// A job's result row, when it has one.
#[derive(Debug, Serialize)]
pub struct JobResult {
    pub rel_l2_best: f64,
    pub rel_l2_min_loss: f64,
    pub rel_l2_last: f64,
    pub best_iter: i64,
    pub iters_done: i64,
    pub wall_s: f64,
    pub num_params: i64,
    pub status: String,
    pub device: String,
}

/// A job's metric rows as columns (`None` where the store holds NULL: non-finite values).
#[derive(Debug, Default, Serialize)]
pub struct Series {
    pub iter: Vec<i64>,
    pub loss_r: Vec<Option<f64>>,
    pub loss_b: Vec<Option<f64>>,
    pub rel_l2: Vec<Option<f64>>,
    pub lr: Vec<Option<f64>>,
    /// The method's diagnostics by name (`metrics.extra`), aligned with `iter`.
    pub extra: BTreeMap<String, Vec<Option<f64>>>,
    /// Metric rows stored in all (more than drawn when thinned).
    pub rows: i64,
}

/// Everything on a job page.
#[derive(Debug, Serialize)]
pub struct JobPage {
    pub job: JobRow,
    pub sweep_id: String,
    pub max_attempts: i64,
    pub host: Option<String>,
    pub device: Option<String>,
    pub lease_expires_at_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// The whole last error.
    pub last_error: Option<String>,
    pub config: serde_json::Value,
    pub result: Option<JobResult>,
    pub series: Series,
}

/// A worker in the workers list.
#[derive(Debug, Serialize)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub device: String,
    pub last_seen_ms: i64,
    pub running: i64,
    pub jobs_done: i64,
}

#[derive(Debug, Serialize)]
pub struct WorkersPage {
    pub workers: Vec<WorkerRow>,
    pub page: u32,
    pub pages: u32,
}

fn pages(total: u64) -> u32 {
    u32::try_from(total.div_ceil(u64::from(PAGE)).max(1)).unwrap_or(u32::MAX)
}

fn offset(page: u32) -> u32 {
    page.saturating_sub(1).saturating_mul(PAGE)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn preview(e: Option<String>) -> Option<String> {
    e.map(|e| {
        let first = e.lines().next().unwrap_or("");
        if first.chars().count() > ERROR_PREVIEW {
            format!("{}…", first.chars().take(ERROR_PREVIEW).collect::<String>())
        } else {
            first.to_string()
        }
    })
}

fn job_row(r: &sqlx::sqlite::SqliteRow) -> Result<JobRow> {
    Ok(JobRow {
        id: r.try_get("id")?,
        pde: r.try_get("pde")?,
        method: r.try_get("method")?,
        width: r.try_get("width")?,
        seed: r.try_get("seed")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        worker: r.try_get("lease_owner")?,
        error: preview(r.try_get("last_error")?),
    })
}

/// Results per hour and the time left for the sweeps `rows`, from one statement.
async fn with_rates(
    reader: &Reader,
    summaries: Vec<modsync_proto::SweepSummary>,
    now_ms: i64,
) -> Result<Vec<SweepRow>> {
    let mut out = Vec::with_capacity(summaries.len());
    for s in summaries {
        let since = (now_ms - RATE_WINDOW_MS).max(s.created_at_ms);
        let finished: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs j JOIN results r ON r.job_id = j.id
             WHERE j.sweep_id = ? AND j.state = 'done' AND r.finished_at_ms >= ?",
        )
        .bind(&s.sweep_id)
        .bind(since)
        .fetch_one(reader.pool())
        .await?;
        let hours = ((now_ms - since).max(60_000)) as f64 / 3_600_000.0;
        let jobs_per_hour = finished as f64 / hours;
        let left = (s.queued + s.running) as f64;
        let eta_s = (jobs_per_hour > 0.0).then(|| left / jobs_per_hour * 3600.0);
        let ended = s.done + s.failed + s.cancelled;
        out.push(SweepRow {
            progress_pct: if s.total == 0 {
                0.0
            } else {
                100.0 * ended as f64 / s.total as f64
            },
            id: s.sweep_id,
            name: s.name,
            created_at_ms: s.created_at_ms,
            queued: s.queued,
            running: s.running,
            done: s.done,
            failed: s.failed,
            cancelled: s.cancelled,
            total: s.total,
            jobs_per_hour,
            eta_s,
        });
    }
    Ok(out)
}

/// Page `page` (from 1) of the sweeps, newest first.
pub async fn sweeps(reader: &Reader, page: u32, now_ms: i64) -> Result<SweepsPage> {
    let page = page.max(1);
    let (summaries, total) = reader.list_sweeps_page(PAGE, offset(page)).await?;
    Ok(SweepsPage {
        sweeps: with_rates(reader, summaries, now_ms).await?,
        page,
        pages: pages(total),
    })
}

/// A sweep: its curve statistics for `error`, the seeds' dots, failed jobs, a page of jobs.
pub async fn sweep(
    reader: &Reader,
    id: &str,
    error: ErrorKind,
    page: u32,
    now_ms: i64,
) -> Result<SweepPage> {
    let page = page.max(1);
    let summary = reader.get_sweep(id).await?;
    let total = summary.total;
    let sweep = with_rates(reader, vec![summary], now_ms)
        .await?
        .pop()
        .ok_or_else(|| Error::NotFound(format!("no sweep {id:?}")))?;
    let col = error.column();
    let stats_sql = format!(
        "WITH r AS (
             SELECT j.pde, j.method, j.width, res.{col} AS v
             FROM jobs j JOIN results res ON res.job_id = j.id WHERE j.sweep_id = ?1
         ),
         g AS (
             SELECT pde, method, width, COUNT(*) AS n, AVG(v) AS mean, MIN(v) AS mn, MAX(v) AS mx
             FROM r GROUP BY pde, method, width
         ),
         k AS (
             SELECT pde, method, width, v,
                    ROW_NUMBER() OVER (PARTITION BY pde, method, width ORDER BY v) AS rn
             FROM r
         )
         SELECT g.pde, g.method, g.width, g.n, g.mean, g.mn, g.mx,
                CASE WHEN g.n > 1 THEN sqrt(SUM((k.v - g.mean) * (k.v - g.mean)) / (g.n - 1))
                     ELSE 0.0 END AS std,
                AVG(CASE WHEN k.rn IN ((g.n + 1) / 2, (g.n + 2) / 2) THEN k.v END) AS median
         FROM g JOIN k ON k.pde = g.pde AND k.method = g.method AND k.width = g.width
         GROUP BY g.pde, g.method, g.width
         ORDER BY g.pde, g.method, g.width"
    );
    let mut conn = reader.pool().acquire().await?;
    let stats = sqlx::query(sqlx::AssertSqlSafe(stats_sql))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(CurveStat {
                pde: r.try_get(0)?,
                method: r.try_get(1)?,
                width: r.try_get(2)?,
                n: r.try_get(3)?,
                mean: r.try_get(4)?,
                min: r.try_get(5)?,
                max: r.try_get(6)?,
                std: r.try_get(7)?,
                median: r.try_get(8)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let dots_sql = format!(
        "SELECT j.id, j.pde, j.method, j.width, j.seed, res.{col}
         FROM jobs j JOIN results res ON res.job_id = j.id WHERE j.sweep_id = ?
         ORDER BY j.pde, j.method, j.width, j.seed LIMIT ?"
    );
    let mut dots = sqlx::query(sqlx::AssertSqlSafe(dots_sql))
        .bind(id)
        .bind(MAX_SEED_DOTS + 1)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(SeedDot {
                job_id: r.try_get(0)?,
                pde: r.try_get(1)?,
                method: r.try_get(2)?,
                width: r.try_get(3)?,
                seed: r.try_get(4)?,
                value: r.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let dots_truncated = dots.len() as i64 > MAX_SEED_DOTS;
    dots.truncate(MAX_SEED_DOTS as usize);
    const JOB_COLUMNS: &str =
        "id, pde, method, width, seed, state, attempts, lease_owner, last_error";
    let failed = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE sweep_id = ? AND state = 'failed' ORDER BY id LIMIT ?"
    )))
    .bind(id)
    .bind(MAX_FAILED)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(job_row)
    .collect::<Result<Vec<_>>>()?;
    // Running jobs first: they are the ones to watch.
    let jobs = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE sweep_id = ?
         ORDER BY state <> 'running', id LIMIT ? OFFSET ?"
    )))
    .bind(id)
    .bind(i64::from(PAGE))
    .bind(i64::from(offset(page)))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(job_row)
    .collect::<Result<Vec<_>>>()?;
    Ok(SweepPage {
        sweep,
        error,
        stats,
        dots,
        dots_truncated,
        failed,
        jobs,
        page,
        pages: pages(total),
    })
}

/// A job with its result and its metric rows (thinned to at most `MAX_POINTS`).
pub async fn job(reader: &Reader, id: i64) -> Result<JobPage> {
    let mut conn = reader.pool().acquire().await?;
    let row = sqlx::query(
        "SELECT j.id, j.sweep_id, j.pde, j.method, j.width, j.seed, j.state, j.attempts,
                j.max_attempts, j.lease_owner, j.lease_expires_at_ms, j.last_error,
                j.config_json, j.updated_at_ms, w.host, w.device
         FROM jobs j LEFT JOIN workers w ON w.id = j.lease_owner WHERE j.id = ?",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::NotFound(format!("no job {id}")))?;
    let config_text: String = row.try_get("config_json")?;
    let last_error: Option<String> = row.try_get("last_error")?;
    let result = sqlx::query(
        "SELECT rel_l2_best, rel_l2_min_loss, rel_l2_last, best_iter, iters_done, wall_s,
                num_params, status, device FROM results WHERE job_id = ?",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| -> Result<JobResult> {
        Ok(JobResult {
            rel_l2_best: r.try_get(0)?,
            rel_l2_min_loss: r.try_get(1)?,
            rel_l2_last: r.try_get(2)?,
            best_iter: r.try_get(3)?,
            iters_done: r.try_get(4)?,
            wall_s: r.try_get(5)?,
            num_params: r.try_get(6)?,
            status: r.try_get(7)?,
            device: r.try_get(8)?,
        })
    })
    .transpose()?;
    let series = series(&mut conn, id).await?;
    Ok(JobPage {
        job: job_row(&row)?,
        sweep_id: row.try_get("sweep_id")?,
        max_attempts: row.try_get("max_attempts")?,
        host: row.try_get("host")?,
        device: row.try_get("device")?,
        lease_expires_at_ms: row.try_get("lease_expires_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        last_error,
        // Stored by the coordinator as canonical JSON; shown as text if it ever is not.
        config: serde_json::from_str(&config_text)
            .unwrap_or(serde_json::Value::String(config_text)),
        result,
        series,
    })
}

/// A job's metric rows, every `step`-th (and the last) when there are more than `MAX_POINTS`.
async fn series(conn: &mut sqlx::SqliteConnection, id: i64) -> Result<Series> {
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metrics WHERE job_id = ?")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let step = ((rows + MAX_POINTS - 1) / MAX_POINTS).max(1);
    let fetched = sqlx::query(
        "SELECT iter, loss_r, loss_b, rel_l2, lr, extra FROM (
             SELECT iter, loss_r, loss_b, rel_l2, lr, extra,
                    ROW_NUMBER() OVER (ORDER BY iter) - 1 AS rn
             FROM metrics WHERE job_id = ?1
         ) WHERE rn % ?2 = 0 OR rn = ?3 - 1 ORDER BY iter",
    )
    .bind(id)
    .bind(step)
    .bind(rows)
    .fetch_all(&mut *conn)
    .await?;
    let mut s = Series {
        rows,
        ..Series::default()
    };
    for (i, r) in fetched.iter().enumerate() {
        s.iter.push(r.try_get(0)?);
        s.loss_r.push(r.try_get(1)?);
        s.loss_b.push(r.try_get(2)?);
        s.rel_l2.push(r.try_get(3)?);
        s.lr.push(r.try_get(4)?);
        let extra: String = r.try_get(5)?;
        let values: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&extra).unwrap_or_default();
        for (name, v) in values {
            let column = s.extra.entry(name).or_insert_with(|| vec![None; i]);
            column.push(v.as_f64());
        }
        // Diagnostics missing from this row stay aligned with `iter`.
        for column in s.extra.values_mut() {
            column.resize(i + 1, None);
        }
    }
    Ok(s)
}

/// Page `page` of the workers, most recently seen first, with their running jobs.
pub async fn workers(reader: &Reader, page: u32) -> Result<WorkersPage> {
    let page = page.max(1);
    let mut conn = reader.pool().acquire().await?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workers")
        .fetch_one(&mut *conn)
        .await?;
    let workers = sqlx::query(
        "WITH w AS (SELECT * FROM workers ORDER BY last_seen_ms DESC, id LIMIT ? OFFSET ?)
         SELECT w.id, w.host, w.device, w.last_seen_ms, w.jobs_done,
                (SELECT COUNT(*) FROM jobs j WHERE j.state = 'running' AND j.lease_owner = w.id)
         FROM w ORDER BY w.last_seen_ms DESC, w.id",
    )
    .bind(i64::from(PAGE))
    .bind(i64::from(offset(page)))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(WorkerRow {
            id: r.try_get(0)?,
            host: r.try_get(1)?,
            device: r.try_get(2)?,
            last_seen_ms: r.try_get(3)?,
            jobs_done: r.try_get(4)?,
            running: r.try_get(5)?,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    Ok(WorkersPage {
        workers,
        page,
        pages: pages(u(total)),
    })
}
