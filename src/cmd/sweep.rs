//! `modsync sweep run FILE`: the embedded default. A coordinator in this process on a local
//! SQLite file, N workers in this process talking to it over loopback gRPC (the same code path
//! as a cluster), a progress bar, and the curves at the end.
//!
//! Files: the store is `.modsync/<sweep name>/sweep.db` and the curves go to
//! `.modsync/<sweep name>/curves/` (both relative to the current directory; `--db` and `--out`
//! move them). Ctrl-C stops the workers cleanly (each checkpoints and releases its job); running
//! the same command again resubmits the sweep (idempotent: nothing is duplicated, results are
//! kept) and continues from the checkpoints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use coordinator::ServeConfig;
use indicatif::{ProgressBar, ProgressStyle};
use modsync_client::{Client, describe};
use modsync_proto::{
    GetCurvesRequest, GetSweepRequest, RetryFailedRequest, SubmitSweepRequest, SweepSummary,
};
use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{hostname, runtime, shutdown_signal};
use crate::cmd::SweepFileArgs;
use crate::cmd::worker::SlotArgs;
use crate::output::prepare_dir;

#[derive(Args)]
pub struct SweepArgs {
    #[command(subcommand)]
    command: SweepCommand,
}

#[derive(Subcommand)]
enum SweepCommand {
    /// Run a whole sweep on this machine: an in-process coordinator on a local SQLite file plus
    /// local workers; run it again after Ctrl-C to continue.
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    sweep: SweepFileArgs,
    /// Local workers. Default: the number of CPU cores (with --device cpu), else 1.
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    slots: SlotArgs,
    /// SQLite store. Default: .modsync/<sweep name>/sweep.db
    #[arg(long)]
    db: Option<PathBuf>,
    /// Directory for the curves (<pde>.csv, <pde>.svg). Default: .modsync/<sweep name>/curves
    #[arg(long)]
    out: Option<PathBuf>,
    /// Put jobs that failed (or were cancelled) in an earlier run back in the queue.
    #[arg(long)]
    retry_failed: bool,
    /// Lease length of the in-process coordinator (a killed run's jobs wait this long).
    #[arg(long, default_value_t = ServeConfig::default().lease_ms, hide_short_help = true)]
    lease_ms: u64,
    /// Heartbeat period of the in-process coordinator.
    #[arg(long, default_value_t = ServeConfig::default().heartbeat_ms, hide_short_help = true)]
    heartbeat_ms: u64,
    /// Where the live dashboard is served while the sweep runs (loopback only); port 0 picks a
    /// free port. It needs this run's random token, which nobody is shown: open the login URL
    /// printed at the start (it holds a login code for this run only).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    dashboard: SocketAddr,
}

pub fn run(args: SweepArgs) -> Result<()> {
    match args.command {
        SweepCommand::Run(a) => run_sweep(a),
    }
}

/// How the progress loop ended.
enum Ending {
    /// No job is queued or running any more.
    Settled,
    /// Ctrl-C / SIGTERM.
    Interrupted,
}

fn run_sweep(args: RunArgs) -> Result<()> {
    // Everything is validated before anything is created on disk.
    let sweep = args.sweep.load()?;
    args.slots.check()?;
    let workers = args.workers.unwrap_or_else(|| {
        if args.slots.device == "cpu" {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            1
        }
    });
    if workers == 0 {
        bail!("invalid --workers: must be at least 1");
    }
    let name = sweep.spec.name.clone();
    let home = PathBuf::from(".modsync").join(&name);
    let db = args.db.clone().unwrap_or_else(|| home.join("sweep.db"));
    let out = args.out.clone().unwrap_or_else(|| home.join("curves"));
    let config = ServeConfig {
        db: db.clone(),
        // Only this process talks to it, but the port is reachable by every local user.
        token: Some(format!("{:032x}", rand::rng().random::<u128>())),
        lease_ms: args.lease_ms,
        heartbeat_ms: args.heartbeat_ms,
        // Loopback only: let checkpoints of wide networks through (width 1024 × depth 5 ≈ 100 MB).
        max_message_bytes: modsync_client::MAX_MESSAGE_BYTES,
        max_checkpoint_bytes: modsync_client::MAX_MESSAGE_BYTES,
        ..ServeConfig::default()
    };
    config.validate().map_err(|e| anyhow!("{e}"))?;
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("invalid --db: cannot create {}", parent.display()))?;
    }
    prepare_dir(&out, "--out")?;
    // The dashboard gets the run's token too (a web page on a DNS-rebinding name must not
    // read it), and a login code for the URL printed below, so the user still clicks once.
    let web = dashboard::DashboardConfig {
        token: config.token.clone(),
        login_code: Some(format!("{:032x}", rand::rng().random::<u128>())),
        ..dashboard::DashboardConfig::default()
    };
    if !coordinator::config::is_loopback(args.dashboard.ip()) {
        bail!(
            "invalid --dashboard: {} is not a loopback address (the dashboard of a sweep run \
             is local; serve the store with modsync dashboard --db and a token instead)",
            args.dashboard
        );
    }
    web.check_exposure(args.dashboard)
        .map_err(|e| anyhow!("invalid --dashboard: {e}"))?;
    let login_code = web.login_code.clone().unwrap_or_default();

    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind a loopback port for the in-process coordinator")?;
        let url = format!("http://{}", listener.local_addr()?);
        let token = config.token.clone();
        let coordinator_stop = CancellationToken::new();
        let mut coordinator = tokio::spawn(coordinator::serve_with_listener(
            config,
            listener,
            coordinator_stop.clone().cancelled_owned(),
        ));
        let mut client = modsync_client::connect(&url, token.as_deref())?;

        // Submit (idempotent), racing the coordinator's start-up so that an unusable store is
        // reported as such instead of as a refused connection.
        let submit = client.submit_sweep(SubmitSweepRequest {
            spec: Some(sweep.spec.clone()),
        });
        let submitted = tokio::select! {
            r = submit => r.map_err(|s| anyhow!("submit: {}", describe(&s)))?.into_inner(),
            r = &mut coordinator => return Err(coordinator_failed(r)),
        };
        eprintln!(
            "sweep {}: {} jobs ({} new) — store {}",
            submitted.sweep_id,
            submitted.jobs_total,
            submitted.jobs_created,
            db.display()
        );
        // The store exists and is migrated now: the dashboard can read it.
        let web_listener = tokio::net::TcpListener::bind(args.dashboard)
            .await
            .with_context(|| format!("invalid --dashboard: cannot bind {}", args.dashboard))?;
        eprintln!(
            "dashboard: http://{}/login?code={login_code} (while this runs; afterwards \
             modsync dashboard --db {})",
            web_listener.local_addr()?,
            shell_word(&db.display().to_string())
        );
        let reader = coordinator::Reader::open(&db)
            .await
            .map_err(|e| anyhow!("dashboard: {e}"))?;
        let web_server = tokio::spawn(dashboard::serve(
            reader.clone(),
            web_listener,
            web,
            coordinator_stop.clone().cancelled_owned(),
        ));
        if args.retry_failed {
            let s = client
                .retry_failed(RetryFailedRequest {
                    sweep_id: name.clone(),
                })
                .await
                .map_err(|s| anyhow!("retry: {}", describe(&s)))?;
            let _ = s;
        }

        let workers_stop = CancellationToken::new();
        let mut pool = JoinSet::new();
        let host = hostname();
        for i in 0..workers {
            pool.spawn(worker::run(
                worker::WorkerConfig {
                    coordinator: url.clone(),
                    token: token.clone(),
                    // Loopback inside this process: plaintext.
                    tls_ca: None,
                    slots: args.slots.slots,
                    pack: args.slots.pack,
                    device: args.slots.device.clone(),
                    worker_id: format!("{host}-{}-local{i}", std::process::id()),
                    // The progress loop decides when the sweep is over.
                    exit_when_idle: None,
                    host: host.clone(),
                },
                workers_stop.clone().cancelled_owned(),
            ));
        }

        if submitted.jobs_total != sweep.jobs.len() as u64 {
            tracing::warn!(
                "the coordinator counts {} jobs, the file expands to {}",
                submitted.jobs_total,
                sweep.jobs.len()
            );
        }
        let bar = ProgressBar::new(submitted.jobs_total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} jobs {msg}",
            )
            .expect("valid template"),
        );
        let interrupt = shutdown_signal();
        tokio::pin!(interrupt);
        let mut worker_error = None;
        let ending = loop {
            tokio::select! {
                _ = &mut interrupt => break Ending::Interrupted,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    let s = summary(&mut client, &name).await?;
                    bar.set_position(s.done + s.failed + s.cancelled);
                    bar.set_message(format!(
                        "({} running, {} queued{})",
                        s.running,
                        s.queued,
                        if s.failed > 0 { format!(", {} failed", s.failed) } else { String::new() }
                    ));
                    if s.queued == 0 && s.running == 0 {
                        break Ending::Settled;
                    }
                }
                Some(joined) = pool.join_next() => {
                    // A worker only ends early on an error (it has no other reason to).
                    worker_error = Some(match joined {
                        Ok(Ok(())) => anyhow!("a local worker stopped unexpectedly"),
                        Ok(Err(e)) => e,
                        Err(e) => anyhow!("a local worker crashed: {e}"),
                    });
                    break Ending::Interrupted;
                }
            }
        };
        if matches!(ending, Ending::Interrupted) && worker_error.is_none() {
            bar.suspend(|| {
                eprintln!("stopping: workers checkpoint and release their jobs (Ctrl-C again to quit at once)")
            });
        }
        workers_stop.cancel();
        while let Some(joined) = pool.join_next().await {
            if let Ok(Err(e)) = joined {
                worker_error.get_or_insert(e);
            }
        }
        bar.finish_and_clear();

        let s = summary(&mut client, &name).await?;
        let mut outcome = Ok(());
        if let Some(e) = worker_error {
            outcome = Err(e);
        } else if matches!(ending, Ending::Interrupted) {
            outcome = Err(anyhow!(
                "interrupted with {} of {} jobs done; run the same command again to continue",
                s.done,
                s.total
            ));
        } else {
            let points = client
                .get_curves(GetCurvesRequest {
                    sweep_id: name.clone(),
                })
                .await
                .map_err(|s| anyhow!("curves: {}", describe(&s)))?
                .into_inner()
                .points;
            crate::cmd::curves::report(&name, &points, Some(&out))?;
            if s.failed > 0 {
                let errors = failed_jobs(&reader, &name).await;
                outcome = Err(anyhow!(
                    "{} of {} jobs failed ({errors}); rerun with --retry-failed to try them again",
                    s.failed,
                    s.total
                ));
            } else if s.cancelled > 0 {
                eprintln!(
                    "{} of {} jobs were cancelled; rerun with --retry-failed to run them",
                    s.cancelled, s.total
                );
            }
        }
        coordinator_stop.cancel();
        match coordinator.await {
            Ok(Ok(())) => {}
            other => {
                if outcome.is_ok() {
                    outcome = Err(coordinator_failed(other));
                }
            }
        }
        if let Ok(Err(e)) = web_server.await {
            tracing::warn!(error = %e, "the dashboard stopped with an error");
        }
        // The coordinator is gone now; the store file is what is left to read.
        eprintln!("{}", query_hint(&db, &name));
        outcome
    })
}

async fn summary(client: &mut Client, name: &str) -> Result<SweepSummary> {
    client
        .get_sweep(GetSweepRequest {
            sweep_id: name.to_string(),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| anyhow!("status: {}", describe(&s)))
}

/// A short description of the first failed jobs and their last errors.
async fn failed_jobs(reader: &coordinator::Reader, name: &str) -> String {
    let Ok(jobs) = reader.failed_jobs(name, 3).await else {
        return "see the jobs table".into();
    };
    jobs.iter()
        .map(|j| {
            format!(
                "job {} {} {} width {} seed {}: {}",
                j.id,
                j.pde,
                j.method,
                j.width,
                j.seed,
                j.last_error
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// How to read the store this run leaves behind, without a coordinator.
fn query_hint(db: &Path, sweep: &str) -> String {
    let db = shell_word(&db.display().to_string());
    format!(
        "query with: modsync sql --db {db} \"SELECT * FROM curves\"\n\
         \x20         modsync status --db {db} {sweep}\n\
         \x20         modsync curves --db {db} {sweep}\n\
         \x20         modsync dashboard --db {db}"
    )
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn coordinator_failed(r: Result<coordinator::Result<()>, tokio::task::JoinError>) -> anyhow::Error {
    match r {
        Ok(Ok(())) => anyhow!("the in-process coordinator stopped unexpectedly"),
        Ok(Err(e)) => anyhow!("coordinator: {e}"),
        Err(e) => anyhow!("the in-process coordinator crashed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_hint_names_the_store_quoted_for_a_shell() {
        let hint = query_hint(Path::new(".modsync/quick/sweep.db"), "quick");
        assert!(
            hint.starts_with(
                "query with: modsync sql --db .modsync/quick/sweep.db \"SELECT * FROM curves\"\n"
            ),
            "{hint}"
        );
        assert!(
            hint.contains("modsync status --db .modsync/quick/sweep.db quick"),
            "{hint}"
        );
        assert_eq!(shell_word("my runs/it's.db"), "'my runs/it'\\''s.db'");
    }
}
