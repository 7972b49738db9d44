//! Running the coordinator: open the store, start the reaper, serve gRPC until the shutdown
//! future completes, then drain in-flight RPCs, stop the reaper and close the store — in that
//! order, so no RPC ever runs against a closed store.
//!
//! Draining: once `shutdown` completes, no new connection is accepted, every connection is sent
//! a GOAWAY (new calls on it are refused, so clients retry elsewhere or later), health Watch
//! streams are told NOT_SERVING and ended (they would never end by themselves), and every
//! other RPC already received runs to its answer — a completion is answered after its COMMIT.
//! `serve_with_listener` returns when the last one was answered.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use modsync_proto::sweeps_server::SweepsServer;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::auth::BearerAuth;
use crate::config::ServeConfig;
use crate::conn;
use crate::error::{Error, Result};
use crate::reaper::Reaper;
use crate::service::SweepService;
use crate::store::Store;

/// Binds `config.listen` and serves until `shutdown` completes.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen).await?;
    serve_with_listener(config, listener, shutdown).await
}

/// Serves on an already bound listener (bind `127.0.0.1:0` and read `local_addr()` first to
/// learn the port; `config.listen` is ignored). Returns after `shutdown` completes and every
/// in-flight RPC has finished.
pub async fn serve_with_listener(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    config.validate()?;
    // `config.listen` is not what is served here: check the address really bound.
    config.check_exposure(listener.local_addr()?)?;
    // Bad certificate files fail here, before the store is opened.
    // Connection limits (issue 26, hole 2; `conn.rs`): HTTP/2 keepalive pings find dead peers,
    // and one connection runs at most `max_rpcs_per_connection` RPCs at once. The cap on
    // connections, the deadline for a new connection's first bytes, TCP keepalive and
    // TCP_NODELAY come with the connections themselves (`conn::incoming`).
    let rpcs = config.max_rpcs_per_connection;
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(conn::HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(conn::HTTP2_KEEPALIVE_TIMEOUT))
        .concurrency_limit_per_connection(rpcs)
        .max_concurrent_streams(Some(u32::try_from(rpcs).unwrap_or(u32::MAX)));
    if let Some(tls) = config.load_tls()? {
        // A handshake that has not finished within the idle timeout is dropped.
        builder = builder.tls_config(tls.timeout(config.idle_timeout()))?;
    }
    let store = Store::open(&config.db).await?;
    let addr = listener.local_addr()?;
    let reaper = Reaper::spawn(store.clone(), Duration::from_millis(config.reap_every_ms));
    let auth = BearerAuth::new(config.token.as_deref()).with_limiter(config.auth_limiter.clone());
    let max = config.max_message_bytes;
    let config = Arc::new(config);
    let service = SweepsServer::new(SweepService::new(store.clone(), config.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    // The standard gRPC health protocol (grpc.health.v1), for Kubernetes probes and load
    // balancers. It answers without a token: a probe must not need the secret, and it reveals
    // nothing but "serving".
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<SweepsServer<SweepService>>()
        .await;
    tracing::info!(
        %addr,
        db = %config.db.display(),
        auth = config.token.is_some(),
        tls = config.tls_cert.is_some(),
        "coordinator listening"
    );
    if config.insecure_no_auth {
        tracing::warn!(
            %addr,
            "serving without authentication (--insecure-no-auth): anyone who can reach this \
             address can read and change every sweep"
        );
    }
    let served = builder
        .add_service(health_service)
        .add_service(InterceptedService::new(service, auth))
        // TCP_NODELAY on every accepted socket (`conn::tune`; tonic sets it only on listeners
        // it binds itself): with Nagle on, a response split over two writes waits for the
        // client's delayed ACK (~40 ms on Linux). bench/coordinator-load with 20 workers: p99
        // 46 ms and 191 cycles/s without it, 7-10 ms and 325 cycles/s with it.
        .serve_with_incoming_shutdown(
            conn::incoming(listener, config.max_connections, config.idle_timeout()),
            async move {
                shutdown.await;
                tracing::info!("shutting down: answering the RPCs in flight");
                end_health_watches(health_reporter).await;
            },
        )
        .await;
    reaper.stop().await;
    store.close().await;
    tracing::info!("coordinator stopped");
    Ok(served?)
}

/// Ends every open health Watch stream, after telling it NOT_SERVING. A Watch never ends by
/// itself, and the graceful shutdown waits for every open RPC: one probe watching would keep
/// the coordinator from ever exiting. Its stream ends when the status it watches is cleared.
async fn end_health_watches(mut reporter: HealthReporter) {
    let sweeps = <SweepsServer<SweepService> as NamedService>::NAME;
    // "" is the server as a whole.
    for service in ["", sweeps] {
        reporter
            .set_service_status(service, ServingStatus::NotServing)
            .await;
        reporter.clear_service_status(service).await;
    }
}

impl ServeConfig {
    /// Reads and checks `tls_cert` and `tls_key`: `Ok(None)` without TLS, an error naming the
    /// flag and the file when one is missing, unreadable or not PEM of the right kind. `serve`
    /// calls it; call it before printing "listening" to fail early.
    pub fn load_tls(&self) -> Result<Option<ServerTlsConfig>> {
        let (cert_path, key_path) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => return Ok(None),
            (Some(c), Some(k)) => (c, k),
            _ => {
                return Err(Error::Config(
                    "--tls-cert and --tls-key go together (give both or neither)".into(),
                ));
            }
        };
        let cert = read_pem("--tls-cert", cert_path, &["CERTIFICATE"])?;
        let key = read_pem(
            "--tls-key",
            key_path,
            &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
        )?;
        let tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        // Builds the rustls acceptor now, so a certificate or key that does not parse (or a key
        // that does not match) is reported at start-up, not at the first connection.
        Server::builder().tls_config(tls.clone()).map_err(|e| {
            Error::Config(format!(
                "--tls-cert {} / --tls-key {}: {}",
                cert_path.display(),
                key_path.display(),
                modsync_proto::with_sources(e.to_string(), std::error::Error::source(&e))
            ))
        })?;
        Ok(Some(tls))
    }
}

/// The contents of a PEM file that holds at least one block of one of `labels`.
fn read_pem(flag: &str, path: &Path, labels: &[&str]) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Config(format!("{flag}: cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    if !labels
        .iter()
        .any(|l| text.contains(&format!("-----BEGIN {l}-----")))
    {
        return Err(Error::Config(format!(
            "{flag}: {} is not a PEM file with a {} block",
            path.display(),
            labels[0]
        )));
    }
    Ok(bytes)
}
