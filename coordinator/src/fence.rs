//! The rules every worker write obeys, and the types they are stated in: the bottom of the
//! coordinator's write path (it imports nothing of the coordinator but [`Error`]).
//!
//! - [`LeaseTerms`]: how long a lease lasts and how often its worker heartbeats.
//! - [`parse_metrics`]: the metrics rows of a progress report, as they arrive over the wire.
//! - the checks a request passes *before* it reaches the writer (names, checkpoint bytes,
//!   iterations a run can reach, a result's numbers), so a bad request never holds the write
//!   lock nor writes half of itself.
//! - [`stale`]: the refusal of a write whose token does not hold the lease (FAILED_PRECONDITION).
//!   The fence itself — `(job_id, token, state = 'running')` checked in the same transaction
//!   before anything is written — is SQL, in `jobs/`.
//! - the time and integer conversions of every `*_ms` and INTEGER column.

use std::time::{SystemTime, UNIX_EPOCH};

use modsync_proto::ReportProgressRequest;
use trainer_core::{Checkpoint, MetricsRow, RunResult, RunStatus};

use crate::error::{Error, Result};

/// Longest worker id/host/device we store; longer ones are refused (they are names, not logs).
pub(crate) const MAX_NAME: usize = 256;
/// Longest `last_error` kept; a longer message is cut (the start of an error says most).
pub(crate) const MAX_ERROR: usize = 16 * 1024;

/// How long leases last and how often workers heartbeat; from the `ServeConfig`.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTerms {
    pub lease_ms: u64,
    pub heartbeat_ms: u64,
}

/// `Some(x)` only for finite `x`: a non-finite metric is stored as SQL NULL.
pub(crate) fn finite(x: f64) -> Option<f64> {
    Some(x).filter(|v| v.is_finite())
}

/// The metric rows of a progress report; each row's iteration is the `iter` inside its JSON
/// (the only copy on the wire) and must be one a run can reach ([`check_iter`]). A real that
/// arrives as `null` (serde_json's NaN and ±inf) reads as NaN: such rows (a diverging run) are
/// kept, with NULL in the non-finite columns, rather than refused — refusing would also refuse
/// the checkpoint that travels with them.
pub(crate) fn parse_metrics(req: &ReportProgressRequest) -> Result<Vec<MetricsRow>> {
    req.metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let row: MetricsRow = serde_json::from_str(&m.row_json).map_err(|e| {
                Error::invalid(
                    format!("metrics[{i}].row_json"),
                    format!("not a MetricsRow: {e}"),
                )
            })?;
            check_iter(&format!("metrics[{i}].row_json.iter"), row.iter)?;
            Ok(row)
        })
        .collect()
}

/// Checks that the checkpoint bytes decode (so a corrupt upload never replaces a good
/// checkpoint) and that the iteration in their header is one a run can reach; returns that
/// iteration, the one stored with them.
pub(crate) fn check_checkpoint(req: &ReportProgressRequest) -> Result<Option<i64>> {
    if req.checkpoint.is_empty() {
        return Ok(None);
    }
    let ckpt = Checkpoint::from_bytes(&req.checkpoint)
        .map_err(|e| Error::invalid("checkpoint", e.to_string()))?;
    check_iter("checkpoint.iter", ckpt.iter)?;
    Ok(Some(to_i64(ckpt.iter)))
}

/// An iteration number a run can actually reach (at most trainer-core's `MAX_ITERS`, so it
/// also fits the i64 of SQLite's INTEGER).
pub(crate) fn check_iter(field: &str, iter: u64) -> Result<()> {
    use trainer_core::config::MAX_ITERS;
    if iter > MAX_ITERS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_ITERS}, got {iter}"),
        ));
    }
    Ok(())
}

/// Parses a RunResult and refuses what must never reach the `results` table.
pub(crate) fn parse_result(json: &str) -> Result<RunResult> {
    let r: RunResult = serde_json::from_str(json).map_err(|e| {
        Error::invalid(
            "result_json",
            format!("not a RunResult (NaN/inf arrive as null and are refused): {e}"),
        )
    })?;
    if r.status == RunStatus::Cancelled {
        return Err(Error::invalid(
            "result_json.status",
            "a cancelled run has no result; send ReleaseJob (or FailJob) instead",
        ));
    }
    let numbers = [
        ("rel_l2_best", r.rel_l2_best),
        ("rel_l2_min_loss", r.rel_l2_min_loss),
        ("rel_l2_last", r.rel_l2_last),
        ("abs_err_best", r.abs_err_best),
        ("abs_err_max_best", r.abs_err_max_best),
        ("wall_s", r.wall_s),
        ("iters_per_s", r.iters_per_s),
    ];
    for (field, v) in numbers {
        if !v.is_finite() {
            return Err(Error::invalid(
                format!("result_json.{field}"),
                format!("must be finite, got {v}"),
            ));
        }
    }
    Ok(r)
}

/// Refuses an empty required name and any name longer than [`MAX_NAME`] bytes.
pub(crate) fn check_name(field: &str, v: &str, required: bool) -> Result<()> {
    if required && v.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if v.len() > MAX_NAME {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_NAME} bytes"),
        ));
    }
    Ok(())
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The refusal of a write whose `token` does not hold job `job_id`'s lease: the job is in
/// `state` under token `current`.
pub(crate) fn stale(job_id: i64, token: i64, state: &str, current: i64) -> Error {
    Error::Stale(format!(
        "job {job_id}: token {token} does not hold the lease (job is {state}, current token {current})"
    ))
}

/// Milliseconds since the Unix epoch: the unit of every `*_ms` column.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `u64` → SQLite INTEGER. Values above `i64::MAX` cannot come from a sane run; saturate rather
/// than wrap to negative.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// SQLite INTEGER → `u64` for proto fields (counts, widths), never negative by the schema.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proto message carries a row as its JSON: a row with a different value in every
    /// column, sent as the worker sends it, encoded by prost and stored through the store,
    /// arrives in SQL with every column in its own place; a row with NaN and +inf arrives with
    /// SQL NULL in exactly those columns (and `null` in `extra`), not as an error.
    #[tokio::test]
    async fn a_metrics_row_crosses_the_wire_with_every_column() {
        use std::collections::BTreeSet;

        use modsync_proto::{LeaseJobRequest, MetricRow, SweepSpec};
        use prost::Message;
        use sqlx::Row;
        use trainer_core::{METRICS_COLUMNS, MetricValue, ReadMetric};

        use crate::store::Store;

        // A different value in every column, so no column can stand in for another.
        let mut json = serde_json::json!({ "extra": { "cos": -0.5, "norm": 2.5 } });
        for (i, column) in METRICS_COLUMNS.iter().enumerate() {
            json[column.name] = match column.read {
                ReadMetric::Integer(_) => serde_json::json!(i + 1),
                ReadMetric::Real(_) => serde_json::json!(i as f64 + 0.5),
            };
        }
        let row: MetricsRow = serde_json::from_value(json).unwrap();
        let mut nan = MetricsRow {
            iter: row.iter + 1_000,
            loss_r: f64::NAN,
            abs_err_max: f64::INFINITY,
            ..row.clone()
        };
        nan.extra.insert("cos".into(), f64::NEG_INFINITY);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("w.db")).await.unwrap();
        store
            .submit_sweep(&SweepSpec {
                name: "w".into(),
                pdes: vec!["burgers".into()],
                methods: vec!["adam".into()],
                widths: vec![8],
                seeds: vec![0],
                base_config_json: r#"{"iters": 20, "eval_every": 10}"#.into(),
                max_attempts: 3,
                priority: 0,
                ..Default::default()
            })
            .await
            .unwrap();
        let terms = LeaseTerms {
            lease_ms: 60_000,
            heartbeat_ms: 5_000,
        };
        let job = store
            .lease_jobs(
                &LeaseJobRequest {
                    worker_id: "w".into(),
                    host: "h".into(),
                    device: "cpu".into(),
                    ..Default::default()
                },
                terms,
            )
            .await
            .unwrap()
            .remove(0);
        let sent = ReportProgressRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: "w".into(),
            metrics: [&row, &nan]
                .map(|r| MetricRow {
                    row_json: serde_json::to_string(r).unwrap(),
                })
                .to_vec(),
            ..Default::default()
        };
        let received = ReportProgressRequest::decode(&*sent.encode_to_vec()).unwrap();
        let keys: BTreeSet<String> =
            serde_json::from_str::<serde_json::Map<_, _>>(&received.metrics[0].row_json)
                .unwrap()
                .keys()
                .cloned()
                .collect();
        let columns: BTreeSet<String> = METRICS_COLUMNS
            .iter()
            .map(|c| c.name)
            .chain(["extra"])
            .map(String::from)
            .collect();
        assert_eq!(
            keys, columns,
            "the wire's keys are not the columns and `extra`"
        );
        let rows = parse_metrics(&received).unwrap();
        assert_eq!(rows[0], row, "a column was lost on the way");
        store.report_progress(received, terms).await.unwrap();

        // What SQL holds: each column's type and value, and `extra` as stored.
        for (sent_row, non_finite) in [(&row, &[][..]), (&nan, &["loss_r", "abs_err_max"][..])] {
            for column in &METRICS_COLUMNS {
                let what = format!(
                    "metrics.{} of the row of iter {}",
                    column.name, sent_row.iter
                );
                let stored = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT typeof({0}), {0} FROM metrics WHERE job_id = ? AND iter = ?",
                    column.name
                )))
                .bind(job.job_id)
                .bind(to_i64(sent_row.iter))
                .fetch_one(&store.write)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                let kind: String = stored.get(0);
                match column.value(sent_row) {
                    _ if non_finite.contains(&column.name) => {
                        assert_eq!(kind, "null", "{what}: a non-finite value is SQL NULL");
                    }
                    MetricValue::Integer(n) => {
                        assert_eq!(kind, "integer", "{what}");
                        assert_eq!(stored.get::<i64, _>(1), to_i64(n), "{what}");
                    }
                    MetricValue::Real(x) => {
                        assert_eq!(kind, "real", "{what}");
                        assert_eq!(stored.get::<f64, _>(1), x, "{what}");
                    }
                }
            }
            let extra: String =
                sqlx::query_scalar("SELECT extra FROM metrics WHERE job_id = ? AND iter = ?")
                    .bind(job.job_id)
                    .bind(to_i64(sent_row.iter))
                    .fetch_one(&store.write)
                    .await
                    .unwrap();
            let expected = if non_finite.is_empty() {
                serde_json::json!({ "cos": -0.5, "norm": 2.5 })
            } else {
                serde_json::json!({ "cos": null, "norm": 2.5 })
            };
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&extra).unwrap(),
                expected,
                "metrics.extra of iter {}",
                sent_row.iter
            );
        }
        store.close().await;
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
