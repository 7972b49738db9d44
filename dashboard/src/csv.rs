//! The downloads: a sweep's curves and its results as CSV (RFC 4180, a header row, numbers in
//! shortest round-trip form), at plain URLs that `curl` and `pandas.read_csv` can read. The
//! results file streams, page by page: its first bytes leave before the last row is read, and no
//! read connection is held while a send waits on a slow client. Text cells go
//! through [`field`], so a worker id like `=HYPERLINK(…)` arrives as text, not as a formula.

use std::collections::BTreeSet;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use coordinator::Reader;
use modsync_proto::CurvePoint;
use sqlx::Row;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::Result;

/// Bytes gathered before a chunk of the results file is sent.
const CHUNK: usize = 64 * 1024;

/// A text value as a CSV field: quoted when it needs it, and a cell that a spreadsheet would
/// run as a formula (`=`, `+`, `-`, `@`, tab, CR) neutralised with a leading `'`; numbers stay
/// numbers. The one function every CSV of the project writes text with.
pub use modsync_proto::csv::field;

/// The header of the curves CSV (`modsync curves --out` writes the same file per PDE).
pub const CURVES_HEADER: &str = "pde,method,width,n,mean,std,median,min";
/// The header when the sweep has series (extra axes or variants): `series` after `method`.
pub const CURVES_SERIES_HEADER: &str = "pde,method,series,width,n,mean,std,median,min";

/// Curve points as CSV, every number exact. A `series` column only when some point has one,
/// so that the file of a sweep without extra axes is what it always was.
pub fn curves(points: &[&CurvePoint]) -> String {
    let with_series = points.iter().any(|p| !p.series.is_empty());
    let header = if with_series {
        CURVES_SERIES_HEADER
    } else {
        CURVES_HEADER
    };
    let mut out = format!("{header}\n");
    for p in points {
        let series = if with_series {
            format!("{},", field(&p.series))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{},{},{series}{},{},{},{},{},{}\n",
            field(&p.pde),
            field(&p.method),
            p.width,
            p.n,
            p.mean,
            p.std,
            p.median,
            p.min
        ));
    }
    out
}

/// A CSV response, offered as a download named `name`.
fn csv_response(name: &str, body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// `/sweeps/{id}/curves.csv`: the `curves` view's rows of the sweep, every PDE.
pub async fn curves_file(reader: &Reader, sweep: &str) -> Result<Response> {
    let points = reader.curves(sweep).await?;
    let refs: Vec<&CurvePoint> = points.iter().collect();
    Ok(csv_response(
        &format!("{sweep}-curves.csv"),
        Body::from(curves(&refs)),
    ))
}

/// Result columns, in order, after the job's own.
const RESULT_COLUMNS: [&str; 16] = [
    "rel_l2_best",
    "rel_l2_min_loss",
    "rel_l2_last",
    "abs_err_best",
    "abs_err_max_best",
    "best_iter",
    "min_loss_iter",
    "iters_done",
    "wall_s",
    "iters_per_s",
    "num_params",
    "diverged",
    "skipped_steps",
    "status",
    "device",
    "finished_at_ms",
];
const JOB_COLUMNS: [&str; 8] = [
    "job_id", "pde", "method", "width", "seed", "state", "attempts", "worker",
];

/// Flattens a JSON object into `prefix.key` → scalar text (nested objects become dotted
/// names, arrays stay JSON).
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        serde_json::Value::Null => out.push((prefix.to_string(), String::new())),
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn config_fields(config_json: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(config_json) {
        flatten("", &v, &mut out);
    }
    out
}

/// A SQLite value as a CSV field: NULL empty, reals exact.
fn cell(row: &sqlx::sqlite::SqliteRow, i: usize) -> String {
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map(|v| v.to_string()).unwrap_or_default();
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        return v.map(|v| v.to_string()).unwrap_or_default();
    }
    row.try_get::<Option<String>, _>(i)
        .ok()
        .flatten()
        .map(|s| field(&s))
        .unwrap_or_default()
}

/// Rows of the results file read per query: the connection goes back to the pool between pages.
const PAGE_ROWS: i64 = 1000;

/// Where a page of the results file ends: its last row's place in grid order (the order of the
/// index `jobs_cells`, then the job id), from which the next page starts.
struct GridKey {
    pde: String,
    method: String,
    series: String,
    width: i64,
    seed: i64,
    id: i64,
}

impl GridKey {
    /// The key of a results row (`id`, `pde`, `method`, `width`, `seed` lead every row, the
    /// series ends it).
    fn of(row: &sqlx::sqlite::SqliteRow) -> GridKey {
        GridKey {
            id: row.try_get(0).unwrap_or_default(),
            pde: row.try_get(1).unwrap_or_default(),
            method: row.try_get(2).unwrap_or_default(),
            series: row.try_get(row.len() - 1).unwrap_or_default(),
            width: row.try_get(3).unwrap_or_default(),
            seed: row.try_get(4).unwrap_or_default(),
        }
    }
}

/// The next [`PAGE_ROWS`] rows of the results file after `after` (from the start without it):
/// the job columns, the result columns, the config JSON.
async fn results_page(
    pool: &sqlx::SqlitePool,
    sweep: &str,
    after: Option<&GridKey>,
) -> sqlx::Result<Vec<sqlx::sqlite::SqliteRow>> {
    // Row values in grid order: SQLite walks `jobs_cells` from the key on, so a page costs its
    // own rows, not the rows before it.
    let from = if after.is_some() {
        "AND (j.pde, j.method, j.series, j.width, j.seed, j.id) > (?, ?, ?, ?, ?, ?)"
    } else {
        ""
    };
    let sql = format!(
        "SELECT j.id, j.pde, j.method, j.width, j.seed, j.state, j.attempts, j.lease_owner, {},
                j.config_json, j.series
         FROM jobs j LEFT JOIN results r ON r.job_id = j.id
         WHERE j.sweep_id = ? {from}
         ORDER BY j.pde, j.method, j.series, j.width, j.seed, j.id
         LIMIT ?",
        RESULT_COLUMNS.map(|c| format!("r.{c}")).join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(sweep);
    if let Some(k) = after {
        query = query
            .bind(k.pde.as_str())
            .bind(k.method.as_str())
            .bind(k.series.as_str())
            .bind(k.width)
            .bind(k.seed)
            .bind(k.id);
    }
    query.bind(PAGE_ROWS).fetch_all(pool).await
}

/// `/sweeps/{id}/results.csv`: one row per job (with or without a result), its config
/// flattened into `config.*` columns (where a sweep's extra axes show), in grid order (pde,
/// method, series, width, seed): the order of the index `jobs_cells`, so rows leave as they
/// are read, with no sort of the whole sweep first.
/// The config columns are the union over one job of each (pde, method), the only axes that
/// change a config's shape.
pub async fn results_file(reader: &Reader, sweep: &str) -> Result<Response> {
    reader.get_sweep(sweep).await?;
    let shapes: Vec<String> =
        sqlx::query_scalar("SELECT config_json FROM jobs WHERE sweep_id = ? GROUP BY pde, method")
            .bind(sweep)
            .fetch_all(reader.pool())
            .await?;
    let config_columns: Vec<String> = shapes
        .iter()
        .flat_map(|c| config_fields(c).into_iter().map(|(k, _)| k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut header: Vec<String> = JOB_COLUMNS.iter().map(|c| c.to_string()).collect();
    header.extend(RESULT_COLUMNS.iter().map(|c| c.to_string()));
    header.extend(config_columns.iter().map(|c| field(&format!("config.{c}"))));

    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let pool = reader.pool().clone();
    let sweep = sweep.to_string();
    let name = format!("{sweep}-results.csv");
    tokio::spawn(async move {
        let mut buf = header.join(",");
        buf.push('\n');
        let width = JOB_COLUMNS.len() + RESULT_COLUMNS.len();
        let mut after: Option<GridKey> = None;
        loop {
            // One page, read to the end, so its connection is back in the pool before any send
            // can block on a client that stopped reading (issue 26, hole 4).
            let rows = match results_page(&pool, &sweep, after.as_ref()).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, sweep, "results.csv cut short");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let last_page = (rows.len() as i64) < PAGE_ROWS;
            for row in &rows {
                let mut fields: Vec<String> = (0..width).map(|i| cell(row, i)).collect();
                let config: String = row.try_get(width).unwrap_or_default();
                let values = config_fields(&config);
                fields.extend(config_columns.iter().map(|c| {
                    values
                        .iter()
                        .find(|(k, _)| k == c)
                        .map(|(_, v)| field(v))
                        .unwrap_or_default()
                }));
                buf.push_str(&fields.join(","));
                buf.push('\n');
                if buf.len() >= CHUNK
                    && tx
                        .send(Ok(Bytes::from(std::mem::take(&mut buf))))
                        .await
                        .is_err()
                {
                    return; // the client left
                }
            }
            match rows.last() {
                Some(row) if !last_page => after = Some(GridKey::of(row)),
                _ => break,
            }
        }
        if !buf.is_empty() {
            let _ = tx.send(Ok(Bytes::from(buf))).await;
        }
    });
    Ok(csv_response(
        &name,
        Body::from_stream(ReceiverStream::new(rx)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_neutralise_formulas_and_keep_numbers() {
        let p = CurvePoint {
            pde: "=1+1".into(),
            method: "@SUM(1+1),x".into(),
            width: 8,
            n: 2,
            mean: -0.5,
            std: 0.25,
            median: -0.5,
            min: -1.0,
            max: 0.0,
            series: String::new(),
        };
        assert_eq!(
            curves(&[&p]),
            format!("{CURVES_HEADER}\n'=1+1,\"'@SUM(1+1),x\",8,2,-0.5,0.25,-0.5,-1\n")
        );
        // A series column only when some point has a series, its text neutralised too.
        let s = CurvePoint {
            series: "=lr=0.1".into(),
            ..p.clone()
        };
        assert_eq!(
            curves(&[&p, &s]),
            format!(
                "{CURVES_SERIES_HEADER}\n'=1+1,\"'@SUM(1+1),x\",,8,2,-0.5,0.25,-0.5,-1\n\
                 '=1+1,\"'@SUM(1+1),x\",'=lr=0.1,8,2,-0.5,0.25,-0.5,-1\n"
            )
        );
    }

    #[test]
    fn fields_are_quoted_and_configs_flattened() {
        assert_eq!(field("=cmd"), "'=cmd");
        assert_eq!(field("-0.5"), "-0.5");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("plain"), "plain");
        let f = config_fields(
            r#"{"width": 8, "method": {"name": "adam", "beta": [0.9, 0.99]}, "x": null}"#,
        );
        assert_eq!(
            f,
            [
                ("method.beta".to_string(), "[0.9,0.99]".to_string()),
                ("method.name".to_string(), "adam".to_string()),
                ("width".to_string(), "8".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
    }
}
