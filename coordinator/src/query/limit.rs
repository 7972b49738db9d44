//! A Query's time limit and what happens past it: the statement is interrupted inside SQLite at
//! the deadline (the progress handler set in [`super`]), and a connection that has still not
//! come back a second later leaves the pool and is interrupted until it returns ([`rescue`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, SqliteConnection};
use tokio::sync::OwnedSemaphorePermit;

use crate::error::Error;
use crate::sqlite_ext;

/// How long a stuck connection's rescuer keeps interrupting it before giving up (and leaving
/// it, and its Query permit, where they are).
const RESCUE_FOR: Duration = Duration::from_secs(60);

/// A Query's time limit: the statement is interrupted inside SQLite at `deadline`; nothing is
/// waited for past `outer`, one second later (time outside SQLite's VM: the permit, the pool,
/// a connection that never yields).
pub(super) struct Limit {
    pub(super) timeout: Duration,
    pub(super) deadline: tokio::time::Instant,
    pub(super) outer: tokio::time::Instant,
}

impl Limit {
    pub(super) fn new(timeout: Duration) -> Limit {
        let now = tokio::time::Instant::now();
        Limit {
            timeout,
            deadline: now + timeout,
            outer: now + timeout + Duration::from_secs(1),
        }
    }

    pub(super) fn error(&self) -> Error {
        Error::Timeout(format!(
            "query ran longer than {} ms and was interrupted (the coordinator's \
             --query-timeout-ms)",
            self.timeout.as_millis()
        ))
    }
}

/// A connection out of the pool whose worker thread is still busy with a Query, with the
/// thread that interrupts it and the Query permit it holds. Dropping it stops (and joins) the
/// interrupting thread *before* the connection goes: the handle must stay open while anyone
/// may call `sqlite3_interrupt` on it.
struct Stuck {
    stop: Arc<AtomicBool>,
    interrupting: Option<std::thread::JoinHandle<()>>,
    conn: Option<SqliteConnection>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Stuck {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.interrupting.take() {
            let _ = t.join();
        }
        drop(self.conn.take());
    }
}

/// Gets a stuck connection back without anyone waiting for it: a thread calls
/// `sqlite3_interrupt` on it every 50 µs (a statement in SQLite's VM stops at once; sqlx's
/// statement loop, which re-enters the parser, stops the first time an interrupt lands between
/// the parser clearing the flag and reading its first token) until its worker thread answers a
/// ping, then the connection is closed and the permit returned. Gives up after [`RESCUE_FOR`]
/// (the permit then stays taken: at most `READ_CONNECTIONS` can ever be lost this way).
pub(super) fn rescue(
    conn: SqliteConnection,
    interrupter: sqlite_ext::Interrupter,
    permit: OwnedSemaphorePermit,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let interrupting = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("modsync-query-rescue".into())
            .spawn(move || {
                let until = Instant::now() + RESCUE_FOR;
                while !stop.load(Ordering::Acquire) {
                    if Instant::now() > until {
                        tracing::error!(
                            "a stuck Query connection did not come back after {RESCUE_FOR:?} of \
                             interrupts; left as it is"
                        );
                        return;
                    }
                    // SAFETY: `Stuck` holds the connection until this thread has stopped and
                    // been joined, so its handle is open for every call.
                    unsafe { interrupter.interrupt() };
                    std::thread::sleep(Duration::from_micros(50));
                }
            })
    };
    let interrupting = match interrupting {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the thread that interrupts a stuck Query");
            None
        }
    };
    let mut stuck = Stuck {
        stop,
        interrupting,
        conn: Some(conn),
        _permit: permit,
    };
    tokio::spawn(async move {
        let started = Instant::now();
        if let Some(conn) = stuck.conn.as_mut() {
            // Answered once the worker thread finished what it was doing.
            let _ = conn.ping().await;
        }
        tracing::info!(
            after_ms = started.elapsed().as_millis() as u64,
            "a stuck Query connection came back; closed"
        );
        drop(stuck);
    });
}
