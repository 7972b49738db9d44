//! Lease extensions, batched: every Heartbeat and ReportProgress of a batch in one fenced
//! UPDATE, then the accepted reports' metric rows and checkpoints, one INSERT per kind.

use std::collections::{BTreeMap, HashMap};

use modsync_proto::ReportProgressRequest;
use sqlx::SqliteConnection;
use trainer_core::{METRICS_COLUMNS, MetricValue, MetricsRow};

use crate::error::Result;
use crate::fence::{finite, to_i64};
use crate::jobs::ops::{Answer, OpKind};
use crate::jobs::sql::{placeholders, query, refusal};

/// Metric rows per INSERT: [`METRICS_INSERT_PARAMS`] parameters each, well under SQLite's 32,766.
const METRIC_ROWS_PER_INSERT: usize = 256;
/// The parameters of one stored metrics row: its job, its fixed columns, `extra`, the token.
const METRICS_INSERT_PARAMS: usize = METRICS_COLUMNS.len() + 3;

/// What the fenced extension returns for each lease it extended.
#[derive(sqlx::FromRow)]
struct ExtendedRow {
    id: i64,
    token: i64,
    cancel_requested: bool,
}

/// Every Heartbeat and ReportProgress of the batch. The fence and the extension are one UPDATE
/// for all of them (`WHERE (id, token) match AND state = 'running'`): an op whose pair it did
/// not match is refused and writes nothing more. Then the accepted progress reports' metric
/// rows and checkpoints are written, in arrival order.
pub(crate) async fn extensions(
    conn: &mut SqliteConnection,
    ops: &[&OpKind],
    answers: &mut [Option<Result<Answer>>],
    now: i64,
) -> sqlx::Result<()> {
    let fenced: Vec<(usize, i64, i64, u64)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            OpKind::Extend {
                job_id,
                token,
                lease_ms,
            } => Some((i, *job_id, *token, *lease_ms)),
            OpKind::Progress { req, lease_ms, .. } => Some((i, req.job_id, req.token, *lease_ms)),
            _ => None,
        })
        .collect();
    if fenced.is_empty() {
        return Ok(());
    }
    let mut q = query(format!(
        "UPDATE jobs SET lease_expires_at_ms = m.column3, updated_at_ms = ?
         FROM (VALUES {}) AS m
         WHERE jobs.id = m.column1 AND jobs.token = m.column2 AND jobs.state = 'running'
         RETURNING jobs.id, jobs.token, jobs.cancel_requested",
        placeholders(fenced.len(), 3)
    ))
    .bind(now);
    for (_, job_id, token, lease_ms) in &fenced {
        q = q
            .bind(job_id)
            .bind(token)
            .bind(now.saturating_add(to_i64(*lease_ms)));
    }
    // job id → (its token, which matched, and the cancel flag). A stale op of a job whose live
    // lease was extended in the same batch carries another token and is refused below.
    let mut extended: HashMap<i64, (i64, bool)> = HashMap::new();
    for row in q.fetch_all(&mut *conn).await? {
        let row: ExtendedRow = sqlx::FromRow::from_row(&row)?;
        extended.insert(row.id, (row.token, row.cancel_requested));
    }
    let mut checkpoints: Vec<(&ReportProgressRequest, i64)> = Vec::new();
    let mut rows: Vec<(&ReportProgressRequest, &MetricsRow)> = Vec::new();
    for (i, job_id, token, _) in &fenced {
        let answer = match extended.get(job_id) {
            Some((current, cancel)) if current == token => {
                if let OpKind::Progress {
                    req,
                    rows: metric_rows,
                    checkpoint_iter,
                    ..
                } = ops[*i]
                {
                    rows.extend(metric_rows.iter().map(|row| (req, row)));
                    if let Some(iter) = checkpoint_iter {
                        checkpoints.push((req, *iter));
                    }
                }
                Ok(Answer::Extended(*cancel))
            }
            _ => Err(refusal(conn, *job_id, *token).await),
        };
        answers[*i] = Some(answer);
    }
    insert_metrics(conn, &rows).await?;
    insert_checkpoints(conn, &checkpoints, now).await
}

/// `INSERT OR REPLACE INTO metrics (...)` of `rows` rows, columns in the order
/// [`insert_metrics`] binds them.
fn insert_metrics_sql(rows: usize) -> String {
    let columns: Vec<&str> = METRICS_COLUMNS.iter().map(|c| c.name).collect();
    format!(
        "INSERT OR REPLACE INTO metrics (job_id, {}, extra, token) VALUES {}",
        columns.join(", "),
        placeholders(rows, METRICS_INSERT_PARAMS)
    )
}

async fn insert_metrics(
    conn: &mut SqliteConnection,
    rows: &[(&ReportProgressRequest, &MetricsRow)],
) -> sqlx::Result<()> {
    for chunk in rows.chunks(METRIC_ROWS_PER_INSERT) {
        let mut q = query(insert_metrics_sql(chunk.len()));
        for (req, row) in chunk {
            q = q.bind(req.job_id);
            for column in &METRICS_COLUMNS {
                q = match column.value(row) {
                    MetricValue::Integer(n) => q.bind(to_i64(n)),
                    MetricValue::Real(x) => q.bind(finite(x)),
                };
            }
            let extra: BTreeMap<&String, Option<f64>> =
                row.extra.iter().map(|(k, v)| (k, finite(*v))).collect();
            q = q
                .bind(serde_json::to_string(&extra).unwrap_or_else(|_| "{}".into()))
                .bind(req.token);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Checkpoints per INSERT statement, at most, and their bytes at most (the bound values are
/// copied into the statement, and one checkpoint may be up to `--max-checkpoint-bytes`).
const CHECKPOINTS_PER_INSERT: usize = 16;
const CHECKPOINT_BYTES_PER_INSERT: usize = 16 << 20;

/// Splits `items` into runs of at most `max_items` whose sizes add up to at most `max_bytes`
/// (a single item larger than that is a run of its own).
fn runs_within<T>(
    items: &[T],
    max_items: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let n = size(item);
        if i > start && (i - start == max_items || bytes + n > max_bytes) {
            runs.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

async fn insert_checkpoints(
    conn: &mut SqliteConnection,
    checkpoints: &[(&ReportProgressRequest, i64)],
    now: i64,
) -> sqlx::Result<()> {
    let runs = runs_within(
        checkpoints,
        CHECKPOINTS_PER_INSERT,
        CHECKPOINT_BYTES_PER_INSERT,
        |(req, _)| req.checkpoint.len(),
    );
    for chunk in runs {
        // Rows of one VALUES list are inserted in order, so a later checkpoint of the same job
        // replaces an earlier one, as it would one statement at a time.
        let mut q = query(format!(
            "INSERT OR REPLACE INTO checkpoints (job_id, iter, bytes, token, created_at_ms)
             VALUES {}",
            placeholders(chunk.len(), 5)
        ));
        for (req, iter) in chunk {
            q = q
                .bind(req.job_id)
                .bind(iter)
                .bind(&req.checkpoint)
                .bind(req.token)
                .bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_within_bound_items_and_bytes() {
        let sizes = [5, 5, 5, 20, 1, 1, 1, 1];
        let lens = |runs: Vec<&[usize]>| runs.iter().map(|r| r.len()).collect::<Vec<_>>();
        // 10 bytes a run: the 20-byte item stands alone; then 3 items a run.
        assert_eq!(
            lens(runs_within(&sizes, 3, 10, |n| *n)),
            vec![2, 1, 1, 3, 1]
        );
        assert_eq!(lens(runs_within(&sizes, 100, 1000, |n| *n)), vec![8]);
        assert!(runs_within(&[] as &[usize], 3, 10, |n| *n).is_empty());
    }
}
