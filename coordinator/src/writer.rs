//! The group-commit writer: the hot worker writes committed in batches, with one statement per
//! *kind* of write per batch instead of one per op. [`Writer`] owns the thread that runs them.
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
//! all checkpoints, one SELECT + one UPDATE + one INSERT for all completions. Those statements
//! are in `jobs/lease.rs`, `jobs/progress.rs` and `jobs/complete.rs`; this file is the loop, the
//! transaction and its failure handling.
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
//!
//! Shape (as the reaper's): the thread is owned by a [`Writer`]; [`Writer::stop`] (from
//! `Store::close`) or dropping the last `Store` stops it, after it has answered every op that
//! was already queued.

use std::sync::Mutex;

use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::fence::now_ms;
use crate::jobs::ops::{Answer, OpKind};
use crate::jobs::{complete, lease, progress};

/// Most ops in one transaction; bounds how long one batch holds the write lock. With the widest
/// statement (a completion binds 21 values) 256 ops stay far below SQLite's 32,766 parameters.
const MAX_BATCH: usize = 256;

/// A worker write waiting for the writer thread, and where its answer goes.
pub(crate) struct WriteOp {
    pub(crate) kind: OpKind,
    pub(crate) reply: oneshot::Sender<Result<Answer>>,
}

/// Owner of the writer thread. Every `Store` clone shares one (behind an `Arc`); when the last
/// goes, or [`Writer::stop`] is called, the thread takes no more ops, answers the queued ones and
/// exits.
#[derive(Debug)]
pub(crate) struct Writer {
    /// Ops into the thread. Sending fails once the thread stopped taking ops.
    ops: mpsc::UnboundedSender<WriteOp>,
    /// Sending on (or dropping) this tells the thread to stop taking ops. A std mutex: it is
    /// only touched to stop, never on the write path.
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// Closes (its sender is dropped) when the thread has exited; taken by the first `stop`.
    exited: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Writer {
    /// Starts the writer thread on `pool` (the one write connection), with its own
    /// single-threaded runtime, so the hops between it and sqlx's connection thread never wait
    /// behind the server's tasks.
    pub(crate) fn spawn(pool: SqlitePool) -> std::io::Result<Writer> {
        let (ops, rx) = mpsc::unbounded_channel::<WriteOp>();
        let (stop, stopped) = oneshot::channel::<()>();
        let (exit, exited) = oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("modsync-writer".into())
            .spawn(move || {
                rt.block_on(write_loop(pool, rx, stopped));
                drop(exit);
            })?;
        Ok(Writer {
            ops,
            stop: Mutex::new(Some(stop)),
            exited: Mutex::new(Some(exited)),
        })
    }

    /// Hands `kind` to the writer thread and waits for its answer (after the COMMIT).
    pub(crate) async fn write(&self, kind: OpKind) -> Result<Answer> {
        let (reply, answer) = oneshot::channel();
        let gone = || Error::Db(sqlx::Error::PoolClosed);
        self.ops.send(WriteOp { kind, reply }).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Stops the thread: it takes no more ops (they are refused as if the store were closed),
    /// answers every op already queued, and exits; returns once it has.
    pub(crate) async fn stop(&self) {
        self.signal_stop();
        let exited = lock(&self.exited).take();
        if let Some(exited) = exited {
            let _ = exited.await;
        }
    }

    fn signal_stop(&self) {
        // Dropping the sender wakes the loop's `stopped` branch.
        lock(&self.stop).take();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The writer thread: takes every op that is waiting (up to [`MAX_BATCH`]) and runs them as one
/// batch, until told to stop and the queue is empty.
async fn write_loop(
    pool: SqlitePool,
    mut rx: mpsc::UnboundedReceiver<WriteOp>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        let op = tokio::select! {
            biased;
            _ = &mut stopped, if !stopping => {
                // No new ops; the queued ones still come out of `recv`, then `None`.
                rx.close();
                stopping = true;
                continue;
            }
            op = rx.recv() => op,
        };
        let Some(op) = op else { break };
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
    tracing::debug!("writer stopped");
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

/// Applies every op of a batch inside the open transaction, filling `answers` (same indices):
/// all leases, then all extensions and progress writes, then all completions — the serial
/// order the batch's semantics are those of. The error means the store failed and the
/// transaction must be rolled back.
async fn apply(
    conn: &mut SqliteConnection,
    ops: &[&OpKind],
    answers: &mut [Option<Result<Answer>>],
) -> sqlx::Result<()> {
    let now = now_ms();
    lease::leases(conn, ops, answers, now).await?;
    progress::extensions(conn, ops, answers, now).await?;
    complete::completions(conn, ops, answers, now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::LeaseTerms;
    use crate::store::Store;
    use modsync_proto::{
        CompleteJobRequest, Job, LeaseJobRequest, MetricRow, ReportProgressRequest, SweepSpec,
    };
    use sqlx::AssertSqlSafe;
    use trainer_core::{MetricsRow, RunResult, RunStatus, TrainConfig};

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
                row_json: serde_json::to_string(&row).unwrap(),
            }],
            ..Default::default()
        };
        let rows = crate::fence::parse_metrics(&req).unwrap();
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
            ..Default::default()
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

    /// The writer's owner stops it while ops are queued: every op already queued is still run
    /// and answered OK (and stored), later ones are refused as if the store were closed, and
    /// stopping twice is harmless. The ops queue behind a write lock held by another connection
    /// (as a user's `sqlite3` shell would hold it): the first is taken and waits for the lock,
    /// the rest wait in the queue when the stop arrives.
    #[tokio::test]
    async fn a_stopped_writer_answers_the_queued_ops_and_refuses_new_ones() {
        use sqlx::{ConnectOptions, Connection};
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_jobs(&dir, 4).await;
        let (a, b) = (
            leased_job(&store, "w1").await,
            leased_job(&store, "w2").await,
        );
        // Another connection takes SQLite's write lock and keeps it.
        let mut holder = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("b.db"))
            .connect()
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut holder)
            .await
            .unwrap();
        let send = |kind: OpKind| {
            let (reply, answer) = oneshot::channel();
            store
                .writer
                .ops
                .send(WriteOp { kind, reply })
                .unwrap_or_else(|_| panic!("the writer refused an op before the stop"));
            answer
        };
        // The first op is taken at once and its batch waits for the lock …
        let mut answers = vec![send(lease_op("w3"))];
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        // … these wait in the queue, and the stop comes while they do.
        answers.extend([
            send(extend_op(a.job_id, a.token)),
            send(progress_op(b.job_id, b.token, 10, 0.5)),
            send(complete_op(&a, a.token, 8)),
            send(lease_op("w4")),
        ]);
        store.writer.signal_stop();
        sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
        holder.close().await.unwrap();
        store.writer.stop().await;
        store.writer.stop().await;
        let refused = store.lease_jobs(&lease_req("w5"), TERMS).await;
        assert!(
            matches!(refused, Err(Error::Db(sqlx::Error::PoolClosed))),
            "an op sent after the stop: {refused:?}"
        );
        let mut got = Vec::new();
        for (i, answer) in answers.into_iter().enumerate() {
            match answer.await {
                Ok(a) => got.push(a),
                Err(_) => panic!("op {i} was queued before the stop and never answered"),
            }
        }
        let third = leased(&got[0]).expect("the third job for w3");
        for i in [1, 2] {
            assert!(
                matches!(got[i], Ok(Answer::Extended(false))),
                "op {i}: {}",
                error_text(&got[i])
            );
        }
        assert!(
            matches!(got[3], Ok(Answer::Completed)),
            "op 3: {}",
            error_text(&got[3])
        );
        let fourth = leased(&got[4]).expect("the fourth job for w4");
        // Stored: a done with its result, b's metric row, the last two jobs leased.
        let jobs: Vec<(i64, String, Option<String>)> =
            sqlx::query_as("SELECT id, state, lease_owner FROM jobs ORDER BY id")
                .fetch_all(&store.write)
                .await
                .unwrap();
        assert_eq!(
            jobs,
            vec![
                (a.job_id, "done".to_string(), Some("w1".to_string())),
                (b.job_id, "running".to_string(), Some("w2".to_string())),
                (third.0, "running".to_string(), Some("w3".to_string())),
                (fourth.0, "running".to_string(), Some("w4".to_string())),
            ]
        );
        let results: Vec<i64> = sqlx::query_scalar("SELECT job_id FROM results")
            .fetch_all(&store.write)
            .await
            .unwrap();
        assert_eq!(results, vec![a.job_id]);
        let metrics: Vec<(i64, i64, f64)> =
            sqlx::query_as("SELECT job_id, iter, rel_l2 FROM metrics")
                .fetch_all(&store.write)
                .await
                .unwrap();
        assert_eq!(metrics, vec![(b.job_id, 10, 0.5)]);
        assert_eq!(
            scalar(&store, "SELECT COUNT(*) FROM workers WHERE id = 'w5'").await,
            0,
            "the refused lease registered its worker"
        );
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
            ..Default::default()
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
                ..Default::default()
            };
            store.submit_sweep(&spec).await.unwrap();
        }
        let answers = one_batch(&store, vec![pack_lease_op("a", 3, "")]).await;
        // The high-priority sweep's two jobs (ids 3, 4), then the oldest low one.
        assert_eq!(leased_ids(&answers[0]), [3, 4, 1]);
    }

    /// Migration 0003 fills `pack_key` in SQL for jobs stored before it; that must be exactly
    /// trainer-core's `PackKey::encode`, or old jobs would never pack with new ones. Jobs that
    /// old were all of the first reading (`spec_v1`).
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
                        "pde_options": {{"nc": {}, "reading": "spec_v1"}}}}"#,
                    2 + n,
                    3 + n
                ),
                max_attempts: 3,
                priority: 0,
                ..Default::default()
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
