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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use modsync_proto::{QueryResponse, Row, Value, value::Kind};
use prost::Message;
use sqlx::sqlite::SqliteRow;
use sqlx::{
    AssertSqlSafe, Column, Connection, Executor, Row as _, SqlSafeStr, SqliteConnection, Statement,
    TypeInfo, ValueRef,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio_stream::StreamExt;

use crate::error::{Error, Result};
use crate::reader::Reader;
pub use crate::reader::{MAX_SQL_BYTES, MAX_VALUE_BYTES};
use crate::sqlite_ext;

/// SQLite VM instructions between two deadline checks: frequent enough to stop within
/// microseconds, rare enough to cost nothing.
const PROGRESS_OPS: i32 = 1_000;
/// Room left in the gRPC message for framing (at most a quarter of a small message).
const RESPONSE_MARGIN: usize = 64 * 1024;

/// Statements a Query may start with.
const READ_STARTS: [&str; 4] = ["SELECT", "WITH", "VALUES", "EXPLAIN"];
/// Statements that are not reads: refused by name (transaction control too, because a BEGIN
/// would leave a pooled connection inside a transaction).
const NON_READ_STARTS: [&str; 19] = [
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "DROP",
    "CREATE",
    "ALTER",
    "ATTACH",
    "DETACH",
    "PRAGMA",
    "VACUUM",
    "REINDEX",
    "ANALYZE",
    "BEGIN",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
];
/// Keywords that write, change the schema or the connection, or reach other files. Found
/// anywhere (outside strings, comments and quoted names) they refuse the statement.
const WRITE_WORDS: [&str; 12] = [
    "INSERT", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER", "ATTACH", "DETACH", "PRAGMA",
    "VACUUM", "REINDEX", "ANALYZE",
];

/// One lexical token of SQL, as much as the check needs.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    /// A bare word (keyword or unquoted name), as written.
    Word(&'a str),
    /// `;`
    Semi,
    /// Any other punctuation.
    Punct(char),
    /// A string literal, quoted identifier or number: never a keyword.
    Opaque,
}

impl Token<'_> {
    /// Whether this is the bare word `kw` (ASCII case ignored).
    fn is(&self, kw: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

/// Whether the word `w` is one of `list` (ASCII case ignored).
fn one_of(w: &str, list: &[&str]) -> bool {
    list.iter().any(|k| w.eq_ignore_ascii_case(k))
}

/// The tokens of SQL text, comments and the insides of strings and quoted names dropped. Reads
/// the text in place (no copy of it, nothing kept per token), so the check costs no memory
/// however long the text is.
struct Tokens<'a> {
    sql: &'a str,
    /// Byte offset of the next character to read.
    at: usize,
}

fn tokens(sql: &str) -> Tokens<'_> {
    Tokens { sql, at: 0 }
}

/// Characters of a bare word.
fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let rest = &self.sql[self.at..];
            let mut chars = rest.chars();
            let c = chars.next()?;
            let next = chars.next();
            match c {
                c if c.is_whitespace() => self.at += c.len_utf8(),
                '-' if next == Some('-') => self.at += rest.find('\n').unwrap_or(rest.len()),
                '/' if next == Some('*') => {
                    self.at += rest[2..].find("*/").map_or(rest.len(), |end| end + 4);
                }
                '\'' | '"' | '`' | '[' => {
                    let close = if c == '[' { ']' } else { c };
                    let mut end = 1;
                    loop {
                        match rest[end..].find(close) {
                            None => {
                                end = rest.len();
                                break;
                            }
                            Some(k) => {
                                end += k + 1;
                                // A doubled quote is an escaped quote, not the end.
                                if close != ']' && rest[end..].starts_with(close) {
                                    end += 1;
                                } else {
                                    break;
                                }
                            }
                        }
                    }
                    self.at += end;
                    return Some(Token::Opaque);
                }
                ';' => {
                    self.at += 1;
                    return Some(Token::Semi);
                }
                c if word_char(c) => {
                    let len = rest.find(|c: char| !word_char(c)).unwrap_or(rest.len());
                    self.at += len;
                    return Some(if c.is_ascii_digit() {
                        Token::Opaque
                    } else {
                        Token::Word(&rest[..len])
                    });
                }
                c => {
                    self.at += c.len_utf8();
                    return Some(Token::Punct(c));
                }
            }
        }
    }
}

/// What is refused before anything else happens to a Query's text — before a concurrency
/// permit or a connection is waited for, before the text is tokenised or copied: text over
/// [`MAX_SQL_BYTES`], and a NUL byte anywhere.
///
/// The NUL byte is the one thing sqlx-sqlite (0.9) cannot step through: SQLite reads SQL text
/// only up to a NUL (its string terminator), so after the statement before it the remaining
/// text starts with the NUL, `sqlite3_prepare_v3` compiles nothing there and leaves its tail
/// pointer where it was, and sqlx's statement loop (`VirtualStatement`'s `prepare`) calls it
/// again for ever — outside SQLite's VM, where neither the progress handler nor the time limit
/// reaches, holding the connection and a core. Every other text either compiles or is a
/// syntax error.
pub fn check_bytes(sql: &str) -> Result<()> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(Error::invalid(
            "sql",
            format!(
                "{} bytes of SQL text is over the limit of {MAX_SQL_BYTES} bytes",
                sql.len()
            ),
        ));
    }
    if let Some(at) = sql.bytes().position(|b| b == 0) {
        return Err(Error::invalid(
            "sql",
            format!(
                "a NUL byte at byte offset {at}: SQL text may not contain NUL (SQLite stops \
                 reading there and the rest could never be run)"
            ),
        ));
    }
    Ok(())
}

/// The text check (layer 1). `Err` is `INVALID_ARGUMENT` (empty, several statements) or
/// `PERMISSION_DENIED` (anything that is not a plain read). Two passes over the tokens, nothing
/// kept: memory does not grow with the text.
pub fn check(sql: &str) -> Result<()> {
    // Anything but more `;` after the first `;` is a second statement.
    if tokens(sql)
        .skip_while(|t| *t != Token::Semi)
        .any(|t| t != Token::Semi)
    {
        return Err(Error::invalid(
            "sql",
            "only one statement per query (found text after ';')",
        ));
    }
    let mut statement = tokens(sql).take_while(|t| *t != Token::Semi).peekable();
    let Some(first) = statement.next() else {
        return Err(Error::invalid("sql", "empty query"));
    };
    match first {
        Token::Word(w) if w.eq_ignore_ascii_case("EXPLAIN") => {
            // EXPLAIN [QUERY PLAN] must explain a read: `EXPLAIN COMMIT` names no write word
            // but is no query either.
            if statement.peek().is_some_and(|t| t.is("QUERY")) {
                statement.next();
                if statement.peek().is_some_and(|t| t.is("PLAN")) {
                    statement.next();
                }
            }
            match statement.next() {
                Some(Token::Word(w))
                    if !w.eq_ignore_ascii_case("EXPLAIN") && one_of(w, &READ_STARTS) => {}
                _ => {
                    return Err(Error::Refused(
                        "refused: EXPLAIN only explains SELECT, WITH or VALUES here".into(),
                    ));
                }
            }
        }
        Token::Word(w) if one_of(w, &READ_STARTS) => {}
        Token::Word(w) if w.eq_ignore_ascii_case("PRAGMA") => {
            return Err(Error::Refused(
                "refused: PRAGMA statements can change the connection; use the read-only \
                 table-valued form, e.g. SELECT * FROM pragma_table_info('jobs')"
                    .into(),
            ));
        }
        Token::Word(w) if one_of(w, &NON_READ_STARTS) => {
            return Err(Error::Refused(format!(
                "refused: {}: Query runs read-only statements only (SELECT, WITH, VALUES, EXPLAIN)",
                w.to_ascii_uppercase()
            )));
        }
        _ => {
            return Err(Error::invalid(
                "sql",
                "a query starts with SELECT, WITH, VALUES or EXPLAIN",
            ));
        }
    }
    // The rest of the statement (what came before is a read keyword, no write word).
    while let Some(t) = statement.next() {
        let Token::Word(w) = t else { continue };
        let writes = one_of(w, &WRITE_WORDS)
            // REPLACE INTO writes; replace(…) is the string function.
            || (w.eq_ignore_ascii_case("REPLACE")
                && statement.peek().is_some_and(|t| t.is("INTO")));
        if writes {
            return Err(Error::Refused(format!(
                "refused: {} writes to or reconfigures the store; Query is read-only \
                 (quote a column named like a keyword: \"{}\")",
                w.to_ascii_uppercase(),
                w.to_lowercase()
            )));
        }
    }
    Ok(())
}

/// A Query's SQL text longer than this is dropped from its connection's statement cache after
/// it ran: sqlx keeps every prepared text (100 per connection), which for long texts would hold
/// up to [`MAX_SQL_BYTES`] × 100 per connection.
const CACHED_SQL_BYTES: usize = 16 * 1024;
/// How long a stuck connection's rescuer keeps interrupting it before giving up (and leaving
/// it, and its Query permit, where they are).
const RESCUE_FOR: Duration = Duration::from_secs(60);

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

/// A Query's time limit: the statement is interrupted inside SQLite at `deadline`; nothing is
/// waited for past `outer`, one second later (time outside SQLite's VM: the permit, the pool,
/// a connection that never yields).
struct Limit {
    timeout: Duration,
    deadline: tokio::time::Instant,
    outer: tokio::time::Instant,
}

impl Limit {
    fn new(timeout: Duration) -> Limit {
        let now = tokio::time::Instant::now();
        Limit {
            timeout,
            deadline: now + timeout,
            outer: now + timeout + Duration::from_secs(1),
        }
    }

    fn error(&self) -> Error {
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
fn rescue(
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

/// Maps a SQLite error of the user's statement onto our error kinds.
fn classify(e: Error, interrupted: bool, max_bytes: usize, timeout: impl Fn() -> Error) -> Error {
    let Error::Db(sqlx::Error::Database(db)) = &e else {
        return e;
    };
    let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
    match code & 0xff {
        // SQLITE_INTERRUPT
        9 if interrupted => timeout(),
        // SQLITE_READONLY and its extended codes
        8 => Error::Refused(format!("refused by the read-only store: {}", db.message())),
        // SQLITE_TOOBIG
        18 => Error::invalid(
            "sql",
            format!(
                "{}: a value or row of the result would be larger than the limit of {max_bytes} \
                 bytes of a Query response (the coordinator's --max-message-bytes)",
                db.message()
            ),
        ),
        _ => Error::invalid("sql", db.message().to_string()),
    }
}

async fn fetch(
    conn: &mut sqlx::SqliteConnection,
    sql: &str,
    max_rows: usize,
    max_bytes: usize,
) -> Result<QueryResponse> {
    let stmt = conn
        .prepare(AssertSqlSafe(sql.to_owned()).into_sql_str())
        .await?;
    let columns: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let budget = max_bytes.saturating_sub(RESPONSE_MARGIN.min(max_bytes / 4));
    let mut used = columns.iter().map(|c| c.len() + 8).sum::<usize>();
    let mut rows = Vec::new();
    let mut truncated = false;
    let mut stream = stmt.query().fetch(&mut *conn);
    while let Some(row) = stream.next().await {
        if rows.len() >= max_rows {
            truncated = true;
            break;
        }
        let row = to_row(&row?)?;
        used += row.encoded_len() + 8;
        if used > budget {
            truncated = true;
            break;
        }
        rows.push(row);
    }
    Ok(QueryResponse {
        columns,
        rows,
        truncated,
    })
}

/// A row with each value in its SQLite storage class.
fn to_row(row: &SqliteRow) -> Result<Row> {
    let values = (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Value {
                    kind: Some(Kind::Null(true)),
                });
            }
            let kind = match raw.type_info().name() {
                "INTEGER" => Kind::Integer(row.try_get_unchecked::<i64, _>(i)?),
                "REAL" => Kind::Real(row.try_get_unchecked::<f64, _>(i)?),
                "BLOB" => Kind::Blob(row.try_get_unchecked::<Vec<u8>, _>(i)?),
                // TEXT (and anything exotic): bytes as text, invalid UTF-8 replaced.
                _ => Kind::Text(
                    String::from_utf8_lossy(&row.try_get_unchecked::<Vec<u8>, _>(i)?).into_owned(),
                ),
            };
            Ok(Value { kind: Some(kind) })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Row { values })
}

// The guard's test disguises live with the end-to-end guard tests; both use the same ones.
#[cfg(test)]
#[path = "../tests/it/sql_disguises.rs"]
mod sql_disguises;

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> bool {
        matches!(check(sql), Err(Error::Refused(_)))
    }
    fn invalid(sql: &str) -> bool {
        matches!(check(sql), Err(Error::Invalid(_)))
    }

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT * FROM jobs",
            "select count(*) from results;",
            "  WITH x AS (SELECT 1) SELECT * FROM x ;  ",
            "VALUES (1), (2)",
            "EXPLAIN QUERY PLAN SELECT * FROM jobs WHERE state = 'queued'",
            "SELECT replace(name, 'a', 'b') FROM sweeps",
            "SELECT updated_at_ms, 'DELETE FROM jobs; DROP TABLE x' AS s FROM jobs",
            "SELECT \"update\" FROM (SELECT 1 AS \"update\")",
            "SELECT 1 -- DROP TABLE jobs\n",
            "SELECT /* INSERT ; */ 1",
            "SELECT 'it''s; DELETE' AS s",
            "SELECT * FROM pragma_table_info('jobs')",
        ] {
            assert!(check(sql).is_ok(), "{sql}: {:?}", check(sql));
        }
    }

    #[test]
    fn writes_are_refused() {
        for sql in [
            "INSERT INTO sweeps VALUES (1)",
            "update jobs set state = 'done'",
            "DELETE FROM results",
            "REPLACE INTO results SELECT * FROM results",
            "DROP TABLE jobs",
            "CREATE TABLE t (x)",
            "ALTER TABLE jobs ADD COLUMN x",
            "ATTACH DATABASE '/etc/passwd.db' AS x",
            "DETACH x",
            "PRAGMA query_only = 0",
            "PRAGMA journal_mode = DELETE",
            "VACUUM INTO '/tmp/copy.db'",
            "VACUUM",
            "REINDEX",
            "ANALYZE",
            "BEGIN",
            "WITH x AS (SELECT 1) DELETE FROM jobs",
            "WITH x AS (SELECT 1) INSERT INTO sweeps SELECT * FROM x",
            "WITH x AS (SELECT 1) REPLACE INTO sweeps SELECT * FROM x",
            "/* hi */ DELETE FROM jobs",
            "EXPLAIN COMMIT",
            "EXPLAIN QUERY PLAN BEGIN",
            "explain savepoint x",
            "EXPLAIN EXPLAIN SELECT 1",
            "EXPLAIN",
        ] {
            assert!(refused(sql), "{sql}: {:?}", check(sql));
        }
    }

    /// Property tests: generated statements that write, reconfigure or reach other files,
    /// dressed up (case, comments, whitespace, CTEs, several statements), never pass the check;
    /// arbitrary text never panics it.
    mod props {
        use super::*;
        use crate::query::sql_disguises::{SPACES, WRAPPERS};
        use proptest::prelude::*;

        /// Statements that write, change the schema or connection, or touch other files.
        pub(crate) const WRITES: &[&str] = &[
            "INSERT INTO sweeps (id, name, spec, max_attempts, created_at_ms, updated_at_ms) VALUES ('x', 'x', '{}', 1, 0, 0)",
            "INSERT OR REPLACE INTO workers VALUES ('x', '', '', 0, 0, 0)",
            "REPLACE INTO workers VALUES ('x', '', '', 0, 0, 0)",
            "UPDATE jobs SET state = 'done'",
            "UPDATE OR IGNORE results SET rel_l2_best = 0",
            "DELETE FROM results",
            "DELETE FROM jobs WHERE id IN (SELECT job_id FROM results)",
            "DROP TABLE metrics",
            "DROP VIEW curves",
            "CREATE TEMP TABLE t (x)",
            "CREATE INDEX i ON jobs (seed)",
            "CREATE TRIGGER tr AFTER INSERT ON jobs BEGIN DELETE FROM results; END",
            "ALTER TABLE jobs RENAME TO j2",
            "ATTACH DATABASE 'a.db' AS a",
            "ATTACH 'file:c.db?mode=rwc' AS c",
            "DETACH DATABASE main",
            "PRAGMA query_only = 0",
            "PRAGMA journal_mode = DELETE",
            "PRAGMA writable_schema = ON",
            "VACUUM",
            "VACUUM INTO 'copy.db'",
            "REINDEX",
            "ANALYZE",
        ];

        /// Transaction control: no write word, but no read either (a pooled connection left
        /// inside a transaction would pin the WAL).
        pub(crate) const TRANSACTIONS: &[&str] = &[
            "BEGIN IMMEDIATE",
            "COMMIT",
            "SAVEPOINT s",
            "RELEASE s",
            "ROLLBACK",
            "END",
        ];

        /// Where a transaction statement can stand at all (after a CTE or inside a subquery it
        /// is a syntax error that SQLite refuses).
        pub(crate) const TRANSACTION_WRAPPERS: &[&str] = &[
            "{}",
            "EXPLAIN {}",
            "EXPLAIN QUERY PLAN {}",
            "SELECT 1; {}",
            "{}; SELECT 1",
            "/* SELECT */ {}",
            "-- SELECT\n{}",
            "VALUES (1); {}",
        ];

        /// `sql` with each ASCII letter's case flipped where `flips` says so, and each space
        /// replaced by a whitespace or comment.
        pub(crate) fn disguise(sql: &str, flips: &[bool], spaces: &[usize]) -> String {
            let mut out = String::new();
            let (mut f, mut sp) = (0, 0);
            for c in sql.chars() {
                if c == ' ' {
                    out.push_str(SPACES[spaces[sp % spaces.len()] % SPACES.len()]);
                    sp += 1;
                } else if c.is_ascii_alphabetic() {
                    let flip = flips[f % flips.len()];
                    f += 1;
                    out.push(if flip {
                        if c.is_ascii_uppercase() {
                            c.to_ascii_lowercase()
                        } else {
                            c.to_ascii_uppercase()
                        }
                    } else {
                        c
                    });
                } else {
                    out.push(c);
                }
            }
            out
        }

        /// `statement` disguised, inside `wrapper` with its letters' case flipped too (the
        /// wrapper's own comments and spaces stay as they are, so they still hide what they
        /// hide).
        pub(crate) fn dress(
            wrapper: &str,
            statement: &str,
            flips: &[bool],
            spaces: &[usize],
        ) -> String {
            let wrapper =
                disguise(wrapper.replace(' ', "\u{1}").as_str(), flips, &[0]).replace('\u{1}', " ");
            wrapper.replace("{}", &disguise(statement, flips, spaces))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn dressed_up_writes_never_pass(
                write in prop::sample::select(WRITES),
                wrapper in prop::sample::select(WRAPPERS),
                flips in prop::collection::vec(any::<bool>(), 1..16),
                spaces in prop::collection::vec(0usize..8, 1..8),
            ) {
                let sql = dress(wrapper, write, &flips, &spaces);
                prop_assert!(check(&sql).is_err(), "passed: {:?}", sql);
            }

            #[test]
            fn dressed_up_transaction_control_never_passes(
                statement in prop::sample::select(TRANSACTIONS),
                wrapper in prop::sample::select(TRANSACTION_WRAPPERS),
                flips in prop::collection::vec(any::<bool>(), 1..16),
                spaces in prop::collection::vec(0usize..8, 1..8),
            ) {
                let sql = dress(wrapper, statement, &flips, &spaces);
                prop_assert!(check(&sql).is_err(), "passed: {:?}", sql);
            }

            #[test]
            fn arbitrary_text_never_panics(sql in "\\PC{0,200}") {
                let _ = check(&sql);
            }

            #[test]
            fn arbitrary_chars_never_panic(chars in prop::collection::vec(any::<char>(), 0..100)) {
                let sql: String = chars.into_iter().collect();
                let _ = check(&sql);
            }
        }
    }

    #[test]
    fn several_statements_and_empty_are_invalid() {
        assert!(invalid("SELECT 1; SELECT 2"));
        assert!(invalid("SELECT 1; DELETE FROM jobs"));
        assert!(invalid(""));
        assert!(invalid("  ;; -- nothing"));
        assert!(invalid("SELEC 1"));
        assert!(invalid("(SELECT 1)"));
        assert!(check("SELECT 1;;").is_ok());
    }

    /// Layer 2 on its own: with the text check bypassed, SQLite still refuses every write.
    mod connection {
        use super::super::*;
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

        #[test]
        fn nul_bytes_and_oversize_text_are_refused_naming_where() {
            let e = check_bytes("SELECT 1\0").unwrap_err().to_string();
            assert!(e.contains("NUL") && e.contains("byte offset 8"), "{e}");
            let e = check_bytes("SELECT '\0'").unwrap_err().to_string();
            assert!(e.contains("byte offset 8"), "{e}");
            let long = format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES));
            let e = check_bytes(&long).unwrap_err().to_string();
            assert!(e.contains("limit of 1000000 bytes"), "{e}");
            assert!(check_bytes("SELECT 'é', 1 -- ok").is_ok());
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
}
