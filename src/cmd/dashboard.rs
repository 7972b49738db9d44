//! `modsync dashboard --db FILE`: the web dashboard over a store file, read-only, for after a
//! sweep (or beside a coordinator that runs without `--http`). Serves until SIGTERM/Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use coordinator::Reader;

use embedded::shutdown_signal;

use crate::client::runtime;
use crate::cmd::coordinator::HttpAuthArgs;

#[derive(Args)]
pub struct DashboardArgs {
    /// The store file (opened read-only; nothing is ever written to it).
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
    /// Address to serve on; port 0 picks a free port (the URL is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    auth: HttpAuthArgs,
}

pub fn run(args: DashboardArgs) -> Result<()> {
    let config = args.auth.config()?;
    config
        .check_exposure(args.listen)
        .map_err(|e| anyhow!("invalid --listen: {e}"))?;
    dashboard::check_tls(&config).map_err(|e| anyhow!("{e}"))?;
    coordinator::conn::warn_if_above_file_limit(config.max_connections);
    runtime()?.block_on(async move {
        let reader = Reader::open(&args.db)
            .await
            .map_err(|e| anyhow!("invalid --db: {e}"))?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("invalid --listen: cannot bind {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!("modsync dashboard on {}://{addr}/", config.scheme());
        dashboard::serve(reader, listener, config, shutdown_signal())
            .await
            .map_err(|e| anyhow!("{e}"))
    })
}
