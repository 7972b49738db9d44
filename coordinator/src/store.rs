//! `Store`: the SQLite file that holds everything, and the two connection pools onto it.
//!
//! Everything the coordinator knows lives in this file, so a restarted coordinator simply opens
//! it again and carries on (leases that expired while it was down are reaped on the first tick).
//! The operations live in the files named for what they do: the worker RPCs in
//! `worker_ops.rs` (their batched writes go through the group-commit [`Writer`] this store
//! owns, `writer.rs`), sweep operations in `sweep_ops.rs`, reaping in `reaper.rs`, reads in
//! `curves.rs`, `query/` and `sweep_ops.rs`; every statement that changes `jobs` rows is in
//! `jobs/`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use modsync_proto::{CurvePoint, LeaseJobRequest, QueryResponse, SweepSummary};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::Result;
use crate::reader::Reader;
use crate::schema::MIGRATOR;
use crate::sqlite_ext;
use crate::writer::Writer;

/// How long a statement waits for SQLite's write lock before giving up with "database is
/// locked". Our own writes queue in the one-connection write pool, so this only matters when
/// another process (a user's `sqlite3` shell) holds the lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A worker's row is rewritten at least this often by its leases (also when nothing is queued),
/// so `workers.last_seen_ms` of an idle worker stays fresh to this resolution. Leases that get a
/// job also update it through the trigger of migration 0002.
pub(crate) const WORKER_REFRESH_MS: i64 = 5_000;
/// Forget the worker cache past this many entries (it only saves statements).
const MAX_CACHED_WORKERS: usize = 100_000;

/// A worker's `workers` row as a lease last wrote it.
#[derive(Debug)]
struct WorkerRow {
    host: String,
    device: String,
    /// When it was written (ms since the epoch).
    at: i64,
}

/// The coordinator's store. Cheap to clone (two pool handles and a shared cache).
#[derive(Clone, Debug)]
pub struct Store {
    /// The only connection that writes. One connection means concurrent writers queue fairly in
    /// the pool instead of spinning in SQLite's busy handler, and every write transaction starts
    /// with `BEGIN IMMEDIATE` so the check-then-write of a lease or a fenced write can never
    /// interleave with another. It is kept open for the store's lifetime, which also keeps the
    /// WAL files in place for the read-only connections.
    pub(crate) write: SqlitePool,
    /// Read-only connections (`SQLITE_OPEN_READONLY`, `PRAGMA query_only = 1`, no ATTACH) for
    /// everything that only reads, above all the user's SQL in Query. Read-only at the SQLite
    /// level is the real guarantee; the text check in `query/guard.rs` only gives clearer messages.
    pub(crate) read: Reader,
    /// worker id → (host, device, when its row was last written), so that a lease does not
    /// rewrite an unchanged `workers` row every time (one statement less per lease). Only
    /// bookkeeping: the lease itself never depends on it.
    workers_written: Arc<Mutex<HashMap<String, WorkerRow>>>,
    /// The writer thread that batches the hot worker writes (lease, heartbeat, progress,
    /// completion) into group commits on the write connection; see `writer.rs`. Shared by every
    /// clone; the thread stops at [`Store::close`] or when the last clone is dropped.
    pub(crate) writer: Arc<Writer>,
}

impl Store {
    /// Opens (creating if missing, with parent directories) the SQLite file at `path` in WAL
    /// mode and applies the migrations.
    pub async fn open(path: &Path) -> Result<Store> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);

        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(60))
            .after_connect(|conn, _| Box::pin(sqlite_ext::register_sqrt(conn)))
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // NORMAL in WAL mode: a commit appends to the WAL without an fsync; the WAL
                    // is synced at each checkpoint. Every acknowledged write (lease, completion,
                    // …) survives the coordinator process crashing or being SIGKILLed — the WAL
                    // frames are in the OS page cache and the next open replays them — but the
                    // last transactions before a power cut or kernel crash may roll back. FULL
                    // (an fsync per commit) capped bench/coordinator-load at ~1,100 RPCs/s (250
                    // lease+complete cycles/s) on the 2-core dev machine; NORMAL alone doubled it.
                    .synchronous(SqliteSynchronous::Normal),
            )
            .await?;
        MIGRATOR.run(&write).await?;

        let read = Reader::connect(base).await?;

        let writer = Arc::new(Writer::spawn(write.clone())?);
        Ok(Store {
            write,
            read,
            writer,
            workers_written: Arc::default(),
        })
    }

    /// Stops the writer (after it answered the writes already queued; later ones are refused),
    /// then closes both pools, waiting for checked-out connections to come back.
    pub async fn close(&self) {
        self.writer.stop().await;
        self.read.close().await;
        self.write.close().await;
    }

    /// The store's read-only side (what `modsync dashboard` and `--db` readers get from
    /// [`Reader::open`] without a coordinator).
    pub fn reader(&self) -> &Reader {
        &self.read
    }

    /// [`Reader::query`] on this store's read connections.
    pub async fn query(
        &self,
        sql: &str,
        max_rows: usize,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<QueryResponse> {
        self.read.query(sql, max_rows, timeout, max_bytes).await
    }

    /// [`Reader::list_sweeps`].
    pub async fn list_sweeps(&self) -> Result<Vec<SweepSummary>> {
        self.read.list_sweeps().await
    }

    /// [`Reader::get_sweep`].
    pub async fn get_sweep(&self, sweep_id: &str) -> Result<SweepSummary> {
        self.read.get_sweep(sweep_id).await
    }

    /// [`Reader::curves`].
    pub async fn curves(&self, sweep_id: &str) -> Result<Vec<CurvePoint>> {
        self.read.curves(sweep_id).await
    }
}

impl Store {
    /// Whether a lease by this worker should (re)write its `workers` row: new or changed host or
    /// device, or not written for [`WORKER_REFRESH_MS`].
    pub(crate) fn worker_needs_write(&self, req: &LeaseJobRequest, now: i64) -> bool {
        let cache = self
            .workers_written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match cache.get(&req.worker_id) {
            Some(row) => {
                row.host != req.host
                    || row.device != req.device
                    || now - row.at >= WORKER_REFRESH_MS
            }
            None => true,
        }
    }

    /// Notes that the worker's row was written (after the commit).
    pub(crate) fn worker_written(&self, req: &LeaseJobRequest, now: i64) {
        let mut cache = self
            .workers_written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= MAX_CACHED_WORKERS && !cache.contains_key(&req.worker_id) {
            cache.clear();
        }
        cache.insert(
            req.worker_id.clone(),
            WorkerRow {
                host: req.host.clone(),
                device: req.device.clone(),
                at: now,
            },
        );
    }
}
