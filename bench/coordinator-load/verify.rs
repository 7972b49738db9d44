//! The checks after the run, read from the database through the Query RPC: jobs without a
//! result or with several, acknowledged completions that were not stored, stale marker rows.

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};
use modsync_proto::QueryRequest;
use modsync_proto::value::Kind;

use crate::SWEEP;
use crate::shared::{Client, STALE_ITER, STALE_REL_L2, WorkerStats};

/// What the database says after the run.
pub struct Verdict {
    pub jobs: u64,
    pub states: String,
    pub results: u64,
    pub metric_rows: u64,
    pub no_result: u64,
    pub multi_results: u64,
    pub ack_mismatch: u64,
    pub dup_acks: u64,
    pub stale_rows: u64,
}

async fn query(c: &mut Client, sql: &str, max_rows: u32) -> Result<Vec<Vec<Kind>>> {
    let r = c
        .query(QueryRequest {
            sql: sql.into(),
            max_rows,
        })
        .await
        .map_err(|s| anyhow!("Query {sql:?}: {}", modsync_client::describe(&s)))?
        .into_inner();
    if r.truncated {
        bail!("Query {sql:?}: result truncated at {max_rows} rows");
    }
    r.rows
        .into_iter()
        .map(|row| {
            row.values
                .into_iter()
                .map(|v| v.kind.ok_or_else(|| anyhow!("Query {sql:?}: empty value")))
                .collect()
        })
        .collect()
}

fn int(k: &Kind) -> Result<i64> {
    match k {
        Kind::Integer(i) => Ok(*i),
        other => bail!("expected an integer, got {other:?}"),
    }
}

async fn count(c: &mut Client, sql: &str) -> Result<u64> {
    let rows = query(c, sql, 1).await?;
    let v = rows
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| anyhow!("Query {sql:?}: no row"))?;
    Ok(u64::try_from(int(v)?).unwrap_or(0))
}

pub async fn verify(c: &mut Client, stats: &WorkerStats, max_rows: u32) -> Result<Verdict> {
    let jobs = count(
        c,
        &format!("SELECT COUNT(*) FROM jobs WHERE sweep_id = '{SWEEP}'"),
    )
    .await?;
    let states = query(
        c,
        &format!(
            "SELECT state, COUNT(*) FROM jobs WHERE sweep_id = '{SWEEP}' GROUP BY state ORDER BY state"
        ),
        100,
    )
    .await?
    .iter()
    .map(|r| match (&r[0], &r[1]) {
        (Kind::Text(s), Kind::Integer(n)) => format!("{s} {n}"),
        other => format!("{other:?}"),
    })
    .collect::<Vec<_>>()
    .join(", ");
    let no_result = count(
        c,
        &format!(
            "SELECT COUNT(*) FROM jobs j WHERE j.sweep_id = '{SWEEP}' \
             AND NOT EXISTS (SELECT 1 FROM results r WHERE r.job_id = j.id)"
        ),
    )
    .await?;
    let multi_results = count(
        c,
        "SELECT COUNT(*) FROM (SELECT job_id FROM results GROUP BY job_id HAVING COUNT(*) > 1)",
    )
    .await?;
    let metric_rows = count(c, "SELECT COUNT(*) FROM metrics").await?;
    let stale_rows = count(
        c,
        &format!(
            "SELECT (SELECT COUNT(*) FROM metrics WHERE iter = {STALE_ITER}) \
             + (SELECT COUNT(*) FROM checkpoints WHERE iter = {STALE_ITER}) \
             + (SELECT COUNT(*) FROM results WHERE rel_l2_best = {STALE_REL_L2:.1})"
        ),
    )
    .await?;
    let stored: HashMap<i64, String> = query(c, "SELECT job_id, worker_id FROM results", max_rows)
        .await?
        .into_iter()
        .map(|r| match (&r[0], &r[1]) {
            (Kind::Integer(j), Kind::Text(w)) => Ok((*j, w.clone())),
            other => Err(anyhow!("results row {other:?}")),
        })
        .collect::<Result<_>>()?;
    let mut acks: HashMap<i64, u64> = HashMap::new();
    let mut ack_mismatch = 0;
    for (job, _) in &stats.acked {
        *acks.entry(*job).or_default() += 1;
    }
    // A job acknowledged twice counts as duplicated; one acknowledged once must have the
    // acknowledged worker's result stored.
    for (job, worker) in &stats.acked {
        if acks[job] == 1 && stored.get(job) != Some(worker) {
            ack_mismatch += 1;
        }
    }
    let dup_acks = acks.values().filter(|&&n| n > 1).count() as u64;
    Ok(Verdict {
        jobs,
        states,
        results: stored.len() as u64,
        metric_rows,
        no_result,
        multi_results,
        ack_mismatch,
        dup_acks,
        stale_rows,
    })
}
