//! The rules every worker write obeys, and the types they are stated in: the bottom of the
//! coordinator's write path (it imports nothing of the coordinator but [`Error`]).
//!
//! - [`LeaseTerms`]: how long a lease lasts and how often its worker heartbeats.
//! - [`WireMetricsRow`] and [`parse_metrics`]: a metrics row as it arrives over the wire.
//! - the checks a request passes *before* it reaches the writer (names, checkpoint bytes, a
//!   result's numbers), so a bad request never holds the write lock nor writes half of itself.
//! - [`stale`]: the refusal of a write whose token does not hold the lease (FAILED_PRECONDITION).
//!   The fence itself — `(job_id, token, state = 'running')` checked in the same transaction
//!   before anything is written — is SQL, in `jobs/`.
//! - the time and integer conversions of every `*_ms` and INTEGER column.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use modsync_proto::ReportProgressRequest;
use serde::Deserialize;
use trainer_core::{Checkpoint, RunResult, RunStatus};

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

/// A `trainer_core::MetricsRow` as it arrives over the wire. Numbers are optional because
/// serde_json writes NaN and ±inf as `null`: such rows (a diverging run) are kept, with SQL NULL
/// in the non-finite columns, rather than refused — refusing would also refuse the checkpoint
/// that travels with them. A unit test keeps this in step with `MetricsRow`.
#[derive(Debug, Deserialize)]
pub(crate) struct WireMetricsRow {
    pub(crate) iter: u64,
    pub(crate) lr: Option<f64>,
    pub(crate) loss_r: Option<f64>,
    pub(crate) loss_b: Option<f64>,
    pub(crate) rel_l2: Option<f64>,
    pub(crate) abs_err: Option<f64>,
    pub(crate) abs_err_max: Option<f64>,
    pub(crate) skipped_steps: u64,
    pub(crate) elapsed_s: Option<f64>,
    #[serde(default)]
    pub(crate) extra: BTreeMap<String, Option<f64>>,
}

/// `Some(x)` only for finite `x`.
pub(crate) fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

/// The metric rows of a progress report, each checked against its `iter`.
pub(crate) fn parse_metrics(req: &ReportProgressRequest) -> Result<Vec<WireMetricsRow>> {
    req.metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let row: WireMetricsRow = serde_json::from_str(&m.row_json).map_err(|e| {
                Error::invalid(
                    format!("metrics[{i}].row_json"),
                    format!("not a MetricsRow: {e}"),
                )
            })?;
            if row.iter != m.iter {
                return Err(Error::invalid(
                    format!("metrics[{i}].iter"),
                    format!("{} differs from row_json.iter {}", m.iter, row.iter),
                ));
            }
            Ok(row)
        })
        .collect()
}

/// Checks that the checkpoint bytes decode (so a corrupt upload never replaces a good
/// checkpoint) and that they are taken at `checkpoint_iter`.
pub(crate) fn check_checkpoint(req: &ReportProgressRequest) -> Result<Option<i64>> {
    if req.checkpoint.is_empty() {
        return Ok(None);
    }
    let ckpt = Checkpoint::from_bytes(&req.checkpoint)
        .map_err(|e| Error::invalid("checkpoint", e.to_string()))?;
    if ckpt.iter != req.checkpoint_iter {
        return Err(Error::invalid(
            "checkpoint_iter",
            format!(
                "{} differs from the checkpoint's iter {}",
                req.checkpoint_iter, ckpt.iter
            ),
        ));
    }
    Ok(Some(to_i64(ckpt.iter)))
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
    use trainer_core::MetricsRow;

    #[test]
    fn wire_metrics_row_reads_every_metrics_row_field() {
        let row = MetricsRow {
            iter: 7,
            lr: 1e-3,
            loss_r: 0.5,
            loss_b: 0.25,
            rel_l2: 0.125,
            abs_err: 0.0625,
            abs_err_max: 2.0,
            skipped_steps: 3,
            elapsed_s: 1.5,
            extra: [("cos".to_string(), -0.5)].into_iter().collect(),
        };
        let json = serde_json::to_value(&row).unwrap();
        let wire: WireMetricsRow = serde_json::from_value(json.clone()).unwrap();
        // Every key MetricsRow writes is one the wire struct knows (so nothing is dropped).
        let known = [
            "iter",
            "lr",
            "loss_r",
            "loss_b",
            "rel_l2",
            "abs_err",
            "abs_err_max",
            "skipped_steps",
            "elapsed_s",
            "extra",
        ];
        for key in json.as_object().unwrap().keys() {
            assert!(known.contains(&key.as_str()), "MetricsRow gained {key}");
        }
        assert_eq!(wire.iter, 7);
        assert_eq!(wire.rel_l2, Some(0.125));
        assert_eq!(wire.extra["cos"], Some(-0.5));
        // NaN becomes null on the wire and then SQL NULL, not an error.
        let nan = MetricsRow {
            loss_r: f64::NAN,
            ..row
        };
        let wire: WireMetricsRow =
            serde_json::from_str(&serde_json::to_string(&nan).unwrap()).unwrap();
        assert_eq!(finite(wire.loss_r), None);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
