//! `modsync coordinator [--http ADDR]`: the coordinator's gRPC service and, beside it on the
//! same runtime and store, the dashboard; both stop together.

use std::future::Future;

use anyhow::{Result, anyhow};
use coordinator::{Reader, ServeConfig, Store};
use dashboard::DashboardConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves the coordinator on `listener` (and with `web` the dashboard) until `shutdown`
/// resolves or the coordinator fails; the dashboard goes with it.
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    web: Option<(TcpListener, DashboardConfig)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let stop = CancellationToken::new();
    let mut web_server = None;
    if let Some((http, web)) = web {
        // Opening the store once first applies its migrations, so the read-only reader finds
        // the schema it expects.
        Store::open(&config.db)
            .await
            .map_err(|e| anyhow!("coordinator: {e}"))?
            .close()
            .await;
        let reader = Reader::open(&config.db)
            .await
            .map_err(|e| anyhow!("coordinator: {e}"))?;
        web_server = Some(tokio::spawn(dashboard::serve(
            reader,
            http,
            web,
            stop.clone().cancelled_owned(),
        )));
    }
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });
    let served = coordinator::serve_with_listener(config, listener, stop.clone().cancelled_owned())
        .await
        .map_err(|e| anyhow!("coordinator: {e}"));
    // The gRPC side ended (signal or error): the dashboard goes with it.
    stop.cancel();
    if let Some(web_server) = web_server {
        match web_server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "dashboard stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "dashboard task failed"),
        }
    }
    served
}
