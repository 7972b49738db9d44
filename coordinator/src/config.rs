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
    /// Largest gRPC message either way; checkpoints of wide networks are tens of MiB.
    pub max_message_bytes: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            db: PathBuf::from("modsync.db"),
            token: None,
            lease_ms: 30_000,
            heartbeat_ms: 5_000,
            reap_every_ms: 1_000,
            max_query_rows: 10_000,
            query_timeout_ms: 5_000,
            max_message_bytes: 64 * 1024 * 1024,
        }
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("db", &self.db)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("lease_ms", &self.lease_ms)
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field("reap_every_ms", &self.reap_every_ms)
            .field("max_query_rows", &self.max_query_rows)
            .field("query_timeout_ms", &self.query_timeout_ms)
            .field("max_message_bytes", &self.max_message_bytes)
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
        if let Some(t) = &self.token
            && t.is_empty()
        {
            return bad("token must not be empty (use None for no auth)".into());
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
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
