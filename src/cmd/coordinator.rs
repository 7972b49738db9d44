//! `modsync coordinator`: serve the sweep store over gRPC until SIGTERM/Ctrl-C, then drain.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use coordinator::ServeConfig;

use crate::client::{runtime, shutdown_signal};

#[derive(Args)]
pub struct CoordinatorArgs {
    /// SQLite file holding sweeps, jobs, metrics, checkpoints and results (created if missing).
    #[arg(long)]
    db: PathBuf,
    /// Address to listen on; port 0 picks a free port (the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Shared bearer token every client and worker must send (empty or blank is refused).
    /// Without one, only a loopback --listen address is served.
    #[arg(long, env = "MODSYNC_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve a non-loopback --listen address without a token: anyone who reaches it can read
    /// and change every sweep. Only for networks you trust completely; not with --token.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key. Clients then use an
    /// https:// URL and --tls-ca.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert; needs --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A lease expires this long after the worker's last heartbeat.
    #[arg(long, default_value_t = ServeConfig::default().lease_ms, hide_short_help = true)]
    lease_ms: u64,
    /// How often workers heartbeat (must be below --lease-ms).
    #[arg(long, default_value_t = ServeConfig::default().heartbeat_ms, hide_short_help = true)]
    heartbeat_ms: u64,
    /// Period of the reaper that re-queues expired leases.
    #[arg(long, default_value_t = ServeConfig::default().reap_every_ms, hide_short_help = true)]
    reap_every_ms: u64,
    /// Most rows one `modsync sql` answer carries.
    #[arg(long, default_value_t = ServeConfig::default().max_query_rows, hide_short_help = true)]
    max_query_rows: usize,
    /// Time limit of one `modsync sql` query.
    #[arg(long, default_value_t = ServeConfig::default().query_timeout_ms, hide_short_help = true)]
    query_timeout_ms: u64,
    /// Largest gRPC message (checkpoints of wide networks are large).
    #[arg(long, default_value_t = ServeConfig::default().max_message_bytes, hide_short_help = true)]
    max_message_bytes: usize,
    /// Largest checkpoint a worker may store per report (larger ones are refused and skipped).
    #[arg(long, default_value_t = ServeConfig::default().max_checkpoint_bytes, hide_short_help = true)]
    max_checkpoint_bytes: usize,
    /// Most metric rows per worker report (at least 1000).
    #[arg(long, default_value_t = ServeConfig::default().max_metric_rows, hide_short_help = true)]
    max_metric_rows: usize,
}

pub fn run(args: CoordinatorArgs) -> Result<()> {
    let config = ServeConfig {
        listen: args.listen,
        db: args.db,
        // Not filtered: an empty or blank token is refused by `validate`, never taken as
        // "no authentication".
        token: args.token,
        insecure_no_auth: args.insecure_no_auth,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        lease_ms: args.lease_ms,
        heartbeat_ms: args.heartbeat_ms,
        reap_every_ms: args.reap_every_ms,
        max_query_rows: args.max_query_rows,
        query_timeout_ms: args.query_timeout_ms,
        max_message_bytes: args.max_message_bytes,
        max_checkpoint_bytes: args.max_checkpoint_bytes,
        max_metric_rows: args.max_metric_rows,
    };
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    // Unreadable or invalid certificate files fail here, before anything is bound or printed.
    let scheme = match config.load_tls().map_err(|e| anyhow::anyhow!("{e}"))? {
        Some(_) => "https",
        None => "http",
    };
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("invalid --listen: cannot bind {}", config.listen))?;
        let addr = listener.local_addr()?;
        // Scripts (and the tests) read the bound address from here when they asked for port 0.
        println!("modsync coordinator listening on {scheme}://{addr}");
        coordinator::serve_with_listener(config, listener, shutdown_signal())
            .await
            .map_err(|e| anyhow::anyhow!("coordinator: {e}"))
    })
}
