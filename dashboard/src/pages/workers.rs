//! Page 4, `/workers` (JSON: `/api/workers`): every worker, most recently seen first, with its
//! host, device, running jobs and jobs done.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use coordinator::Reader;
use serde::Serialize;
use sqlx::Row;

use super::{App, PAGE, Params, now_ms, offset, page, pages, u};
use crate::error::Result;
use crate::escape::esc;
use crate::layout::{duration, pager, utc};

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

/// Page `page` of the workers, most recently seen first, with their running jobs.
pub async fn load(reader: &Reader, page: u32) -> Result<WorkersPage> {
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

/// Page 4: the workers.
pub fn render(p: &WorkersPage, now_ms: i64) -> String {
    let mut out = String::from("<h1>Workers</h1>");
    if p.workers.is_empty() {
        out.push_str(r#"<p class="empty">No worker has leased a job yet.</p>"#);
        return out;
    }
    out.push_str(r#"<table class="workers"><thead><tr><th>worker</th><th>host</th><th>device</th><th>last seen</th><th>current jobs</th><th>jobs done</th></tr></thead><tbody>"#);
    for w in &p.workers {
        let ago = ((now_ms - w.last_seen_ms).max(0)) as f64 / 1000.0;
        let _ = write!(
            out,
            r#"<tr class="worker" data-worker="{id}"><td>{id}</td><td>{host}</td><td>{device}</td><td title="{at} UTC">{ago} ago</td><td class="num running" data-value="{r}">{r}</td><td class="num done" data-value="{d}">{d}</td></tr>"#,
            id = esc(&w.id),
            host = esc(&w.host),
            device = esc(&w.device),
            at = utc(w.last_seen_ms),
            ago = duration(ago),
            r = w.running,
            d = w.jobs_done,
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&pager("/workers", p.page, p.pages));
    out
}

pub(crate) async fn html(State(app): State<App>, Query(q): Query<Params>) -> Result<Response> {
    let data = load(&app.reader, q.page()?).await?;
    Ok(page(&q, "Workers", render(&data, now_ms())))
}

pub(crate) async fn json(State(app): State<App>, Query(q): Query<Params>) -> Result<Response> {
    Ok(Json(load(&app.reader, q.page()?).await?).into_response())
}

/// The page's routes: its HTML and its JSON.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/workers", get(html))
        .route("/api/workers", get(json))
}
