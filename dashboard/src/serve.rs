//! The dashboard's connection loop (issue 26, hole 2): hyper's HTTP/1 server, one task per
//! connection, with the limits `axum::serve` does not set.
//!
//! - At most `max_connections` connections at once: each holds a semaphore permit for its
//!   life, and at the cap no more are accepted (they wait in the kernel's backlog).
//! - A header-read timeout (`idle_timeout`): a connection that has not sent a complete request
//!   head this long after it opened, or after its previous response (keep-alive), is closed.
//!   HTTPS handshakes get the same time, in the connection's own task.
//! - A write timeout (the same `idle_timeout`): a response the client stops reading (a stalled
//!   `results.csv` download) ends the connection once a write has waited that long, so stalled
//!   clients cannot keep connections (and the cap) for good (issue 26, hole 4).
//! - The accept loop pauses on errors (EMFILE) instead of spinning, and sets `TCP_NODELAY` and
//!   TCP keepalive (`coordinator::conn::Acceptor`).
//! - Graceful shutdown: no new connection once `shutdown` completes (the listening socket is
//!   closed), idle keep-alive connections close, requests in flight get their answer.
//!
//! Each request carries the client's address (`ConnectInfo<SocketAddr>`), for the
//! failed-authentication limit.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use coordinator::conn::Acceptor;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Serves `app` on `listener` (HTTPS when `tls` is given) until `shutdown` completes and every
/// connection has finished.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
    idle_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let cap = Arc::new(Semaphore::new(max_connections));
    let mut acceptor = Acceptor::new(listener, "http");
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .keep_alive(true);
    // Every connection task holds a receiver: `stop` tells them to finish, and `stop.closed()`
    // resolves once the last one is gone.
    let (stop, stopping) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = cap.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            c = acceptor.accept() => c,
        };
        let (app, http, tls, stopping) = (app.clone(), http.clone(), tls.clone(), stopping.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => connection(stream, peer, app, http, idle_timeout, stopping).await,
                Some(tls) => {
                    let mut until_stop = stopping.clone();
                    let handshake = tokio::time::timeout(idle_timeout, tls.accept(stream));
                    let stream = tokio::select! {
                        r = handshake => match r {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "dashboard: TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "dashboard: TLS handshake timed out");
                                return;
                            }
                        },
                        _ = until_stop.changed() => return,
                    };
                    connection(stream, peer, app, http, idle_timeout, stopping).await
                }
            }
        });
    }
    // Closes the listening socket: nothing new is accepted while the others finish.
    drop(acceptor);
    let _ = stop.send(());
    drop(stopping);
    stop.closed().await;
}

/// Serves one connection until it ends, or until told to stop (then it finishes the request in
/// flight, if any, and closes).
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    http: http1::Builder,
    write_timeout: Duration,
    mut stop: watch::Receiver<()>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = app.map_request(move |mut req: axum::http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let mut io = TimeoutStream::new(io);
    io.set_write_timeout(Some(write_timeout));
    let conn = http.serve_connection(TokioIo::new(Box::pin(io)), TowerToHyperService::new(app));
    tokio::pin!(conn);
    let served = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = served {
        // A header-read timeout, a client that went away, a malformed request.
        tracing::debug!(%peer, error = %e, "dashboard: connection ended");
    }
}
