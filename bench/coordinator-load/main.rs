//! `coordinator-load`: drives a real coordinator with simulated workers and checks that no job
//! is lost or done twice and that no stale write is accepted (issue 6).
//!
//! ```sh
//! cargo run --release --bin coordinator-load -- --jobs 10000 --workers 1000
//! ```
//!
//! **Setup.** The coordinator runs *in this process*: `coordinator::serve_with_listener` on
//! `127.0.0.1:0` over a fresh SQLite file in a temporary directory (`--db` to choose the file,
//! `--keep-db` to keep it), with its reaper, exactly as `modsync coordinator` runs it; it shares
//! the tokio runtime (and the machine's cores) with the simulated workers. One sweep of `--jobs`
//! jobs is submitted, then `--workers` simulated workers run concurrently.
//!
//! **Connections.** Each simulated worker gets its own gRPC channel, i.e. its own TCP
//! connection and HTTP/2 session (`--connections 0`, the default), as separate worker processes
//! would; `--connections C` instead shares C channels round-robin (HTTP/2 multiplexing). All
//! channels are connected before the clock starts. 1,000 workers need 2,000 file descriptors
//! (both ends live in this process).
//!
//! **A worker** does what `worker::slot` does, without training: LeaseJob → Heartbeat →
//! ReportProgress (`--metric-rows` metric rows and a checkpoint of `--checkpoint-floats` f64s)
//! → CompleteJob, sleeping `--work-ms` (±50 %, uniform) of simulated training split around the
//! heartbeat. An empty lease backs off 50 ms → 500 ms. First leases are spread over `--ramp-ms`.
//! The work time matters: with W workers and no think time every worker always has an RPC in
//! flight, so by Little's law the mean latency is W / (RPCs per second) — 125 ms for 1,000
//! workers at 8,000 RPC/s whatever the coordinator does. Real workers train between RPCs; the
//! default 400 ms offers about W / 0.4 s ≈ 2,500 cycles/s (10,000 RPC/s), which the coordinator
//! must absorb with low latency. `--work-ms 0` measures the saturated throughput instead.
//!
//! **Fault injection.** `--stall-fraction` of the workers (1 %; at least one when > 0) stall on
//! their first lease: they go silent for lease_ms + 2 reaper periods, wait until the job's
//! fencing token has moved on (another worker leased it; checked with the Query RPC), then send
//! Heartbeat, ReportProgress (a metric row and checkpoint at iteration 987654), CompleteJob (a
//! result with rel_l2_best = 4242) and ReleaseJob with their stale token. Every one must be
//! refused with FAILED_PRECONDITION. For this the lease settings are short: `--lease-ms 1000`,
//! `--heartbeat-ms 250`, `--reap-every-ms 100` (ServeConfig lease_ms/heartbeat_ms/reap_every_ms),
//! and the sweep's max_attempts is 20 so a re-leased job never fails for lack of attempts.
//!
//! **Checks** (after all workers stopped, from the database through the Query RPC):
//! - `lost` = jobs of the sweep without a result row + acknowledged completions whose stored
//!   result is not the acknowledged one (other worker);
//! - `duplicated` = jobs with more than one result row + jobs whose completion was
//!   acknowledged more than once (to any workers);
//! - `stale_accepted` = stale writes answered OK + rows carrying the stale markers found in
//!   metrics, checkpoints or results.
//!
//! **Figures.** `cycles_per_s` = acknowledged completions / seconds from the start of the run
//! to the last acknowledgement (re-leased stalled jobs count once, when completed). `p50_ms`
//! and `p99_ms` are over every LeaseJob (empty ones included), Heartbeat, ReportProgress and
//! CompleteJob sent by the workers in normal cycles, measured client side (send to reply, so
//! they include both ends' gRPC stacks); the stale writes, the stalled workers' Query polls,
//! SubmitSweep, the monitor's GetSweep and the final checks are not counted. The last line is
//! `cycles_per_s=… p50_ms=… p99_ms=… lost=… duplicated=… stale_accepted=…`; the exit status is
//! non-zero when lost, duplicated or stale_accepted is not 0 (or anything unexpected happened).
//!
//! Files: `main.rs` (setup and the run), `args.rs` (flags), `shared.rs` (what the workers share
//! and record), `sim.rs` (one simulated worker), `requests.rs` (the messages it sends),
//! `verify.rs` (the database checks), `report.rs` (the printed report).

mod args;
mod report;
mod requests;
mod shared;
mod sim;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use coordinator::ServeConfig;
use modsync_proto::sweeps_client::SweepsClient;
use modsync_proto::*;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

use args::Args;
use report::Outcome;
use shared::{Client, Shared, WorkerStats};
use sim::Worker;
use verify::verify;

/// The sweep's name (and id) in the coordinator's store.
const SWEEP: &str = "load";

// The same allocator as the `modsync` binary (src/main.rs), so that the coordinator measured
// here is the one users run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(msg) = args.check() {
        eprintln!("error: {msg}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n as usize);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Removes the temporary store directory when dropped.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

async fn connect(url: &str) -> Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .connect()
        .await?)
}

/// Runs the whole load test; `Ok(false)` when a check failed.
async fn run(args: Args) -> Result<bool> {
    let load_before = loadavg();
    let (db, tmp) = match &args.db {
        Some(db) => (db.clone(), TempDir(None)),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir()
                .join(format!("coordinator-load-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let keep = if args.keep_db {
                None
            } else {
                Some(dir.clone())
            };
            (dir.join("load.db"), TempDir(keep))
        }
    };
    let max_query_rows = (args.jobs as usize + 100).max(10_000);
    let config = ServeConfig {
        db: db.clone(),
        lease_ms: args.lease_ms,
        heartbeat_ms: args.heartbeat_ms,
        reap_every_ms: args.reap_every_ms,
        max_query_rows,
        query_timeout_ms: 60_000,
        ..ServeConfig::default()
    };
    config.validate().map_err(|e| anyhow!("{e}"))?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let (stop_server, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(coordinator::serve_with_listener(
        config,
        listener,
        async move {
            let _ = stopped.await;
        },
    ));

    let mut admin = SweepsClient::new(
        connect(&url)
            .await
            .context("connecting to the coordinator")?,
    )
    .max_decoding_message_size(256 << 20);
    let spec = SweepSpec {
        name: SWEEP.into(),
        pdes: vec!["burgers".into()],
        methods: vec!["adam".into()],
        widths: vec![8],
        seeds: (0..args.jobs as i64).collect(),
        base_config_json: r#"{"iters": 100, "eval_every": 10}"#.into(),
        max_attempts: 20,
        priority: 0,
        ..Default::default()
    };
    let t = Instant::now();
    let submitted = admin
        .submit_sweep(SubmitSweepRequest { spec: Some(spec) })
        .await
        .map_err(|s| anyhow!("SubmitSweep: {}", modsync_client::describe(&s)))?
        .into_inner();
    if submitted.jobs_created != args.jobs {
        bail!(
            "SubmitSweep created {} jobs, expected {}",
            submitted.jobs_created,
            args.jobs
        );
    }
    let submit_s = t.elapsed().as_secs_f64();

    // Channels, all connected before the clock starts.
    let n_conn = if args.connections == 0 {
        args.workers
    } else {
        args.connections
    } as usize;
    let mut connecting = tokio::task::JoinSet::new();
    for i in 0..n_conn {
        let url = url.clone();
        connecting.spawn(async move { (i, connect(&url).await) });
    }
    let mut channels: Vec<Option<Channel>> = vec![None; n_conn];
    while let Some(r) = connecting.join_next().await {
        let (i, ch) = r?;
        channels[i] = Some(ch.with_context(|| {
            format!("connecting channel {i} of {n_conn} (is `ulimit -n` at least 2 × --workers?)")
        })?);
    }
    let channels: Vec<Channel> = channels.into_iter().flatten().collect();

    let workers = args.workers as usize;
    let n_stall = if args.stall_fraction > 0.0 {
        ((args.stall_fraction * workers as f64).round() as usize).clamp(1, workers)
    } else {
        0
    };
    let stallers: Vec<usize> = (0..n_stall).map(|k| k * workers / n_stall).collect();
    let work = Duration::from_millis(args.work_ms);
    let shared = Arc::new(Shared {
        work,
        ramp: Duration::from_millis(args.ramp_ms.unwrap_or(args.work_ms)),
        metric_rows: args.metric_rows,
        checkpoint_floats: args.checkpoint_floats as usize,
        lease_ms: args.lease_ms,
        reap_every_ms: args.reap_every_ms,
        seed: args.seed,
        acked: AtomicU64::new(0),
        jobs: args.jobs,
        stop: AtomicBool::new(false),
        deadline: Instant::now() + Duration::from_secs(args.timeout_s),
    });

    let start = Instant::now();
    let mut tasks = Vec::with_capacity(workers);
    for i in 0..workers {
        let client: Client = SweepsClient::new(channels[i % channels.len()].clone());
        let w = Worker::new(i, client, shared.clone(), stallers.contains(&i));
        tasks.push(tokio::spawn(w.run()));
    }
    // The monitor ends the run once nothing is queued or running (covers jobs that failed for
    // good, which no worker would ever complete).
    let monitor = {
        let shared = shared.clone();
        let mut c = admin.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if shared.stop.load(Ordering::Relaxed) || Instant::now() > shared.deadline {
                    break;
                }
                if let Ok(s) = c
                    .get_sweep(GetSweepRequest {
                        sweep_id: SWEEP.into(),
                    })
                    .await
                {
                    let s = s.into_inner();
                    if s.queued == 0 && s.running == 0 {
                        break;
                    }
                }
            }
            shared.stop.store(true, Ordering::Relaxed);
        })
    };
    let mut stats = WorkerStats::default();
    for t in tasks {
        let s = t.await.context("a simulated worker panicked")?;
        stats.merge(s);
    }
    let wall = start.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    let _ = monitor.await;
    let timed_out = Instant::now() > shared.deadline;
    let run_s = stats
        .last_ack
        .map_or(wall, |t| t.duration_since(start))
        .as_secs_f64();

    let verdict = verify(&mut admin, &stats, max_query_rows as u32).await?;
    drop(admin);
    drop(channels);
    let _ = stop_server.send(());
    server
        .await
        .context("the coordinator task panicked")?
        .map_err(|e| anyhow!("the coordinator failed: {e}"))?;
    let load_after = loadavg();
    let outcome = Outcome {
        n_conn,
        load_before,
        load_after,
        submit_s,
        run_s,
        wall,
        stats,
        verdict,
        timed_out,
    };
    let passed = report::print(&args, &db, outcome);
    drop(tmp);
    Ok(passed)
}
