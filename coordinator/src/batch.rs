//! The write batcher: group commit of the hot worker writes, with one statement per *kind* of
//! write per batch instead of one per op.
//!
//! The four writes every job makes (LeaseJob, Heartbeat, ReportProgress, CompleteJob) go to one
//! writer task on its own thread, which takes every op that is waiting (up to `MAX_BATCH`), runs
//! them in ONE `BEGIN IMMEDIATE` transaction and answers them all after the COMMIT.
//!
//! Why set-based: every sqlx statement is a round trip to SQLite's connection thread, and on a
//! busy machine each hop waits for a core. Measured with bench/coordinator-load (1,000 workers,
//! 2 cores): with one to three statements per op the writer was busy 100 % of the time at
//! ~4,500 ops/s (~190 µs of wall time per op, mostly hops) while the CPUs were 64 % used. So a
//! batch runs a fixed handful of statements whatever its size: the registrations of new
//! workers, one SELECT + one UPDATE … FROM (VALUES …) for all leases, one fenced UPDATE for all
//! lease extensions (heartbeats and progress reports), one INSERT for all metric rows and one for
//! all checkpoints, one SELECT + one UPDATE + one INSERT for all completions.
//!
//! Semantics: those of running the ops one transaction each in this order — all leases (in
//! arrival order), then all extensions and progress writes (in arrival order), then all
//! completions (in arrival order). That is a valid serial order because every op of a batch was
//! in flight at once (none was answered before all of them arrived). Each op still sees the
//! writes of the ops before it in that order (a second completion of a job in the same batch is
//! stale, a later metric row for the same iteration replaces an earlier one); an op that is
//! refused (stale token, unknown job, wrong result) writes nothing; no op is answered before the
//! COMMIT that makes it durable returned; if the store fails, the batch is rolled back and its
//! ops are retried one transaction each, so one failing op cannot fail the others.

use std::collections::{BTreeMap, HashMap, HashSet};

use modsync_proto::{CompleteJobRequest, Job, LeaseJobRequest, ReportProgressRequest};
use sqlx::{AssertSqlSafe, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use trainer_core::{RunResult, RunStatus};

use crate::error::{Error, Result};
use crate::lease::{LeaseTerms, WireMetricsRow, finite, refusal, stale};
use crate::store::{now_ms, to_i64};

/// Most ops in one transaction; bounds how long one batch holds the write lock. With the widest
/// statement (a completion binds 21 values) 256 ops stay far below SQLite's 32,766 parameters.
const MAX_BATCH: usize = 256;

/// A worker write waiting for the writer task.
pub(crate) struct WriteOp {
    pub(crate) kind: OpKind,
    pub(crate) reply: oneshot::Sender<Result<Answer>>,
}

pub(crate) enum OpKind {
    Lease {
        req: LeaseJobRequest,
        terms: LeaseTerms,
        /// Also (re)write the worker's row.
        register: bool,
        now: i64,
    },
    Extend {
        job_id: i64,
        token: i64,
        lease_ms: u64,
    },
    Progress {
        req: ReportProgressRequest,
        rows: Vec<WireMetricsRow>,
        checkpoint_iter: Option<i64>,
        lease_ms: u64,
    },
    Complete {
        req: CompleteJobRequest,
        result: Box<RunResult>,
    },
}

pub(crate) enum Answer {
    /// The jobs leased (none when nothing is queued), all of one pack key.
    Leased(Vec<Job>),
    /// The cancel flag.
    Extended(bool),
    Completed,
}

/// Starts the writer task on its own thread (its own single-threaded runtime, so the hops
/// between it and sqlx's connection thread never wait behind the server's tasks). It ends when
/// every sender (every `Store` clone) is gone.
pub(crate) fn spawn_writer(pool: SqlitePool) -> std::io::Result<mpsc::UnboundedSender<WriteOp>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<WriteOp>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("modsync-writer".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                while let Some(op) = rx.recv().await {
                    batch.push(op);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    run_batch(
                        &pool,
                        std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH)),
                    )
                    .await;
                }
            });
        })?;
    Ok(tx)
}

/// Runs one batch in one transaction and answers every op after the COMMIT.
async fn run_batch(pool: &SqlitePool, batch: Vec<WriteOp>) {
    let mut answers: Vec<Option<Result<Answer>>> = batch.iter().map(|_| None).collect();
    let outcome: sqlx::Result<()> = async {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let ops: Vec<&OpKind> = batch.iter().map(|op| &op.kind).collect();
        apply(&mut tx, &ops, &mut answers).await?;
        tx.commit().await
    }
    .await;
    match outcome {
        Ok(()) => {
            for (op, answer) in batch.into_iter().zip(answers) {
                let answer = answer.unwrap_or_else(|| {
                    Err(Error::Db(sqlx::Error::Protocol(
                        "the write batcher left an op unanswered".into(),
                    )))
                });
                // The caller may have gone (client cancelled): the write stands regardless.
                let _ = op.reply.send(answer);
            }
        }
        Err(e) if batch.len() > 1 => {
            // Nothing of the batch was committed. Run its ops again one transaction each, so
            // that one op failing in SQLite (which its worker would retry) cannot keep failing
            // every op that happens to share its batch.
            tracing::warn!(error = %e, ops = batch.len(), "write batch rolled back, retrying its ops one by one");
            for op in batch {
                Box::pin(run_batch(pool, vec![op])).await;
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "write rolled back");
            let msg = format!("write rolled back: {e}");
            for op in batch {
                let _ = op
                    .reply
                    .send(Err(Error::Db(sqlx::Error::Protocol(msg.clone()))));
            }
        }
    }
}

/// Applies every op of a batch inside the open transaction, filling `answers` (same indices).
/// The error means the store failed and the transaction must be rolled back.
async fn apply(
    conn: &mut SqliteConnection,
    ops: &[&OpKind],
    answers: &mut [Option<Result<Answer>>],
) -> sqlx::Result<()> {
    let now = now_ms();
    leases(conn, ops, answers, now).await?;
    extensions(conn, ops, answers, now).await?;
    completions(conn, ops, answers, now).await
}

/// `?, ?, …`: `n` placeholders, for an `IN (…)` list. Only placeholders: every value is bound.
fn list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `(?, ?, …), (?, ?, …), …`: `rows` tuples of `width` placeholders, for a `VALUES` list.
fn placeholders(rows: usize, width: usize) -> String {
    vec![format!("({})", list(width)); rows].join(", ")
}

/// A statement built from fixed SQL, [`list`] and [`placeholders`] only.
fn query(sql: String) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(AssertSqlSafe(sql))
}

// ---- leases ----

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
async fn leases(
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

// ---- lease extensions: heartbeats and progress reports ----

/// Metric rows per INSERT statement: 12 parameters each, well under SQLite's 32,766.
const METRIC_ROWS_PER_INSERT: usize = 256;

/// Every Heartbeat and ReportProgress of the batch. The fence and the extension are one UPDATE
/// for all of them (`WHERE (id, token) match AND state = 'running'`): an op whose pair it did
/// not match is refused and writes nothing more. Then the accepted progress reports' metric
/// rows and checkpoints are written, in arrival order.
async fn extensions(
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
        let (id, token, cancel): (i64, i64, bool) = sqlx::FromRow::from_row(&row)?;
        extended.insert(id, (token, cancel));
    }
    let mut checkpoints: Vec<(&ReportProgressRequest, i64)> = Vec::new();
    let mut rows: Vec<(&ReportProgressRequest, &WireMetricsRow)> = Vec::new();
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

async fn insert_metrics(
    conn: &mut SqliteConnection,
    rows: &[(&ReportProgressRequest, &WireMetricsRow)],
) -> sqlx::Result<()> {
    for chunk in rows.chunks(METRIC_ROWS_PER_INSERT) {
        let mut q = query(format!(
            "INSERT OR REPLACE INTO metrics (job_id, iter, lr, loss_r, loss_b, rel_l2, abs_err,
                 abs_err_max, skipped_steps, elapsed_s, extra, token) VALUES {}",
            placeholders(chunk.len(), 12)
        ));
        for (req, row) in chunk {
            let extra: BTreeMap<&String, Option<f64>> =
                row.extra.iter().map(|(k, v)| (k, finite(*v))).collect();
            q = q
                .bind(req.job_id)
                .bind(to_i64(row.iter))
                .bind(finite(row.lr))
                .bind(finite(row.loss_r))
                .bind(finite(row.loss_b))
                .bind(finite(row.rel_l2))
                .bind(finite(row.abs_err))
                .bind(finite(row.abs_err_max))
                .bind(to_i64(row.skipped_steps))
                .bind(finite(row.elapsed_s))
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

// ---- completions ----

/// What a completion reads first: id, state, token, pde, method, width, seed, lease owner.
type CompletingRow = (i64, String, i64, String, String, i64, i64, Option<String>);

/// Every CompleteJob of the batch: fence and result check first (nothing written on refusal),
/// then the accepted jobs are marked done in one UPDATE (the trigger of migration 0002 counts
/// each owner's `jobs_done`) and their result rows inserted in one INSERT.
async fn completions(
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
        jobs.insert(row.0, row);
    }
    let mut done_now: HashSet<i64> = HashSet::new();
    let mut accepted: Vec<(&CompleteJobRequest, &RunResult, String)> = Vec::new();
    for (i, req, result) in &completing {
        let verdict = match jobs.get(&req.job_id) {
            None => Err(Error::NotFound(format!("no job {}", req.job_id))),
            // Completed by an op before this one in the batch: this one comes too late.
            Some((_, _, current, ..)) if done_now.contains(&req.job_id) => {
                Err(stale(req.job_id, req.token, "done", *current))
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
    let (_, state, current, pde, method, width, seed, owner) = job;
    if state != "running" || *current != req.token {
        return Err(stale(req.job_id, req.token, state, *current));
    }
    let theirs = (
        r.config.pde.as_str(),
        r.config.method.as_str(),
        to_i64(r.config.width as u64),
        to_i64(r.config.seed),
    );
    let ours = (pde.as_str(), method.as_str(), *width, *seed);
    if theirs != ours {
        return Err(Error::invalid(
            "result_json.config",
            format!(
                "is for (pde, method, width, seed) = {theirs:?}, but job {} is {ours:?}",
                req.job_id
            ),
        ));
    }
    Ok(owner.clone().unwrap_or_default())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::LeaseTerms;
    use crate::store::Store;
    use modsync_proto::{MetricRow, SweepSpec};
    use trainer_core::{MetricsRow, TrainConfig};

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

    #[test]
    fn placeholders_make_one_tuple_per_row() {
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(placeholders(1, 1), "(?)");
        assert_eq!(list(3), "?, ?, ?");
    }

    const TERMS: LeaseTerms = LeaseTerms {
        lease_ms: 60_000,
        heartbeat_ms: 5_000,
    };

    fn lease_op(worker: &str) -> OpKind {
        OpKind::Lease {
            req: LeaseJobRequest {
                worker_id: worker.into(),
                host: "h".into(),
                device: "cpu".into(),
                ..Default::default()
            },
            terms: TERMS,
            register: true,
            now: now_ms(),
        }
    }

    fn extend_op(job_id: i64, token: i64) -> OpKind {
        OpKind::Extend {
            job_id,
            token,
            lease_ms: TERMS.lease_ms,
        }
    }

    /// A progress report of one metric row at `iter` whose rel_l2 tells the reports apart.
    fn progress_op(job_id: i64, token: i64, iter: u64, rel_l2: f64) -> OpKind {
        let row = MetricsRow {
            iter,
            lr: 1e-3,
            loss_r: 1.0,
            loss_b: 1.0,
            rel_l2,
            abs_err: 0.1,
            abs_err_max: 0.2,
            skipped_steps: 0,
            elapsed_s: 0.5,
            extra: Default::default(),
        };
        let req = ReportProgressRequest {
            job_id,
            token,
            metrics: vec![MetricRow {
                iter,
                row_json: serde_json::to_string(&row).unwrap(),
            }],
            ..Default::default()
        };
        let rows = crate::lease::parse_metrics(&req).unwrap();
        OpKind::Progress {
            req,
            rows,
            checkpoint_iter: None,
            lease_ms: TERMS.lease_ms,
        }
    }

    fn complete_op(job: &Job, token: i64, width: usize) -> OpKind {
        let mut config: TrainConfig = serde_json::from_str(&job.config_json).unwrap();
        config.width = width;
        let result = RunResult {
            status: RunStatus::Finished,
            rel_l2_best: 0.25,
            rel_l2_min_loss: 0.3,
            rel_l2_last: 0.35,
            abs_err_best: 0.01,
            abs_err_max_best: 0.02,
            best_iter: 10,
            min_loss_iter: 10,
            iters_done: 20,
            diverged: false,
            skipped_steps: 0,
            wall_s: 1.0,
            iters_per_s: 20.0,
            num_params: 100,
            config,
        };
        OpKind::Complete {
            req: CompleteJobRequest {
                job_id: job.job_id,
                token,
                worker_id: "w".into(),
                result_json: serde_json::to_string(&result).unwrap(),
                device: String::new(),
            },
            result: Box::new(result),
        }
    }

    /// Runs `ops` as ONE batch and returns their answers in order.
    async fn one_batch(store: &Store, ops: Vec<OpKind>) -> Vec<Result<Answer>> {
        let (batch, answers): (Vec<_>, Vec<_>) = ops
            .into_iter()
            .map(|kind| {
                let (reply, answer) = oneshot::channel();
                (WriteOp { kind, reply }, answer)
            })
            .unzip();
        run_batch(&store.write, batch).await;
        let mut out = Vec::new();
        for a in answers {
            out.push(a.await.unwrap());
        }
        out
    }

    async fn scalar(store: &Store, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&store.write)
            .await
            .unwrap()
    }

    fn leased(a: &Result<Answer>) -> Option<(i64, i64)> {
        match a {
            Ok(Answer::Leased(jobs)) => {
                assert!(jobs.len() <= 1, "a plain lease got {} jobs", jobs.len());
                jobs.first().map(|j| (j.job_id, j.token))
            }
            _ => panic!("not a lease answer: {}", error_text(a)),
        }
    }

    fn is_stale(a: &Result<Answer>) -> bool {
        matches!(a, Err(Error::Stale(_)))
    }

    /// A store holding one sweep of `jobs` queued jobs (burgers, adam, width 8, seeds 0..).
    async fn store_with_jobs(dir: &tempfile::TempDir, jobs: i64) -> Store {
        let store = Store::open(&dir.path().join("b.db")).await.unwrap();
        let spec = SweepSpec {
            name: "b".into(),
            pdes: vec!["burgers".into()],
            methods: vec!["adam".into()],
            widths: vec![8],
            seeds: (0..jobs).collect(),
            base_config_json: r#"{"iters": 20, "eval_every": 10}"#.into(),
            max_attempts: 3,
            priority: 0,
        };
        store.submit_sweep(&spec).await.unwrap();
        store
    }

    fn lease_req(worker: &str) -> LeaseJobRequest {
        LeaseJobRequest {
            worker_id: worker.into(),
            host: "h".into(),
            device: "cpu".into(),
            ..Default::default()
        }
    }

    async fn leased_job(store: &Store, worker: &str) -> Job {
        store
            .lease_jobs(&lease_req(worker), TERMS)
            .await
            .unwrap()
            .into_iter()
            .next()
            .expect("a queued job")
    }

    /// The only job of a plain lease.
    fn first(jobs: Vec<Job>) -> Job {
        assert_eq!(jobs.len(), 1, "a plain lease of a non-empty queue");
        jobs.into_iter().next().unwrap()
    }

    /// Runs `sql` on the writer's own connection (its pool has exactly one, kept for the
    /// store's lifetime), so TEMP tables and triggers made here act on every batch.
    async fn on_writer_connection(store: &Store, sql: &str) {
        sqlx::query(AssertSqlSafe(sql.to_string()))
            .execute(&store.write)
            .await
            .unwrap();
    }

    /// Every row an op can write, as one comparable text: the jobs, metrics, checkpoints,
    /// results and workers.
    async fn stored(store: &Store) -> String {
        sqlx::query_scalar(
            "SELECT concat_ws(' | ',
                 (SELECT group_concat(concat_ws(':', id, state, token, attempts, lease_owner,
                      lease_expires_at_ms, updated_at_ms), ',') FROM jobs),
                 (SELECT group_concat(concat_ws(':', job_id, iter, token), ',') FROM metrics),
                 (SELECT group_concat(concat_ws(':', job_id, iter, token), ',') FROM checkpoints),
                 (SELECT group_concat(job_id, ',') FROM results),
                 (SELECT group_concat(concat_ws(':', id, last_seen_ms, jobs_done), ',')
                      FROM workers))",
        )
        .fetch_one(&store.write)
        .await
        .unwrap()
    }

    fn error_text(a: &Result<Answer>) -> String {
        match a {
            Ok(_) => "answered OK".into(),
            Err(e) => e.to_string(),
        }
    }

    /// One batch holding every conflict the set-based statements must resolve as serial ops
    /// would: a stale and a live token of one job, a job completed twice, a wrong result, an
    /// unknown job, the same metric iteration reported twice, more leases than queued jobs.
    #[tokio::test]
    async fn a_batch_answers_like_its_ops_run_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_jobs(&dir, 4).await;
        let req = lease_req;
        // Job a: leased by w1 (token 1), requeued, leased again by w2 (token 2).
        let a = first(store.lease_jobs(&req("w1"), TERMS).await.unwrap());
        sqlx::query("UPDATE jobs SET state = 'queued' WHERE id = ?")
            .bind(a.job_id)
            .execute(&store.write)
            .await
            .unwrap();
        let a2 = first(store.lease_jobs(&req("w2"), TERMS).await.unwrap());
        assert_eq!((a2.job_id, a2.token), (a.job_id, 2));
        // Job b: running with token 1, gets two reports of iteration 10 and one stale one.
        let b = first(store.lease_jobs(&req("w3"), TERMS).await.unwrap());
        let id = a.job_id;
        let answers = one_batch(
            &store,
            vec![
                extend_op(id, 1),                  // 0: stale token
                lease_op("w4"),                    // 1: gets the 3rd job
                extend_op(id, 2),                  // 2: live
                progress_op(b.job_id, 1, 10, 0.5), // 3
                complete_op(&a2, 2, 8),            // 4: completes a
                progress_op(b.job_id, 1, 10, 0.4), // 5: replaces row of 3
                complete_op(&a2, 2, 8),            // 6: a is done by now
                lease_op("w5"),                    // 7: gets the 4th job
                complete_op(&b, 1, 16),            // 8: wrong width
                lease_op("w6"),                    // 9: queue is empty
                extend_op(9_999, 1),               // 10: no such job
                progress_op(b.job_id, 0, 20, 0.1), // 11: stale, writes nothing
            ],
        )
        .await;
        assert!(is_stale(&answers[0]));
        assert!(matches!(answers[2], Ok(Answer::Extended(false))));
        assert!(matches!(answers[3], Ok(Answer::Extended(false))));
        assert!(matches!(answers[4], Ok(Answer::Completed)));
        assert!(matches!(answers[5], Ok(Answer::Extended(false))));
        assert!(is_stale(&answers[6]), "a second completion in one batch");
        assert!(
            matches!(&answers[8], Err(Error::Invalid(e)) if e.to_string().contains("result_json.config"))
        );
        assert!(matches!(answers[10], Err(Error::NotFound(_))));
        assert!(is_stale(&answers[11]));
        // Leases in arrival order, oldest job first; the third finds the queue empty.
        let (third, fourth) = (leased(&answers[1]).unwrap(), leased(&answers[7]).unwrap());
        assert!(
            third.0 < fourth.0 && third.0 > b.job_id,
            "{third:?} {fourth:?}"
        );
        assert_eq!((third.1, fourth.1), (1, 1));
        assert_eq!(leased(&answers[9]), None);
        // The database says the same.
        assert_eq!(scalar(&store, "SELECT COUNT(*) FROM results").await, 1);
        assert_eq!(
            scalar(&store, "SELECT COUNT(*) FROM jobs WHERE state = 'done'").await,
            1
        );
        assert_eq!(
            scalar(&store, "SELECT jobs_done FROM workers WHERE id = 'w2'").await,
            1
        );
        assert_eq!(scalar(&store, "SELECT COUNT(*) FROM metrics").await, 1);
        let rel_l2: f64 = sqlx::query_scalar("SELECT rel_l2 FROM metrics WHERE iter = 10")
            .fetch_one(&store.write)
            .await
            .unwrap();
        assert_eq!(rel_l2, 0.4, "the later report of an iteration wins");
        let owners: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, lease_owner FROM jobs WHERE state = 'running' ORDER BY id")
                .fetch_all(&store.write)
                .await
                .unwrap();
        assert_eq!(
            owners,
            vec![
                (b.job_id, "w3".to_string()),
                (third.0, "w4".to_string()),
                (fourth.0, "w5".to_string())
            ]
        );
        store.close().await;
    }

    /// Promise 2: one op failing in SQLite inside a batch of several fails alone. The batch
    /// rolls back and its ops are retried one transaction each; the others commit and are
    /// answered OK.
    #[tokio::test]
    async fn an_op_that_fails_in_sqlite_fails_alone_and_the_rest_of_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_jobs(&dir, 4).await;
        let (a, b, c) = (
            leased_job(&store, "wa").await,
            leased_job(&store, "wb").await,
            leased_job(&store, "wc").await,
        );
        // Storing b's result fails inside SQLite, as a full disk or a bad page would for it.
        on_writer_connection(
            &store,
            &format!(
                "CREATE TEMP TRIGGER refuse_b BEFORE INSERT ON main.results
                 WHEN NEW.job_id = {} BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                b.job_id
            ),
        )
        .await;
        let answers = one_batch(
            &store,
            vec![
                lease_op("wd"),                          // 0: the 4th job
                extend_op(a.job_id, a.token),            // 1
                complete_op(&b, b.token, 8),             // 2: fails
                progress_op(c.job_id, c.token, 10, 0.5), // 3
                complete_op(&a, a.token, 8),             // 4: in the same INSERT as 2
            ],
        )
        .await;
        let fourth = leased(&answers[0]).expect("the queued job is leased");
        assert!(
            matches!(answers[1], Ok(Answer::Extended(false))),
            "{}",
            error_text(&answers[1])
        );
        assert!(
            matches!(answers[3], Ok(Answer::Extended(false))),
            "{}",
            error_text(&answers[3])
        );
        assert!(
            matches!(answers[4], Ok(Answer::Completed)),
            "{}",
            error_text(&answers[4])
        );
        assert!(
            matches!(&answers[2], Err(Error::Db(e)) if e.to_string().contains("injected failure")),
            "{}",
            error_text(&answers[2])
        );
        // The store says the same: a done, b untouched, c's metric row, the 4th job leased.
        let jobs: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT id, state, token FROM jobs ORDER BY id")
                .fetch_all(&store.write)
                .await
                .unwrap();
        assert_eq!(
            jobs,
            vec![
                (a.job_id, "done".to_string(), a.token),
                (b.job_id, "running".to_string(), b.token),
                (c.job_id, "running".to_string(), c.token),
                (fourth.0, "running".to_string(), fourth.1),
            ]
        );
        let results: Vec<i64> = sqlx::query_scalar("SELECT job_id FROM results")
            .fetch_all(&store.write)
            .await
            .unwrap();
        assert_eq!(results, vec![a.job_id]);
        let metrics: Vec<(i64, i64)> = sqlx::query_as("SELECT job_id, iter FROM metrics")
            .fetch_all(&store.write)
            .await
            .unwrap();
        assert_eq!(metrics, vec![(c.job_id, 10)]);
        store.close().await;
    }

    /// Promise 9: an op is answered OK only after the COMMIT that stores it. Here every
    /// statement of the batch succeeds and its COMMIT fails (a deferred foreign key that each
    /// change of a job breaks): no op may be answered OK, and nothing may be stored.
    #[tokio::test]
    async fn no_op_is_answered_ok_when_its_commit_fails() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_jobs(&dir, 3).await;
        let (a, b) = (
            leased_job(&store, "wa").await,
            leased_job(&store, "wb").await,
        );
        for sql in [
            "CREATE TEMP TABLE commit_guard (id INTEGER PRIMARY KEY)",
            "CREATE TEMP TABLE commit_bomb (guard INTEGER
                 REFERENCES commit_guard (id) DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TEMP TRIGGER arm_commit_bomb AFTER UPDATE ON main.jobs
                 BEGIN INSERT INTO commit_bomb VALUES (0); END",
        ] {
            on_writer_connection(&store, sql).await;
        }
        let ops = || {
            vec![
                lease_op("wc"),
                extend_op(a.job_id, a.token),
                progress_op(b.job_id, b.token, 10, 0.5),
                complete_op(&a, a.token, 8),
            ]
        };
        let before = stored(&store).await;
        let answers = one_batch(&store, ops()).await;
        for (i, answer) in answers.iter().enumerate() {
            let e = error_text(answer);
            assert!(e.contains("FOREIGN KEY"), "op {i} (its COMMIT failed): {e}");
        }
        assert_eq!(
            stored(&store).await,
            before,
            "a write of the failed commit is stored"
        );
        // The same ops commit once the bomb is gone: they failed at the COMMIT and nowhere else.
        on_writer_connection(&store, "DROP TRIGGER temp.arm_commit_bomb").await;
        for (i, answer) in one_batch(&store, ops()).await.iter().enumerate() {
            assert!(answer.is_ok(), "op {i}: {}", error_text(answer));
        }
        store.close().await;
    }

    fn pack_lease_op(worker: &str, max_jobs: u32, pack_key: &str) -> OpKind {
        OpKind::Lease {
            req: LeaseJobRequest {
                max_jobs,
                pack_key: pack_key.into(),
                ..lease_req(worker)
            },
            terms: TERMS,
            register: true,
            now: now_ms(),
        }
    }

    fn leased_ids(a: &Result<Answer>) -> Vec<i64> {
        match a {
            Ok(Answer::Leased(jobs)) => jobs.iter().map(|j| j.job_id).collect(),
            _ => panic!("not a lease answer: {}", error_text(a)),
        }
    }

    #[tokio::test]
    async fn pack_leases_take_one_key_in_queue_order_and_never_share_a_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).await.unwrap();
        // Queue order: adam 8 s0, adam 8 s1, adam 16 s0, adam 16 s1, dcgd 8 s0, dcgd 8 s1,
        // dcgd 16 s0, dcgd 16 s1 (ids 1..=8); pack key by width.
        let spec = SweepSpec {
            name: "p".into(),
            pdes: vec!["burgers".into()],
            methods: vec!["adam".into(), "dcgd".into()],
            widths: vec![8, 16],
            seeds: vec![0, 1],
            base_config_json: r#"{"iters": 20, "eval_every": 10}"#.into(),
            max_attempts: 3,
            priority: 0,
        };
        store.submit_sweep(&spec).await.unwrap();
        let key8 = trainer_core::pack_key(&TrainConfig {
            width: 8,
            iters: 20,
            eval_every: 10,
            ..TrainConfig::default()
        })
        .encode();
        let answers = one_batch(
            &store,
            vec![
                pack_lease_op("a", 4, ""),
                lease_op("b"),
                pack_lease_op("c", 4, &key8),
                pack_lease_op("d", 3, ""),
                pack_lease_op("e", 2, ""),
            ],
        )
        .await;
        // The first job, then the oldest of its key; a plain lease takes the next in the queue;
        // a lease of a key with nothing left gets nothing; each job goes to one lease.
        assert_eq!(leased_ids(&answers[0]), [1, 2, 5, 6]);
        assert_eq!(leased_ids(&answers[1]), [3]);
        assert_eq!(leased_ids(&answers[2]), Vec::<i64>::new());
        assert_eq!(leased_ids(&answers[3]), [4, 7, 8]);
        assert_eq!(leased_ids(&answers[4]), Vec::<i64>::new());
        let Ok(Answer::Leased(jobs)) = &answers[0] else {
            unreachable!()
        };
        assert!(jobs.iter().all(|j| j.pack_key == key8 && j.token == 1));
        // Each job has a lease of its own, owned by the worker that asked.
        let owners: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, lease_owner FROM jobs WHERE state = 'running' ORDER BY id")
                .fetch_all(&store.write)
                .await
                .unwrap();
        let owner_of = |id: i64| owners.iter().find(|(j, _)| *j == id).unwrap().1.clone();
        assert_eq!(owners.len(), 8);
        assert_eq!(
            [1, 2, 3, 4, 5, 6, 7, 8].map(owner_of),
            ["a", "a", "b", "d", "a", "a", "d", "d"].map(String::from)
        );
    }

    #[tokio::test]
    async fn a_pack_lease_follows_priority_before_age_within_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("q.db")).await.unwrap();
        for (name, priority) in [("low", 0), ("high", 5)] {
            let spec = SweepSpec {
                name: name.into(),
                pdes: vec!["burgers".into()],
                methods: vec!["adam".into()],
                widths: vec![8],
                seeds: vec![0, 1],
                base_config_json: r#"{"iters": 20, "eval_every": 10}"#.into(),
                max_attempts: 3,
                priority,
            };
            store.submit_sweep(&spec).await.unwrap();
        }
        let answers = one_batch(&store, vec![pack_lease_op("a", 3, "")]).await;
        // The high-priority sweep's two jobs (ids 3, 4), then the oldest low one.
        assert_eq!(leased_ids(&answers[0]), [3, 4, 1]);
    }

    /// Migration 0003 fills `pack_key` in SQL for jobs stored before it; that must be exactly
    /// trainer-core's `PackKey::encode`, or old jobs would never pack with new ones.
    #[tokio::test]
    async fn migration_pack_key_equals_trainer_core() {
        let migration = include_str!("../../migrations/0003_pack_key.sql");
        let update = migration
            .split(';')
            .find(|s| s.contains("UPDATE jobs SET pack_key"))
            .expect("the migration's UPDATE");
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.db")).await.unwrap();
        let mut expected = Vec::new();
        for (n, (pde, precision)) in [
            ("burgers", "f32"),
            ("helmholtz2d", "f64"),
            ("klein_gordon2d", "f32"),
            ("helmholtz3d", "f64"),
            ("klein_gordon3d", "f32"),
        ]
        .into_iter()
        .enumerate()
        {
            let spec = SweepSpec {
                name: format!("m{n}"),
                pdes: vec![pde.into()],
                methods: vec!["adam".into()],
                widths: vec![7 + n as u64],
                seeds: vec![0],
                base_config_json: format!(
                    r#"{{"iters": 20, "eval_every": 10, "depth": {}, "precision": "{precision}",
                        "pde_options": {{"nc": {}}}}}"#,
                    2 + n,
                    3 + n
                ),
                max_attempts: 3,
                priority: 0,
            };
            store.submit_sweep(&spec).await.unwrap();
        }
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT config_json, pack_key FROM jobs ORDER BY id")
                .fetch_all(&store.write)
                .await
                .unwrap();
        for (json, key) in &rows {
            let config: TrainConfig = serde_json::from_str(json).unwrap();
            let rust = trainer_core::pack_key(&config).encode();
            assert_eq!(key, &rust, "the key written at submit");
            expected.push(rust);
        }
        assert_eq!(expected.len(), 5);
        sqlx::query("UPDATE jobs SET pack_key = ''")
            .execute(&store.write)
            .await
            .unwrap();
        sqlx::query(AssertSqlSafe(update.to_string()))
            .execute(&store.write)
            .await
            .unwrap();
        let filled: Vec<String> = sqlx::query_scalar("SELECT pack_key FROM jobs ORDER BY id")
            .fetch_all(&store.write)
            .await
            .unwrap();
        assert_eq!(filled, expected);
    }
}
