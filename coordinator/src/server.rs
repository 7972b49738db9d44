//! Running the coordinator: open the store, start the reaper, serve gRPC until the shutdown
//! future completes, then drain in-flight RPCs, stop the reaper and close the store — in that
//! order, so no RPC ever runs against a closed store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use modsync_proto::sweeps_server::SweepsServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use crate::auth::BearerAuth;
use crate::config::ServeConfig;
use crate::error::Result;
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
    let store = Store::open(&config.db).await?;
    let addr = listener.local_addr()?;
    let reaper = Reaper::spawn(store.clone(), Duration::from_millis(config.reap_every_ms));
    let auth = BearerAuth::new(config.token.as_deref());
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
        "coordinator listening"
    );
    let served = Server::builder()
        .add_service(health_service)
        .add_service(InterceptedService::new(service, auth))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    reaper.stop().await;
    store.close().await;
    tracing::info!("coordinator stopped");
    Ok(served?)
}
