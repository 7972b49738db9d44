//! Test fixtures: start/stop a coordinator, connect clients, build specs and results.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use coordinator::ServeConfig;
use modsync_proto::sweeps_client::SweepsClient;
use modsync_proto::value::Kind;
use modsync_proto::*;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use trainer_core::{Checkpoint, MetricsRow, RunResult, RunStatus, TrainConfig};

pub type Client = SweepsClient<InterceptedService<Channel, RawAuth>>;

/// Sends `authorization: Bearer <token>` exactly as given — also the empty or blank tokens that
/// `modsync_client`'s `Auth` refuses to send — so tests can check what the server does with them.
#[derive(Clone)]
pub struct RawAuth(Option<tonic::metadata::AsciiMetadataValue>);

impl RawAuth {
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(|t| format!("Bearer {t}").parse().unwrap()))
    }
}

impl tonic::service::Interceptor for RawAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A coordinator running in this process. Dropping the TempDir removes the store.
pub struct Server {
    pub addr: SocketAddr,
    pub db: PathBuf,
    pub token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<coordinator::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a coordinator on a fresh store; `tweak` adjusts the config.
    pub async fn start(tweak: impl FnOnce(&mut ServeConfig)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store").join("modsync.db");
        let mut s = Server::start_on(db, tweak).await;
        s._dir = Some(dir);
        s
    }

    /// Starts a coordinator on an existing (or new) store file.
    pub async fn start_on(db: PathBuf, tweak: impl FnOnce(&mut ServeConfig)) -> Server {
        let mut config = ServeConfig {
            db: db.clone(),
            ..ServeConfig::default()
        };
        tweak(&mut config);
        let token = config.token.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(coordinator::serve_with_listener(config, listener, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            db,
            token,
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    /// A client with the server's own token.
    pub async fn client(&self) -> Client {
        self.client_with(self.token.as_deref()).await
    }

    /// A client that sends `token` (or none).
    pub async fn client_with(&self, token: Option<&str>) -> Client {
        let url = format!("http://{}", self.addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        let channel = loop {
            match Channel::from_shared(url.clone()).unwrap().connect().await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => panic!("cannot connect: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        SweepsClient::with_interceptor(channel, RawAuth::new(token))
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// Graceful shutdown; returns what `serve_with_listener` returned. Keeps the store files.
    pub async fn stop(mut self) -> (coordinator::Result<()>, Option<tempfile::TempDir>) {
        self.stop.take();
        let r = self.task.take().unwrap().await.unwrap();
        (r, self._dir.take())
    }
}

/// A coordinator on a fresh store (`tweak` adjusts its config) and a client with its token:
/// how most tests begin. Keep the server bound: dropping it stops the coordinator.
pub async fn start_with_client(tweak: impl FnOnce(&mut ServeConfig)) -> (Server, Client) {
    let server = Server::start(tweak).await;
    let client = server.client().await;
    (server, client)
}

/// [`start_with_client`], then `spec` submitted.
pub async fn start_with_sweep(
    tweak: impl FnOnce(&mut ServeConfig),
    spec: SweepSpec,
) -> (Server, Client) {
    let (server, mut client) = start_with_client(tweak).await;
    submit(&mut client, spec).await;
    (server, client)
}

/// A small valid sweep: 2 pdes × 1 method × 2 widths × 3 seeds = 12 jobs.
pub fn spec(name: &str) -> SweepSpec {
    SweepSpec {
        name: name.into(),
        pdes: vec!["burgers".into(), "helmholtz2d".into()],
        methods: vec!["adam".into()],
        widths: vec![8, 16],
        seeds: vec![0, 1, 2],
        base_config_json: r#"{"iters": 20, "eval_every": 10}"#.into(),
        max_attempts: 3,
        priority: 0,
        ..Default::default()
    }
}

/// [`spec`] cut down to one job (burgers, width 8, seed 0).
pub fn one_job(name: &str) -> SweepSpec {
    SweepSpec {
        pdes: vec!["burgers".into()],
        widths: vec![8],
        seeds: vec![0],
        ..spec(name)
    }
}

pub async fn submit(c: &mut Client, spec: SweepSpec) -> SubmitSweepResponse {
    c.submit_sweep(SubmitSweepRequest { spec: Some(spec) })
        .await
        .unwrap()
        .into_inner()
}

pub async fn summary(c: &mut Client, sweep: &str) -> SweepSummary {
    c.get_sweep(GetSweepRequest {
        sweep_id: sweep.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

pub async fn lease(c: &mut Client, worker: &str) -> Option<Job> {
    c.lease_job(LeaseJobRequest {
        worker_id: worker.into(),
        host: "testhost".into(),
        device: "cpu".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .job
}

/// A RunResult JSON for `job` with the given best error.
pub fn result_json(job: &Job, rel_l2_best: f64) -> String {
    let config: TrainConfig = serde_json::from_str(&job.config_json).unwrap();
    let r = RunResult {
        status: RunStatus::Finished,
        rel_l2_best,
        rel_l2_min_loss: rel_l2_best * 1.5,
        rel_l2_last: rel_l2_best * 2.0,
        abs_err_best: rel_l2_best / 10.0,
        abs_err_max_best: rel_l2_best * 3.0,
        best_iter: 10,
        min_loss_iter: 20,
        iters_done: config.iters,
        diverged: false,
        skipped_steps: 0,
        wall_s: 0.5,
        iters_per_s: 40.0,
        num_params: 123,
        config,
    };
    serde_json::to_string(&r).unwrap()
}

pub async fn complete(c: &mut Client, job: &Job, worker: &str, rel_l2_best: f64) {
    c.complete_job(CompleteJobRequest {
        job_id: job.job_id,
        token: job.token,
        worker_id: worker.into(),
        result_json: result_json(job, rel_l2_best),
        device: "cpu".into(),
    })
    .await
    .unwrap();
}

/// Runs read-only SQL through the Query RPC and returns the rows as plain values.
pub async fn sql(c: &mut Client, sql: &str) -> Vec<Vec<Kind>> {
    c.query(QueryRequest {
        sql: sql.into(),
        max_rows: 0,
    })
    .await
    .unwrap()
    .into_inner()
    .rows
    .into_iter()
    .map(|r| r.values.into_iter().map(|v| v.kind.unwrap()).collect())
    .collect()
}

pub async fn sql_i64(c: &mut Client, q: &str) -> i64 {
    match &sql(c, q).await[0][0] {
        Kind::Integer(i) => *i,
        other => panic!("{q}: expected an integer, got {other:?}"),
    }
}

pub fn text(k: &Kind) -> &str {
    match k {
        Kind::Text(s) => s,
        other => panic!("expected text, got {other:?}"),
    }
}

/// Milliseconds since the Unix epoch: the clock of the store's `*_ms` columns.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A metric row of `iter` whose `rel_l2` tells reports apart.
pub fn metrics_row(iter: u64, rel_l2: f64) -> MetricRow {
    let row = MetricsRow {
        iter,
        lr: 1e-3,
        loss_r: 0.5,
        loss_b: 0.25,
        rel_l2,
        abs_err: 0.01,
        abs_err_max: 0.1,
        skipped_steps: 0,
        elapsed_s: 1.0,
        extra: Default::default(),
    };
    MetricRow {
        row_json: serde_json::to_string(&row).unwrap(),
    }
}

/// A valid checkpoint of `job` taken at `iter`.
pub fn checkpoint_bytes(job: &Job, iter: u64) -> Vec<u8> {
    let mut ckpt: Checkpoint = serde_json::from_value(serde_json::json!({
        "iter": iter,
        "config": serde_json::from_str::<serde_json::Value>(&job.config_json).unwrap(),
        "rng_word_pos": "12345",
        "skipped_steps": 0,
        "consecutive_skips": 0,
        "elapsed_s": 1.5,
        "tracker": {"best": null, "min_loss": null, "last": null},
        "adam_t": iter,
        "method_state": null,
    }))
    .unwrap();
    ckpt.vectors = vec![("theta".into(), vec![1.0, -2.5, iter as f64])];
    ckpt.to_bytes()
}

/// Sends every fenced write (heartbeat, progress with a checkpoint, completion, failure,
/// release) with `job`'s token and checks each is refused with FAILED_PRECONDITION. All five
/// are sent even after one was accepted, and the failure lists every one that was.
pub async fn assert_every_write_refused(c: &mut Client, job: &Job, worker: &str) {
    let mut accepted = Vec::new();
    let mut stale = |r: Result<(), tonic::Status>, rpc: &str| match r {
        Err(s) if s.code() == Code::FailedPrecondition => {}
        other => accepted.push(format!("{rpc}: {other:?}")),
    };
    let (job_id, token, worker_id) = (job.job_id, job.token, worker.to_string());
    stale(
        c.heartbeat(HeartbeatRequest {
            job_id,
            token,
            worker_id: worker_id.clone(),
            iter: 5,
        })
        .await
        .map(drop),
        "Heartbeat",
    );
    stale(
        c.report_progress(ReportProgressRequest {
            job_id,
            token,
            worker_id: worker_id.clone(),
            metrics: vec![metrics_row(10, 0.9), metrics_row(20, 0.9)],
            checkpoint: checkpoint_bytes(job, 20),
        })
        .await
        .map(drop),
        "ReportProgress",
    );
    stale(
        c.complete_job(CompleteJobRequest {
            job_id,
            token,
            worker_id: worker_id.clone(),
            result_json: result_json(job, 0.999),
            device: "cpu".into(),
        })
        .await
        .map(drop),
        "CompleteJob",
    );
    stale(
        c.fail_job(FailJobRequest {
            job_id,
            token,
            worker_id: worker_id.clone(),
            error: "x".into(),
        })
        .await
        .map(drop),
        "FailJob",
    );
    stale(
        c.release_job(ReleaseJobRequest {
            job_id,
            token,
            worker_id,
        })
        .await
        .map(drop),
        "ReleaseJob",
    );
    assert!(
        accepted.is_empty(),
        "writes of job {} with token {} that were not refused as stale: {accepted:#?}",
        job.job_id,
        job.token
    );
}

/// Everything a worker write could change: every job row in full, the metric, checkpoint and
/// result rows, and the workers' bookkeeping. Equal snapshots around a refused write show that
/// it wrote nothing.
pub async fn snapshot(c: &mut Client) -> Vec<Vec<Kind>> {
    let mut all = sql(c, "SELECT * FROM jobs ORDER BY id").await;
    for table in [
        "SELECT job_id, iter, token FROM metrics ORDER BY job_id, iter",
        "SELECT job_id, iter, token, length(bytes) FROM checkpoints ORDER BY job_id",
        "SELECT job_id, worker_id, rel_l2_best FROM results ORDER BY job_id",
        "SELECT id, last_seen_ms, jobs_done FROM workers ORDER BY id",
    ] {
        all.extend(sql(c, table).await);
    }
    all
}

/// The state of job `id`, from the store.
pub async fn job_state(c: &mut Client, id: i64) -> String {
    let rows = sql(c, &format!("SELECT state FROM jobs WHERE id = {id}")).await;
    text(&rows[0][0]).to_string()
}

/// Waits (bounded) until job `id` is in `state`.
pub async fn wait_for_state(c: &Client, id: i64, state: &str, timeout: Duration) {
    let reached = eventually(timeout, || {
        let mut c = c.clone();
        async move { job_state(&mut c, id).await == state }
    })
    .await;
    assert!(
        reached,
        "job {id} did not become {state} within {timeout:?}"
    );
}

/// Makes the lease of job `id` run out now, as if its worker had been silent for `lease_ms`;
/// the coordinator's reaper then re-queues the job. Lets a test keep long leases for the
/// workers that must stay alive (short leases for all run out on a loaded machine mid-test).
pub async fn expire_lease(db: &std::path::Path, id: i64) {
    let mut conn = store_connection(db).await;
    let expired =
        sqlx::query("UPDATE jobs SET lease_expires_at_ms = 0 WHERE id = ? AND state = 'running'")
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
    assert_eq!(expired.rows_affected(), 1, "job {id} is not running");
}

/// A write connection of this test to the coordinator's SQLite file, to inject what the RPCs
/// cannot (an expired lease). Short transactions only: the coordinator waits for its lock.
pub async fn store_connection(db: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}
