//! Completions, batched: the fence and the result check of every CompleteJob of a batch first
//! (one SELECT; nothing is written for a refused op), then one UPDATE marking the accepted jobs
//! done and one INSERT of their result rows.

use std::collections::{HashMap, HashSet};

use modsync_proto::CompleteJobRequest;
use sqlx::SqliteConnection;
use trainer_core::{RunResult, RunStatus};

use crate::error::{Error, Result};
use crate::fence::{stale, to_i64};
use crate::jobs::ops::{Answer, OpKind};
use crate::jobs::sql::{list, query};

/// What a completion reads of its job first: the fence (state, token), what the result must
/// match (pde, method, width, seed) and the lease owner the result is credited to.
#[derive(sqlx::FromRow)]
struct CompletingRow {
    id: i64,
    state: String,
    token: i64,
    pde: String,
    method: String,
    width: i64,
    seed: i64,
    lease_owner: Option<String>,
}

/// Every CompleteJob of the batch: fence and result check first (nothing written on refusal),
/// then the accepted jobs are marked done in one UPDATE (the trigger of migration 0002 counts
/// each owner's `jobs_done`) and their result rows inserted in one INSERT.
pub(crate) async fn completions(
    conn: &mut SqliteConnection,
    ops: &[&OpKind],
    answers: &mut [Option<Result<Answer>>],
    now: i64,
) -> sqlx::Result<()> {
    let completing: Vec<(usize, &CompleteJobRequest, &RunResult)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            OpKind::Complete { req, result } => Some((i, req, result.as_ref())),
            _ => None,
        })
        .collect();
    if completing.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = completing.iter().map(|(_, req, _)| req.job_id).collect();
    let mut q = query(format!(
        "SELECT id, state, token, pde, method, width, seed, lease_owner FROM jobs
         WHERE id IN ({})",
        list(ids.len())
    ));
    for id in &ids {
        q = q.bind(id);
    }
    let mut jobs: HashMap<i64, CompletingRow> = HashMap::new();
    for row in q.fetch_all(&mut *conn).await? {
        let row: CompletingRow = sqlx::FromRow::from_row(&row)?;
        jobs.insert(row.id, row);
    }
    let mut done_now: HashSet<i64> = HashSet::new();
    let mut accepted: Vec<(&CompleteJobRequest, &RunResult, String)> = Vec::new();
    for (i, req, result) in &completing {
        let verdict = match jobs.get(&req.job_id) {
            None => Err(Error::NotFound(format!("no job {}", req.job_id))),
            // Completed by an op before this one in the batch: this one comes too late.
            Some(job) if done_now.contains(&req.job_id) => {
                Err(stale(req.job_id, req.token, "done", job.token))
            }
            Some(job) => check_completion(req, result, job),
        };
        answers[*i] = Some(match verdict {
            Ok(owner) => {
                done_now.insert(req.job_id);
                accepted.push((req, result, owner));
                Ok(Answer::Completed)
            }
            Err(e) => Err(e),
        });
    }
    if accepted.is_empty() {
        return Ok(());
    }
    let mut q = query(format!(
        "UPDATE jobs SET state = 'done', lease_expires_at_ms = NULL, cancel_requested = 0,
             updated_at_ms = ? WHERE id IN ({})",
        list(accepted.len())
    ))
    .bind(now);
    for (req, ..) in &accepted {
        q = q.bind(req.job_id);
    }
    q.execute(&mut *conn).await?;
    insert_results(conn, &accepted, now).await
}

/// The lease is live (`running` with this token) and the result is this job's; returns the
/// lease owner.
fn check_completion(
    req: &CompleteJobRequest,
    r: &RunResult,
    job: &CompletingRow,
) -> Result<String> {
    if job.state != "running" || job.token != req.token {
        return Err(stale(req.job_id, req.token, &job.state, job.token));
    }
    let theirs = (
        r.config.pde.as_str(),
        r.config.method.as_str(),
        to_i64(r.config.width as u64),
        to_i64(r.config.seed),
    );
    let ours = (job.pde.as_str(), job.method.as_str(), job.width, job.seed);
    if theirs != ours {
        return Err(Error::invalid(
            "result_json.config",
            format!(
                "is for (pde, method, width, seed) = {theirs:?}, but job {} is {ours:?}",
                req.job_id
            ),
        ));
    }
    Ok(job.lease_owner.clone().unwrap_or_default())
}

/// Result rows per INSERT statement: 21 parameters each.
const RESULTS_PER_INSERT: usize = 256;

async fn insert_results(
    conn: &mut SqliteConnection,
    accepted: &[(&CompleteJobRequest, &RunResult, String)],
    now: i64,
) -> sqlx::Result<()> {
    // The device is the one the worker reported, else the one its workers row names.
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
         CASE WHEN ? = '' THEN COALESCE((SELECT device FROM workers WHERE id = ?), '')
              ELSE ? END,
         ?, ?, ?)";
    for chunk in accepted.chunks(RESULTS_PER_INSERT) {
        let mut q = query(format!(
            "INSERT INTO results (job_id, rel_l2_best, rel_l2_min_loss, rel_l2_last,
                 abs_err_best, abs_err_max_best, best_iter, min_loss_iter, iters_done, wall_s,
                 iters_per_s, num_params, diverged, skipped_steps, status, device, worker_id,
                 result, finished_at_ms)
             VALUES {}",
            vec![row; chunk.len()].join(", ")
        ));
        for (req, r, owner) in chunk {
            let status = match r.status {
                RunStatus::Diverged => "diverged",
                _ => "finished",
            };
            q = q
                .bind(req.job_id)
                .bind(r.rel_l2_best)
                .bind(r.rel_l2_min_loss)
                .bind(r.rel_l2_last)
                .bind(r.abs_err_best)
                .bind(r.abs_err_max_best)
                .bind(to_i64(r.best_iter))
                .bind(to_i64(r.min_loss_iter))
                .bind(to_i64(r.iters_done))
                .bind(r.wall_s)
                .bind(r.iters_per_s)
                .bind(to_i64(r.num_params as u64))
                .bind(r.diverged)
                .bind(to_i64(r.skipped_steps))
                .bind(status)
                .bind(&req.device)
                .bind(owner)
                .bind(&req.device)
                .bind(owner)
                .bind(&req.result_json)
                .bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}
