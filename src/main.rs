//! `modsync`: the one program users run. This file only parses arguments and dispatches; each
//! subcommand lives in `cmd/`.

mod client;
mod cmd;
mod source;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run and orchestrate PINN training experiments: benchmarks, gradient methods and ModSync.
#[derive(Parser)]
#[command(name = "modsync", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Train one network on one benchmark and report its test errors.
    Train(cmd::train::TrainArgs),
    /// Write a benchmark's test grid with its exact or reference solution as CSV.
    Reference(cmd::reference::ReferenceArgs),
    /// List every gradient method with its options and defaults.
    Methods(cmd::methods::MethodsArgs),
    /// Run a sweep on this machine (in-process coordinator and workers).
    Sweep(cmd::sweep::SweepArgs),
    /// Serve the sweep store (SQLite) over gRPC to workers and clients.
    Coordinator(cmd::coordinator::CoordinatorArgs),
    /// Serve the read-only web dashboard over a store file.
    Dashboard(cmd::dashboard::DashboardArgs),
    /// Lease jobs from a coordinator and train them until stopped.
    Worker(cmd::worker::WorkerArgs),
    /// Submit a sweep file; prints the sweep id.
    Submit(cmd::submit::SubmitArgs),
    /// Job counts by state of one sweep, or of all (from a coordinator or, with --db, a store file).
    Status(cmd::status::StatusArgs),
    /// Capacity-scaling curves of a sweep: table, CSV and SVG.
    Curves(cmd::curves::CurvesArgs),
    /// One metric over the iterations per method and width (median over seeds): CSV and SVG.
    History(cmd::history::HistoryArgs),
    /// Read-only SQL on the coordinator's store (or, with --db, on a store file).
    Sql(cmd::sql::SqlArgs),
    /// Cancel a sweep's queued and running jobs.
    Cancel(cmd::cancel::CancelArgs),
    /// Re-queue a sweep's failed and cancelled jobs.
    Retry(cmd::retry::RetryArgs),
}

// mimalloc instead of glibc malloc: 12 % more coordinator throughput under load
// (bench/coordinator-load, side by side), and the trainer allocates a tensor per op.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Servers log their lifecycle by default; other commands only what went wrong. RUST_LOG wins.
    let default_filter = match cli.command {
        Command::Coordinator(_) | Command::Worker(_) | Command::Dashboard(_) => "info",
        Command::Sweep(_) => "warn",
        _ => "error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let outcome = match cli.command {
        Command::Train(args) => cmd::train::run(args),
        Command::Reference(args) => cmd::reference::run(args),
        Command::Methods(args) => cmd::methods::run(args),
        Command::Sweep(args) => cmd::sweep::run(args),
        Command::Coordinator(args) => cmd::coordinator::run(args),
        Command::Dashboard(args) => cmd::dashboard::run(args),
        Command::Worker(args) => cmd::worker::run(args),
        Command::Submit(args) => cmd::submit::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Curves(args) => cmd::curves::run(args),
        Command::History(args) => cmd::history::run(args),
        Command::Sql(args) => cmd::sql::run(args),
        Command::Cancel(args) => cmd::cancel::run(args),
        Command::Retry(args) => cmd::retry::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes, outermost first.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
