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

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use coordinator::ServeConfig;
use embedded::{Ending, LocalSweep, LocalSweepConfig, shutdown_signal};
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::runtime;
use crate::cmd::SweepFileArgs;
use crate::cmd::worker::SlotArgs;
use report::files::prepare_dir;

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
    let name = sweep.spec.name.clone();
    let home = PathBuf::from(".modsync").join(&name);
    let db = args.db.clone().unwrap_or_else(|| home.join("sweep.db"));
    let out = args.out.clone().unwrap_or_else(|| home.join("curves"));
    let config = LocalSweepConfig {
        spec: sweep.spec.clone(),
        db: db.clone(),
        workers,
        slots: args.slots.slots,
        pack: args.slots.pack,
        device: args.slots.device.clone(),
        lease_ms: args.lease_ms,
        heartbeat_ms: args.heartbeat_ms,
        dashboard: args.dashboard,
        retry_failed: args.retry_failed,
        host: worker::hostname(),
    };
    config.check()?;
    prepare_dir(&out, "--out")?;

    runtime()?.block_on(async move {
        let mut local = LocalSweep::start(config).await?;
        let submitted = &local.submitted;
        eprintln!(
            "sweep {}: {} jobs ({} new) — store {}",
            submitted.sweep_id,
            submitted.jobs_total,
            submitted.jobs_created,
            db.display()
        );
        eprintln!(
            "dashboard: {} (while this runs; afterwards modsync dashboard --db {})",
            local.dashboard_url,
            report::hint::shell_word(&db.display().to_string())
        );
        if submitted.jobs_total != sweep.jobs.len() as u64 {
            tracing::warn!(
                "the coordinator counts {} jobs, the file expands to {}",
                submitted.jobs_total,
                sweep.jobs.len()
            );
        }
        let bar = progress_bar(submitted.jobs_total);
        let interrupt = shutdown_signal();
        tokio::pin!(interrupt);
        // Settled: no job is queued or running any more; else interrupted (Ctrl-C, SIGTERM).
        let settled = loop {
            tokio::select! {
                _ = &mut interrupt => break false,
                s = local.poll(Duration::from_millis(500)) => {
                    // A worker's error ends the loop; `stop` reports it.
                    let Ok(s) = s else { break false };
                    bar.set_position(s.done + s.failed + s.cancelled);
                    let failed = match s.failed {
                        0 => String::new(),
                        n => format!(", {n} failed"),
                    };
                    bar.set_message(format!("({} running, {} queued{failed})", s.running, s.queued));
                    if s.queued == 0 && s.running == 0 {
                        break true;
                    }
                }
            }
        };
        if !settled {
            bar.suspend(|| {
                eprintln!("stopping: workers checkpoint and release their jobs (Ctrl-C again to quit at once)")
            });
        }
        let ending = local.stop().await;
        bar.finish_and_clear();
        let outcome = ending.and_then(|e| report_ending(&name, settled, e, &out));
        // The coordinator is gone now; the store file is what is left to read.
        eprintln!("{}", report::hint::read_store(&db, &name));
        outcome
    })
}

fn progress_bar(jobs: u64) -> ProgressBar {
    let bar = ProgressBar::new(jobs);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} jobs {msg}",
        )
        .expect("valid template"),
    );
    bar
}

/// The curves of a settled sweep, or why it did not settle.
fn report_ending(name: &str, settled: bool, e: Ending, out: &Path) -> Result<()> {
    let s = &e.summary;
    if let Some(error) = e.worker_error {
        return Err(error);
    }
    if !settled {
        bail!(
            "interrupted with {} of {} jobs done; run the same command again to continue",
            s.done,
            s.total
        );
    }
    report::curves::report(name, &e.curves, Some(out))?;
    if s.failed > 0 {
        bail!(
            "{} of {} jobs failed ({}); rerun with --retry-failed to try them again",
            s.failed,
            s.total,
            e.failed
        );
    }
    if s.cancelled > 0 {
        eprintln!(
            "{} of {} jobs were cancelled; rerun with --retry-failed to run them",
            s.cancelled, s.total
        );
    }
    Ok(())
}
