//! One module per page, each with its query (`load`: a few SQL statements on the read-only
//! pool that aggregate in SQLite and return at most a page of rows), the struct it returns (also
//! the page's JSON under `/api/...`), its rendering (`render`: HTML strings, every value from
//! the store escaped), its two handlers (`html`, `json`) and its `routes()`. What the pages
//! share lives here: the handlers' state and query parameters, paging, and the list of jobs.
//! Adding a page: its file, its `mod` line and its line in [`routes`] (docs/architecture.md).
//!
//! Fast at scale (`bench/dashboard-scale.sh`: 100,000 jobs, 5,000,000 metric rows): every
//! statement reads an index range of one sweep, one job or the last hour, never a whole table.

pub mod job;
pub mod sweep;
pub mod sweeps;
pub mod workers;

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::response::{Html, IntoResponse, Response};
use coordinator::Reader;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::escape::esc;
use crate::layout;
use sweep::ErrorKind;

/// Every page's routes.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .merge(sweeps::routes())
        .merge(sweep::routes())
        .merge(job::routes())
        .merge(workers::routes())
}

/// Rows per page of the sweeps, jobs and workers lists.
pub const PAGE: u32 = 50;
/// Characters of an error shown in a list (the job page shows all of it).
const ERROR_PREVIEW: usize = 300;

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) reader: Reader,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The query parameters the pages take; each is checked and a bad one named.
#[derive(Deserialize, Default)]
pub(crate) struct Params {
    page: Option<String>,
    error: Option<String>,
    fragment: Option<String>,
}

impl Params {
    pub(crate) fn page(&self) -> Result<u32> {
        match &self.page {
            None => Ok(1),
            Some(p) => p
                .parse::<u32>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| Error::Invalid {
                    field: "page".into(),
                    problem: format!("{p:?} is not a page number (1, 2, …)"),
                }),
        }
    }

    pub(crate) fn error(&self) -> Result<ErrorKind> {
        match self.error.as_deref() {
            None => Ok(ErrorKind::Best),
            Some(e) => ErrorKind::ALL
                .into_iter()
                .find(|k| k.as_str() == e)
                .ok_or_else(|| Error::Invalid {
                    field: "error".into(),
                    problem: format!("{e:?}: one of best, min_loss, last"),
                }),
        }
    }

    fn fragment(&self) -> bool {
        self.fragment.as_deref() == Some("1")
    }
}

/// The page, or only its `<main>` content for the live update.
pub(crate) fn page(params: &Params, title: &str, body: String) -> Response {
    if params.fragment() {
        Html(body).into_response()
    } else {
        Html(layout::layout(title, &body, true)).into_response()
    }
}

/// The job number of a `/jobs/{id}` path.
pub(crate) fn job_id(id: &str) -> Result<i64> {
    id.parse().map_err(|_| Error::Invalid {
        field: "job id".into(),
        problem: format!("{id:?} is not a job number"),
    })
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

pub(crate) fn pages(total: u64) -> u32 {
    u32::try_from(total.div_ceil(u64::from(PAGE)).max(1)).unwrap_or(u32::MAX)
}

pub(crate) fn offset(page: u32) -> u32 {
    page.saturating_sub(1).saturating_mul(PAGE)
}

pub(crate) fn u(v: i64) -> u64 {
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

pub(crate) fn job_row(r: &sqlx::sqlite::SqliteRow) -> Result<JobRow> {
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
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The sweeps `heads` (id, name, created_at_ms) with their counts by state, in the same
/// order: one `GROUP BY sweep_id, state` over the covering index `jobs_sweep`. The same counts
/// as the coordinator's `SweepSummary` (its `SUM(state = …)` form takes several times longer
/// at 20,000 jobs a sweep).
/// A list of jobs; a `series` column where a job has one (a sweep with axes or variants).
pub(crate) fn jobs_table(jobs: &[JobRow], class: &str) -> String {
    let with_series = jobs.iter().any(|j| !j.series.is_empty());
    let mut out = format!(
        r#"<table class="{class}"><thead><tr><th>job</th><th>pde</th><th>method</th>{series}<th>width</th><th>seed</th><th>state</th><th>attempts</th><th>worker</th><th>last error</th></tr></thead><tbody>"#,
        series = if with_series { "<th>series</th>" } else { "" }
    );
    for j in jobs {
        let series = match with_series {
            true => format!(r#"<td class="series">{}</td>"#, esc(&j.series)),
            false => String::new(),
        };
        let _ = write!(
            out,
            r#"<tr class="job {state}" data-job="{id}"><td><a href="/jobs/{id}">{id}</a></td><td>{pde}</td><td>{method}</td>{series}<td class="num">{w}</td><td class="num">{seed}</td><td class="state">{state}</td><td class="num">{a}</td><td>{worker}</td><td class="error">{err}</td></tr>"#,
            id = j.id,
            pde = esc(&j.pde),
            method = esc(&j.method),
            w = j.width,
            seed = j.seed,
            state = esc(&j.state),
            a = j.attempts,
            worker = esc(j.worker.as_deref().unwrap_or("")),
            err = esc(j.error.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
    out
}
