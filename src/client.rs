//! What every client subcommand shares: where the coordinator is, the token, the CA to trust
//! for TLS, a runtime, and one-line messages for failed calls.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Args;
use modsync_client::{Client, describe};
use tonic::{Code, Status};

/// The coordinator's address when neither `--coordinator` nor `$MODSYNC_COORDINATOR` says.
pub const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:50051";

/// `--coordinator`, `--token` and `--tls-ca`, flattened into each client subcommand. `Debug`
/// never shows the token.
#[derive(Args, Clone)]
pub struct ClientArgs {
    /// The coordinator's URL.
    #[arg(long, env = "MODSYNC_COORDINATOR", default_value = DEFAULT_COORDINATOR)]
    pub coordinator: String,
    /// Bearer token, when the coordinator was started with one.
    #[arg(long, env = "MODSYNC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to trust for an https:// coordinator, e.g. its self-signed
    /// certificate.
    #[arg(long, env = "MODSYNC_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("coordinator", &self.coordinator)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

impl ClientArgs {
    /// A runtime for the command and a client on it (the channel needs the runtime to exist).
    pub fn connect(&self) -> Result<(tokio::runtime::Runtime, Client)> {
        let rt = runtime()?;
        let client = {
            let _entered = rt.enter();
            modsync_client::connect_with(
                &self.coordinator,
                self.token.as_deref(),
                self.tls_ca.as_deref(),
            )?
        };
        Ok((rt, client))
    }

    /// Turns a failed call into one line a user can act on.
    pub fn error(&self, what: &str, status: Status) -> anyhow::Error {
        match status.code() {
            Code::Unauthenticated => anyhow!(
                "{what}: the coordinator at {} refused the token (set --token or $MODSYNC_TOKEN): {}",
                self.coordinator,
                describe(&status)
            ),
            Code::Unavailable => anyhow!(
                "{what}: cannot reach the coordinator at {} (set --coordinator or $MODSYNC_COORDINATOR; for TLS use https:// and --tls-ca): {}",
                self.coordinator,
                describe(&status)
            ),
            // A plaintext client talking to a TLS server: the connection breaks at once (it reads
            // the TLS alert as HTTP/2 frames, or the server hangs up).
            Code::Internal | Code::Cancelled | Code::Unknown
                if self.coordinator.starts_with("http://")
                    && describe(&status).contains("transport error") =>
            {
                anyhow!(
                    "{what}: the coordinator at {} does not speak plaintext gRPC (if it serves TLS, use https:// and --tls-ca): {}",
                    self.coordinator,
                    describe(&status)
                )
            }
            _ => anyhow!("{what}: {}", describe(&status)),
        }
    }
}

/// The tokio runtime of one command. Multi-threaded: `sweep run` serves, trains and reports in
/// one process.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start the async runtime: {e}"))
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM. A second one ends the process at once,
/// for when a clean stop takes too long.
pub async fn shutdown_signal() {
    wait_for_signal().await;
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("second interrupt: exiting without a clean stop");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// This machine's name, for the coordinator's `workers` table.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let a = ClientArgs {
            coordinator: DEFAULT_COORDINATOR.into(),
            token: Some("hunter2".into()),
            tls_ca: None,
        };
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("redacted"),
            "{shown}"
        );
    }
}
