//! Which `Host` the dashboard answers to (issue 26, weakness 7: DNS rebinding). A web page on
//! a name its owner controls can re-point that name at 127.0.0.1 and then read a dashboard
//! without a token as its own origin; its requests still carry that name in `Host`. So only
//! these are answered, anything else gets 421 Misdirected Request:
//!
//! - `localhost` and loopback addresses (127.0.0.0/8, `[::1]`);
//! - the address the dashboard listens on, and when that is every interface (`0.0.0.0`, `[::]`)
//!   any IP address: a rebinding page cannot make the browser send an address, only a name;
//! - the host of each `--public-url` (the name behind a reverse proxy or in DNS).
//!
//! The port is not compared: a rebinding page uses the dashboard's own port anyway, and a proxy
//! may change it. A request without `Host` (HTTP/1.0) is refused too.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The names and addresses this dashboard answers to.
#[derive(Clone, Debug)]
pub struct Hosts {
    listen: IpAddr,
    /// Lower-case host names (or address literals) of `--public-url`.
    public: Vec<String>,
}

/// The host of a URL given as `--public-url` (`http[s]://host[:port][/path]`), lower-case,
/// without brackets around an IPv6 address; the error names the flag.
pub fn public_url_host(url: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "invalid --public-url {url:?}: {why} (e.g. https://dashboard.example.org:8080/)"
        ))
    };
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return bad("not an http:// or https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return bad("user information is not allowed");
    }
    match host_of(authority) {
        Some(h) if !h.is_empty() => Ok(h),
        _ => bad("no host"),
    }
}

/// The host part of a `Host` header value or URL authority (`name[:port]`, `[v6][:port]`),
/// lower-case, one trailing dot dropped; `None` when it is malformed.
fn host_of(authority: &str) -> Option<String> {
    let host = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        addr
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return None,
            None => authority,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    Some(host.to_ascii_lowercase())
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

impl Hosts {
    /// For a dashboard bound to `listen`, with `public_urls` (checked before: see
    /// [`public_url_host`]).
    pub fn new(listen: SocketAddr, public_urls: &[String]) -> Result<Hosts, String> {
        Ok(Hosts {
            listen: listen.ip(),
            public: public_urls
                .iter()
                .map(|u| public_url_host(u))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether a request with this `Host` (or URL authority) is answered.
    pub fn allows(&self, authority: &str) -> bool {
        let Some(host) = host_of(authority) else {
            return false;
        };
        if host == "localhost" || self.public.contains(&host) {
            return true;
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                coordinator::config::is_loopback(ip)
                    || ip == self.listen
                    || self.listen.is_unspecified()
            }
            Err(_) => false,
        }
    }
}

/// Middleware: 421 for a request whose `Host` (and absolute-form URL, if any) is not one of
/// [`Hosts`].
pub async fn check(State(hosts): State<Hosts>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let authority = req.uri().authority().map(|a| a.as_str());
    let ok = match (host, authority) {
        (None, None) => false,
        (h, a) => h.is_none_or(|h| hosts.allows(h)) && a.is_none_or(|a| hosts.allows(a)),
    };
    if ok {
        return next.run(req).await;
    }
    (
        StatusCode::MISDIRECTED_REQUEST,
        "421: this dashboard answers only to localhost, its loopback and listening addresses, and \
         the host of --public-url (start it with --public-url URL to open it under another name)\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values_are_parsed_strictly() {
        assert_eq!(host_of("LocalHost:8080").as_deref(), Some("localhost"));
        assert_eq!(host_of("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(host_of("[::1]").as_deref(), Some("::1"));
        assert_eq!(host_of("example.org.").as_deref(), Some("example.org"));
        for bad in ["[::1", "[::1]x", "a:b", "a:", "a:123456"] {
            assert_eq!(host_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_local_listening_and_public_names_are_allowed() {
        let hosts = Hosts::new(
            "127.0.0.1:8080".parse().unwrap(),
            &["https://dash.example.org/x".into()],
        )
        .unwrap();
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "127.9.9.9",
            "[::1]:8080",
            "dash.example.org",
            "DASH.example.org:443",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "localhost.evil.example",
            "dash.example.org.evil.example",
            "10.0.0.1",
            "",
            "127.0.0.1.nip.io",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
        let any = Hosts::new("0.0.0.0:8080".parse().unwrap(), &[]).unwrap();
        assert!(any.allows("10.0.0.1:8080") && any.allows("[fe80::1]"));
        assert!(!any.allows("evil.example"));
        let one = Hosts::new("10.0.0.5:8080".parse().unwrap(), &[]).unwrap();
        assert!(one.allows("10.0.0.5:8080") && !one.allows("10.0.0.6"));
    }

    #[test]
    fn public_urls_are_checked_naming_the_flag() {
        assert_eq!(public_url_host("http://[::1]:8080/").unwrap(), "::1");
        for bad in [
            "dash.example.org",
            "ftp://x/",
            "https://",
            "https://u@x/",
            "http://x:y/",
        ] {
            let e = public_url_host(bad).unwrap_err();
            assert!(e.contains("--public-url"), "{bad}: {e}");
        }
    }
}
