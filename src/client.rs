//! What every client subcommand shares: where the coordinator is, the token, the CA to trust
//! for TLS, a runtime, and one-line messages for failed calls.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use modsync_client::Client;
use modsync_client::token::token_from;
use tonic::Status;

/// The coordinator's address when neither `--coordinator` nor `$MODSYNC_COORDINATOR` says.
pub const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:50051";

/// `--coordinator`, `--token` / `--token-file` and `--tls-ca`, flattened into each client
/// subcommand. `Debug` never shows the token.
#[derive(Args, Clone)]
pub struct ClientArgs {
    /// The coordinator's URL.
    #[arg(long, env = "MODSYNC_COORDINATOR", default_value = DEFAULT_COORDINATOR)]
    pub coordinator: String,
    /// Bearer token, when the coordinator was started with one (at least 16 characters).
    /// Prefer $MODSYNC_TOKEN or --token-file: a command line is visible to every local user
    /// (ps).
    #[arg(long, env = "MODSYNC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the bearer token from this file instead (surrounding whitespace and the trailing
    /// newline are dropped; an empty file is an error); it wins over $MODSYNC_TOKEN. Keep it
    /// private: chmod 600.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
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
            .field("token_file", &self.token_file)
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

impl ClientArgs {
    /// The token: `--token` / `$MODSYNC_TOKEN`, or the contents of `--token-file`.
    pub fn token(&self) -> Result<Option<String>> {
        token_from(self.token.clone(), self.token_file.as_deref())
    }

    /// A runtime for the command and a client on it (the channel needs the runtime to exist).
    pub fn connect(&self) -> Result<(tokio::runtime::Runtime, Client)> {
        let token = self.token()?;
        let rt = runtime()?;
        let client = {
            let _entered = rt.enter();
            modsync_client::connect_with(
                &self.coordinator,
                token.as_deref(),
                self.tls_ca.as_deref(),
            )?
        };
        Ok((rt, client))
    }

    /// Turns a failed call into one line a user can act on.
    pub fn error(&self, what: &str, status: Status) -> anyhow::Error {
        modsync_client::explain(what, &self.coordinator, &status)
    }
}

pub use report::source::runtime;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let a = ClientArgs {
            coordinator: DEFAULT_COORDINATOR.into(),
            token: Some("hunter2".into()),
            token_file: None,
            tls_ca: None,
        };
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("redacted"),
            "{shown}"
        );
    }
}
