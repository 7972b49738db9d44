//! What the pages show, read from the store: one function per page, each a few SQL statements
//! on the read-only pool that aggregate in SQLite (counts, medians, rates) and return at most a
//! page of rows. The same structs are the pages' JSON (`/api/...`).
//!
//! Fast at scale (`bench/dashboard-scale.sh`: 100,000 jobs, 5,000,000 metric rows): every
//! statement reads an index range of one sweep, one job or the last hour, never a whole table.
//! Counts by state come from the covering index `jobs_sweep (sweep_id, state)`; the rates from
//! `results_finished` (migration 0004); a sweep's statistics and seed dots from the covering
//! index `jobs_cells (sweep_id, pde, method, series, width, seed)`, one statement per PDE (run
//! side by side), each returning one row per (method, series, width) with its dots packed in a string rather
//! than a row per seed; lists sort the narrow index entries and read only the rows of the page.

use std::collections::BTreeMap;

use coordinator::Reader;
use serde::Serialize;
use sqlx::Row;

use crate::error::{Error, Result};

/// Rows per page of the sweeps, jobs and workers lists.
pub const PAGE: u32 = 50;
/// Most metric rows drawn per job (longer runs are thinned evenly, the last row always kept).
pub const MAX_POINTS: i64 = 2_000;
/// Most per-seed dots per (pde, method, width) on a sweep page; a cell with more seeds draws
/// every k-th by error (ranks 1, 1 + k, …; the min–max band still spans all of them).
pub const MAX_CELL_DOTS: i64 = 25;
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
    /// The job's series (`jobs.series`): its variant and extra axes' values; empty without.
    pub series: String,
    pub width: i64,
    pub n: i64,
    pub median: f64,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl CurveStat {
    /// The line of the curves this cell is on: (method, series).
    pub fn line(&self) -> (&str, &str) {
        (&self.method, &self.series)
    }
}

/// One finished job's error, a dot on the plot.
#[derive(Clone, Debug, Serialize)]
pub struct SeedDot {
    pub job_id: i64,
    pub pde: String,
    pub method: String,
    pub series: String,
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
    /// The job's axis values or variant name (issue 27); empty in a sweep without axes.
    pub series: String,
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
    /// Whether some cell had more than `MAX_CELL_DOTS` seeds, so not all of them are dots.
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
        series: r.try_get("series")?,
        width: r.try_get("width")?,
        seed: r.try_get("seed")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        worker: r.try_get("lease_owner")?,
        error: preview(r.try_get("last_error")?),
    })
}

/// `?, ?, …` for `n` values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The sweeps `heads` (id, name, created_at_ms) with their counts by state, in the same
/// order: one `GROUP BY sweep_id, state` over the covering index `jobs_sweep`. The same counts
/// as the coordinator's `SweepSummary` (its `SUM(state = …)` form takes several times longer
/// at 20,000 jobs a sweep).
async fn summaries(
    conn: &mut sqlx::SqliteConnection,
    heads: Vec<(String, String, i64)>,
) -> Result<Vec<modsync_proto::SweepSummary>> {
    if heads.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT sweep_id, state, COUNT(*) FROM jobs WHERE sweep_id IN ({})
         GROUP BY sweep_id, state",
        placeholders(heads.len())
    );
    let mut q = sqlx::query_as::<_, (String, String, i64)>(sqlx::AssertSqlSafe(sql));
    for (id, _, _) in &heads {
        q = q.bind(id);
    }
    let counts = q.fetch_all(&mut *conn).await?;
    Ok(heads
        .into_iter()
        .map(|(id, name, created_at_ms)| {
            let mut s = modsync_proto::SweepSummary {
                sweep_id: id,
                name,
                created_at_ms,
                ..Default::default()
            };
            for (_, state, n) in counts.iter().filter(|c| c.0 == s.sweep_id) {
                let n = u(*n);
                match state.as_str() {
                    "queued" => s.queued += n,
                    "running" => s.running += n,
                    "done" => s.done += n,
                    "failed" => s.failed += n,
                    "cancelled" => s.cancelled += n,
                    _ => {}
                }
                s.total += n;
            }
            s
        })
        .collect())
}

/// Results stored per hour (done jobs finished within the last hour, or since the sweep was
/// created if later) and the time left, for `summaries`. One statement for all of them, reading
/// only the last hour's results (`results_finished`), not every result of every sweep.
async fn with_rates(
    conn: &mut sqlx::SqliteConnection,
    summaries: Vec<modsync_proto::SweepSummary>,
    now_ms: i64,
) -> Result<Vec<SweepRow>> {
    let mut finished: Vec<(String, i64)> = Vec::new();
    if !summaries.is_empty() {
        // CROSS JOIN: results first, by the time index (SQLite would otherwise start from the
        // sweep's done jobs and look up each one's result).
        let sql = format!(
            "SELECT j.sweep_id, COUNT(*)
             FROM results r CROSS JOIN jobs j ON j.id = r.job_id
             JOIN sweeps s ON s.id = j.sweep_id
             WHERE r.finished_at_ms >= ? AND r.finished_at_ms >= s.created_at_ms
               AND j.state = 'done' AND j.sweep_id IN ({})
             GROUP BY j.sweep_id",
            placeholders(summaries.len())
        );
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now_ms - RATE_WINDOW_MS);
        for s in &summaries {
            q = q.bind(&s.sweep_id);
        }
        finished = q.fetch_all(&mut *conn).await?;
    }
    let mut out = Vec::with_capacity(summaries.len());
    for s in summaries {
        let since = (now_ms - RATE_WINDOW_MS).max(s.created_at_ms);
        let finished = finished
            .iter()
            .find(|f| f.0 == s.sweep_id)
            .map_or(0, |f| f.1);
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
    let mut conn = reader.pool().acquire().await?;
    let heads: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT id, name, created_at_ms FROM sweeps ORDER BY created_at_ms DESC, id
         LIMIT ? OFFSET ?",
    )
    .bind(i64::from(PAGE))
    .bind(i64::from(offset(page)))
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sweeps")
        .fetch_one(&mut *conn)
        .await?;
    let summaries = summaries(&mut conn, heads).await?;
    Ok(SweepsPage {
        sweeps: with_rates(&mut conn, summaries, now_ms).await?,
        page,
        pages: pages(u(total)),
    })
}

/// The statistics of each (method, series, width) of PDE `?3` of sweep `?1` over its results'
/// `col`, with its seeds as dots: the `curves` view's SQL (migrations/0005_series.sql)
/// for any of the three errors, with the max for the band and the dots added, so that for
/// `rel_l2_best` the numbers are the view's to the last bit (`dashboard/tests/http.rs` checks
/// it). Dots are `job seed value` triples joined by commas, values printed with 17 significant
/// digits (the bundled SQLite prints them exactly), at most `?2` per cell.
fn stats_sql(col: &str) -> String {
    format!(
        "SELECT pde, method, series, width, n, mean,
                CASE WHEN n > 1 THEN sqrt(ss / (n - 1)) ELSE 0.0 END AS std,
                median, min, max, dots
         FROM (
             SELECT pde, method, series, width, n, mean, min, max, rn,
                    SUM((v - mean) * (v - mean)) OVER w AS ss,
                    AVG(CASE WHEN rn IN ((n + 1) / 2, (n + 2) / 2) THEN v END) OVER w AS median,
                    group_concat(CASE WHEN n <= ?2 OR (rn - 1) % ((n + ?2 - 1) / ?2) = 0
                                      THEN id || ' ' || seed || ' ' || printf('%!.17g', v) END,
                                 ',') OVER w AS dots
             FROM (
                 SELECT j.pde, j.method, j.series, j.width, j.id, j.seed, res.{col} AS v,
                        ROW_NUMBER() OVER (PARTITION BY j.pde, j.method, j.series, j.width
                                           ORDER BY res.{col}) AS rn,
                        COUNT(*) OVER p AS n,
                        AVG(res.{col}) OVER p AS mean,
                        MIN(res.{col}) OVER p AS min,
                        MAX(res.{col}) OVER p AS max
                 FROM results res JOIN jobs j ON j.id = res.job_id
                 WHERE j.sweep_id = ?1 AND j.pde = ?3
                 WINDOW p AS (PARTITION BY j.pde, j.method, j.series, j.width)
             )
             WINDOW w AS (PARTITION BY pde, method, series, width)
         )
         WHERE rn = 1
         ORDER BY pde, method, series, width"
    )
}

/// The dots of one cell from their packed form (see [`stats_sql`]).
fn unpack_dots(stat: &CurveStat, packed: &str, out: &mut Vec<SeedDot>) -> Result<()> {
    for dot in packed.split(',').filter(|d| !d.is_empty()) {
        let mut f = dot.split(' ');
        let mut next = || {
            f.next()
                .ok_or_else(|| Error::Store(format!("malformed seed dot {dot:?}")))
        };
        let bad = |e: &dyn std::fmt::Display| Error::Store(format!("seed dot {dot:?}: {e}"));
        let job_id = next()?.parse::<i64>().map_err(|e| bad(&e))?;
        let seed = next()?.parse::<i64>().map_err(|e| bad(&e))?;
        let value = next()?.parse::<f64>().map_err(|e| bad(&e))?;
        out.push(SeedDot {
            job_id,
            pde: stat.pde.clone(),
            method: stat.method.clone(),
            series: stat.series.clone(),
            width: stat.width,
            seed,
            value,
        });
    }
    Ok(())
}

/// One PDE's cells (see [`stats_sql`]) with their dots, on a connection of its own.
async fn pde_stats(
    reader: Reader,
    col: &'static str,
    sweep: String,
    pde: String,
) -> Result<Vec<(CurveStat, Vec<SeedDot>)>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(stats_sql(col)))
        .bind(&sweep)
        .bind(MAX_CELL_DOTS)
        .bind(&pde)
        .fetch_all(reader.pool())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let stat = CurveStat {
            pde: r.try_get(0)?,
            method: r.try_get(1)?,
            series: r.try_get(2)?,
            width: r.try_get(3)?,
            n: r.try_get(4)?,
            mean: r.try_get(5)?,
            std: r.try_get(6)?,
            median: r.try_get(7)?,
            min: r.try_get(8)?,
            max: r.try_get(9)?,
        };
        let packed: Option<String> = r.try_get(10)?;
        let mut dots = Vec::new();
        unpack_dots(&stat, packed.as_deref().unwrap_or(""), &mut dots)?;
        dots.sort_by_key(|d| (d.seed, d.job_id));
        out.push((stat, dots));
    }
    Ok(out)
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
    let mut conn = reader.pool().acquire().await?;
    let head: Option<(String, String, i64)> =
        sqlx::query_as("SELECT id, name, created_at_ms FROM sweeps WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let head = head.ok_or_else(|| Error::NotFound(format!("no sweep {id:?}")))?;
    let summaries = summaries(&mut conn, vec![head]).await?;
    let sweep = with_rates(&mut conn, summaries, now_ms)
        .await?
        .pop()
        .ok_or_else(|| Error::NotFound(format!("no sweep {id:?}")))?;
    let total = sweep.total;
    let pdes: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT pde FROM jobs WHERE sweep_id = ? ORDER BY pde")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    const JOB_COLUMNS: &str =
        "id, pde, method, series, width, seed, state, attempts, lease_owner, last_error";
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
    // Running jobs first: they are the ones to watch. The page is chosen on the narrow
    // entries of `jobs_sweep (sweep_id, state, id)`; only its rows are read.
    let jobs = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id IN (
             SELECT id FROM jobs WHERE sweep_id = ?
             ORDER BY state <> 'running', id LIMIT ? OFFSET ?
         )
         ORDER BY state <> 'running', id"
    )))
    .bind(id)
    .bind(i64::from(PAGE))
    .bind(i64::from(offset(page)))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(job_row)
    .collect::<Result<Vec<_>>>()?;
    // The statistics take most of the time: one statement per PDE, side by side on the pool's
    // connections (none held here while they run, so concurrent pages cannot starve each other).
    drop(conn);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, pde) in pdes.into_iter().enumerate() {
        let task = pde_stats(reader.clone(), error.column(), id.to_string(), pde);
        tasks.spawn(async move { (i, task.await) });
    }
    let mut per_pde = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (i, cells) = done.map_err(|e| Error::Store(format!("statistics task: {e}")))?;
        per_pde.push((i, cells?));
    }
    per_pde.sort_by_key(|(i, _)| *i);
    let mut stats = Vec::new();
    let mut dots = Vec::new();
    let mut dots_truncated = false;
    for (stat, cell_dots) in per_pde.into_iter().flat_map(|(_, cells)| cells) {
        dots_truncated |= stat.n > MAX_CELL_DOTS;
        dots.extend(cell_dots);
        stats.push(stat);
    }
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
        "SELECT j.id, j.sweep_id, j.pde, j.method, j.series, j.width, j.seed, j.state, j.attempts,
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
