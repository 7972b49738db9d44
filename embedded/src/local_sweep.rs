//! A whole sweep in this process (`modsync sweep run`): a coordinator on a local store file,
//! its dashboard on loopback, and N workers that talk to the coordinator over loopback gRPC —
//! the same code path as a cluster. [`LocalSweep`] owns every task: [`start`](LocalSweep::start)
//! submits the sweep (idempotent: a second run continues the first) and starts them,
//! [`poll`](LocalSweep::poll) reports progress, [`stop`](LocalSweep::stop) is the one way down
//! (workers checkpoint and release their jobs, then the servers drain). Dropping it instead
//! cancels everything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use coordinator::{Reader, ServeConfig};
use modsync_client::{Client, describe};
use modsync_proto::{
    CurvePoint, GetCurvesRequest, GetSweepRequest, RetryFailedRequest, SubmitSweepRequest,
    SubmitSweepResponse, SweepSpec, SweepSummary,
};
use rand::Rng;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// What a local sweep runs, and where.
pub struct LocalSweepConfig {
    pub spec: SweepSpec,
    /// The store file (created with its directory when missing).
    pub db: PathBuf,
    pub workers: usize,
    /// Each worker's `--slots`, `--pack` and `--device` (`worker::check_slots` holds the rules).
    pub slots: usize,
    pub pack: usize,
    pub device: String,
    pub lease_ms: u64,
    pub heartbeat_ms: u64,
    /// Where the dashboard listens: loopback only.
    pub dashboard: SocketAddr,
    /// Put failed and cancelled jobs of an earlier run back in the queue.
    pub retry_failed: bool,
    /// This machine's name for the `workers` table.
    pub host: String,
}

/// A running local sweep.
pub struct LocalSweep {
    name: String,
    client: Client,
    reader: Reader,
    coordinator: JoinHandle<coordinator::Result<()>>,
    dashboard: JoinHandle<Result<(), String>>,
    workers: JoinSet<Result<()>>,
    stop_workers: CancellationToken,
    stop_servers: CancellationToken,
    /// What the coordinator said to the submission: the sweep's id and its job counts.
    pub submitted: SubmitSweepResponse,
    /// The dashboard's login URL, with a code valid for this run only.
    pub dashboard_url: String,
}

/// How a local sweep ended ([`LocalSweep::stop`]).
pub struct Ending {
    /// The counts by state after the workers stopped.
    pub summary: SweepSummary,
    /// The first error of a worker that ended on its own (it has no other reason to).
    pub worker_error: Option<anyhow::Error>,
    /// The capacity-scaling curves as they stand.
    pub curves: Vec<CurvePoint>,
    /// The first failed jobs with their last error's first line; empty without any.
    pub failed: String,
}

impl LocalSweepConfig {
    /// The in-process coordinator's settings; a random token keeps other local users out.
    fn serve_config(&self) -> ServeConfig {
        ServeConfig {
            db: self.db.clone(),
            // Only this process talks to it, but the port is reachable by every local user.
            token: Some(format!("{:032x}", rand::rng().random::<u128>())),
            lease_ms: self.lease_ms,
            heartbeat_ms: self.heartbeat_ms,
            // Loopback only: let checkpoints of wide networks through (width 1024 × depth 5
            // ≈ 100 MB).
            max_message_bytes: modsync_client::MAX_MESSAGE_BYTES,
            max_checkpoint_bytes: modsync_client::MAX_MESSAGE_BYTES,
            ..ServeConfig::default()
        }
    }

    /// Refuses a configuration that cannot run, before anything is created on disk.
    pub fn check(&self) -> Result<()> {
        if self.workers == 0 {
            bail!("invalid --workers: must be at least 1");
        }
        worker::check_slots(self.slots, self.pack)?;
        self.serve_config().validate().map_err(|e| anyhow!("{e}"))?;
        if !coordinator::config::is_loopback(self.dashboard.ip()) {
            bail!(
                "invalid --dashboard: {} is not a loopback address (the dashboard of a sweep run \
                 is local; serve the store with modsync dashboard --db and a token instead)",
                self.dashboard
            );
        }
        Ok(())
    }
}

impl LocalSweep {
    /// Starts the coordinator, submits the sweep, then starts the dashboard and the workers.
    pub async fn start(config: LocalSweepConfig) -> Result<LocalSweep> {
        config.check()?;
        let serve = config.serve_config();
        let token = serve.token.clone();
        // The dashboard gets the run's token too (a web page on a DNS-rebinding name must not
        // read it), and a login code for the URL it prints, so the user still clicks once.
        let web = dashboard::DashboardConfig {
            token: token.clone(),
            login_code: Some(format!("{:032x}", rand::rng().random::<u128>())),
            ..dashboard::DashboardConfig::default()
        };
        web.check_exposure(config.dashboard)
            .map_err(|e| anyhow!("invalid --dashboard: {e}"))?;
        if let Some(parent) = config.db.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("invalid --db: cannot create {}", parent.display()))?;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind a loopback port for the in-process coordinator")?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop_servers = CancellationToken::new();
        let mut coordinator = tokio::spawn(coordinator::serve_with_listener(
            serve,
            listener,
            stop_servers.clone().cancelled_owned(),
        ));
        let mut client = modsync_client::connect(&url, token.as_deref())?;
        // Submit, racing the coordinator's start-up so that an unusable store is reported as
        // such instead of as a refused connection.
        let name = config.spec.name.clone();
        let submit = client.submit_sweep(SubmitSweepRequest {
            spec: Some(config.spec.clone()),
        });
        let submitted = tokio::select! {
            r = submit => r.map_err(|s| anyhow!("submit: {}", describe(&s)))?.into_inner(),
            r = &mut coordinator => return Err(coordinator_failed(r)),
        };
        // The store exists and is migrated now: the dashboard can read it.
        let web_listener = tokio::net::TcpListener::bind(config.dashboard)
            .await
            .with_context(|| format!("invalid --dashboard: cannot bind {}", config.dashboard))?;
        let dashboard_url = format!(
            "http://{}/login?code={}",
            web_listener.local_addr()?,
            web.login_code.clone().unwrap_or_default()
        );
        let reader = Reader::open(&config.db)
            .await
            .map_err(|e| anyhow!("dashboard: {e}"))?;
        let dashboard = tokio::spawn(dashboard::serve(
            reader.clone(),
            web_listener,
            web,
            stop_servers.clone().cancelled_owned(),
        ));
        if config.retry_failed {
            client
                .retry_failed(RetryFailedRequest {
                    sweep_id: name.clone(),
                })
                .await
                .map_err(|s| anyhow!("retry: {}", describe(&s)))?;
        }
        let stop_workers = CancellationToken::new();
        let mut workers = JoinSet::new();
        for i in 0..config.workers {
            workers.spawn(worker::run(
                worker::WorkerConfig {
                    coordinator: url.clone(),
                    token: token.clone(),
                    // Loopback inside this process: plaintext.
                    tls_ca: None,
                    slots: config.slots,
                    pack: config.pack,
                    device: config.device.clone(),
                    worker_id: format!("{}-{}-local{i}", config.host, std::process::id()),
                    // The caller's progress loop decides when the sweep is over.
                    exit_when_idle: None,
                    host: config.host.clone(),
                },
                stop_workers.clone().cancelled_owned(),
            ));
        }
        Ok(LocalSweep {
            name,
            client,
            reader,
            coordinator,
            dashboard,
            workers,
            stop_workers,
            stop_servers,
            submitted,
            dashboard_url,
        })
    }

    /// The sweep's counts by state after `every`; an error as soon as a worker ends (a worker
    /// only ends early on an error) or the coordinator cannot answer.
    pub async fn poll(&mut self, every: Duration) -> Result<SweepSummary> {
        let ended = tokio::select! {
            _ = tokio::time::sleep(every) => None,
            Some(joined) = self.workers.join_next() => Some(joined),
        };
        match ended {
            None => self.summary().await,
            Some(Ok(Ok(()))) => Err(anyhow!("a local worker stopped unexpectedly")),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => Err(anyhow!("a local worker crashed: {e}")),
        }
    }

    async fn summary(&mut self) -> Result<SweepSummary> {
        self.client
            .get_sweep(GetSweepRequest {
                sweep_id: self.name.clone(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| anyhow!("status: {}", describe(&s)))
    }

    /// Stops the workers (each checkpoints and releases its job), reads how the sweep stands,
    /// then stops the dashboard and the coordinator. An error only where the coordinator
    /// failed; a worker's error is in the [`Ending`].
    pub async fn stop(mut self) -> Result<Ending> {
        self.stop_workers.cancel();
        let mut worker_error = None;
        while let Some(joined) = self.workers.join_next().await {
            if let Ok(Err(e)) = joined {
                worker_error.get_or_insert(e);
            }
        }
        let read = self.read_ending(worker_error).await;
        self.stop_servers.cancel();
        let served = (&mut self.coordinator).await;
        if let Ok(Err(e)) = (&mut self.dashboard).await {
            tracing::warn!(error = %e, "the dashboard stopped with an error");
        }
        let ending = read?;
        match served {
            Ok(Ok(())) => Ok(ending),
            other => Err(coordinator_failed(other)),
        }
    }

    async fn read_ending(&mut self, worker_error: Option<anyhow::Error>) -> Result<Ending> {
        let summary = self.summary().await?;
        let curves = self
            .client
            .get_curves(GetCurvesRequest {
                sweep_id: self.name.clone(),
            })
            .await
            .map_err(|s| anyhow!("curves: {}", describe(&s)))?
            .into_inner()
            .points;
        let failed = match summary.failed {
            0 => String::new(),
            _ => failed_jobs(&self.reader, &self.name).await,
        };
        Ok(Ending {
            summary,
            worker_error,
            curves,
            failed,
        })
    }
}

impl Drop for LocalSweep {
    /// Without [`stop`](LocalSweep::stop) (an early return): nothing outlives the sweep.
    fn drop(&mut self) {
        self.stop_workers.cancel();
        self.stop_servers.cancel();
    }
}

/// A short description of the first failed jobs and their last errors.
async fn failed_jobs(reader: &Reader, name: &str) -> String {
    let Ok(jobs) = reader.failed_jobs(name, 3).await else {
        return "see the jobs table".into();
    };
    jobs.iter()
        .map(|j| {
            let error = j.last_error.as_deref().unwrap_or("");
            format!(
                "job {} {} {} width {} seed {}: {}",
                j.id,
                j.pde,
                j.method,
                j.width,
                j.seed,
                error.lines().next().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn coordinator_failed(r: Result<coordinator::Result<()>, tokio::task::JoinError>) -> anyhow::Error {
    match r {
        Ok(Ok(())) => anyhow!("the in-process coordinator stopped unexpectedly"),
        Ok(Err(e)) => anyhow!("coordinator: {e}"),
        Err(e) => anyhow!("the in-process coordinator crashed: {e}"),
    }
}
