//! `modsync coordinator`: serve the sweep store over gRPC until SIGTERM/Ctrl-C, then drain;
//! with `--http ADDR` also the web dashboard, on the same runtime, over the same store.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use coordinator::{Reader, ServeConfig, Store};
use dashboard::DashboardConfig;
use tokio_util::sync::CancellationToken;

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
    /// Also serve the read-only web dashboard on this address (e.g. 127.0.0.1:8080; port 0
    /// picks one). It takes --token (a login form, or `Authorization: Bearer`), --tls-cert and
    /// --tls-key, and like gRPC serves a non-loopback address only with a token or
    /// --insecure-no-auth.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
}

/// The dashboard's share of the server flags, for `modsync dashboard` (the coordinator's own
/// flags of the same names feed it there).
#[derive(Args)]
pub struct HttpAuthArgs {
    /// Token to log in with (the coordinator's); without one only a loopback --listen is
    /// served.
    #[arg(long, env = "MODSYNC_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve a non-loopback --listen without a token: anyone who reaches it can read every
    /// sweep.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl HttpAuthArgs {
    pub fn config(&self) -> DashboardConfig {
        DashboardConfig {
            token: self.token.clone(),
            insecure_no_auth: self.insecure_no_auth,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
        }
    }
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
    let web = DashboardConfig {
        token: config.token.clone(),
        insecure_no_auth: config.insecure_no_auth,
        tls_cert: config.tls_cert.clone(),
        tls_key: config.tls_key.clone(),
    };
    if let Some(addr) = args.http {
        web.check_exposure(addr)
            .map_err(|e| anyhow::anyhow!("invalid --http: {e}"))?;
        dashboard::check_tls(&web).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("invalid --listen: cannot bind {}", config.listen))?;
        let addr = listener.local_addr()?;
        let http = match args.http {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("invalid --http: cannot bind {a}"))?,
            ),
            None => None,
        };
        // Scripts (and the tests) read the bound address from here when they asked for port 0.
        println!("modsync coordinator listening on {scheme}://{addr}");
        let stop = CancellationToken::new();
        let mut web_server = None;
        if let Some(http) = http {
            // Opening the store once first applies its migrations, so the read-only reader
            // finds the schema it expects.
            Store::open(&config.db)
                .await
                .map_err(|e| anyhow::anyhow!("coordinator: {e}"))?
                .close()
                .await;
            let reader = Reader::open(&config.db)
                .await
                .map_err(|e| anyhow::anyhow!("coordinator: {e}"))?;
            println!(
                "modsync dashboard on {}://{}/",
                web.scheme(),
                http.local_addr()?
            );
            web_server = Some(tokio::spawn(dashboard::serve(
                reader,
                http,
                web,
                stop.clone().cancelled_owned(),
            )));
        }
        let signal = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            signal.cancel();
        });
        let served =
            coordinator::serve_with_listener(config, listener, stop.clone().cancelled_owned())
                .await
                .map_err(|e| anyhow::anyhow!("coordinator: {e}"));
        // The gRPC side ended (signal or error): the dashboard goes with it.
        stop.cancel();
        if let Some(web_server) = web_server {
            match web_server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "dashboard stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "dashboard task failed"),
            }
        }
        served
    })
}
