//! `ServeConfig`: everything a running coordinator needs to know, with the defaults a laptop
//! run and a cluster run can both live with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// How to run one coordinator. `Debug` shows whether a token is set, never the token.
#[derive(Clone)]
pub struct ServeConfig {
    /// Address to listen on (`serve` binds it; `serve_with_listener` ignores it).
    pub listen: SocketAddr,
    /// The SQLite file; created with its parent directories if missing.
    pub db: PathBuf,
    /// Shared bearer token. `None` = no authentication (loopback use); when set, every RPC must
    /// carry `authorization: Bearer <token>`.
    pub token: Option<String>,
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
        }
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("db", &self.db)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
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
        if let Some(t) = &self.token
            && t.is_empty()
        {
            return bad("token must not be empty (use None for no auth)".into());
        }
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

    pub(crate) fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms)
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
}
