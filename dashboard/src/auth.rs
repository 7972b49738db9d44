//! Who may read the dashboard. With a token configured, every request needs either
//! `Authorization: Bearer <token>` (scripts, `curl`) or the cookie of a session opened by the
//! login form. The session id is 256 random bits, never derived from the token, and the
//! cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it)
//! and `Secure` over HTTPS. Without a token every request passes: `serve` only allows that on
//! a loopback address unless told `--insecure-no-auth`.
//!
//! The token comparison is the coordinator's (`BearerAuth::matches`, constant time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use coordinator::auth::BearerAuth;
use rand::Rng;
use serde::Deserialize;

use crate::html;

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
}

impl Auth {
    pub fn new(token: Option<&str>, https: bool) -> Auth {
        Auth {
            bearer: BearerAuth::new(token),
            sessions: Arc::default(),
            https,
        }
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
    fn allows(&self, headers: &HeaderMap) -> bool {
        if !self.enabled() {
            return true;
        }
        if let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            && let Some(token) = value.strip_prefix("Bearer ")
        {
            return self.bearer.matches(token);
        }
        session_cookie(headers).is_some_and(|id| self.session_valid(id))
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
pub async fn require(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/login" || auth.allows(req.headers()) {
        return next.run(req).await;
    }
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
        return Redirect::to(&format!("/login?next={}", html::url_part(next))).into_response();
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
}

/// Only a local path (`/…`, not `//host`) may be a redirect target after logging in.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

pub async fn login_form(State(auth): State<Auth>, Query(q): Query<NextParam>) -> Response {
    if !auth.enabled() {
        return Redirect::to("/").into_response();
    }
    Html(html::login(local_path(q.next.as_deref()), false)).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Checks the token once; a right one opens a session (the cookie) and goes on to `next`.
pub async fn login(State(auth): State<Auth>, Form(form): Form<LoginForm>) -> Response {
    let next = local_path(form.next.as_deref()).to_string();
    if !auth.enabled() {
        return Redirect::to(&next).into_response();
    }
    if !auth.bearer.matches(&form.token) {
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return (StatusCode::UNAUTHORIZED, Html(html::login(&next, true))).into_response();
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
        for bad in ["//evil.example", "https://evil.example", "\\\\x", "/\\evil"] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
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
