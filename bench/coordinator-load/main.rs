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

mod sim;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use coordinator::ServeConfig;
use modsync_proto::sweeps_client::SweepsClient;
use modsync_proto::value::Kind;
use modsync_proto::*;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

use sim::{Client, RPC_NAMES, STALE_ITER, STALE_REL_L2, Shared, Worker, WorkerStats};

const SWEEP: &str = "load";
const TARGET_CYCLES_PER_S: f64 = 2000.0;
const TARGET_P99_MS: f64 = 50.0;

#[derive(Parser, Debug)]
#[command(
    name = "coordinator-load",
    about = "Load-test a real coordinator (in-process, loopback gRPC, SQLite) with simulated workers"
)]
struct Args {
    /// Jobs in the sweep: one lease+complete cycle each.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    jobs: u64,
    /// Simulated workers running concurrently.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    workers: u64,
    /// gRPC channels (TCP connections) shared round-robin by the workers; 0 = one per worker.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    connections: u64,
    /// Simulated training time per job in ms (±50 %), split around the heartbeat; 0 = none.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    work_ms: u64,
    /// First leases are spread uniformly over this many ms [default: --work-ms].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    ramp_ms: Option<u64>,
    /// Metric rows per ReportProgress.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=1000))]
    metric_rows: u64,
    /// f64 values in the checkpoint sent with each ReportProgress; 0 = no checkpoint.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    checkpoint_floats: u64,
    /// Fraction of workers that stall past their lease and then write with a stale token.
    #[arg(long, default_value_t = 0.01, value_parser = parse_fraction)]
    stall_fraction: f64,
    /// Coordinator lease length (ServeConfig lease_ms).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=600_000))]
    lease_ms: u64,
    /// Heartbeat interval the coordinator announces (ServeConfig heartbeat_ms).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    heartbeat_ms: u64,
    /// Reaper period (ServeConfig reap_every_ms).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    reap_every_ms: u64,
    /// Give up (and fail) after this many seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout_s: u64,
    /// SQLite file for the coordinator (must not exist) [default: a temporary file].
    #[arg(long)]
    db: Option<PathBuf>,
    /// Keep the database file at the end (the temporary one is removed otherwise).
    #[arg(long)]
    keep_db: bool,
    /// Tokio worker threads [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
    /// Seed of the simulated timings.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=0.5).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be in 0..=0.5, got {v}"))
    }
}

impl Args {
    /// Checks between flags (each flag alone is checked by clap).
    fn check(&self) -> Result<(), String> {
        if self.heartbeat_ms >= self.lease_ms {
            return Err(format!(
                "--heartbeat-ms ({}) must be below --lease-ms ({})",
                self.heartbeat_ms, self.lease_ms
            ));
        }
        if self.connections > self.workers {
            return Err(format!(
                "--connections ({}) must be at most --workers ({}); 0 = one per worker",
                self.connections, self.workers
            ));
        }
        // The longest silence of a live worker is 3/4 of the work time (half of 1.5 × work).
        if self.work_ms * 3 / 4 + 100 >= self.lease_ms {
            return Err(format!(
                "--lease-ms ({}) must exceed 3/4 of --work-ms ({}) + 100 ms, or live workers lose \
                 their leases",
                self.lease_ms, self.work_ms
            ));
        }
        if let Some(db) = &self.db
            && db.exists()
        {
            return Err(format!(
                "--db: {} already exists; the load test needs a fresh store",
                db.display()
            ));
        }
        Ok(())
    }
}

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
        merge(&mut stats, s);
    }
    let wall = start.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    let _ = monitor.await;
    let timed_out = Instant::now() > shared.deadline;
    let run_s = stats
        .last_ack
        .map_or(wall, |t| t.duration_since(start))
        .as_secs_f64();

    let v = verify(&mut admin, &stats, max_query_rows as u32).await?;
    drop(admin);
    drop(channels);
    let _ = stop_server.send(());
    server
        .await
        .context("the coordinator task panicked")?
        .map_err(|e| anyhow!("the coordinator failed: {e}"))?;
    let load_after = loadavg();

    // ---- report ----
    let acked = stats.acked.len() as f64;
    let cycles_per_s = if run_s > 0.0 { acked / run_s } else { 0.0 };
    let mut all: Vec<u32> = stats.lat_us.iter().flatten().copied().collect();
    all.sort_unstable();
    let (p50, p99) = (pct_ms(&all, 0.50), pct_ms(&all, 0.99));
    println!(
        "coordinator-load: {} jobs, {} workers over {} connections, work {} ms/job (±50 %), \
         lease {} ms, reaper every {} ms, {} metric rows + {}-float checkpoint per job",
        args.jobs,
        workers,
        n_conn,
        args.work_ms,
        args.lease_ms,
        args.reap_every_ms,
        args.metric_rows,
        args.checkpoint_floats
    );
    println!(
        "machine: {} cores, load average {load_before} before, {load_after} after; sweep \
         submitted in {submit_s:.2} s",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<16} {:>8} {:>9} {:>9} {:>9}",
        "rpc", "count", "p50_ms", "p99_ms", "max_ms"
    );
    for (name, lat) in RPC_NAMES.iter().zip(&stats.lat_us) {
        let mut l = lat.clone();
        l.sort_unstable();
        println!(
            "{name:<16} {:>8} {:>9.2} {:>9.2} {:>9.2}",
            l.len(),
            pct_ms(&l, 0.5),
            pct_ms(&l, 0.99),
            pct_ms(&l, 1.0)
        );
    }
    println!(
        "{:<16} {:>8} {:>9.2} {:>9.2} {:>9.2}",
        "all",
        all.len(),
        p50,
        p99,
        pct_ms(&all, 1.0)
    );
    let steady =
        steady_rate(&mut stats.ack_times).map_or_else(|| "-".to_string(), |r| format!("{r:.0}"));
    println!(
        "completions acknowledged: {} in {run_s:.2} s ({:.0} RPC/s; steady state, 10th-90th \
         percentile of completions: {steady} cycles/s); empty leases {}; live leases lost under \
         load {}; transient errors {}",
        stats.acked.len(),
        all.len() as f64 / wall.as_secs_f64().max(1e-9),
        stats.empty_leases,
        stats.leases_lost,
        stats.transient_errors
    );
    println!(
        "stale writes: {} stalled workers, {} jobs taken over before the writes; {} sent, {} \
         refused (FAILED_PRECONDITION; {} while another worker held the lease), {} accepted; \
         stale marker rows in the database: {}",
        stats.stalled,
        stats.taken_over,
        stats.stale_sent,
        stats.stale_refused,
        stats.stale_vs_live,
        stats.stale_accepted,
        v.stale_rows
    );
    println!(
        "database: jobs {} ({}), results {}, metric rows {}; without result {}, acknowledged \
         but not stored {}, >1 result {}, acknowledged twice {}",
        v.jobs,
        v.states,
        v.results,
        v.metric_rows,
        v.no_result,
        v.ack_mismatch,
        v.multi_results,
        v.dup_acks
    );
    let met = cycles_per_s >= TARGET_CYCLES_PER_S && p99 < TARGET_P99_MS;
    println!(
        "targets (>= {TARGET_CYCLES_PER_S} cycles/s, p99 < {TARGET_P99_MS} ms): {}",
        if met { "met" } else { "NOT met" }
    );
    for t in stats.transient_seen.iter().take(5) {
        println!("transient (retried): {t}");
    }
    for u in stats.unexpected.iter().take(10) {
        println!("unexpected: {u}");
    }
    if stats.unexpected.len() > 10 {
        println!("unexpected: … {} more", stats.unexpected.len() - 10);
    }
    if timed_out {
        println!("timed out after {} s (--timeout-s)", args.timeout_s);
    }
    if args.keep_db || args.db.is_some() {
        println!("database kept at {}", db.display());
    }
    drop(tmp);
    let lost = v.no_result + v.ack_mismatch;
    let duplicated = v.multi_results + v.dup_acks;
    let stale_accepted = stats.stale_accepted + v.stale_rows;
    println!(
        "cycles_per_s={cycles_per_s:.1} p50_ms={p50:.2} p99_ms={p99:.2} lost={lost} \
         duplicated={duplicated} stale_accepted={stale_accepted}"
    );
    Ok(lost == 0
        && duplicated == 0
        && stale_accepted == 0
        && stats.unexpected.is_empty()
        && !timed_out)
}

fn merge(into: &mut WorkerStats, s: WorkerStats) {
    for (a, b) in into.lat_us.iter_mut().zip(s.lat_us) {
        a.extend(b);
    }
    into.empty_leases += s.empty_leases;
    into.acked.extend(s.acked);
    into.leases_lost += s.leases_lost;
    into.transient_errors += s.transient_errors;
    if into.transient_seen.len() < 5 {
        into.transient_seen.extend(s.transient_seen);
    }
    into.stale_sent += s.stale_sent;
    into.stale_accepted += s.stale_accepted;
    into.stale_refused += s.stale_refused;
    into.stale_vs_live += s.stale_vs_live;
    into.taken_over += s.taken_over;
    into.stalled += s.stalled;
    into.unexpected.extend(s.unexpected);
    into.last_ack = into.last_ack.max(s.last_ack);
    into.ack_times.extend(s.ack_times);
}

/// Completions per second between the 10th and the 90th percentile of the acknowledgement
/// times: the rate once every worker is busy, without the ramp-up and the last stragglers.
fn steady_rate(times: &mut [Instant]) -> Option<f64> {
    times.sort_unstable();
    let (lo, hi) = (times.len() / 10, times.len() * 9 / 10);
    let span = times.get(hi)?.duration_since(*times.get(lo)?).as_secs_f64();
    (span > 0.0).then(|| (hi - lo) as f64 / span)
}

/// Nearest-rank percentile of sorted microseconds, in ms.
fn pct_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

/// What the database says after the run.
struct Verdict {
    jobs: u64,
    states: String,
    results: u64,
    metric_rows: u64,
    no_result: u64,
    multi_results: u64,
    ack_mismatch: u64,
    dup_acks: u64,
    stale_rows: u64,
}

async fn query(c: &mut Client, sql: &str, max_rows: u32) -> Result<Vec<Vec<Kind>>> {
    let r = c
        .query(QueryRequest {
            sql: sql.into(),
            max_rows,
        })
        .await
        .map_err(|s| anyhow!("Query {sql:?}: {}", modsync_client::describe(&s)))?
        .into_inner();
    if r.truncated {
        bail!("Query {sql:?}: result truncated at {max_rows} rows");
    }
    r.rows
        .into_iter()
        .map(|row| {
            row.values
                .into_iter()
                .map(|v| v.kind.ok_or_else(|| anyhow!("Query {sql:?}: empty value")))
                .collect()
        })
        .collect()
}

fn int(k: &Kind) -> Result<i64> {
    match k {
        Kind::Integer(i) => Ok(*i),
        other => bail!("expected an integer, got {other:?}"),
    }
}

async fn count(c: &mut Client, sql: &str) -> Result<u64> {
    let rows = query(c, sql, 1).await?;
    let v = rows
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| anyhow!("Query {sql:?}: no row"))?;
    Ok(u64::try_from(int(v)?).unwrap_or(0))
}

async fn verify(c: &mut Client, stats: &WorkerStats, max_rows: u32) -> Result<Verdict> {
    let jobs = count(
        c,
        &format!("SELECT COUNT(*) FROM jobs WHERE sweep_id = '{SWEEP}'"),
    )
    .await?;
    let states = query(
        c,
        &format!(
            "SELECT state, COUNT(*) FROM jobs WHERE sweep_id = '{SWEEP}' GROUP BY state ORDER BY state"
        ),
        100,
    )
    .await?
    .iter()
    .map(|r| match (&r[0], &r[1]) {
        (Kind::Text(s), Kind::Integer(n)) => format!("{s} {n}"),
        other => format!("{other:?}"),
    })
    .collect::<Vec<_>>()
    .join(", ");
    let no_result = count(
        c,
        &format!(
            "SELECT COUNT(*) FROM jobs j WHERE j.sweep_id = '{SWEEP}' \
             AND NOT EXISTS (SELECT 1 FROM results r WHERE r.job_id = j.id)"
        ),
    )
    .await?;
    let multi_results = count(
        c,
        "SELECT COUNT(*) FROM (SELECT job_id FROM results GROUP BY job_id HAVING COUNT(*) > 1)",
    )
    .await?;
    let metric_rows = count(c, "SELECT COUNT(*) FROM metrics").await?;
    let stale_rows = count(
        c,
        &format!(
            "SELECT (SELECT COUNT(*) FROM metrics WHERE iter = {STALE_ITER}) \
             + (SELECT COUNT(*) FROM checkpoints WHERE iter = {STALE_ITER}) \
             + (SELECT COUNT(*) FROM results WHERE rel_l2_best = {STALE_REL_L2:.1})"
        ),
    )
    .await?;
    let stored: HashMap<i64, String> = query(c, "SELECT job_id, worker_id FROM results", max_rows)
        .await?
        .into_iter()
        .map(|r| match (&r[0], &r[1]) {
            (Kind::Integer(j), Kind::Text(w)) => Ok((*j, w.clone())),
            other => Err(anyhow!("results row {other:?}")),
        })
        .collect::<Result<_>>()?;
    let mut acks: HashMap<i64, u64> = HashMap::new();
    let mut ack_mismatch = 0;
    for (job, _) in &stats.acked {
        *acks.entry(*job).or_default() += 1;
    }
    // A job acknowledged twice counts as duplicated; one acknowledged once must have the
    // acknowledged worker's result stored.
    for (job, worker) in &stats.acked {
        if acks[job] == 1 && stored.get(job) != Some(worker) {
            ack_mismatch += 1;
        }
    }
    let dup_acks = acks.values().filter(|&&n| n > 1).count() as u64;
    Ok(Verdict {
        jobs,
        states,
        results: stored.len() as u64,
        metric_rows,
        no_result,
        multi_results,
        ack_mismatch,
        dup_acks,
        stale_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn steady_rate_leaves_out_the_ramp_and_the_stragglers() {
        let t0 = Instant::now();
        // 100 completions 10 ms apart, then one straggler 6 s later.
        let mut times: Vec<Instant> = (0..100)
            .map(|i| t0 + Duration::from_millis(10 * i))
            .collect();
        times.push(t0 + Duration::from_secs(6));
        times.reverse();
        // The 10th..90th of 101: 80 completions over 800 ms.
        let rate = steady_rate(&mut times).unwrap();
        assert!((rate - 100.0).abs() < 1e-6, "{rate}");
        assert_eq!(steady_rate(&mut []), None);
    }
}
