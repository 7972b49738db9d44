//! Connection limits of the network ports (issue 26, hole 2): before them a connection that
//! sent nothing was kept for ever, so a few hundred idle ones used up the process's file
//! descriptors, and tonic's accept loop then retried `accept` on EMFILE without pausing (one
//! core at 100 %) while no client was answered.
//!
//! - [`Acceptor`]: an accept loop that pauses on errors (EMFILE, ENFILE, ENOBUFS, ...: 50 ms,
//!   doubling up to 1 s, logged at most every 10 s) instead of spinning, and sets `TCP_NODELAY`
//!   and TCP keepalive on every accepted socket. The dashboard uses it too.
//! - [`incoming`]: the gRPC port's connections for tonic. Each holds a permit of a semaphore of
//!   `max_connections` for its whole life (at the cap no more are accepted: they wait in the
//!   kernel's backlog), and is handed to tonic only once it sent its first bytes within the
//!   idle timeout (a spawned task peeks, as the dashboard's TLS handshakes run); the rest of
//!   the HTTP/2 preface (24 bytes; a TLS ClientHello is longer) must follow within the same
//!   deadline, so a client that sends one byte and stalls is closed too. After that HTTP/2
//!   keepalive pings (`server.rs`) find dead peers.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Sleep;
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// TCP keepalive on accepted sockets: the kernel probes a connection idle this long, so a peer
/// that vanished (powered off, cable pulled) is dropped within minutes even without HTTP/2.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// HTTP/2 PING on a gRPC connection idle this long; no answer within the timeout closes it.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a gRPC connection must send within the idle timeout: the HTTP/2 client preface.
const PREFACE_BYTES: usize = 24;

/// The first and the longest pause after a failed `accept`.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one warning per this long while `accept` keeps failing.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Accepts connections, pausing on errors instead of retrying at once.
pub struct Acceptor {
    listener: TcpListener,
    /// Which port, for the log.
    what: &'static str,
    backoff: Duration,
    failures: u64,
    warned: Option<Instant>,
}

impl Acceptor {
    pub fn new(listener: TcpListener, what: &'static str) -> Acceptor {
        Acceptor {
            listener,
            what,
            backoff: BACKOFF_MIN,
            failures: 0,
            warned: None,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection, with `TCP_NODELAY` and TCP keepalive set. Errors of one connection
    /// (it was reset before it was accepted) are skipped; any other error (out of file
    /// descriptors or memory) pauses the loop: the pending connection stays in the backlog and
    /// a retry at once would fail the same way.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    if self.failures > 0 {
                        tracing::info!(
                            port = self.what,
                            failures = self.failures,
                            "accepting connections again"
                        );
                    }
                    self.backoff = BACKOFF_MIN;
                    self.failures = 0;
                    tune(&stream);
                    return (stream, peer);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    self.failures += 1;
                    if self.warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                        self.warned = Some(Instant::now());
                        tracing::warn!(
                            port = self.what,
                            error = %e,
                            pause_ms = self.backoff.as_millis() as u64,
                            failures = self.failures,
                            "accept failed: pausing (out of file descriptors? raise the open-file \
                             limit, e.g. LimitNOFILE, or lower --max-connections / \
                             --http-max-connections)"
                        );
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// `TCP_NODELAY` and TCP keepalive on an accepted socket. Nagle off: a response split over two
/// writes would otherwise wait for the client's delayed ACK (~40 ms on Linux;
/// bench/coordinator-load with 20 workers: p99 46 ms and 191 cycles/s without it, 7-10 ms and
/// 325 cycles/s with it).
pub fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE)
        .with_interval(Duration::from_secs(10))
        .with_retries(6);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// The process's soft limit on open files, if known.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Warns when `connections` (the caps of the ports this process serves) plus a reserve for the
/// store and the rest do not fit in the open-file limit: past it `accept` fails with EMFILE
/// (and pauses) before the caps are reached.
pub fn warn_if_above_file_limit(connections: usize) {
    const RESERVE: u64 = 64;
    if let Some(limit) = open_file_limit()
        && (connections as u64).saturating_add(RESERVE) > limit
    {
        tracing::warn!(
            open_file_limit = limit,
            connections,
            "the open-file limit is below the connection caps plus {RESERVE}: at that many \
             connections accept fails (and pauses) before a cap is reached; raise it \
             (systemd LimitNOFILE=, ulimit -n) or lower the caps"
        );
    }
}

/// A gRPC connection: the socket, its permit under the cap, and the deadline for the rest of
/// its preface.
pub struct Conn {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Until `PREFACE_BYTES` were read: the deadline and how many are still due.
    preface: Option<(Pin<Box<Sleep>>, usize)>,
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.stream.local_addr().ok(),
            remote_addr: self.stream.peer_addr().ok(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some((deadline, _)) = &mut this.preface
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete HTTP/2 preface or TLS hello within the idle timeout",
            )));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some((_, due))) = (&read, &mut this.preface) {
            let n = buf.filled().len() - before;
            *due = due.saturating_sub(n);
            if *due == 0 || n == 0 {
                this.preface = None;
            }
        }
        read
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The gRPC port's connections (see the module doc). Dropping it (tonic does when shutting
/// down) stops accepting and closes the listening socket at once.
pub struct Incoming {
    ready: mpsc::Receiver<Conn>,
    accepting: JoinHandle<()>,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// Connections from `listener`, at most `max_connections` at a time, each handed on once its
/// first bytes arrived within `idle_timeout` (must be called inside a tokio runtime).
pub fn incoming(listener: TcpListener, max_connections: usize, idle_timeout: Duration) -> Incoming {
    let (tx, ready) = mpsc::channel(64);
    let cap = Arc::new(Semaphore::new(max_connections));
    let mut acceptor = Acceptor::new(listener, "grpc");
    let accepting = tokio::spawn(async move {
        loop {
            // At the cap, stop accepting until a connection ends.
            let Ok(permit) = cap.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = acceptor.accept().await;
            let tx = tx.clone();
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + idle_timeout;
                let mut first = [0u8; 1];
                match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
                    Ok(Ok(n)) if n > 0 => {
                        let conn = Conn {
                            stream,
                            _permit: permit,
                            preface: Some((
                                Box::pin(tokio::time::sleep_until(deadline)),
                                PREFACE_BYTES,
                            )),
                        };
                        // Fails only when the server stopped accepting: the connection closes.
                        let _ = tx.send(conn).await;
                    }
                    Ok(Ok(_)) => tracing::debug!(%peer, "grpc: closed before sending anything"),
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "grpc: connection failed"),
                    Err(_) => tracing::debug!(
                        %peer,
                        "grpc: closed a connection that sent nothing within the idle timeout"
                    ),
                }
            });
        }
    });
    Incoming { ready, accepting }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn silent_connections_never_reach_the_server_and_the_cap_holds() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = incoming(listener, 2, Duration::from_millis(300));
        // Two silent connections take the two places; a third that talks waits until the
        // silent ones are closed, then gets through.
        let mut silent1 = TcpStream::connect(addr).await.unwrap();
        let mut silent2 = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut talker = TcpStream::connect(addr).await.unwrap();
        talker.write_all(&[0u8; PREFACE_BYTES]).await.unwrap();
        let started = Instant::now();
        let conn = tokio::time::timeout(Duration::from_secs(5), incoming.next())
            .await
            .expect("the talker got through")
            .unwrap()
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "the cap held"
        );
        assert_eq!(
            conn.connect_info().remote_addr,
            Some(talker.local_addr().unwrap())
        );
        let mut buf = [0u8; 1];
        assert_eq!(silent1.read(&mut buf).await.unwrap(), 0, "closed");
        assert_eq!(silent2.read(&mut buf).await.unwrap(), 0, "closed");
    }

    #[tokio::test]
    async fn a_stalled_preface_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = incoming(listener, 8, Duration::from_millis(300));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"PRI * ").await.unwrap();
        let mut conn = incoming.next().await.unwrap().unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"PRI * ");
        let e = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
