//! Page 2, `/sweeps/{id}` (JSON: `/api/sweeps/{id}`; `?error=best|min_loss|last`): one
//! sweep's progress, its capacity-scaling curves per PDE (median over seeds, min–max band, a dot
//! per seed; one line per method, or per method and series in a sweep with extra axes), a
//! lines × widths table of medians, the failed jobs and a page of jobs, running first.
//!
//! The statistics and seed dots come from the `curve_seeds` view (the one definition of the
//! curves' statistics, migration 0006) through the covering index `jobs_cells (sweep_id, pde,
//! method, series, width, seed)`, one statement per PDE (run side by side), each returning the
//! dots of each (method, series, width), at most `MAX_CELL_DOTS`, with the cell's statistics;
//! the job list sorts the narrow index entries and reads only the rows of the page.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use coordinator::Reader;
use serde::Serialize;
use sqlx::Row;

use super::sweeps::{
    STATE_HEADERS, SweepRow, progress, rate_cells, state_cells, summaries, with_rates,
};
use super::{App, JobRow, PAGE, Params, job_row, jobs_table, now_ms, offset, page, pages};
use crate::error::{Error, Result};
use crate::escape::esc;
use crate::layout::{pager, sig4, url_part};
use crate::scaling;

/// Most per-seed dots per (pde, method, width) on a sweep page; a cell with more seeds draws
/// every k-th by error (ranks 1, 1 + k, …; the min–max band still spans all of them).
pub const MAX_CELL_DOTS: i64 = 25;
/// Failed jobs listed with their errors on a sweep page.
const MAX_FAILED: i64 = 50;

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

    /// The `results` column, the error's name in the `metric` column of `curve_seeds` and
    /// `curve_stats`.
    fn metric(self) -> &'static str {
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

/// Statistics over the seeds of one (pde, method, series, width): a row of the `curve_stats`
/// view (sample std, median of the middle one or two, the max for the band).
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

/// The statistics of each (method, series, width) of PDE `?2` of sweep `?1` over its results'
/// error `?3`, with its seeds' dots: the rows of the `curve_seeds` view (migrations/
/// 0006_curve_stats.sql), which also makes `curve_stats` and `curves`, so the numbers are the
/// views' to the last bit (`dashboard/tests/http.rs` checks it). Each cell's rows are its dots,
/// at most `?4` of them (every k-th seed by value, ranks 1, 1 + k, …; rank 1 is always one),
/// each carrying the cell's statistics.
const STATS_SQL: &str = "SELECT pde, method, series, width, n, mean, std, median, min, max,
        job_id, seed, value
 FROM curve_seeds
 WHERE sweep_id = ?1 AND pde = ?2 AND metric = ?3
   AND (n <= ?4 OR (rank - 1) % ((n + ?4 - 1) / ?4) = 0)
 ORDER BY pde, method, series, width";

/// One PDE's cells (see [`STATS_SQL`]) with their dots, on a connection of its own.
async fn pde_stats(
    reader: Reader,
    metric: &'static str,
    sweep: String,
    pde: String,
) -> Result<Vec<(CurveStat, Vec<SeedDot>)>> {
    let rows = sqlx::query(STATS_SQL)
        .bind(&sweep)
        .bind(&pde)
        .bind(metric)
        .bind(MAX_CELL_DOTS)
        .fetch_all(reader.pool())
        .await?;
    let mut out: Vec<(CurveStat, Vec<SeedDot>)> = Vec::new();
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
        let new_cell = out
            .last()
            .is_none_or(|(last, _)| (last.line(), last.width) != (stat.line(), stat.width));
        if new_cell {
            out.push((stat, Vec::new()));
        }
        let (stat, dots) = out.last_mut().expect("a cell was just pushed");
        dots.push(SeedDot {
            job_id: r.try_get(10)?,
            pde: stat.pde.clone(),
            method: stat.method.clone(),
            series: stat.series.clone(),
            width: stat.width,
            seed: r.try_get(11)?,
            value: r.try_get(12)?,
        });
    }
    for (_, dots) in &mut out {
        dots.sort_by_key(|d| (d.seed, d.job_id));
    }
    Ok(out)
}

/// A sweep: its curve statistics for `error`, the seeds' dots, failed jobs, a page of jobs.
pub async fn load(
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
        let task = pde_stats(reader.clone(), error.metric(), id.to_string(), pde);
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

/// Page 2: one sweep.
pub fn render(p: &SweepPage) -> String {
    let s = &p.sweep;
    let id = url_part(&s.id);
    let mut out = format!(
        r#"<h1>Sweep {name}</h1><table class="summary"><thead><tr><th>progress</th><th>total</th>{STATE_HEADERS}<th>jobs/h</th><th>ETA</th></tr></thead><tbody><tr class="sweep" data-sweep="{name}"><td>{progress}</td><td class="num total" data-value="{total}">{total}</td>{states}{rate}</tr></tbody></table>
<p class="downloads">Download: <a href="/sweeps/{id}/curves.csv">curves.csv</a> · <a href="/sweeps/{id}/results.csv">results.csv</a> · <a href="/api/sweeps/{id}?error={e}">JSON</a></p>"#,
        name = esc(&s.id),
        progress = progress(s),
        total = s.total,
        states = state_cells(s),
        rate = rate_cells(s),
        e = p.error.as_str(),
    );
    out.push_str(r#"<p class="choice">Error: "#);
    for k in ErrorKind::ALL {
        if k == p.error {
            let _ = write!(out, r#"<strong class="chosen">{}</strong> "#, k.label());
        } else {
            let _ = write!(
                out,
                r#"<a href="/sweeps/{id}?error={}">{}</a> "#,
                k.as_str(),
                k.label()
            );
        }
    }
    out.push_str("</p>");
    let lines = scaling::distinct(p.stats.iter().map(CurveStat::line));
    let pdes = scaling::distinct(p.stats.iter().map(|c| c.pde.as_str()));
    if pdes.is_empty() {
        out.push_str(r#"<p class="empty">No finished jobs yet: the curves appear with the first result.</p>"#);
    }
    for pde in &pdes {
        let of_pde: Vec<&CurveStat> = p.stats.iter().filter(|c| c.pde == *pde).collect();
        let _ = write!(
            out,
            r#"<section class="pde" data-pde="{pde}"><h2>{pde}</h2>{chart}{table}</section>"#,
            pde = esc(pde),
            chart = scaling_chart(p, pde, &lines, &of_pde),
            table = method_width_table(&lines, &of_pde),
        );
    }
    if p.dots_truncated {
        let _ = write!(
            out,
            r#"<p class="note">Cells with more than {max} seeds draw every k-th seed by error as a dot (at most {max}); the band and the statistics cover all of them.</p>"#,
            max = MAX_CELL_DOTS
        );
    }
    if !p.failed.is_empty() {
        out.push_str(r#"<h2>Failed jobs</h2>"#);
        out.push_str(&jobs_table(&p.failed, "failed"));
    }
    out.push_str("<h2>Jobs</h2>");
    out.push_str(&jobs_table(&p.jobs, "jobs"));
    out.push_str(&pager(
        &format!("/sweeps/{id}?error={}", p.error.as_str()),
        p.page,
        p.pages,
    ));
    out
}

/// Relative L2 against width ([`scaling::chart`]) with each seed as a dot.
fn scaling_chart(p: &SweepPage, pde: &str, lines: &[(&str, &str)], stats: &[&CurveStat]) -> String {
    let cells: Vec<scaling::Cell> = stats
        .iter()
        .map(|c| scaling::Cell {
            line: c.line(),
            width: c.width as u64,
            median: c.median,
            min: c.min,
            max: c.max,
        })
        .collect();
    let dots: Vec<scaling::Dot> = p
        .dots
        .iter()
        .filter(|d| d.pde == pde)
        .map(|d| scaling::Dot {
            line: (&d.method, &d.series),
            width: d.width as u64,
            value: d.value,
            tip: format!("job {} seed {}: {}", d.job_id, d.seed, sig4(d.value)),
        })
        .collect();
    let y_label = format!("relative L2 ({}), median over seeds", p.error.label());
    scaling::chart(
        &format!("{pde}: error against width"),
        &y_label,
        lines,
        &cells,
        &dots,
    )
}

/// Lines (methods, or method and series) × widths: the median (and n) per cell, the best
/// median of each width marked; the cell's mean, std, min and max in its tooltip and, exact, in
/// its `data-*` attributes.
fn method_width_table(lines: &[(&str, &str)], stats: &[&CurveStat]) -> String {
    let mut widths: Vec<i64> = stats.iter().map(|c| c.width).collect();
    widths.sort_unstable();
    widths.dedup();
    let mut out = String::from(r#"<table class="grid"><thead><tr><th>method \ width</th>"#);
    for w in &widths {
        let _ = write!(out, r#"<th class="num">{w}</th>"#);
    }
    out.push_str("</tr></thead><tbody>");
    let best: Vec<Option<f64>> = widths
        .iter()
        .map(|w| {
            stats
                .iter()
                .filter(|c| c.width == *w)
                .map(|c| c.median)
                .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.min(v))))
        })
        .collect();
    for line in lines {
        let _ = write!(
            out,
            r#"<tr data-method="{m}" data-series="{s}"><th>{name}</th>"#,
            m = esc(line.0),
            s = esc(line.1),
            name = esc(&scaling::line_name(*line)),
        );
        for (w, b) in widths.iter().zip(&best) {
            match stats.iter().find(|c| c.line() == *line && c.width == *w) {
                Some(c) => {
                    let is_best = Some(c.median) == *b;
                    let _ = write!(
                        out,
                        r#"<td class="num{}" data-width="{w}" data-value="{v}" data-n="{n}" data-mean="{mean}" data-std="{std}" data-min="{min}" data-max="{max}" title="n={n}: mean {mean4} ± {std4} (sample std), min {min4}, max {max4}">{star}{s} <small>n={n}</small></td>"#,
                        if is_best { " best" } else { "" },
                        v = c.median,
                        n = c.n,
                        mean = c.mean,
                        std = c.std,
                        min = c.min,
                        max = c.max,
                        mean4 = sig4(c.mean),
                        std4 = sig4(c.std),
                        min4 = sig4(c.min),
                        max4 = sig4(c.max),
                        star = if is_best { "★ " } else { "" },
                        s = sig4(c.median),
                    );
                }
                None => out.push_str(r#"<td class="num">—</td>"#),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

pub(crate) async fn html(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response> {
    let data = load(&app.reader, &id, q.error()?, q.page()?, now_ms()).await?;
    Ok(page(&q, &format!("Sweep {id}"), render(&data)))
}

pub(crate) async fn json(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response> {
    let data = load(&app.reader, &id, q.error()?, q.page()?, now_ms()).await?;
    Ok(Json(data).into_response())
}

/// The page's routes: its HTML and its JSON.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/sweeps/{id}", get(html))
        .route("/api/sweeps/{id}", get(json))
}
