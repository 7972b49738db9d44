//! Page 3, `/jobs/{id}` (JSON: `/api/jobs/{id}`): one job — its state, lease and worker, its
//! result, its last error, its curves (L_r and L_b, relative L2, lr against the iteration) and
//! its method's diagnostics grouped by kind into panels with their own axes, from its metric
//! rows (thinned evenly to at most `MAX_POINTS`, the last row always kept), and its config.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use coordinator::Reader;
use serde::Serialize;
use sqlx::Row;
use trainer_core::diagnostic_kind::{self, AxisScale, DiagnosticKind};
use trainer_core::real_metrics_columns;

use super::{App, JobRow, Params, job_id, job_row, page};
use crate::error::{Error, Result};
use crate::escape::esc;
use crate::layout::{num_cell, url_part, utc};
use crate::svg::{self, Chart, Scale, Series};
use crate::ticks;

/// Most metric rows drawn per job (longer runs are thinned evenly, the last row always kept).
pub const MAX_POINTS: i64 = 2_000;

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
pub struct MetricSeries {
    pub iter: Vec<i64>,
    /// Every real column of [`METRICS_COLUMNS`] (`loss_r`, `loss_b`, `rel_l2`, `lr`, …) by
    /// name, aligned with `iter`; in the JSON each is a key of its own beside `iter`.
    #[serde(flatten)]
    pub columns: BTreeMap<&'static str, Vec<Option<f64>>>,
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
    pub series: MetricSeries,
}

/// A job with its result and its metric rows (thinned to at most `MAX_POINTS`).
pub async fn load(reader: &Reader, id: i64) -> Result<JobPage> {
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

impl MetricSeries {
    /// The values of the real metrics column `name` (empty if there is no such column).
    fn column(&self, name: &str) -> &[Option<f64>] {
        self.columns.get(name).map_or(&[], Vec::as_slice)
    }
}

/// A job's metric rows, every `step`-th (and the last) when there are more than `MAX_POINTS`.
async fn series(conn: &mut sqlx::SqliteConnection, id: i64) -> Result<MetricSeries> {
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metrics WHERE job_id = ?")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let step = ((rows + MAX_POINTS - 1) / MAX_POINTS).max(1);
    // Column names from METRICS_COLUMNS: compile-time constants, never request text.
    let names: Vec<&'static str> = real_metrics_columns().collect();
    let list = names.join(", ");
    let fetched = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT iter, {list}, extra FROM (
             SELECT iter, {list}, extra, ROW_NUMBER() OVER (ORDER BY iter) - 1 AS rn
             FROM metrics WHERE job_id = ?1
         ) WHERE rn % ?2 = 0 OR rn = ?3 - 1 ORDER BY iter"
    )))
    .bind(id)
    .bind(step)
    .bind(rows)
    .fetch_all(&mut *conn)
    .await?;
    let mut s = MetricSeries {
        rows,
        columns: names.iter().map(|n| (*n, Vec::new())).collect(),
        ..MetricSeries::default()
    };
    for (i, r) in fetched.iter().enumerate() {
        s.iter.push(r.try_get(0)?);
        for (k, name) in names.iter().enumerate() {
            let value: Option<f64> = r.try_get(1 + k)?;
            s.columns.entry(name).or_default().push(value);
        }
        let extra: String = r.try_get(1 + names.len())?;
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

/// Page 3: one job.
pub fn render(p: &JobPage) -> String {
    let j = &p.job;
    let mut out = format!(
        r#"<h1>Job {id}</h1><p class="crumbs">sweep <a href="/sweeps/{sweep_url}">{sweep}</a> · {pde} · {method}{series} · width {w} · seed {seed}</p>
<table class="facts"><tbody><tr><th>state</th><td class="state {state}">{state}</td></tr><tr><th>attempts</th><td>{a} of {max}</td></tr><tr><th>worker</th><td>{worker}</td></tr><tr><th>host / device</th><td>{host} / {device}</td></tr><tr><th>lease expires (UTC)</th><td>{lease}</td></tr><tr><th>updated (UTC)</th><td>{updated}</td></tr><tr><th>metric rows</th><td class="num" data-value="{rows}">{rows}</td></tr></tbody></table>"#,
        id = j.id,
        sweep_url = url_part(&p.sweep_id),
        sweep = esc(&p.sweep_id),
        pde = esc(&j.pde),
        method = esc(&j.method),
        series = match j.series.as_str() {
            "" => String::new(),
            series => format!(" · {}", esc(series)),
        },
        w = j.width,
        seed = j.seed,
        state = esc(&j.state),
        a = j.attempts,
        max = p.max_attempts,
        worker = esc(j.worker.as_deref().unwrap_or("—")),
        host = esc(p.host.as_deref().unwrap_or("—")),
        device = esc(p.device.as_deref().unwrap_or("—")),
        lease = p.lease_expires_at_ms.map(utc).unwrap_or_else(|| "—".into()),
        updated = utc(p.updated_at_ms),
        rows = p.series.rows,
    );
    if let Some(r) = &p.result {
        let _ = write!(
            out,
            r#"<h2>Result</h2><table class="result"><thead><tr><th>rel L2 best</th><th>at min loss</th><th>last</th><th>best iter</th><th>iterations</th><th>wall s</th><th>parameters</th><th>status</th><th>device</th></tr></thead><tbody><tr>{}{}{}<td class="num">{}</td><td class="num">{}</td>{}<td class="num">{}</td><td>{}</td><td>{}</td></tr></tbody></table>"#,
            num_cell(r.rel_l2_best),
            num_cell(r.rel_l2_min_loss),
            num_cell(r.rel_l2_last),
            r.best_iter,
            r.iters_done,
            num_cell(r.wall_s),
            r.num_params,
            esc(&r.status),
            esc(&r.device),
        );
    }
    if let Some(e) = &p.last_error {
        let _ = write!(
            out,
            r#"<h2>Last error</h2><pre class="error">{}</pre>"#,
            esc(e)
        );
    }
    out.push_str(r#"<h2>Curves</h2><div class="charts">"#);
    let s = &p.series;
    let xs: Vec<f64> = s.iter.iter().map(|i| *i as f64).collect();
    let line = |i: usize, name: &str, ys: &[Option<f64>]| {
        let (color, marker) = ticks::style(i);
        Series {
            name: name.to_string(),
            color,
            marker,
            points: xs.iter().copied().zip(ys.iter().copied()).collect(),
            markers: xs.len() <= 60,
            band: vec![],
            dots: vec![],
        }
    };
    let chart = |class: &'static str, title: &str, y_label: &str, y_scale, series: &[Series]| {
        svg::render(
            &Chart {
                class,
                title,
                x_label: "iteration",
                y_label,
                x_scale: Scale::Linear,
                y_scale,
                x_ticks: None,
            },
            series,
        )
    };
    out.push_str(&chart(
        "losses",
        "training losses",
        "loss",
        Scale::Log,
        &[
            line(0, "L_r (residual)", s.column("loss_r")),
            line(1, "L_b (boundary)", s.column("loss_b")),
        ],
    ));
    out.push_str(&chart(
        "rel-l2",
        "relative L2 error",
        "relative L2",
        Scale::Log,
        &[line(2, "rel L2", s.column("rel_l2"))],
    ));
    out.push_str(&chart(
        "lr",
        "learning rate",
        "lr",
        Scale::Log,
        &[line(3, "lr", s.column("lr"))],
    ));
    out.push_str("</div>");
    // Diagnostics: one panel per kind, each with its own axis (`diagnostic_panels`).
    let panels = diagnostic_panels(&xs, &s.extra);
    if !panels.is_empty() {
        let _ = write!(
            out,
            r#"<h2>Diagnostics</h2><div class="charts diagnostics">{panels}</div>"#
        );
    }
    let config = serde_json::to_string_pretty(&p.config).unwrap_or_default();
    let _ = write!(
        out,
        r#"<h2>Config</h2><pre class="config">{}</pre>"#,
        esc(&config)
    );
    out
}

/// The CSS class of a diagnostics panel (`diag-cos` and `diag` as before the kinds).
fn diagnostic_class(kind: DiagnosticKind) -> &'static str {
    match kind {
        DiagnosticKind::Cosines => "diag-cos",
        DiagnosticKind::Kept => "diag-kept",
        DiagnosticKind::Exclusive => "diag-exclusive",
        DiagnosticKind::Orthogonality => "diag-orth",
        DiagnosticKind::Norms => "diag-norms",
        DiagnosticKind::LossS => "diag-loss-s",
        DiagnosticKind::Reweighting => "diag-rw",
        DiagnosticKind::Weights => "diag-weights",
        DiagnosticKind::Resets => "diag-resets",
        DiagnosticKind::Other => "diag",
    }
}

/// A job's diagnostics (`metrics.extra`, aligned with the rows' iterations `xs`), one chart per
/// kind of [`DiagnosticKind`] that has a value, in its order: its own y axis and scale (log for
/// norms, at least 0..1 for fractions, …), members ordered by layer, each member in the same
/// colour in every panel of a layer. A member's missing values (e.g. `orth_frac`, measured
/// every `diag_every` steps) are skipped, not gaps, so a sparse diagnostic is still a line.
/// Counters (resets) are marks where they grow. A kind without any value has no panel.
fn diagnostic_panels(xs: &[f64], extra: &BTreeMap<String, Vec<Option<f64>>>) -> String {
    let mut out = String::new();
    // Every panel spans the job's iterations, however few values a diagnostic has.
    let x_span = xs.first().zip(xs.last()).map(|(a, b)| (*a, *b));
    for kind in DiagnosticKind::ALL {
        let mut members: Vec<(&str, &[Option<f64>])> = extra
            .iter()
            .filter(|(name, _)| DiagnosticKind::of(name) == kind)
            .map(|(name, ys)| (name.as_str(), ys.as_slice()))
            .filter(|(_, ys)| ys.iter().any(|v| v.is_some_and(f64::is_finite)))
            .collect();
        if members.is_empty() {
            continue;
        }
        members.sort_by(|a, b| {
            (diagnostic_kind::layer_of(a.0), a.0).cmp(&(diagnostic_kind::layer_of(b.0), b.0))
        });
        let class = diagnostic_class(kind);
        if kind.is_counter() {
            let lanes: Vec<svg::Lane> = members
                .iter()
                .enumerate()
                .map(|(i, (name, ys))| svg::Lane::counter(name, ticks::style(i).0, xs, ys))
                .collect();
            let chart = Chart {
                class,
                title: kind.title(),
                x_label: "iteration",
                y_label: kind.y_label(),
                x_scale: Scale::Linear,
                y_scale: Scale::Linear,
                x_ticks: None,
            };
            out.push_str(&svg::render_events(&chart, xs, &lanes));
            continue;
        }
        let values = members
            .iter()
            .flat_map(|(_, ys)| ys.iter().flatten().copied());
        let (y_scale, y_label) = match kind.scale().resolve(values) {
            AxisScale::Log => (Scale::Log, format!("{} (log)", kind.y_label())),
            _ => (Scale::Linear, kind.y_label().to_string()),
        };
        let series: Vec<Series> = members
            .iter()
            .enumerate()
            .map(|(i, (name, ys))| {
                let (color, marker) = ticks::style(i);
                let points: Vec<(f64, Option<f64>)> = xs
                    .iter()
                    .zip(ys.iter())
                    .filter(|(_, y)| y.is_some())
                    .map(|(x, y)| (*x, *y))
                    .collect();
                Series {
                    name: name.to_string(),
                    color,
                    marker,
                    markers: points.len() <= 60,
                    points,
                    band: vec![],
                    dots: vec![],
                }
            })
            .collect();
        let chart = Chart {
            class,
            title: kind.title(),
            x_label: "iteration",
            y_label: &y_label,
            x_scale: Scale::Linear,
            y_scale,
            x_ticks: None,
        };
        out.push_str(&svg::render_bounded(
            &chart,
            &series,
            x_span,
            kind.y_range(),
        ));
    }
    out
}

pub(crate) async fn html(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response> {
    let data = load(&app.reader, job_id(&id)?).await?;
    Ok(page(&q, &format!("Job {id}"), render(&data)))
}

pub(crate) async fn json(State(app): State<App>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(load(&app.reader, job_id(&id)?).await?).into_response())
}

/// The page's routes: its HTML and its JSON.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/jobs/{id}", get(html))
        .route("/api/jobs/{id}", get(json))
}
