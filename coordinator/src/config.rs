//! `ServeConfig`: everything a running coordinator needs to know, with the defaults a laptop
//! run and a cluster run can both live with.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::auth_limit::AuthLimiter;
use crate::error::{Error, Result};

/// How to run one coordinator. `Debug` shows whether a token is set, never the token.
#[derive(Clone)]
pub struct ServeConfig {
    /// Address to listen on (`serve` binds it; `serve_with_listener` ignores it).
    pub listen: SocketAddr,
    /// The SQLite file; created with its parent directories if missing.
    pub db: PathBuf,
    /// Shared bearer token. `None` = no authentication (loopback use); when set, every RPC must
    /// carry `authorization: Bearer <token>`. An empty or whitespace-only token is refused by
    /// [`ServeConfig::validate`]: it is what a missing Secret key or an unset variable in an
    /// env file produces, and must never mean "no authentication".
    pub token: Option<String>,
    /// Serve a non-loopback address without a token. Off by default: without a token, only a
    /// loopback address may be served (`validate` and `serve_with_listener` refuse others), so
    /// an open coordinator on a network is always a decision someone wrote down
    /// (`--insecure-no-auth`). Contradicts `token` (both set is refused).
    pub insecure_no_auth: bool,
    /// TLS: the server's certificate chain (PEM). Set together with `tls_key`; both `None` =
    /// plaintext gRPC. Read when the server starts (`ServeConfig::load_tls`).
    pub tls_cert: Option<PathBuf>,
    /// TLS: the private key (PEM, PKCS#8, PKCS#1 or SEC1) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// A lease expires this long after the last lease/heartbeat/progress. Long enough to ride
    /// out a GC pause or a slow checkpoint upload, short enough that a dead worker's job is
    /// picked up again within a minute.
    pub lease_ms: u64,
    /// How often workers are told to heartbeat (sent in every leased `Job`); must be well below
    /// `lease_ms` so that one lost heartbeat does not cost the lease.
    pub heartbeat_ms: u64,
    /// Period of the reaper that returns expired leases to the queue.
    pub reap_every_ms: u64,
    /// Query: the most rows one response carries (a request asking for 0 or more gets this).
    pub max_query_rows: usize,
    /// Query: wall-clock limit, enforced inside SQLite (the statement is interrupted).
    pub query_timeout_ms: u64,
    /// Largest gRPC message either way; a width-1024 checkpoint is ~100 MB.
    pub max_message_bytes: usize,
    /// Largest checkpoint one `ReportProgress` may carry (the store keeps one per job, so this
    /// also bounds the store's size per running job). Larger → `RESOURCE_EXHAUSTED` naming
    /// `checkpoint`; the worker then trains on without that checkpoint.
    pub max_checkpoint_bytes: usize,
    /// Most metric rows one `ReportProgress` may carry (workers send at most
    /// [`MIN_METRIC_ROWS`] per report). More → `RESOURCE_EXHAUSTED` naming `metrics`.
    pub max_metric_rows: usize,
    /// Most gRPC connections held at once (each needs a file descriptor); past it new ones wait
    /// in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// Most RPCs one connection runs at once (HTTP/2 streams beyond it are refused by the
    /// protocol's own limit, and the server queues no more than this per connection).
    pub max_rpcs_per_connection: usize,
    /// A new connection that has not sent its first bytes (the HTTP/2 preface, or the TLS
    /// hello and handshake) within this long is closed; afterwards HTTP/2 keepalive pings find
    /// dead peers. The dashboard of `--http` uses it as its header-read timeout.
    pub idle_timeout_ms: u64,
    /// Failed authentications per client address, shared with the dashboard of `--http`
    /// (`auth_limit.rs`).
    pub auth_limiter: AuthLimiter,
}

/// The error for an empty or whitespace-only token, naming the flag and the variable (the
/// variable is the usual culprit: a Kubernetes Secret without the key, a blank line in an env
/// file).
const EMPTY_TOKEN: &str = "--token / --token-file / MODSYNC_TOKEN is empty or only whitespace: \
     give the shared secret (e.g. openssl rand -hex 32), or unset them to serve loopback without \
     authentication";

/// The token length rule, shared with the clients (`modsync_proto::token`).
pub use modsync_proto::token::{MIN_TOKEN_CHARS, short_token};

/// Whether `ip` only reaches this machine: 127.0.0.0/8, ::1, and ::ffff:127.x.y.z.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
    }
}

/// Workers send at most this many metric rows per report, so `max_metric_rows` may not be
/// set below it.
pub const MIN_METRIC_ROWS: usize = 1_000;

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            db: PathBuf::from("modsync.db"),
            token: None,
            insecure_no_auth: false,
            tls_cert: None,
            tls_key: None,
            lease_ms: 30_000,
            heartbeat_ms: 5_000,
            reap_every_ms: 1_000,
            max_query_rows: 10_000,
            query_timeout_ms: 5_000,
            // The paper grid's widest network (width 1024, depth 5: 4.2 M parameters) has
            // ~100 MB checkpoints (f64 parameters and Adam's moments; per-task state adds more).
            max_message_bytes: 256 * 1024 * 1024,
            max_checkpoint_bytes: 256 * 1024 * 1024,
            max_metric_rows: 10_000,
            // 1,000 workers with a connection each (bench/coordinator-load) fit 4 times over.
            max_connections: 4096,
            max_rpcs_per_connection: 256,
            idle_timeout_ms: 5_000,
            auth_limiter: AuthLimiter::default(),
        }
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("db", &self.db)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("insecure_no_auth", &self.insecure_no_auth)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("lease_ms", &self.lease_ms)
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field("reap_every_ms", &self.reap_every_ms)
            .field("max_query_rows", &self.max_query_rows)
            .field("query_timeout_ms", &self.query_timeout_ms)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_checkpoint_bytes", &self.max_checkpoint_bytes)
            .field("max_metric_rows", &self.max_metric_rows)
            .field("max_connections", &self.max_connections)
            .field("max_rpcs_per_connection", &self.max_rpcs_per_connection)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("auth_limiter", &self.auth_limiter)
            .finish()
    }
}

impl ServeConfig {
    /// Refuses settings that would make leases flap or queries impossible, before anything is
    /// opened or bound.
    pub fn validate(&self) -> Result<()> {
        let bad = |s: String| Err(Error::Config(s));
        if self.lease_ms == 0 || self.heartbeat_ms == 0 || self.reap_every_ms == 0 {
            return bad("lease_ms, heartbeat_ms and reap_every_ms must be > 0".into());
        }
        if self.heartbeat_ms >= self.lease_ms {
            return bad(format!(
                "heartbeat_ms ({}) must be below lease_ms ({})",
                self.heartbeat_ms, self.lease_ms
            ));
        }
        if self.max_query_rows == 0 || self.query_timeout_ms == 0 {
            return bad("max_query_rows and query_timeout_ms must be > 0".into());
        }
        if self.max_message_bytes < 1024 {
            return bad("max_message_bytes must be at least 1024".into());
        }
        if self.max_checkpoint_bytes < 1024 {
            return bad("max_checkpoint_bytes must be at least 1024".into());
        }
        if self.max_metric_rows < MIN_METRIC_ROWS {
            return bad(format!(
                "max_metric_rows must be at least {MIN_METRIC_ROWS} (workers send up to that many rows per report)"
            ));
        }
        if let Some(t) = &self.token {
            if t.trim().is_empty() {
                return bad(EMPTY_TOKEN.into());
            }
            if let Some(e) = short_token(t) {
                return bad(e);
            }
        }
        if self.max_connections == 0 || self.max_rpcs_per_connection == 0 {
            return bad(
                "--max-connections and --max-rpcs-per-connection must be at least 1".into(),
            );
        }
        if self.idle_timeout_ms < 100 {
            return bad(format!(
                "--idle-timeout-ms must be at least 100, got {}",
                self.idle_timeout_ms
            ));
        }
        self.check_exposure(self.listen)?;
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return bad("--tls-cert needs --tls-key (give both or neither)".into());
            }
            (None, Some(_)) => {
                return bad("--tls-key needs --tls-cert (give both or neither)".into());
            }
            _ => {}
        }
        Ok(())
    }

    /// Refuses to serve `addr` without authentication unless it is a loopback address or
    /// `insecure_no_auth` says so; refuses `insecure_no_auth` together with a token. `validate`
    /// checks `listen`; `serve_with_listener` checks the address its listener is bound to.
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<()> {
        match (&self.token, self.insecure_no_auth) {
            (Some(_), true) => Err(Error::Config(
                "--insecure-no-auth contradicts --token / MODSYNC_TOKEN: give the token to \
                 require it, or --insecure-no-auth (and no token) to serve without one"
                    .into(),
            )),
            (None, false) if !is_loopback(addr.ip()) => Err(Error::Config(format!(
                "--listen {addr} is not a loopback address and no --token / MODSYNC_TOKEN is \
                 set: anyone who reaches it could read and change every sweep. Set a token \
                 (e.g. openssl rand -hex 32), listen on 127.0.0.1, or pass --insecure-no-auth \
                 to serve it without authentication on purpose"
            ))),
            _ => Ok(()),
        }
    }

    /// Query's time limit as a `Duration` (`modsync sql --db` runs under the same one).
    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms)
    }

    /// `idle_timeout_ms` as a `Duration`.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let c = ServeConfig {
            token: Some("hunter2".into()),
            ..ServeConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn defaults_are_valid_and_bad_settings_are_refused() {
        assert!(ServeConfig::default().validate().is_ok());
        let bad = [
            ServeConfig {
                heartbeat_ms: 30_000,
                ..Default::default()
            },
            ServeConfig {
                lease_ms: 0,
                ..Default::default()
            },
            ServeConfig {
                max_query_rows: 0,
                ..Default::default()
            },
            ServeConfig {
                token: Some(String::new()),
                ..Default::default()
            },
            ServeConfig {
                tls_cert: Some("cert.pem".into()),
                ..Default::default()
            },
            ServeConfig {
                tls_key: Some("key.pem".into()),
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }

    #[test]
    fn payload_limits_are_validated() {
        for c in [
            ServeConfig {
                max_checkpoint_bytes: 1023,
                ..Default::default()
            },
            ServeConfig {
                max_metric_rows: MIN_METRIC_ROWS - 1,
                ..Default::default()
            },
        ] {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("max_"), "{e}");
        }
        let ok = ServeConfig {
            max_checkpoint_bytes: 1024,
            max_metric_rows: MIN_METRIC_ROWS,
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn empty_or_blank_tokens_are_refused_naming_the_flag_and_variable() {
        for t in ["", " ", "\t", " \n "] {
            let c = ServeConfig {
                token: Some(t.into()),
                ..Default::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(
                e.contains("--token") && e.contains("MODSYNC_TOKEN") && e.contains("empty"),
                "{t:?}: {e}"
            );
        }
    }

    /// A token of the minimum length.
    const LONG: &str = "0123456789abcdef";

    #[test]
    fn tokens_shorter_than_16_characters_are_refused_without_showing_them() {
        for t in ["x", "s3cret", "0123456789abcde", "  0123456789abcde  "] {
            let c = ServeConfig {
                token: Some(t.into()),
                ..Default::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("--token") && e.contains("16"), "{t:?}: {e}");
            if t.trim().len() > 5 {
                assert!(
                    !e.contains(t.trim()),
                    "{t:?}: the token is in the error: {e}"
                );
            }
        }
        let ok = ServeConfig {
            token: Some(LONG.into()),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn connection_limits_are_validated() {
        for c in [
            ServeConfig {
                max_connections: 0,
                ..Default::default()
            },
            ServeConfig {
                max_rpcs_per_connection: 0,
                ..Default::default()
            },
            ServeConfig {
                idle_timeout_ms: 99,
                ..Default::default()
            },
        ] {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("--"), "{e}");
        }
    }

    #[test]
    fn only_loopback_may_be_served_without_a_token_unless_said_so() {
        let at = |addr: &str, token: Option<&str>, insecure: bool| ServeConfig {
            listen: addr.parse().unwrap(),
            token: token.map(str::to_string),
            insecure_no_auth: insecure,
            ..Default::default()
        };
        for loopback in [
            "127.0.0.1:1",
            "127.1.2.3:0",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(at(loopback, None, false).validate().is_ok(), "{loopback}");
        }
        for open in [
            "0.0.0.0:50051",
            "10.1.2.3:1",
            "[::]:1",
            "[::ffff:10.0.0.1]:1",
        ] {
            let e = at(open, None, false).validate().unwrap_err().to_string();
            assert!(
                e.contains("--insecure-no-auth") && e.contains("--token") && e.contains(open),
                "{open}: {e}"
            );
            assert!(at(open, Some(LONG), false).validate().is_ok(), "{open}");
            assert!(at(open, None, true).validate().is_ok(), "{open}");
        }
        let e = at("0.0.0.0:1", Some(LONG), true)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("contradicts"), "{e}");
    }
}
