//! `modsync coordinator`: serve the sweep store over gRPC until SIGTERM/Ctrl-C, then drain;
//! with `--http ADDR` also the web dashboard, on the same runtime, over the same store.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use coordinator::ServeConfig;
use coordinator::auth_limit::{AuthLimiter, DEFAULT_FAILURES_PER_MINUTE};
use dashboard::DashboardConfig;

use embedded::shutdown_signal;

use modsync_client::token::token_from;

use crate::client::runtime;

#[derive(Args)]
pub struct CoordinatorArgs {
    /// SQLite file holding sweeps, jobs, metrics, checkpoints and results (created if missing).
    #[arg(long)]
    db: PathBuf,
    /// Address to listen on; port 0 picks a free port (the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    #[command(flatten)]
    auth: ServerAuthArgs,
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
    /// Most gRPC connections held at once; more wait in the kernel's backlog until one closes.
    /// Each takes a file descriptor: keep it (plus --http-max-connections and ~64) below the
    /// open-file limit (ulimit -n, systemd LimitNOFILE).
    #[arg(long, default_value_t = ServeConfig::default().max_connections, value_name = "N")]
    max_connections: usize,
    /// Most RPCs one gRPC connection runs at once (also its HTTP/2 stream limit).
    #[arg(long, default_value_t = ServeConfig::default().max_rpcs_per_connection, value_name = "N", hide_short_help = true)]
    max_rpcs_per_connection: usize,
    /// Also serve the read-only web dashboard on this address (e.g. 127.0.0.1:8080; port 0
    /// picks one). It takes --token (a login form, or `Authorization: Bearer`), --tls-cert and
    /// --tls-key, and like gRPC serves a non-loopback address only with a token or
    /// --insecure-no-auth.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Most dashboard connections held at once (with --http); more wait in the backlog.
    #[arg(long, default_value_t = dashboard::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    http_max_connections: usize,
}

/// Who may connect and how, declared once for the coordinator (its gRPC port and its `--http`
/// dashboard) and for `modsync dashboard`.
#[derive(Args)]
pub struct ServerAuthArgs {
    /// Shared bearer token every client, worker and dashboard login must send (at least 16
    /// characters; e.g. openssl rand -hex 32). Without one, only a loopback address is served.
    /// Prefer $MODSYNC_TOKEN or --token-file: a command line is visible to every local user (ps).
    #[arg(long, env = "MODSYNC_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the token from this file instead (surrounding whitespace and the trailing newline
    /// are dropped; an empty file is an error); it wins over $MODSYNC_TOKEN. Keep it private:
    /// chmod 600.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Serve a non-loopback address without a token: anyone who reaches it can read every
    /// sweep (and, over the coordinator's gRPC port, change them). Only for networks you trust
    /// completely; not with --token.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Serve TLS (gRPC and HTTPS) with this certificate chain (PEM); needs --tls-key. Clients
    /// then use an https:// URL and --tls-ca.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert; needs --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A connection that sends nothing is closed after this long: on gRPC until its first
    /// bytes and TLS handshake (later HTTP/2 keepalive pings, every 30 s, find dead peers); on
    /// the dashboard until each request's headers are complete (also between requests) and its
    /// TLS handshake.
    #[arg(long, default_value_t = ServeConfig::default().idle_timeout_ms, value_name = "MS")]
    idle_timeout_ms: u64,
    /// Wrong tokens one client address may send, at once, before it is refused without a
    /// check; then one more every 60/N s. Counted over gRPC and the dashboard together
    /// (bearer tokens, logins). 0 = no limit.
    #[arg(long, default_value_t = DEFAULT_FAILURES_PER_MINUTE, value_name = "N")]
    auth_failures_per_minute: u32,
    /// The dashboard's URL when opened under a name other than localhost or an IP address
    /// (a reverse proxy, a DNS name), e.g. https://modsync.example.org/. The dashboard answers
    /// only requests whose Host is localhost, a loopback or its listening address, or the host
    /// of a --public-url (421 otherwise: DNS rebinding). Repeat for several.
    #[arg(long = "public-url", value_name = "URL")]
    public_urls: Vec<String>,
}

impl ServerAuthArgs {
    /// The token of --token / --token-file / $MODSYNC_TOKEN. Not filtered: an empty or blank
    /// token is refused by the configs' validation, never taken as "no authentication".
    fn token(&self) -> Result<Option<String>> {
        token_from(self.token.clone(), self.token_file.as_deref())
    }

    /// The dashboard's settings, with `token` and the wrong-token `limiter` it shares with
    /// the gRPC port when a coordinator serves both.
    fn dashboard(
        &self,
        token: Option<String>,
        max_connections: usize,
        limiter: AuthLimiter,
    ) -> DashboardConfig {
        DashboardConfig {
            token,
            insecure_no_auth: self.insecure_no_auth,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            max_connections,
            idle_timeout_ms: self.idle_timeout_ms,
            public_urls: self.public_urls.clone(),
            auth_limiter: limiter,
            login_code: None,
        }
    }
}

/// `modsync dashboard`'s server flags: the shared ones and its connection cap.
#[derive(Args)]
pub struct HttpAuthArgs {
    #[command(flatten)]
    auth: ServerAuthArgs,
    /// Most connections held at once; more wait in the kernel's backlog until one closes.
    #[arg(long, default_value_t = dashboard::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    max_connections: usize,
}

impl HttpAuthArgs {
    pub fn config(&self) -> Result<DashboardConfig> {
        Ok(self.auth.dashboard(
            self.auth.token()?,
            self.max_connections,
            AuthLimiter::new(self.auth.auth_failures_per_minute),
        ))
    }
}

pub fn run(args: CoordinatorArgs) -> Result<()> {
    // One limit on wrong tokens for both ports.
    let limiter = AuthLimiter::new(args.auth.auth_failures_per_minute);
    let config = ServeConfig {
        listen: args.listen,
        db: args.db,
        token: args.auth.token()?,
        insecure_no_auth: args.auth.insecure_no_auth,
        tls_cert: args.auth.tls_cert.clone(),
        tls_key: args.auth.tls_key.clone(),
        lease_ms: args.lease_ms,
        heartbeat_ms: args.heartbeat_ms,
        reap_every_ms: args.reap_every_ms,
        max_query_rows: args.max_query_rows,
        query_timeout_ms: args.query_timeout_ms,
        max_message_bytes: args.max_message_bytes,
        max_checkpoint_bytes: args.max_checkpoint_bytes,
        max_metric_rows: args.max_metric_rows,
        max_connections: args.max_connections,
        max_rpcs_per_connection: args.max_rpcs_per_connection,
        idle_timeout_ms: args.auth.idle_timeout_ms,
        auth_limiter: limiter.clone(),
    };
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    // Unreadable or invalid certificate files fail here, before anything is bound or printed.
    let scheme = match config.load_tls().map_err(|e| anyhow::anyhow!("{e}"))? {
        Some(_) => "https",
        None => "http",
    };
    let web = args
        .auth
        .dashboard(config.token.clone(), args.http_max_connections, limiter);
    if let Some(addr) = args.http {
        web.check_exposure(addr)
            .map_err(|e| anyhow::anyhow!("invalid --http: {e}"))?;
        dashboard::check_tls(&web).map_err(|e| anyhow::anyhow!("{e}"))?;
        coordinator::conn::warn_if_above_file_limit(
            config.max_connections + args.http_max_connections,
        );
    } else {
        coordinator::conn::warn_if_above_file_limit(config.max_connections);
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
        let web = match http {
            Some(http) => {
                println!(
                    "modsync dashboard on {}://{}/",
                    web.scheme(),
                    http.local_addr()?
                );
                Some((http, web))
            }
            None => None,
        };
        embedded::server::serve(config, listener, web, shutdown_signal()).await
    })
}
