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
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use trainer_core::{RunResult, RunStatus, TrainConfig};

pub type Client = SweepsClient<InterceptedService<Channel, RawAuth>>;

/// Sends `authorization: Bearer <token>` exactly as given — also the empty or blank tokens that
/// `ClientAuth` refuses to send — so tests can check what the server does with them.
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
