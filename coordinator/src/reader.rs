//! `Reader`: read-only access to a store, with or without a coordinator.
//!
//! The coordinator's [`Store`](crate::Store) reads through one (its Query, status and curves
//! reads); `modsync sql|status|curves --db FILE` and the dashboard open one directly on a store
//! file that no coordinator serves any more ([`Reader::open`]). Both are the same pool of
//! connections opened `SQLITE_OPEN_READONLY` (SQLite's `mode=ro`), with `PRAGMA query_only = 1`
//! and ATTACH forbidden, so the read operations (`query/`, `curves.rs`, `sweep_ops.rs`) and their
//! guard are one piece of code whichever way the store was opened.
//!
//! Every read connection also refuses values and rows over [`MAX_VALUE_BYTES`] and SQL text
//! over [`MAX_SQL_BYTES`] inside SQLite (`SQLITE_LIMIT_LENGTH`, `SQLITE_LIMIT_SQL_LENGTH`); a
//! Query lowers the first to its own byte cap while it runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Executor, SqliteConnection};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::schema::MIGRATOR;
use crate::sqlite_ext;

/// Read connections: Query, status, curves and dashboard reads run side by side with the
/// writer (WAL). Also the number of Queries that run at once (`Reader::query_slots`).
const READ_CONNECTIONS: u32 = 4;
/// How long a read waits for SQLite's locks (a checkpoint by the writer, a user's `sqlite3`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest string, blob or row a read connection makes or reads (`SQLITE_LIMIT_LENGTH`): the
/// coordinator's default gRPC message cap (`--max-message-bytes`), since nothing larger could
/// be sent anyway. A Query sets it to its own byte cap while it runs.
pub const MAX_VALUE_BYTES: usize = 256 * 1024 * 1024;
/// Longest SQL text a Query takes, in bytes (SQLite's own historical default of
/// `SQLITE_MAX_SQL_LENGTH`); longer text is refused before it is read or a connection is
/// waited for, and SQLite refuses it too (`SQLITE_LIMIT_SQL_LENGTH`).
pub const MAX_SQL_BYTES: usize = 1_000_000;

/// A pool of read-only connections onto one store file. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Reader {
    pub(crate) pool: SqlitePool,
    /// One permit per Query running: taken before anything is allocated for the request's
    /// SQL, and held by a stuck connection until it came back (`query/limit.rs`), so at most
    /// [`READ_CONNECTIONS`] Queries (running or stuck) exist at once, whatever the pool does.
    pub(crate) query_slots: Arc<Semaphore>,
}

impl Reader {
    /// Opens the existing store at `path` read-only. Nothing is created or written: not the
    /// file (a missing one is an error naming `db`), not the schema (a store whose migrations
    /// are missing or older than this program's is refused, since the reads would fail on it).
    pub async fn open(path: &Path) -> Result<Reader> {
        if !path.is_file() {
            return Err(Error::invalid(
                "db",
                format!("{}: no such store file", path.display()),
            ));
        }
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let reader = Reader::connect(base).await.map_err(|e| {
            Error::invalid(
                "db",
                format!("{}: cannot open the store: {e}", path.display()),
            )
        })?;
        reader.check_schema(path).await?;
        Ok(reader)
    }

    /// The read-only pool over `base` (the store's own connect options, so the same file and
    /// busy timeout). Connections are opened lazily, on first use.
    pub(crate) async fn connect(base: SqliteConnectOptions) -> Result<Reader, sqlx::Error> {
        let pool = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlite_ext::register_sqrt(conn).await?;
                    sqlite_ext::forbid_attach(conn).await?;
                    sqlite_ext::limit_lengths(conn, MAX_VALUE_BYTES, MAX_SQL_BYTES).await
                })
            })
            // A Query dropped half-way (client gone) leaves its interrupt handler and its
            // length limit on the connection; clear them, and re-assert query_only, before
            // anyone reuses it.
            .before_acquire(|conn, _| {
                Box::pin(async move { reset_read(conn).await.map(|()| true) })
            })
            .connect_with(base.read_only(true).pragma("query_only", "1"))
            .await?;
        Ok(Reader {
            pool,
            query_slots: Arc::new(Semaphore::new(READ_CONNECTIONS as usize)),
        })
    }

    /// Refuses a file that is not a modsync store, or one whose schema this program would have
    /// to migrate first (only a coordinator writes, so only a coordinator migrates).
    async fn check_schema(&self, path: &Path) -> Result<()> {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| {
                    Error::invalid(
                        "db",
                        format!("{}: not a modsync store ({e})", path.display()),
                    )
                })?;
        let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        match applied {
            Some(v) if v >= latest => Ok(()),
            v => Err(Error::invalid(
                "db",
                format!(
                    "{}: the store's schema is at version {}, this program reads version \
                     {latest}; open it once with `modsync coordinator --db` to migrate it",
                    path.display(),
                    v.unwrap_or(0)
                ),
            )),
        }
    }

    /// The read-only connections, for readers with their own SQL (the dashboard). Every
    /// connection refuses writes inside SQLite, whatever is sent on it.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool, waiting for checked-out connections to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Puts a read connection back into its pristine state.
async fn reset_read(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    {
        let mut handle = conn.lock_handle().await?;
        handle.remove_progress_handler();
        sqlite_ext::set_length_limit(&mut handle, MAX_VALUE_BYTES);
    }
    conn.execute("PRAGMA query_only = 1").await?;
    Ok(())
}
