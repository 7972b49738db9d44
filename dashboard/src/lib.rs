//! The modsync web dashboard: read-only pages over a sweep store, for the browser a researcher
//! leaves open while a sweep runs.
//!
//! It serves on the caller's tokio runtime (the coordinator's with `modsync coordinator
//! --http`, the sweep's with `modsync sweep run`, its own with `modsync dashboard --db`) and
//! reads through a [`coordinator::Reader`]: connections SQLite opened read-only, so no request
//! can write, whatever it sends. Only GET pages exist besides the login form.
//!
//! Pages, one module each under `pages/` with its query, struct, HTML and handlers (the layout
//! they share in `layout.rs`; plots as inline SVG, `svg.rs` and `scaling.rs`, which the CLI
//! also writes as files through `sheet.rs`): `/` sweeps, `/sweeps/{id}` a
//! sweep (`?error=best|min_loss|last`), `/jobs/{id}` a job, `/workers`. The same data as JSON
//! under `/api/...`, downloads at
//! `/sweeps/{id}/curves.csv` and `/sweeps/{id}/results.csv` (`csv.rs`). Live: the one embedded
//! script (`assets/live.js`) re-fetches the page's `<main>` every 2 s (`?fragment=1`).
//! Nothing is fetched from elsewhere: the stylesheet and the script are compiled in.
//!
//! Security (`auth.rs`): with a token, a login form opens a session (HttpOnly, SameSite=Strict
//! cookie) or scripts send `Authorization: Bearer`; without one, [`DashboardConfig::check_exposure`]
//! refuses any address but loopback unless `insecure_no_auth`. Wrong tokens are limited per
//! client address (`coordinator::auth_limit`), only known `Host`s are answered (`host.rs`, DNS
//! rebinding), and connections have a cap and a header-read timeout (`serve.rs`). HTTPS with
//! the coordinator's certificate and key (`tls.rs`).

mod auth;
pub mod csv;
pub mod error;
mod escape;
mod host;
mod layout;
pub mod pages;
pub mod scaling;
mod serve;
pub mod sheet;
pub mod svg;
pub mod ticks;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use coordinator::Reader;
use coordinator::auth_limit::AuthLimiter;
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::error::Result;
use crate::pages::App;

const LIVE_JS: &str = include_str!("../assets/live.js");

/// The default of `--http-max-connections` (`modsync dashboard --max-connections`): a browser
/// opens at most 6 per server.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// How to serve the dashboard. `Debug` never shows the token or the login code.
#[derive(Clone)]
pub struct DashboardConfig {
    /// The coordinator's token; `None` = no login (loopback only, unless `insecure_no_auth`).
    pub token: Option<String>,
    /// Serve a non-loopback address without a token, on purpose.
    pub insecure_no_auth: bool,
    /// HTTPS: certificate chain and key (PEM), both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Most connections at once; past it new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// A connection that has not sent a whole request head this long after it opened (or after
    /// its last answer), or not finished its TLS handshake, is closed.
    pub idle_timeout_ms: u64,
    /// URLs the dashboard is also reached at (a reverse proxy, a DNS name): their hosts are
    /// answered besides localhost and the listening address (`host.rs`).
    pub public_urls: Vec<String>,
    /// Failed authentications per client address (shared with the gRPC port under
    /// `coordinator --http`).
    pub auth_limiter: AuthLimiter,
    /// A secret that logs a browser in at `GET /login?code=…` (with a token only): the URL
    /// `modsync sweep run` prints, whose token nobody is shown.
    pub login_code: Option<String>,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            token: None,
            insecure_no_auth: false,
            tls_cert: None,
            tls_key: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout_ms: coordinator::ServeConfig::default().idle_timeout_ms,
            public_urls: Vec::new(),
            auth_limiter: AuthLimiter::default(),
            login_code: None,
        }
    }
}

impl std::fmt::Debug for DashboardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("insecure_no_auth", &self.insecure_no_auth)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("public_urls", &self.public_urls)
            .field("auth_limiter", &self.auth_limiter)
            .field(
                "login_code",
                &self.login_code.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl DashboardConfig {
    /// Refuses to serve `addr` without a token unless it is loopback or `insecure_no_auth`
    /// says so, and a blank token (an unset variable must never mean "no login").
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        if self.idle_timeout_ms < 100 {
            return Err(format!(
                "--idle-timeout-ms must be at least 100, got {}",
                self.idle_timeout_ms
            ));
        }
        for url in &self.public_urls {
            host::public_url_host(url)?;
        }
        match (&self.token, self.insecure_no_auth) {
            (Some(t), _) if t.trim().is_empty() => {
                Err("--token / --token-file / MODSYNC_TOKEN is empty or only whitespace".into())
            }
            (Some(t), _) if let Some(e) = coordinator::config::short_token(t) => Err(e),
            (Some(_), true) => Err("--insecure-no-auth contradicts --token / MODSYNC_TOKEN".into()),
            (None, false) if !coordinator::config::is_loopback(addr.ip()) => Err(format!(
                "the dashboard address {addr} is not loopback and no --token / MODSYNC_TOKEN \
                 is set: anyone who reaches it could read every sweep. Set a token, serve on \
                 127.0.0.1 (and use an SSH tunnel), or pass --insecure-no-auth"
            )),
            _ => Ok(()),
        }
    }

    /// `https` or `http`, for printing the URL.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

async fn curves_csv(State(app): State<App>, Path(id): Path<String>) -> Result<Response> {
    csv::curves_file(&app.reader, &id).await
}

async fn results_csv(State(app): State<App>, Path(id): Path<String>) -> Result<Response> {
    csv::results_file(&app.reader, &id).await
}

async fn live_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        LIVE_JS,
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404: no such page\n").into_response()
}

/// Headers on every answer: nothing cached (the data changes), no framing, no content
/// sniffing, and a CSP that allows only this server's own script and the inline stylesheet.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; \
             img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The routes, behind the login check, behind the `Host` check.
fn router(reader: Reader, auth: Auth, hosts: host::Hosts) -> Router {
    let pages = pages::routes()
        .route("/sweeps/{id}/curves.csv", get(curves_csv))
        .route("/sweeps/{id}/results.csv", get(results_csv))
        .route("/assets/live.js", get(live_js))
        .fallback(not_found)
        .with_state(App { reader });
    let login = Router::new()
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .with_state(auth.clone());
    pages
        .merge(login)
        .layer(middleware::from_fn_with_state(auth, auth::require))
        .layer(middleware::from_fn_with_state(hosts, host::check))
        .layer(middleware::from_fn(security_headers))
}

/// Serves the dashboard on `listener` until `shutdown` completes. Fails before serving when
/// the address may not be served this way (see [`DashboardConfig::check_exposure`]) or the
/// TLS files do not load.
pub async fn serve(
    reader: Reader,
    listener: TcpListener,
    config: DashboardConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    config.check_exposure(addr)?;
    let https = config.tls_cert.is_some();
    let auth = Auth::new(config.token.as_deref(), https)
        .with_limiter(config.auth_limiter.clone())
        .with_login_code(config.login_code.as_deref());
    let app = router(reader, auth, host::Hosts::new(addr, &config.public_urls)?);
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together (give both or neither)".into()),
    };
    tracing::info!(
        %addr,
        auth = config.token.is_some(),
        tls = https,
        max_connections = config.max_connections,
        "dashboard listening"
    );
    serve::serve(
        listener,
        app,
        tls,
        config.max_connections,
        std::time::Duration::from_millis(config.idle_timeout_ms),
        shutdown,
    )
    .await;
    Ok(())
}

/// Checks the TLS files without serving (to fail before anything is printed or bound).
pub fn check_tls(config: &DashboardConfig) -> Result<(), String> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => tls::acceptor(cert, key).map(|_| ()),
        (None, None) => Ok(()),
        _ => Err("--tls-cert and --tls-key go together (give both or neither)".into()),
    }
}
