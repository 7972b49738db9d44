//! The worker side of the queue: lease a job, then fenced writes (heartbeat, progress,
//! complete, fail, release).
//!
//! Invariant kept here: a job is `running` with exactly one live fencing token, and every write
//! after the lease checks `(job_id, token, state = 'running')` *in the same transaction, before
//! writing anything*: heartbeat, progress, fail and release start with an `UPDATE jobs … WHERE
//! id = ? AND token = ? AND state = 'running'` that matches no row for a stale token (and then
//! nothing else runs); completion reads the job's state and token first and writes only if they
//! hold. A worker whose lease expired and was taken over holds an old token, so its writes are
//! refused with `FAILED_PRECONDITION` and nothing is written: it can never overwrite the metrics,
//! checkpoint or result of the worker that took over.
//!
//! Hot path (measured with `bench/coordinator-load`, 1,000 simulated workers): the four worker
//! writes that every job makes (LeaseJob, Heartbeat, ReportProgress, CompleteJob) go through one
//! writer task that group-commits them (see "the write batcher" below); each uses as few
//! statements as it can (a heartbeat and a lease of a known worker are one statement), and the
//! `workers` bookkeeping (`last_seen_ms`, `jobs_done`) follows job updates through the triggers
//! of migration 0002 instead of separate statements. FailJob and ReleaseJob (rare) run their own
//! transaction.
//!
//! The worker's identity (`worker_id` in each request) is recorded (`workers.last_seen_ms`,
//! `results.worker_id` comes from the lease owner) but is not part of the fence: the token alone
//! identifies one lease of one job.
//!
//! Input is parsed and validated before the transaction starts, so a bad request never holds the
//! write lock and never writes half of itself.

use std::collections::BTreeMap;

use modsync_proto::{
    CompleteJobRequest, FailJobRequest, HeartbeatRequest, Job, LeaseJobRequest, ReleaseJobRequest,
    ReportProgressRequest,
};
use serde::Deserialize;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use trainer_core::{Checkpoint, RunResult, RunStatus};

use crate::error::{Error, Result};
use crate::store::{Store, now_ms, to_i64};

/// Longest worker id/host/device we store; longer ones are refused (they are names, not logs).
const MAX_NAME: usize = 256;
/// Longest `last_error` kept; a longer message is cut (the start of an error says most).
const MAX_ERROR: usize = 16 * 1024;

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
struct WireMetricsRow {
    iter: u64,
    lr: Option<f64>,
    loss_r: Option<f64>,
    loss_b: Option<f64>,
    rel_l2: Option<f64>,
    abs_err: Option<f64>,
    abs_err_max: Option<f64>,
    skipped_steps: u64,
    elapsed_s: Option<f64>,
    #[serde(default)]
    extra: BTreeMap<String, Option<f64>>,
}

/// `Some(x)` only for finite `x`.
fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

fn parse_metrics(req: &ReportProgressRequest) -> Result<Vec<WireMetricsRow>> {
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
fn check_checkpoint(req: &ReportProgressRequest) -> Result<Option<i64>> {
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
fn parse_result(json: &str) -> Result<RunResult> {
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

fn check_name(field: &str, v: &str, required: bool) -> Result<()> {
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
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Why a fenced write matched no live lease: the job does not exist (NOT_FOUND) or `token`
/// does not hold its lease (FAILED_PRECONDITION). Only called after the fenced statement changed
/// nothing, so it never decides anything: tokens only grow, a token that did not hold the lease
/// then never holds it later.
async fn refusal(conn: &mut SqliteConnection, job_id: i64, token: i64) -> Error {
    let row: std::result::Result<Option<(String, i64)>, _> =
        sqlx::query_as("SELECT state, token FROM jobs WHERE id = ?")
            .bind(job_id)
            .fetch_optional(&mut *conn)
            .await;
    match row {
        Err(e) => e.into(),
        Ok(None) => Error::NotFound(format!("no job {job_id}")),
        Ok(Some((state, current))) => stale(job_id, token, &state, current),
    }
}

fn stale(job_id: i64, token: i64, state: &str, current: i64) -> Error {
    Error::Stale(format!(
        "job {job_id}: token {token} does not hold the lease (job is {state}, current token {current})"
    ))
}

/// The fence and the lease extension in one statement: pushes the expiry of `job_id` out by
/// `lease_ms` if and only if `token` holds its lease, and returns the cancel flag; `None` when
/// it does not (nothing written). The schema trigger `jobs_lease_touches_worker` (migration
/// 0002) notes in the same statement that the owner is alive.
async fn extend_fenced(
    conn: &mut SqliteConnection,
    job_id: i64,
    token: i64,
    lease_ms: u64,
) -> sqlx::Result<Option<bool>> {
    let now = now_ms();
    sqlx::query_scalar(
        "UPDATE jobs SET lease_expires_at_ms = ?, updated_at_ms = ?
         WHERE id = ? AND token = ? AND state = 'running'
         RETURNING cancel_requested",
    )
    .bind(now.saturating_add(to_i64(lease_ms)))
    .bind(now)
    .bind(job_id)
    .bind(token)
    .fetch_optional(&mut *conn)
    .await
}

async fn touch_worker(conn: &mut SqliteConnection, owner: Option<&str>, now: i64) -> Result<()> {
    if let Some(owner) = owner {
        sqlx::query("UPDATE workers SET last_seen_ms = ? WHERE id = ?")
            .bind(now)
            .bind(owner)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Metric rows per INSERT statement: 12 parameters each, well under SQLite's 32,766.
const METRIC_ROWS_PER_INSERT: usize = 256;

/// `INSERT OR REPLACE INTO metrics … VALUES (…), (…), …` for `n` rows.
fn metrics_insert_sql(n: usize) -> String {
    let mut sql = String::from(
        "INSERT OR REPLACE INTO metrics (job_id, iter, lr, loss_r, loss_b, rel_l2, abs_err,
             abs_err_max, skipped_steps, elapsed_s, extra, token) VALUES ",
    );
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    }
    sql
}

/// The leasing statement: moves the highest-priority, oldest queued job to running for `owner`
/// and returns it with its last checkpoint. One statement, so atomic on its own.
async fn take_next(
    conn: &mut SqliteConnection,
    owner: &str,
    terms: LeaseTerms,
    now: i64,
) -> sqlx::Result<Option<Job>> {
    let row: Option<LeasedRow> = sqlx::query_as(
        "UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires_at_ms = ?,
             token = token + 1, attempts = attempts + 1, cancel_requested = 0,
             updated_at_ms = ?
         WHERE id = (SELECT id FROM jobs WHERE state = 'queued'
                     ORDER BY priority DESC, id LIMIT 1)
         RETURNING id, sweep_id, config_json, token, attempts,
             (SELECT bytes FROM checkpoints WHERE job_id = jobs.id)",
    )
    .bind(owner)
    .bind(now.saturating_add(to_i64(terms.lease_ms)))
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(
        |(job_id, sweep_id, config_json, token, attempts, checkpoint)| Job {
            job_id,
            sweep_id,
            config_json,
            token,
            attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
            checkpoint: checkpoint.unwrap_or_default(),
            heartbeat_ms: terms.heartbeat_ms,
            lease_ms: terms.lease_ms,
        },
    ))
}

// ---- the write batcher ----
//
// Measured with bench/coordinator-load (1,000 workers): with one transaction per RPC, the one
// write connection spent most of its time *held but idle* — between two statements of a
// transaction the RPC's task waited in tokio's run queue behind thousands of HTTP/2 tasks while
// every other writer queued for the connection. So the hot worker writes (LeaseJob, Heartbeat,
// ReportProgress, CompleteJob) go to one writer task on its own thread instead, which takes
// every op that is waiting (up to `MAX_BATCH`), runs them one after the other in ONE
// `BEGIN IMMEDIATE` transaction and answers them all after the COMMIT (group commit).
//
// The semantics are those of running the ops serially, one transaction each: ops run in arrival
// order and each sees the writes of those before it; an op that is refused (stale token,
// unknown job, wrong result) has written nothing when it is refused, so the others are not
// affected; no op is answered before the COMMIT that makes it durable returned; if the store
// fails, the whole batch is rolled back and every op in it gets the error (a worker retries).

/// Most ops in one transaction; bounds how long one batch holds the write lock.
const MAX_BATCH: usize = 256;

/// A worker write waiting for the writer task.
pub(crate) struct WriteOp {
    kind: OpKind,
    reply: oneshot::Sender<Result<Answer>>,
}

enum OpKind {
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
        now: i64,
    },
}

enum Answer {
    Leased(Option<Job>),
    /// The cancel flag.
    Extended(bool),
    Completed,
}

impl OpKind {
    /// Runs the op inside the batch transaction. The outer error means the store failed (the
    /// batch is rolled back); the inner one that this op is refused, having written nothing.
    async fn apply(&self, conn: &mut SqliteConnection) -> sqlx::Result<Result<Answer>> {
        match self {
            OpKind::Lease {
                req,
                terms,
                register,
                now,
            } => {
                if *register {
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
                }
                let job = take_next(conn, &req.worker_id, *terms, *now).await?;
                Ok(Ok(Answer::Leased(job)))
            }
            OpKind::Extend {
                job_id,
                token,
                lease_ms,
            } => Ok(
                match extend_fenced(conn, *job_id, *token, *lease_ms).await? {
                    Some(cancel) => Ok(Answer::Extended(cancel)),
                    None => Err(refusal(conn, *job_id, *token).await),
                },
            ),
            OpKind::Progress {
                req,
                rows,
                checkpoint_iter,
                lease_ms,
            } => {
                let Some(cancel) = extend_fenced(conn, req.job_id, req.token, *lease_ms).await?
                else {
                    return Ok(Err(refusal(conn, req.job_id, req.token).await));
                };
                for chunk in rows.chunks(METRIC_ROWS_PER_INSERT) {
                    // Built from fixed fragments only (placeholders); the values are bound.
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(metrics_insert_sql(chunk.len())));
                    for row in chunk {
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
                if let Some(iter) = checkpoint_iter {
                    sqlx::query(
                        "INSERT OR REPLACE INTO checkpoints (job_id, iter, bytes, token,
                             created_at_ms)
                         VALUES (?, ?, ?, ?, ?)",
                    )
                    .bind(req.job_id)
                    .bind(iter)
                    .bind(&req.checkpoint)
                    .bind(req.token)
                    .bind(now_ms())
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(Ok(Answer::Extended(cancel)))
            }
            OpKind::Complete { req, result, now } => complete(conn, req, result, *now).await,
        }
    }
}

/// CompleteJob inside the batch: fence and result check first (nothing written on refusal),
/// then the job is marked done (the trigger of migration 0002 counts the owner's `jobs_done`)
/// and the result row inserted.
async fn complete(
    conn: &mut SqliteConnection,
    req: &CompleteJobRequest,
    r: &RunResult,
    now: i64,
) -> sqlx::Result<Result<Answer>> {
    let row: Option<CompletingRow> = sqlx::query_as(
        "SELECT state, token, pde, method, width, seed, lease_owner FROM jobs WHERE id = ?",
    )
    .bind(req.job_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((state, current, pde, method, width, seed, owner)) = row else {
        return Ok(Err(Error::NotFound(format!("no job {}", req.job_id))));
    };
    if state != "running" || current != req.token {
        return Ok(Err(stale(req.job_id, req.token, &state, current)));
    }
    let theirs = (
        r.config.pde.as_str(),
        r.config.method.as_str(),
        to_i64(r.config.width as u64),
        to_i64(r.config.seed),
    );
    let ours = (pde.as_str(), method.as_str(), width, seed);
    if theirs != ours {
        return Ok(Err(Error::invalid(
            "result_json.config",
            format!(
                "is for (pde, method, width, seed) = {theirs:?}, but job {} is {ours:?}",
                req.job_id
            ),
        )));
    }
    let owner = owner.unwrap_or_default();
    let status = match r.status {
        RunStatus::Diverged => "diverged",
        _ => "finished",
    };
    sqlx::query(
        "UPDATE jobs SET state = 'done', lease_expires_at_ms = NULL, cancel_requested = 0,
             updated_at_ms = ? WHERE id = ?",
    )
    .bind(now)
    .bind(req.job_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO results (job_id, rel_l2_best, rel_l2_min_loss, rel_l2_last, abs_err_best,
             abs_err_max_best, best_iter, min_loss_iter, iters_done, wall_s, iters_per_s,
             num_params, diverged, skipped_steps, status, device, worker_id, result,
             finished_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
             CASE WHEN ? = '' THEN COALESCE((SELECT device FROM workers WHERE id = ?), '')
                  ELSE ? END,
             ?, ?, ?)",
    )
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
    .bind(&owner)
    .bind(&req.device)
    .bind(&owner)
    .bind(&req.result_json)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(Ok(Answer::Completed))
}

/// What the lease statement returns: id, sweep id, config JSON, token, attempts, checkpoint.
type LeasedRow = (i64, String, String, i64, i64, Option<Vec<u8>>);
/// What a completion reads first: state, token, pde, method, width, seed, lease owner.
type CompletingRow = (String, i64, String, String, i64, i64, Option<String>);

/// Runs one batch in one transaction and answers every op after the COMMIT.
async fn run_batch(pool: &SqlitePool, batch: Vec<WriteOp>) {
    let mut answers: Vec<Result<Answer>> = Vec::with_capacity(batch.len());
    let outcome: sqlx::Result<()> = async {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        for op in &batch {
            answers.push(op.kind.apply(&mut tx).await?);
        }
        tx.commit().await
    }
    .await;
    match outcome {
        Ok(()) => {
            for (op, answer) in batch.into_iter().zip(answers) {
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

impl Store {
    /// Hands `kind` to the writer task and waits for its answer (after the COMMIT).
    async fn write_op(&self, kind: OpKind) -> Result<Answer> {
        let (reply, answer) = oneshot::channel();
        let gone = || Error::Db(sqlx::Error::PoolClosed);
        self.writer
            .send(WriteOp { kind, reply })
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Moves the highest-priority, oldest queued job to running for this worker: new fencing
    /// token (+1), attempts + 1, lease expiry now + lease_ms. Returns it with its last
    /// checkpoint, or `None` when nothing is queued. The lease itself is one UPDATE … RETURNING
    /// statement on the one write connection, so two workers can never lease the same job.
    ///
    /// The worker's row (host, device) is written when it is new or changed, or its last write
    /// is older than `store::WORKER_REFRESH_MS`; otherwise the lease is the only statement (the
    /// trigger of migration 0002 updates `last_seen_ms` of the new owner).
    pub async fn lease_job(&self, req: &LeaseJobRequest, terms: LeaseTerms) -> Result<Option<Job>> {
        check_name("worker_id", &req.worker_id, true)?;
        check_name("host", &req.host, false)?;
        check_name("device", &req.device, false)?;
        let now = now_ms();
        let register = self.worker_needs_write(req, now);
        let answer = self
            .write_op(OpKind::Lease {
                req: req.clone(),
                terms,
                register,
                now,
            })
            .await?;
        if register {
            self.worker_written(req, now);
        }
        let Answer::Leased(job) = answer else {
            unreachable!("a lease op answers Leased")
        };
        if let Some(job) = &job {
            tracing::info!(job = job.job_id, worker = %req.worker_id, token = job.token,
                attempts = job.attempt, "job leased");
        }
        Ok(job)
    }

    /// Extends the lease; returns whether the worker should stop (sweep cancelled). One
    /// statement: the fence and the extension are the same UPDATE.
    pub async fn heartbeat(&self, req: &HeartbeatRequest, terms: LeaseTerms) -> Result<bool> {
        match self
            .write_op(OpKind::Extend {
                job_id: req.job_id,
                token: req.token,
                lease_ms: terms.lease_ms,
            })
            .await?
        {
            Answer::Extended(cancel) => Ok(cancel),
            _ => unreachable!("an extend op answers Extended"),
        }
    }

    /// Stores metric rows (a re-reported iteration replaces its row) and, when present, the
    /// checkpoint (replacing the previous one); extends the lease. Returns the cancel flag.
    /// The first statement is the fenced extension: a stale token writes nothing.
    pub async fn report_progress(
        &self,
        req: &ReportProgressRequest,
        terms: LeaseTerms,
    ) -> Result<bool> {
        let rows = parse_metrics(req)?;
        let checkpoint_iter = check_checkpoint(req)?;
        match self
            .write_op(OpKind::Progress {
                req: req.clone(),
                rows,
                checkpoint_iter,
                lease_ms: terms.lease_ms,
            })
            .await?
        {
            Answer::Extended(cancel) => Ok(cancel),
            _ => unreachable!("a progress op answers Extended"),
        }
    }

    /// Writes the job's result row and marks it done, in one transaction. The result must be
    /// of this job (same pde/method/width/seed) and contain no non-finite error.
    pub async fn complete_job(&self, req: &CompleteJobRequest) -> Result<()> {
        check_name("device", &req.device, false)?;
        let result = Box::new(parse_result(&req.result_json)?);
        let rel_l2_best = result.rel_l2_best;
        self.write_op(OpKind::Complete {
            req: req.clone(),
            result,
            now: now_ms(),
        })
        .await?;
        tracing::info!(job = req.job_id, rel_l2_best, "job done");
        Ok(())
    }

    /// This attempt failed: back to the queue while attempts < max_attempts, else `failed`
    /// (a pending cancel wins: `cancelled`). The error is kept in `last_error`.
    pub async fn fail_job(&self, req: &FailJobRequest) -> Result<()> {
        let error = match req.error.trim() {
            "" => "(the worker sent no error message)",
            e => truncate(e, MAX_ERROR),
        };
        let now = now_ms();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let state: Option<(String, Option<String>)> = sqlx::query_as(
            "UPDATE jobs SET
                 state = CASE WHEN cancel_requested = 1 THEN 'cancelled'
                              WHEN attempts >= max_attempts THEN 'failed'
                              ELSE 'queued' END,
                 last_error = ?, lease_expires_at_ms = NULL, cancel_requested = 0,
                 updated_at_ms = ?
             WHERE id = ? AND token = ? AND state = 'running'
             RETURNING state, lease_owner",
        )
        .bind(error)
        .bind(now)
        .bind(req.job_id)
        .bind(req.token)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((state, owner)) = state else {
            return Err(refusal(&mut tx, req.job_id, req.token).await);
        };
        touch_worker(&mut tx, owner.as_deref(), now).await?;
        tx.commit().await?;
        tracing::warn!(job = req.job_id, now = %state, error, "job attempt failed");
        Ok(())
    }

    /// The worker gives the job back (shutdown, preemption): queued again without counting the
    /// attempt (attempts − 1), or `cancelled` if its sweep was cancelled meanwhile. The last
    /// checkpoint stays, so the next lease resumes from it.
    pub async fn release_job(&self, req: &ReleaseJobRequest) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let released: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE jobs SET
                 state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END,
                 attempts = MAX(attempts - 1, 0), lease_expires_at_ms = NULL,
                 cancel_requested = 0, updated_at_ms = ?
             WHERE id = ? AND token = ? AND state = 'running'
             RETURNING lease_owner",
        )
        .bind(now)
        .bind(req.job_id)
        .bind(req.token)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(owner) = released else {
            return Err(refusal(&mut tx, req.job_id, req.token).await);
        };
        touch_worker(&mut tx, owner.as_deref(), now).await?;
        tx.commit().await?;
        tracing::info!(job = req.job_id, "job released");
        Ok(())
    }
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
