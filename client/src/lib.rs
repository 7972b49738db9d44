//! A gRPC client for the coordinator's `Sweeps` service, shared by the worker and the CLI:
//! one lazily connected channel (it reconnects by itself after the coordinator restarts), the
//! bearer token on every call, TLS for `https://` URLs, and the rules for which failures are
//! worth retrying.

pub mod token;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use modsync_proto::sweeps_client::SweepsClient;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

/// Largest message either side of a call may carry. Checkpoints of wide networks are tens of
/// megabytes (three f64 vectors of every parameter); the coordinator has its own cap too.
pub const MAX_MESSAGE_BYTES: usize = 512 * 1024 * 1024;

/// A `Sweeps` client that sends the bearer token with every request.
pub type Client = SweepsClient<InterceptedService<Channel, Auth>>;

/// Adds `authorization: Bearer <token>` to every request when a token is configured.
#[derive(Clone)]
pub struct Auth {
    /// The parsed header value, built once so a bad token fails at connect time, not per call.
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Auth {
    /// Fails for a token that cannot be sent as metadata (not printable ASCII), for an
    /// empty or whitespace-only one (that is a missing Secret key or an unset variable, never
    /// a way to say "no token": that is `None`), and for one shorter than [`MIN_TOKEN_CHARS`](modsync_proto::token::MIN_TOKEN_CHARS).
    pub fn new(token: Option<&str>) -> Result<Self> {
        if token.is_some_and(|t| t.trim().is_empty()) {
            anyhow::bail!(
                "--token / --token-file / MODSYNC_TOKEN is empty or only whitespace: give the \
                 coordinator's token, or unset them for a coordinator that has none"
            );
        }
        if let Some(e) = token.and_then(modsync_proto::token::short_token) {
            anyhow::bail!(e);
        }
        let header = token
            .map(|t| {
                format!("Bearer {t}")
                    .parse::<MetadataValue<_>>()
                    .map(|mut v| {
                        // Debug shows it as "Sensitive": a dump of the request metadata in a
                        // log never contains the token.
                        v.set_sensitive(true);
                        v
                    })
                    .map_err(|_| anyhow::anyhow!("invalid --token: not a printable ASCII string"))
            })
            .transpose()?;
        Ok(Self { header })
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.header.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.header {
            request.metadata_mut().insert("authorization", h.clone());
        }
        Ok(request)
    }
}

/// A plaintext or TLS client without a CA of its own: `connect_with(url, token, None)`.
pub fn connect(url: &str, token: Option<&str>) -> Result<Client> {
    connect_with(url, token, None)
}

/// A client for the coordinator at `url` (`http://host:port`, or `https://host:port` for TLS).
/// Nothing is dialled until the first call, so this succeeds while the coordinator is still
/// down; calls then fail with `UNAVAILABLE` until it is up, and the channel reconnects on its
/// own. Must be called inside a tokio runtime (the channel spawns its connection task there).
///
/// `tls_ca` is the PEM file of the CA certificate(s) that signed the coordinator's certificate
/// (for a self-signed one: that certificate; for a public CA: the system bundle). An `https://`
/// URL needs it (this build trusts no system roots by itself); an `http://` URL refuses it, so
/// that a forgotten `s` never silently downgrades to plaintext.
pub fn connect_with(url: &str, token: Option<&str>, tls_ca: Option<&Path>) -> Result<Client> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("invalid --coordinator: {url:?} is not a URL"))?
        .connect_timeout(Duration::from_secs(5))
        // Bounds every call, so a coordinator that hangs cannot hang a worker or a client.
        .timeout(Duration::from_secs(120))
        .tcp_nodelay(true);
    if endpoint.uri().scheme_str().is_none() || endpoint.uri().host().is_none() {
        anyhow::bail!(
            "invalid --coordinator: {url:?} needs a scheme and host, e.g. http://127.0.0.1:50051"
        );
    }
    let endpoint = match (endpoint.uri().scheme_str(), tls_ca) {
        (Some("http"), None) => endpoint,
        (Some("http"), Some(ca)) => anyhow::bail!(
            "--tls-ca {} is set but --coordinator {url} is plaintext: use https:// for TLS, or \
             unset --tls-ca / $MODSYNC_TLS_CA",
            ca.display()
        ),
        (Some("https"), None) => anyhow::bail!(
            "--coordinator {url} uses TLS: give the CA certificate to trust with --tls-ca or \
             $MODSYNC_TLS_CA (for a public CA, the system bundle, e.g. \
             /etc/ssl/certs/ca-certificates.crt)"
        ),
        (Some("https"), Some(ca)) => endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(read_ca(ca)?))
            .map_err(|e| anyhow::anyhow!("invalid --tls-ca {}: {e}", ca.display()))?,
        (Some(other), _) => anyhow::bail!(
            "invalid --coordinator: {url:?} has scheme {other:?}; use http:// or https://"
        ),
        (None, _) => unreachable!("checked above"),
    };
    let auth = Auth::new(token)?;
    let channel = endpoint.connect_lazy();
    Ok(SweepsClient::with_interceptor(channel, auth)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// Reads the CA file of `--tls-ca`: PEM with at least one certificate.
fn read_ca(path: &Path) -> Result<Certificate> {
    let pem = std::fs::read(path)
        .with_context(|| format!("invalid --tls-ca: cannot read {}", path.display()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        anyhow::bail!(
            "invalid --tls-ca: {} is not a PEM file with a CERTIFICATE block",
            path.display()
        );
    }
    Ok(Certificate::from_pem(pem))
}

/// Whether a failed call may succeed if sent again unchanged: the coordinator was away, busy,
/// or the connection broke. Everything else (bad argument, stale lease, bad token) is final.
pub fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::Internal
    )
}

/// Whether the coordinator refused our credentials: retrying can never help.
pub fn is_auth_error(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unauthenticated | Code::PermissionDenied
    )
}

/// Capped exponential backoff: 100 ms, 200 ms, … up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            next: min,
            min,
            max,
        }
    }

    /// The delay before the next try; each call doubles the one after it, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for Backoff {
    /// 100 ms → 5 s: what the worker uses to reconnect to a coordinator that is away.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// One line for a failed call: `UNAVAILABLE: connection refused`, without tonic's metadata dump.
pub fn describe(status: &Status) -> String {
    let mut msg = status.message().to_string();
    if msg.is_empty() {
        msg = status.code().description().to_string();
    }
    // Transport errors hide the cause (connection refused …) in the source chain.
    let msg = modsync_proto::with_sources(msg, std::error::Error::source(status));
    format!("{}: {}", code_name(status.code()), msg)
}

/// The gRPC name of a status code (`FAILED_PRECONDITION`), as users see it in docs.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A failed call as one line a user can act on: `what` (the command) failed against the
/// coordinator at `coordinator`, and which flag or variable to look at.
pub fn explain(what: &str, coordinator: &str, status: &Status) -> anyhow::Error {
    match status.code() {
        Code::Unauthenticated => anyhow!(
            "{what}: the coordinator at {} refused the token (set --token or $MODSYNC_TOKEN): {}",
            coordinator,
            describe(status)
        ),
        Code::Unavailable => anyhow!(
            "{what}: cannot reach the coordinator at {} (set --coordinator or $MODSYNC_COORDINATOR; for TLS use https:// and --tls-ca): {}",
            coordinator,
            describe(status)
        ),
        // A plaintext client talking to a TLS server: the connection breaks at once (it reads
        // the TLS alert as HTTP/2 frames, or the server hangs up).
        Code::Internal | Code::Cancelled | Code::Unknown
            if coordinator.starts_with("http://")
                && describe(status).contains("transport error") =>
        {
            anyhow!(
                "{what}: the coordinator at {} does not speak plaintext gRPC (if it serves TLS, use https:// and --tls-ca): {}",
                coordinator,
                describe(status)
            )
        }
        _ => anyhow!("{what}: {}", describe(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let ms: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [100, 200, 350, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }

    #[tokio::test]
    async fn bad_urls_and_tokens_are_refused() {
        assert!(connect("not a url", None).is_err());
        assert!(connect("127.0.0.1:50051", None).is_err());
        assert!(connect("http://127.0.0.1:1", Some("line\nbreak")).is_err());
        assert!(connect("http://127.0.0.1:1", Some("fine-and-long-enough")).is_ok());
    }

    #[test]
    fn empty_or_blank_tokens_are_refused_naming_the_flag_and_variable() {
        for t in ["", " ", "\t", "  \t "] {
            let e = Auth::new(Some(t)).unwrap_err().to_string();
            assert!(
                e.contains("--token") && e.contains("MODSYNC_TOKEN") && e.contains("empty"),
                "{t:?}: {e}"
            );
        }
        assert!(Auth::new(None).is_ok());
        assert!(Auth::new(Some("0123456789abcdef")).is_ok());
    }

    #[test]
    fn short_tokens_are_refused_naming_the_flag() {
        for t in ["t", "0123456789abcde", " 0123456789abcde "] {
            let e = Auth::new(Some(t)).unwrap_err().to_string();
            assert!(e.contains("--token") && e.contains("16"), "{t:?}: {e}");
            if t.trim().len() > 5 {
                assert!(
                    !e.contains(t.trim()),
                    "{t:?}: the token is in the error: {e}"
                );
            }
        }
    }

    #[tokio::test]
    async fn tls_needs_https_and_a_readable_ca() {
        let dir = std::env::temp_dir().join(format!("modsync-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let missing = dir.join("missing.pem");
        let err = |url: &str, ca: Option<&Path>| match connect_with(url, None, ca) {
            Ok(_) => panic!("{url} with {ca:?} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        let e = err("https://127.0.0.1:1", None);
        assert!(e.contains("--tls-ca"), "{e}");
        let e = err("http://127.0.0.1:1", Some(&not_pem));
        assert!(e.contains("--tls-ca") && e.contains("https://"), "{e}");
        let e = err("https://127.0.0.1:1", Some(&missing));
        assert!(e.contains("--tls-ca") && e.contains("missing.pem"), "{e}");
        let e = err("https://127.0.0.1:1", Some(&not_pem));
        assert!(e.contains("--tls-ca") && e.contains("not.pem"), "{e}");
        let e = err("ftp://127.0.0.1:1", None);
        assert!(e.contains("http://"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let mut auth = Auth::new(Some("t0ps3cret-t0ps3cret")).unwrap();
        let request = auth.call(Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_some());
        for shown in [format!("{auth:?}"), format!("{:?}", request.metadata())] {
            assert!(!shown.contains("t0ps3cret"), "{shown}");
        }
    }

    #[tokio::test]
    async fn good_url_connects_lazily() {
        // Nothing listens on port 1: connecting is still fine, the first call fails transiently.
        let mut c = connect("http://127.0.0.1:1", Some("0123456789abcdef")).unwrap();
        let err = c
            .list_sweeps(modsync_proto::ListSweepsRequest {})
            .await
            .unwrap_err();
        assert!(is_transient(&err), "{}", describe(&err));
    }

    #[test]
    fn stale_lease_is_final() {
        assert!(!is_transient(&Status::failed_precondition("stale token")));
        assert!(is_auth_error(&Status::unauthenticated("bad token")));
    }
}
