//! Query: a user's SQL, read-only, on the store.
//!
//! Two layers, on purpose:
//! 1. [`check`] reads the text and refuses anything that is not a single SELECT / WITH /
//!    VALUES / EXPLAIN statement, or that names a writing keyword anywhere (a CTE can wrap a
//!    DELETE). It exists to give a clear message ("refused: DELETE writes to the store"). It is
//!    not the guarantee: a text check can always be outwitted.
//! 2. The guarantee is the connection: opened `SQLITE_OPEN_READONLY`, `PRAGMA query_only = 1`,
//!    and `SQLITE_LIMIT_ATTACHED = 0` (so neither ATTACH nor `VACUUM INTO` can open or create
//!    another file). SQLite itself refuses every write there.
//!
//! Before either, [`check_bytes`] refuses text over [`MAX_SQL_BYTES`] and text with a NUL byte
//! (which sqlx-sqlite's statement loop cannot step past), without copying or waiting for
//! anything; then the Query takes one of `READ_CONNECTIONS` (4) permits, and only
//! then is the text tokenised and prepared.
//!
//! Limits: rows (`max_rows`; the response says `truncated`; asking for more than the
//! coordinator's cap is refused by the service), bytes (the gRPC message limit; also
//! `truncated`; and no single value or row over it is made at all: `SQLITE_LIMIT_LENGTH` is the
//! cap while the Query runs, so `zeroblob(400000000)` fails inside SQLite), SQL text
//! ([`MAX_SQL_BYTES`]), and time: a progress handler interrupts the statement inside SQLite at
//! the deadline, so a runaway recursive CTE stops instead of pinning a connection; and a
//! connection that still has not come back a second later (stuck outside SQLite's VM) is not
//! waited for: it leaves the pool, which opens a fresh one, and is interrupted until it
//! returns (`rescue`).
//!
//! Errors: a refused statement is `PERMISSION_DENIED`, a statement SQLite cannot run (syntax,
//! unknown table, a value over the byte cap) or text refused by [`check_bytes`] is
//! `INVALID_ARGUMENT` naming `sql`, a timeout is `DEADLINE_EXCEEDED`.
//!
//! The files: `guard.rs`, the text checks (layer 1); `limit.rs`, the time limit and the rescue
//! of a connection that does not come back; `rows.rs`, the rows of the answer and the errors;
//! this file, a Query's steps on the read connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use modsync_proto::QueryResponse;
use sqlx::Connection;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::{Error, Result};
use crate::reader::Reader;
pub use crate::reader::{MAX_SQL_BYTES, MAX_VALUE_BYTES};
use crate::sqlite_ext;

mod guard;
mod limit;
mod rows;

pub use guard::{check, check_bytes};
use limit::{Limit, rescue};
use rows::{classify, fetch};

/// SQLite VM instructions between two deadline checks: frequent enough to stop within
/// microseconds, rare enough to cost nothing.
const PROGRESS_OPS: i32 = 1_000;

/// A Query's SQL text longer than this is dropped from its connection's statement cache after
/// it ran: sqlx keeps every prepared text (100 per connection), which for long texts would hold
/// up to [`MAX_SQL_BYTES`] × 100 per connection.
const CACHED_SQL_BYTES: usize = 16 * 1024;

impl Reader {
    /// Runs `sql` read-only: [`check_bytes`], a Query permit, [`check`], then at most
    /// `max_rows` rows or `max_bytes` of them (no value or row over `max_bytes` is even made),
    /// interrupted `timeout` after the call.
    pub async fn query(
        &self,
        sql: &str,
        max_rows: usize,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<QueryResponse> {
        check_bytes(sql)?;
        let limit = Limit::new(timeout);
        let permit = self.permit(&limit).await?;
        check(sql)?;
        self.run(permit, &limit, sql, max_rows, max_bytes).await
    }

    /// Layer 2 alone: runs `sql` on a read-only connection without the text checks. Only the
    /// tests call it directly, to show that SQLite itself refuses what the check refuses, and
    /// that a connection which never comes back is replaced.
    #[cfg(test)]
    pub(crate) async fn query_unchecked(
        &self,
        sql: &str,
        max_rows: usize,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<QueryResponse> {
        let limit = Limit::new(timeout);
        let permit = self.permit(&limit).await?;
        self.run(permit, &limit, sql, max_rows, max_bytes).await
    }

    /// One of the `READ_CONNECTIONS` Query permits, waited for within the time limit.
    async fn permit(&self, limit: &Limit) -> Result<OwnedSemaphorePermit> {
        tokio::time::timeout_at(limit.outer, self.query_slots.clone().acquire_owned())
            .await
            .map_err(|_| limit.error())?
            .map_err(|_| Error::Timeout("the store is closing".into()))
    }

    /// Runs `sql` on a pooled connection: interrupted inside SQLite at the deadline (the
    /// progress handler), and not waited for past the outer deadline — a connection whose
    /// statement does not come back by then is taken out of the pool (which opens a fresh one)
    /// and handed to [`rescue`].
    async fn run(
        &self,
        permit: OwnedSemaphorePermit,
        limit: &Limit,
        sql: &str,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<QueryResponse> {
        let mut conn = tokio::time::timeout_at(limit.outer, self.pool.acquire())
            .await
            .map_err(|_| limit.error())??;
        let interrupted = Arc::new(AtomicBool::new(false));
        let flag = interrupted.clone();
        let deadline = limit.deadline.into_std();
        let interrupter = {
            let mut handle = conn.lock_handle().await?;
            handle.set_progress_handler(PROGRESS_OPS, move || {
                let go_on = Instant::now() < deadline;
                if !go_on {
                    flag.store(true, Ordering::Relaxed);
                }
                go_on
            });
            // No value or row larger than the response may carry is made at all.
            sqlite_ext::set_length_limit(&mut handle, max_bytes);
            sqlite_ext::Interrupter::of(&mut handle)
        };
        match tokio::time::timeout_at(limit.outer, fetch(&mut conn, sql, max_rows, max_bytes)).await
        {
            Ok(result) => {
                if let Ok(mut h) = conn.lock_handle().await {
                    h.remove_progress_handler();
                    sqlite_ext::set_length_limit(&mut h, MAX_VALUE_BYTES);
                }
                if sql.len() > CACHED_SQL_BYTES {
                    let _ = conn.clear_cached_statements().await;
                }
                drop(permit);
                result.map_err(|e| {
                    classify(e, interrupted.load(Ordering::Relaxed), max_bytes, || {
                        limit.error()
                    })
                })
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = limit.timeout.as_millis() as u64,
                    "a Query's read connection did not come back after its time limit; it is \
                     replaced, and interrupted until it returns"
                );
                rescue(conn.detach(), interrupter, permit);
                Err(limit.error())
            }
        }
    }
}

/// Layer 2 on its own: with the text check bypassed, SQLite still refuses every write.
#[cfg(test)]
mod tests {
    use modsync_proto::value::Kind;

    use super::*;
    use crate::store::Store;

    const T: Duration = Duration::from_secs(5);
    const BYTES: usize = 1 << 20;

    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("s.db")).await.unwrap()
    }

    #[tokio::test]
    async fn sqlite_refuses_writes_without_the_text_check() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        for sql in [
            "INSERT INTO workers (id, host, device, first_seen_ms, last_seen_ms) VALUES ('x', '', '', 0, 0)",
            "DELETE FROM jobs",
            "UPDATE jobs SET state = 'done'",
            "DROP TABLE results",
            "CREATE TABLE t (x)",
            "CREATE TEMP TABLE t (x)",
        ] {
            let e = s.read.query_unchecked(sql, 10, T, BYTES).await.unwrap_err();
            assert!(
                matches!(e, Error::Refused(_) | Error::Invalid(_)),
                "{sql}: {e:?}"
            );
        }
        // Switching query_only off first, in the same string and so on the same
        // connection, does not help: the connection itself is opened read-only.
        sqlx::query(
            "INSERT INTO sweeps (id, name, spec, max_attempts, created_at_ms, updated_at_ms)
             VALUES ('s', 's', '{}', 1, 0, 0)",
        )
        .execute(&s.write)
        .await
        .unwrap();
        let e = s
            .read
            .query_unchecked("PRAGMA query_only = 0; DELETE FROM sweeps", 10, T, BYTES)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Refused(_)), "{e:?}");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sweeps")
            .fetch_one(&s.write)
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn attach_and_vacuum_into_cannot_reach_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let copy = dir.path().join("copy.db");
        let other = dir.path().join("other.db");
        // An existing SQLite file elsewhere on the host must stay unreadable too.
        std::fs::copy(dir.path().join("s.db"), &other).unwrap();
        for sql in [
            format!("VACUUM INTO '{}'", copy.display()),
            format!("ATTACH DATABASE '{}' AS o", other.display()),
            format!("ATTACH DATABASE '{}' AS c", copy.display()),
        ] {
            assert!(
                s.read.query_unchecked(&sql, 10, T, BYTES).await.is_err(),
                "{sql}"
            );
        }
        assert!(!copy.exists(), "VACUUM INTO/ATTACH created a file");
    }

    #[tokio::test]
    async fn runaway_queries_are_interrupted_and_the_connection_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let t0 = Instant::now();
        let e = s
            .query(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                 SELECT count(*) FROM c",
                10,
                Duration::from_millis(200),
                BYTES,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e:?}");
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        // Every read connection still works (no stale interrupt handler left behind).
        for _ in 0..8 {
            let r = s.query("SELECT 41 + 1", 10, T, BYTES).await.unwrap();
            assert_eq!(r.rows[0].values[0].kind, Some(Kind::Integer(42)));
        }
    }

    /// A statement that never yields (sqlx's loop on a NUL byte, reached here without the
    /// text checks) costs one time limit, not a connection: the pool opens a fresh one, the
    /// stuck one is interrupted until it comes back, and closing the store does not wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_that_never_yields_is_replaced_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let limit = Duration::from_millis(300);
        for _ in 0..6 {
            let t0 = Instant::now();
            let e = s
                .read
                .query_unchecked("SELECT 1\0", 10, limit, BYTES)
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Timeout(_)), "{e:?}");
            assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        }
        // More stuck queries than connections, and every read is still answered.
        for i in 0..8 {
            let r = s.query(&format!("SELECT {i}"), 10, T, BYTES).await.unwrap();
            assert_eq!(r.rows[0].values[0].kind, Some(Kind::Integer(i)));
        }
        s.list_sweeps().await.unwrap();
        // The stuck connections came back (interrupted) and gave their permits back.
        let t0 = Instant::now();
        // One permit per read connection (4).
        while s.read.query_slots.available_permits() < 4 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{} permits back",
                s.read.query_slots.available_permits()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t0 = Instant::now();
        s.close().await;
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn no_value_over_the_byte_cap_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        for sql in [
            "SELECT zeroblob(2000000)",
            "SELECT length(zeroblob(2000000))",
            "SELECT length(hex(zeroblob(600000)))",
            "SELECT replace(hex(zeroblob(1000)), '0', hex(zeroblob(1000)))",
        ] {
            let e = s.query(sql, 10, T, 1 << 20).await.unwrap_err();
            assert!(
                matches!(&e, Error::Invalid(_)) && e.to_string().contains("limit of 1048576"),
                "{sql}: {e}"
            );
        }
        // printf stops at the limit too, but SQLite's printf answers NULL there, not an
        // error.
        let r = s
            .query("SELECT printf('%.*c', 2000000, 'x')", 10, T, 1 << 20)
            .await
            .unwrap();
        assert_eq!(r.rows[0].values[0].kind, Some(Kind::Null(true)));
        // The cap is the Query's own: the next reader gets the connection's default back.
        for _ in 0..8 {
            let n: i64 = sqlx::query_scalar("SELECT length(zeroblob(5000000))")
                .fetch_one(s.read.pool())
                .await
                .unwrap();
            assert_eq!(n, 5_000_000);
        }
    }

    #[tokio::test]
    async fn byte_cap_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) \
                   SELECT x, zeroblob(1000) FROM c";
        let r = s.query(sql, 10_000, T, 20_000).await.unwrap();
        assert!(r.truncated);
        assert!((5..20).contains(&r.rows.len()), "{}", r.rows.len());
    }
}
