//! Who may read the dashboard. With a token configured, every request needs either
//! `Authorization: Bearer <token>` (scripts, `curl`) or the cookie of a session opened by the
//! login form. The session id is 256 random bits, never derived from the token, and the
//! cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it)
//! and `Secure` over HTTPS. Without a token every request passes: `serve` only allows that on
//! a loopback address unless told `--insecure-no-auth`.
//!
//! The token comparison is the coordinator's (`BearerAuth::matches`, constant time). Wrong
//! tokens (bearer, login form, login code) are limited per client address by the shared
//! `AuthLimiter`: a locked-out address gets 429 with `Retry-After`, unchecked. `GET
//! /login?code=…` with the configured login code (`sweep run`'s printed URL) opens a session
//! like the form.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use coordinator::auth::BearerAuth;
use coordinator::auth_limit::{AuthLimiter, retry_after_secs};
use rand::Rng;
use serde::Deserialize;

use crate::layout;

/// The session cookie's name.
pub const COOKIE: &str = "modsync_session";
/// A session ends this long after it was opened.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most open sessions; past it the oldest are forgotten (a login loop cannot fill memory).
const MAX_SESSIONS: usize = 10_000;
/// A wrong token costs this long, so guessing is slow.
const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(300);

/// The token check and the open sessions. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    bearer: BearerAuth,
    /// Session id → when it was opened. A std mutex: held for a map lookup, never across an
    /// await.
    sessions: Arc<Mutex<HashMap<String, Instant>>>,
    /// Whether the dashboard is served over HTTPS (the cookie is then `Secure`).
    https: bool,
    /// Wrong tokens per client address.
    limiter: AuthLimiter,
    /// The login URL's code, if any (compared like the token).
    login_code: Option<BearerAuth>,
}

/// The client's address, put on every request by [`require`] for the handlers.
#[derive(Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// What [`Auth::access`] decided.
enum Access {
    Allowed,
    Denied,
    /// Too many wrong tokens from this address: refused unchecked for this long.
    Locked(Duration),
}

/// 429 with `Retry-After`, for a locked-out address.
fn too_many(wait: Duration) -> Response {
    let secs = retry_after_secs(wait);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, secs.to_string())],
        format!("429: too many failed logins from this address; retry in {secs} s\n"),
    )
        .into_response()
}

impl Auth {
    pub fn new(token: Option<&str>, https: bool) -> Auth {
        Auth {
            bearer: BearerAuth::new(token),
            sessions: Arc::default(),
            https,
            limiter: AuthLimiter::default(),
            login_code: None,
        }
    }

    /// Counts wrong tokens in `limiter` (shared with the gRPC port under `coordinator --http`).
    pub fn with_limiter(mut self, limiter: AuthLimiter) -> Auth {
        self.limiter = limiter;
        self
    }

    /// Lets `GET /login?code=CODE` open a session (only with a token).
    pub fn with_login_code(mut self, code: Option<&str>) -> Auth {
        self.login_code = code.map(|c| BearerAuth::new(Some(c)));
        self
    }

    /// Opens a session and sends the browser on to `next` with its cookie.
    fn logged_in(&self, next: &str) -> Response {
        let id = self.open_session();
        let mut response = Redirect::to(next).into_response();
        response
            .headers_mut()
            .insert(header::SET_COOKIE, self.cookie(&id, SESSION_TTL.as_secs()));
        response
    }

    /// Whether a token is required.
    pub fn enabled(&self) -> bool {
        self.bearer.enabled()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session and returns its id.
    fn open_session(&self) -> String {
        let id: [u8; 32] = rand::rng().random();
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = self.sessions();
        sessions.retain(|_, opened| opened.elapsed() < SESSION_TTL);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), Instant::now());
        id
    }

    fn session_valid(&self, id: &str) -> bool {
        self.sessions()
            .get(id)
            .is_some_and(|opened| opened.elapsed() < SESSION_TTL)
    }

    /// Whether the request carries the token or a live session.
    #[cfg(test)]
    fn allows(&self, headers: &HeaderMap) -> bool {
        matches!(
            self.access(headers, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            Access::Allowed
        )
    }

    /// Whether a request from `ip` carries the token or a live session. A bearer token is
    /// checked only while `ip` is not locked out, and a wrong one counts against it.
    fn access(&self, headers: &HeaderMap, ip: IpAddr) -> Access {
        if !self.enabled() {
            return Access::Allowed;
        }
        if let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            && let Some(token) = value.strip_prefix("Bearer ")
        {
            if let Err(wait) = self.limiter.admit(ip) {
                return Access::Locked(wait);
            }
            if self.bearer.matches(token) {
                return Access::Allowed;
            }
            self.limiter.failed(ip);
            return Access::Denied;
        }
        if session_cookie(headers).is_some_and(|id| self.session_valid(id)) {
            Access::Allowed
        } else {
            Access::Denied
        }
    }

    fn cookie(&self, id: &str, max_age: u64) -> HeaderValue {
        let secure = if self.https { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The value of our cookie in the `Cookie` headers, if any.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Middleware: lets authorised requests through; sends a browser asking for a page to the
/// login form, and answers anything else 401.
pub async fn require(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    // Unknown only when served without `serve.rs` (never): one shared bucket then.
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    req.extensions_mut().insert(ClientIp(ip));
    if req.uri().path() == "/login" {
        return next.run(req).await;
    }
    match auth.access(req.headers(), ip) {
        Access::Allowed => return next.run(req).await,
        Access::Locked(wait) => return too_many(wait),
        Access::Denied => {}
    }
    let path = req.uri().path();
    let wants_page = req.method() == axum::http::Method::GET
        && !path.starts_with("/api/")
        && !path.ends_with(".csv")
        && !path.starts_with("/assets/")
        && !req.uri().query().is_some_and(|q| q.contains("fragment=1"));
    if wants_page {
        let next = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        return Redirect::to(&format!("/login?next={}", layout::url_part(next))).into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "401: send `Authorization: Bearer <token>` or log in at /login\n",
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct NextParam {
    next: Option<String>,
    /// The login URL's code (`with_login_code`).
    code: Option<String>,
}

/// Only a path of this site may be a redirect target after logging in (`next` arrives
/// percent-decoded): one leading `/`, not followed by `/` or `\` (`//host` and `/\host` are
/// another site to a browser), and no control character or `\` anywhere. Browsers drop tabs
/// and line breaks from a URL before reading it, so `/<TAB>/host` is `//host` too; and a
/// control character cannot stand in a `Location` header at all. Anything else goes to `/`.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(n) if is_local_path(n) => n,
        _ => "/",
    }
}

fn is_local_path(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !n.chars().any(|c| c.is_control() || c == '\\')
}

pub async fn login_form(
    State(auth): State<Auth>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Query(q): Query<NextParam>,
) -> Response {
    if !auth.enabled() {
        return Redirect::to("/").into_response();
    }
    if let Some(code) = q.code.as_deref() {
        if let Err(wait) = auth.limiter.admit(ip) {
            return too_many(wait);
        }
        if auth.login_code.as_ref().is_some_and(|c| c.matches(code)) {
            return auth.logged_in("/");
        }
        auth.limiter.failed(ip);
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return (StatusCode::UNAUTHORIZED, Html(layout::login("/", true))).into_response();
    }
    Html(layout::login(local_path(q.next.as_deref()), false)).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Checks the token once; a right one opens a session (the cookie) and goes on to `next`.
pub async fn login(
    State(auth): State<Auth>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_path(form.next.as_deref()).to_string();
    if !auth.enabled() {
        return Redirect::to(&next).into_response();
    }
    if let Err(wait) = auth.limiter.admit(ip) {
        return too_many(wait);
    }
    if !auth.bearer.matches(&form.token) {
        auth.limiter.failed(ip);
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return (StatusCode::UNAUTHORIZED, Html(layout::login(&next, true))).into_response();
    }
    let id = auth.open_session();
    let mut response = Redirect::to(&next).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, auth.cookie(&id, SESSION_TTL.as_secs()));
    response
}

/// Ends the session and clears the cookie.
pub async fn logout(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        auth.sessions().remove(id);
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, auth.cookie("", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert_eq!(
            local_path(Some("/sweeps/a?error=last")),
            "/sweeps/a?error=last"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "\\\\x",
            "/\\evil",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "\t//evil.example",
            "/\u{7f}/evil.example",
            "/a\u{85}b",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(Some("/")), "/");
        assert_eq!(local_path(Some("/workers")), "/workers");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn sessions_are_random_and_the_cookie_is_strict() {
        let auth = Auth::new(Some("secret-token"), true);
        let (a, b) = (auth.open_session(), auth.open_session());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(!a.contains("secret"));
        let cookie = auth.cookie(&a, 10);
        let cookie = cookie.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE}={a}")).unwrap(),
        );
        assert!(auth.allows(&headers));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("modsync_session=forged"),
        );
        assert!(!auth.allows(&headers));
    }
}
