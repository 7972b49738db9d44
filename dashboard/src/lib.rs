//! The modsync web dashboard: read-only pages over a sweep store, for the browser a researcher
//! leaves open while a sweep runs.
//!
//! It serves on the caller's tokio runtime (the coordinator's with `modsync coordinator
//! --http`, the sweep's with `modsync sweep run`, its own with `modsync dashboard --db`) and
//! reads through a [`coordinator::Reader`]: connections SQLite opened read-only, so no request
//! can write, whatever it sends. Only GET pages exist besides the login form.
//!
//! Pages (HTML rendered on the server, `html.rs`; plots as inline SVG, `svg.rs`):
//! `/` sweeps, `/sweeps/{id}` a sweep (`?error=best|min_loss|last`), `/jobs/{id}` a job,
//! `/workers`. The same data as JSON under `/api/...` (`data.rs`), downloads at
//! `/sweeps/{id}/curves.csv` and `/sweeps/{id}/results.csv` (`csv.rs`). Live: the one embedded
//! script (`assets/live.js`) re-fetches the page's `<main>` every 2 s (`?fragment=1`).
//! Nothing is fetched from elsewhere: the stylesheet and the script are compiled in.
//!
//! Security (`auth.rs`): with a token, a login form opens a session (HttpOnly, SameSite=Strict
//! cookie) or scripts send `Authorization: Bearer`; without one, [`DashboardConfig::check_exposure`]
//! refuses any address but loopback unless `insecure_no_auth`. HTTPS with the coordinator's
//! certificate and key (`tls.rs`).

mod auth;
pub mod csv;
pub mod data;
pub mod error;
mod escape;
mod html;
mod svg;
pub mod ticks;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use coordinator::Reader;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::data::ErrorKind;
use crate::error::{Error, Result};

const LIVE_JS: &str = include_str!("../assets/live.js");

/// How to serve the dashboard. `Debug` never shows the token.
#[derive(Clone, Default)]
pub struct DashboardConfig {
    /// The coordinator's token; `None` = no login (loopback only, unless `insecure_no_auth`).
    pub token: Option<String>,
    /// Serve a non-loopback address without a token, on purpose.
    pub insecure_no_auth: bool,
    /// HTTPS: certificate chain and key (PEM), both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl std::fmt::Debug for DashboardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("insecure_no_auth", &self.insecure_no_auth)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

impl DashboardConfig {
    /// Refuses to serve `addr` without a token unless it is loopback or `insecure_no_auth`
    /// says so, and a blank token (an unset variable must never mean "no login").
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<(), String> {
        match (&self.token, self.insecure_no_auth) {
            (Some(t), _) if t.trim().is_empty() => {
                Err("--token / MODSYNC_TOKEN is empty or only whitespace".into())
            }
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

/// What every handler gets.
#[derive(Clone)]
struct App {
    reader: Reader,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The query parameters the pages take; each is checked and a bad one named.
#[derive(Deserialize, Default)]
struct Params {
    page: Option<String>,
    error: Option<String>,
    fragment: Option<String>,
}

impl Params {
    fn page(&self) -> Result<u32> {
        match &self.page {
            None => Ok(1),
            Some(p) => p
                .parse::<u32>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| Error::Invalid {
                    field: "page".into(),
                    problem: format!("{p:?} is not a page number (1, 2, …)"),
                }),
        }
    }

    fn error(&self) -> Result<ErrorKind> {
        match self.error.as_deref() {
            None => Ok(ErrorKind::Best),
            Some(e) => ErrorKind::ALL
                .into_iter()
                .find(|k| k.as_str() == e)
                .ok_or_else(|| Error::Invalid {
                    field: "error".into(),
                    problem: format!("{e:?}: one of best, min_loss, last"),
                }),
        }
    }

    fn fragment(&self) -> bool {
        self.fragment.as_deref() == Some("1")
    }
}

/// The page, or only its `<main>` content for the live update.
fn page(params: &Params, title: &str, body: String) -> Response {
    if params.fragment() {
        Html(body).into_response()
    } else {
        Html(html::layout(title, &body, true)).into_response()
    }
}

fn job_id(id: &str) -> Result<i64> {
    id.parse().map_err(|_| Error::Invalid {
        field: "job id".into(),
        problem: format!("{id:?} is not a job number"),
    })
}

async fn sweeps_page(State(app): State<App>, Query(q): Query<Params>) -> Result<Response> {
    let data = data::sweeps(&app.reader, q.page()?, now_ms()).await?;
    Ok(page(&q, "Sweeps", html::sweeps(&data)))
}

async fn sweep_page(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response> {
    let data = data::sweep(&app.reader, &id, q.error()?, q.page()?, now_ms()).await?;
    Ok(page(&q, &format!("Sweep {id}"), html::sweep(&data)))
}

async fn job_page(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response> {
    let data = data::job(&app.reader, job_id(&id)?).await?;
    Ok(page(&q, &format!("Job {id}"), html::job(&data)))
}

async fn workers_page(State(app): State<App>, Query(q): Query<Params>) -> Result<Response> {
    let data = data::workers(&app.reader, q.page()?).await?;
    Ok(page(&q, "Workers", html::workers(&data, now_ms())))
}

async fn sweeps_json(State(app): State<App>, Query(q): Query<Params>) -> Result<Response> {
    Ok(Json(data::sweeps(&app.reader, q.page()?, now_ms()).await?).into_response())
}

async fn sweep_json(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response> {
    let data = data::sweep(&app.reader, &id, q.error()?, q.page()?, now_ms()).await?;
    Ok(Json(data).into_response())
}

async fn job_json(State(app): State<App>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(data::job(&app.reader, job_id(&id)?).await?).into_response())
}

async fn workers_json(State(app): State<App>, Query(q): Query<Params>) -> Result<Response> {
    Ok(Json(data::workers(&app.reader, q.page()?).await?).into_response())
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

/// The routes, behind the login check.
fn router(reader: Reader, auth: Auth) -> Router {
    let pages = Router::new()
        .route("/", get(sweeps_page))
        .route("/sweeps/{id}", get(sweep_page))
        .route("/sweeps/{id}/curves.csv", get(curves_csv))
        .route("/sweeps/{id}/results.csv", get(results_csv))
        .route("/jobs/{id}", get(job_page))
        .route("/workers", get(workers_page))
        .route("/api/sweeps", get(sweeps_json))
        .route("/api/sweeps/{id}", get(sweep_json))
        .route("/api/jobs/{id}", get(job_json))
        .route("/api/workers", get(workers_json))
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
    let app = router(reader, Auth::new(config.token.as_deref(), https));
    tracing::info!(%addr, auth = config.token.is_some(), tls = https, "dashboard listening");
    let served = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let listener = tls::TlsListener::new(listener, tls::acceptor(cert, key)?)
                .map_err(|e| e.to_string())?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        (None, None) => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        _ => return Err("--tls-cert and --tls-key go together (give both or neither)".into()),
    };
    served.map_err(|e| format!("dashboard: {e}"))
}

/// Checks the TLS files without serving (to fail before anything is printed or bound).
pub fn check_tls(config: &DashboardConfig) -> Result<(), String> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => tls::acceptor(cert, key).map(|_| ()),
        (None, None) => Ok(()),
        _ => Err("--tls-cert and --tls-key go together (give both or neither)".into()),
    }
}
