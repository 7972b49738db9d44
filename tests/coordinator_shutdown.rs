//! Promise 4: SIGTERM to `modsync coordinator` with RPCs in flight — a slow Query, completions
//! waiting for the store, an open health Watch. Every RPC the coordinator had received is
//! answered (the completions after their COMMIT), the Watch stream is ended at once instead of
//! holding the shutdown open forever, and the process exits within 5 s of the last answer.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::rpc::{Rpc, result_json};
use common::{Coordinator, tiny_sweep, write};
use modsync_proto::*;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tonic::Streaming;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// The promise: exit within this long of the last in-flight RPC's answer.
const EXIT_WITHIN: Duration = Duration::from_secs(5);
/// How long the store stays locked after the SIGTERM, keeping the completions in flight. Well
/// below the coordinator's 10 s busy timeout, after which they would fail as UNAVAILABLE.
const HELD_AFTER_SIGTERM: Duration = Duration::from_secs(1);

#[test]
fn sigterm_answers_and_commits_the_rpcs_in_flight_ends_watches_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shutdown.db");
    // Only its own end may stop the slow query.
    let mut coord = Coordinator::start(&db, None, &["--query-timeout-ms", "60000"]);
    let sweep = tiny_sweep("s", &[4], &[0, 1, 2], 50, "");
    coord.cli(&["submit", &write(dir.path(), "s.toml", &sweep)]);
    let rpc = Rpc::new(&coord);
    let jobs: Vec<Job> = (0..3)
        .map(|i| rpc.lease(&format!("w{i}")).expect("a queued job"))
        .collect();
    let (slow, rows) = slow_query(&rpc, Duration::from_secs(2));

    let last_answer = rpc.block_on(async {
        let mut watch = open_watch(&coord.url).await;
        // While the test holds SQLite's write lock the completions wait inside the coordinator
        // (for up to its 10 s busy timeout); the lock is let go after the SIGTERM.
        let mut lock = write_lock(&db).await;
        let mut completions: Vec<_> = jobs.iter().map(|job| spawn_completion(&rpc, job)).collect();
        let query = spawn_query(&rpc, slow, rows);
        // The streams of one HTTP/2 connection are read in order: once a call spawned after
        // them is answered, the coordinator has received them all.
        let mut c = rpc.client();
        tokio::spawn(async move { c.list_sweeps(ListSweepsRequest {}).await })
            .await
            .unwrap()
            .expect("the probe call");

        let sigterm = Instant::now();
        coord.proc.signal("TERM");
        let seen = until_watch_ends(&mut watch).await;
        assert_eq!(seen, vec![ServingStatus::NotServing]);
        // The completions stay in flight a while longer: the coordinator must wait for them.
        tokio::time::sleep(HELD_AFTER_SIGTERM).await;
        for (i, completion) in completions.iter_mut().enumerate() {
            if completion.is_finished() {
                let early = completion.await.unwrap();
                panic!("completion {i} ended while the store was still locked: {early:?}");
            }
        }
        sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
        lock.close().await.unwrap();
        completions.push(query);
        last_answer_after(sigterm, completions).await
    });
    let status = coord
        .proc
        .wait(EXIT_WITHIN.saturating_sub(last_answer.elapsed()));
    assert!(status.success(), "{status}; log:\n{}", coord.proc.log());
    assert!(
        coord.proc.log().contains("coordinator stopped"),
        "{}",
        coord.proc.log()
    );

    // Committed: every answered completion is in the file the coordinator left behind.
    let (done, results) = rpc.block_on(async {
        let mut store = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .read_only(true)
            .connect()
            .await
            .unwrap();
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'done'),
                    (SELECT COUNT(*) FROM results)",
        )
        .fetch_one(&mut store)
        .await
        .unwrap()
    });
    assert_eq!((done, results), (3, 3));
}

/// When an in-flight RPC returns `Ok`.
type Answered = tokio::task::JoinHandle<Result<Instant, tonic::Status>>;

fn spawn_completion(rpc: &Rpc, job: &Job) -> Answered {
    let mut c = rpc.client();
    let req = CompleteJobRequest {
        job_id: job.job_id,
        token: job.token,
        worker_id: format!("worker-of-{}", job.job_id),
        result_json: result_json(job),
        device: "cpu".into(),
    };
    tokio::spawn(async move { c.complete_job(req).await.map(|_| Instant::now()) })
}

/// `sql`, which must count to `rows`.
fn spawn_query(rpc: &Rpc, sql: String, rows: i64) -> Answered {
    let mut c = rpc.client();
    tokio::spawn(async move {
        let r = c.query(QueryRequest { sql, max_rows: 0 }).await?;
        let count = r.into_inner().rows[0].values[0].kind.clone();
        assert_eq!(count, Some(value::Kind::Integer(rows)));
        Ok(Instant::now())
    })
}

/// Waits for every RPC, each of which must be answered OK after `sigterm`; returns when the
/// last answer came.
async fn last_answer_after(sigterm: Instant, rpcs: Vec<Answered>) -> Instant {
    let mut last = sigterm;
    for (i, rpc) in rpcs.into_iter().enumerate() {
        let answered = rpc.await.unwrap().unwrap_or_else(|s| {
            panic!("in-flight RPC {i} was not answered OK after the SIGTERM: {s:?}")
        });
        assert!(
            answered > sigterm,
            "RPC {i} was answered before the SIGTERM"
        );
        last = last.max(answered);
    }
    last
}

/// A read-only query that keeps SQLite busy for about `target` on this machine, and the count
/// it returns: a counting recursive CTE, sized by timing a small one first.
fn slow_query(rpc: &Rpc, target: Duration) -> (String, i64) {
    let count_to = |n: i64| {
        format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
             SELECT count(*) FROM c"
        )
    };
    let small = 200_000;
    let started = Instant::now();
    assert_eq!(rpc.sql_int(&count_to(small)), small);
    let per_row = started.elapsed().as_secs_f64() / small as f64;
    let n = ((target.as_secs_f64() / per_row) as i64).clamp(small, 2_000_000_000);
    (count_to(n), n)
}

/// A health Watch of the whole server, past its first answer (SERVING).
async fn open_watch(url: &str) -> Streaming<HealthCheckResponse> {
    let channel = tonic::transport::Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut watch = health
        .watch(HealthCheckRequest { service: "".into() })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().expect("a first status");
    assert_eq!(first.status(), ServingStatus::Serving);
    watch
}

/// The statuses a Watch sends until it ends, which must be soon.
async fn until_watch_ends(watch: &mut Streaming<HealthCheckResponse>) -> Vec<ServingStatus> {
    let mut seen = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = watch.message().await.expect("the Watch ends cleanly") {
            seen.push(m.status());
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the Watch stream is still open after the SIGTERM: {seen:?}"
    );
    seen
}

/// A connection of the test holding SQLite's write lock (`BEGIN IMMEDIATE`) on the store.
async fn write_lock(db: &Path) -> SqliteConnection {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}
