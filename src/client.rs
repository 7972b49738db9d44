//! What every client subcommand shares: where the coordinator is, the token, the CA to trust
//! for TLS, a runtime, and one-line messages for failed calls.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use clap::Args;
use modsync_client::{Client, describe};
use tonic::{Code, Status};

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

/// The token in `--token-file` if given, else `--token` (or `$MODSYNC_TOKEN`). Both flags
/// together are an error; the file wins over the variable (a flag overrides the environment).
pub fn token_from(token: Option<String>, file: Option<&Path>) -> Result<Option<String>> {
    match (file, token) {
        (Some(_), Some(t))
            if std::env::var("MODSYNC_TOKEN").ok().as_deref() != Some(t.as_str()) =>
        {
            bail!("--token and --token-file both given: give one of them")
        }
        (Some(path), _) => read_token_file(path).map(Some),
        (None, token) => Ok(token),
    }
}

/// The token in `path` (`--token-file`): its contents without surrounding whitespace (the
/// trailing newline of `openssl rand -hex 32 > FILE`). An unreadable, empty or blank file is an
/// error naming the flag; a file other local users can read gets a warning on stderr.
pub fn read_token_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow!(
            "invalid --token-file {}: cannot read it: {e}",
            path.display()
        )
    })?;
    let token = text.trim();
    if token.is_empty() {
        bail!(
            "invalid --token-file {}: the file is empty or only whitespace (it should hold the \
             token, e.g. from openssl rand -hex 32)",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o004 != 0
        {
            eprintln!(
                "warning: --token-file {} is readable by every local user (mode {:o}): chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
    Ok(token.to_string())
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

    #[test]
    fn token_files_are_trimmed_and_empty_ones_refused_naming_the_flag() {
        let dir = std::env::temp_dir().join(format!("modsync-token-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
        assert_eq!(read_token_file(&good).unwrap(), "0123456789abcdef0123");
        assert_eq!(
            token_from(None, Some(&good)).unwrap().as_deref(),
            Some("0123456789abcdef0123")
        );
        assert_eq!(
            token_from(Some("x".into()), None).unwrap().as_deref(),
            Some("x")
        );
        if std::env::var_os("MODSYNC_TOKEN").is_none() {
            let e = token_from(Some("x".into()), Some(&good))
                .unwrap_err()
                .to_string();
            assert!(e.contains("--token-file"), "{e}");
        }
        for (name, text) in [("empty", ""), ("blank", " \n\t\n")] {
            let f = dir.join(name);
            std::fs::write(&f, text).unwrap();
            let e = read_token_file(&f).unwrap_err().to_string();
            assert!(e.contains("--token-file") && e.contains("empty"), "{e}");
        }
        let e = read_token_file(&dir.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--token-file") && e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
