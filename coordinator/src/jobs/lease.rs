//! Leases, batched: every LeaseJob of a batch in three kinds of statement (the queue's head,
//! the queued jobs of a pack key, one UPDATE for all the leases), plus the registrations of new
//! or changed workers.

use std::collections::{HashMap, HashSet};

use modsync_proto::{Job, LeaseJobRequest};
use sqlx::SqliteConnection;

use crate::error::Result;
use crate::fence::{LeaseTerms, to_i64};
use crate::jobs::ops::{Answer, OpKind};
use crate::jobs::sql::{placeholders, query};

/// What the lease statement returns.
#[derive(sqlx::FromRow)]
struct LeasedRow {
    id: i64,
    sweep_id: String,
    config_json: String,
    token: i64,
    attempts: i64,
    pack_key: String,
    checkpoint: Option<Vec<u8>>,
}

/// A queued job as the lease picks it.
#[derive(sqlx::FromRow)]
struct QueuedJob {
    id: i64,
    pack_key: String,
}

/// How many jobs a lease asks for: `max_jobs`, where 0 means one.
pub(crate) fn jobs_wanted(req: &LeaseJobRequest) -> usize {
    (req.max_jobs as usize).max(1)
}

/// Every LeaseJob of the batch, in arrival order: each takes the queued jobs of highest
/// priority, oldest first, that no earlier op of the batch took — one job, or with `max_jobs` > 1
/// up to that many of one pack key (the request's `pack_key`, or else its first job's) — with a
/// new fencing token, attempts + 1 and a lease expiry each. Ops left over when the queue runs
/// dry get none.
///
/// Statements: one SELECT of the queue's head for every op of the batch, one SELECT per pack
/// lease (by key, on index `jobs_pack_queue`), one UPDATE for all the leases.
pub(crate) async fn leases(
    conn: &mut SqliteConnection,
    ops: &[&OpKind],
    answers: &mut [Option<Result<Answer>>],
    now: i64,
) -> sqlx::Result<()> {
    let mut leasing: Vec<(usize, &LeaseJobRequest, LeaseTerms)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if let OpKind::Lease {
            req,
            terms,
            register,
            now: asked_at,
        } = op
        {
            if *register {
                register_worker(conn, req, *asked_at).await?;
            }
            leasing.push((i, req, *terms));
        }
    }
    if leasing.is_empty() {
        return Ok(());
    }
    // Enough of the queue's head that every op finds its first job there even after the ops
    // before it took as many jobs as they may.
    let wanted: usize = leasing.iter().map(|(_, req, _)| jobs_wanted(req)).sum();
    let head: Vec<QueuedJob> = sqlx::query_as(
        "SELECT id, pack_key FROM jobs WHERE state = 'queued' ORDER BY priority DESC, id LIMIT ?",
    )
    .bind(to_i64(wanted as u64))
    .fetch_all(&mut *conn)
    .await?;
    let mut taken: HashSet<i64> = HashSet::new();
    let mut picks: Vec<Vec<i64>> = Vec::with_capacity(leasing.len());
    for (_, req, _) in &leasing {
        let want = jobs_wanted(req);
        let mut pick = Vec::with_capacity(want);
        let key = if req.pack_key.is_empty() {
            match head.iter().find(|j| !taken.contains(&j.id)) {
                Some(first) => {
                    pick.push(first.id);
                    taken.insert(first.id);
                    Some(first.pack_key.clone())
                }
                None => None,
            }
        } else {
            Some(req.pack_key.clone())
        };
        if let Some(key) = key
            && pick.len() < want
        {
            let ids: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE state = 'queued' AND pack_key = ?
                 ORDER BY priority DESC, id LIMIT ?",
            )
            .bind(&key)
            .bind(to_i64((want - pick.len() + taken.len()) as u64))
            .fetch_all(&mut *conn)
            .await?;
            for id in ids {
                if pick.len() == want {
                    break;
                }
                if taken.insert(id) {
                    pick.push(id);
                }
            }
        }
        picks.push(pick);
    }
    let mut leased: HashMap<i64, LeasedRow> = HashMap::new();
    let granted: Vec<(i64, &LeaseJobRequest, LeaseTerms)> = leasing
        .iter()
        .zip(&picks)
        .flat_map(|((_, req, terms), ids)| ids.iter().map(move |id| (*id, *req, *terms)))
        .collect();
    // One statement for every lease: the (job, owner, expiry) triples are joined in. The jobs
    // were read inside this transaction, so they are still queued.
    for chunk in granted.chunks(MAX_LEASES_PER_UPDATE) {
        let mut q = query(format!(
            "UPDATE jobs SET state = 'running', lease_owner = m.column2,
                 lease_expires_at_ms = m.column3, token = token + 1, attempts = attempts + 1,
                 cancel_requested = 0, updated_at_ms = ?
             FROM (VALUES {}) AS m
             WHERE jobs.id = m.column1 AND jobs.state = 'queued'
             RETURNING jobs.id, jobs.sweep_id, jobs.config_json, jobs.token, jobs.attempts,
                 jobs.pack_key, (SELECT bytes FROM checkpoints WHERE job_id = jobs.id) AS checkpoint",
            placeholders(chunk.len(), 3)
        ))
        .bind(now);
        for (id, req, terms) in chunk {
            q = q
                .bind(*id)
                .bind(&req.worker_id)
                .bind(now.saturating_add(to_i64(terms.lease_ms)));
        }
        for row in q.fetch_all(&mut *conn).await? {
            let row: LeasedRow = sqlx::FromRow::from_row(&row)?;
            leased.insert(row.id, row);
        }
    }
    for ((i, _, terms), ids) in leasing.iter().zip(picks) {
        let jobs = ids
            .into_iter()
            .filter_map(|id| leased.remove(&id))
            .map(|row| job_of(row, *terms))
            .collect();
        answers[*i] = Some(Ok(Answer::Leased(jobs)));
    }
    Ok(())
}

/// Leases per UPDATE statement: 3 parameters each, well under SQLite's 32,766.
const MAX_LEASES_PER_UPDATE: usize = 4_096;

fn job_of(row: LeasedRow, terms: LeaseTerms) -> Job {
    Job {
        job_id: row.id,
        sweep_id: row.sweep_id,
        config_json: row.config_json,
        token: row.token,
        attempt: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        checkpoint: row.checkpoint.unwrap_or_default(),
        heartbeat_ms: terms.heartbeat_ms,
        lease_ms: terms.lease_ms,
        pack_key: row.pack_key,
    }
}

async fn register_worker(
    conn: &mut SqliteConnection,
    req: &LeaseJobRequest,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO workers (id, host, device, first_seen_ms, last_seen_ms)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET host = excluded.host,
             device = excluded.device, last_seen_ms = excluded.last_seen_ms",
    )
    .bind(&req.worker_id)
    .bind(&req.host)
    .bind(&req.device)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
