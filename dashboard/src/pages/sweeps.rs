//! Page 1, `/` (JSON: `/api/sweeps`): every sweep, newest first, with its progress, counts by
//! state, jobs per hour and ETA. Counts by state come from the covering index `jobs_sweep
//! (sweep_id, state)`, the rates from `results_finished` (migration 0004). The sweep page
//! shows the same row for its sweep.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use coordinator::Reader;
use serde::Serialize;

use super::{App, PAGE, Params, now_ms, offset, page, pages, placeholders, u};
use crate::error::Result;
use crate::escape::esc;
use crate::layout::{duration, pager, url_part, utc};

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

/// The sweeps `heads` (id, name, created_at_ms) with their counts by state, in the same
/// order: one `GROUP BY sweep_id, state` over the covering index `jobs_sweep`. The same counts
/// as the coordinator's `SweepSummary` (its `SUM(state = …)` form takes several times longer
/// at 20,000 jobs a sweep).
pub(super) async fn summaries(
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
pub(super) async fn with_rates(
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
pub async fn load(reader: &Reader, page: u32, now_ms: i64) -> Result<SweepsPage> {
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

pub(super) fn progress(s: &SweepRow) -> String {
    format!(
        r#"<span class="progress" data-value="{p}"><progress max="100" value="{p:.1}"></progress> {p:.0} %</span>"#,
        p = s.progress_pct
    )
}

/// The counts by state as cells, each with its state as class.
pub(super) fn state_cells(s: &SweepRow) -> String {
    let mut out = String::new();
    for (class, n) in [
        ("queued", s.queued),
        ("running", s.running),
        ("done", s.done),
        ("failed", s.failed),
        ("cancelled", s.cancelled),
    ] {
        let _ = write!(out, r#"<td class="num {class}" data-value="{n}">{n}</td>"#);
    }
    out
}

pub(super) fn rate_cells(s: &SweepRow) -> String {
    format!(
        r#"<td class="num rate" data-value="{}">{:.1}</td><td class="eta">{}</td>"#,
        s.jobs_per_hour,
        s.jobs_per_hour,
        match s.eta_s {
            Some(eta) if s.queued + s.running > 0 => duration(eta),
            _ if s.queued + s.running == 0 => "finished".into(),
            _ => "—".into(),
        }
    )
}

pub(super) const STATE_HEADERS: &str =
    "<th>queued</th><th>running</th><th>done</th><th>failed</th><th>cancelled</th>";

/// Page 1: every sweep.
pub fn render(p: &SweepsPage) -> String {
    let mut out = String::from("<h1>Sweeps</h1>");
    if p.sweeps.is_empty() {
        out.push_str(r#"<p class="empty">No sweeps yet: <code>modsync submit FILE</code> or <code>modsync sweep run FILE</code>.</p>"#);
        return out;
    }
    let _ = write!(
        out,
        r#"<table class="sweeps"><thead><tr><th>sweep</th><th>created (UTC)</th><th>progress</th><th>total</th>{STATE_HEADERS}<th>jobs/h</th><th>ETA</th></tr></thead><tbody>"#
    );
    for s in &p.sweeps {
        let _ = write!(
            out,
            r#"<tr class="sweep" data-sweep="{id}"><td><a href="/sweeps/{url}">{id}</a></td><td>{created}</td><td>{progress}</td><td class="num total" data-value="{total}">{total}</td>{states}{rate}</tr>"#,
            id = esc(&s.id),
            url = url_part(&s.id),
            created = utc(s.created_at_ms),
            progress = progress(s),
            total = s.total,
            states = state_cells(s),
            rate = rate_cells(s),
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&pager("/", p.page, p.pages));
    out
}

pub(crate) async fn html(State(app): State<App>, Query(q): Query<Params>) -> Result<Response> {
    let data = load(&app.reader, q.page()?, now_ms()).await?;
    Ok(page(&q, "Sweeps", render(&data)))
}

pub(crate) async fn json(State(app): State<App>, Query(q): Query<Params>) -> Result<Response> {
    Ok(Json(load(&app.reader, q.page()?, now_ms()).await?).into_response())
}

/// The page's routes: its HTML and its JSON.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/", get(html))
        .route("/api/sweeps", get(json))
}
