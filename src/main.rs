//! `modsync`: the one program users run. This file only parses arguments and dispatches; each
//! subcommand lives in `cmd/`.

mod cmd;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run and orchestrate PINN training experiments: benchmarks, gradient methods and ModSync.
#[derive(Parser)]
#[command(name = "modsync", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one network on one benchmark and report its test errors.
    Train(cmd::train::TrainArgs),
    /// Write a benchmark's test grid with its exact or reference solution as CSV.
    Reference(cmd::reference::ReferenceArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Train(args) => cmd::train::run(args),
        Command::Reference(args) => cmd::reference::run(args),
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
