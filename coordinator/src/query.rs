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
//! Limits: rows (`max_rows`; the response says `truncated`; asking for more than the
//! coordinator's cap is refused by the service), bytes (the gRPC message limit; also
//! `truncated`), and time: a progress handler interrupts the statement inside SQLite at the
//! deadline, so a runaway recursive CTE stops instead of pinning a connection.
//!
//! Errors: a refused statement is `PERMISSION_DENIED`, a statement SQLite cannot run (syntax,
//! unknown table) is `INVALID_ARGUMENT` naming `sql`, a timeout is `DEADLINE_EXCEEDED`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use modsync_proto::{QueryResponse, Row, Value, value::Kind};
use prost::Message;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Column, Executor, Row as _, SqlSafeStr, Statement, TypeInfo, ValueRef};
use tokio_stream::StreamExt;

use crate::error::{Error, Result};
use crate::reader::Reader;

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
enum Token {
    /// A bare word (keyword or unquoted name), upper-cased.
    Word(String),
    /// `;`
    Semi,
    /// Any other punctuation.
    Punct(char),
    /// A string literal, quoted identifier or number: never a keyword.
    Opaque,
}

/// Splits SQL into tokens, dropping comments and the insides of strings and quoted names.
fn tokens(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                i += 1;
                loop {
                    match chars.get(i) {
                        None => break,
                        // A doubled quote is an escaped quote, not the end.
                        Some(&q) if q == close && close != ']' && chars.get(i + 1) == Some(&q) => {
                            i += 2
                        }
                        Some(&q) if q == close => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                out.push(Token::Opaque);
            }
            ';' => {
                out.push(Token::Semi);
                i += 1;
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
                if c.is_ascii_digit() {
                    out.push(Token::Opaque);
                } else {
                    let word: String = chars[start..i].iter().collect();
                    out.push(Token::Word(word.to_ascii_uppercase()));
                }
            }
            c => {
                out.push(Token::Punct(c));
                i += 1;
            }
        }
    }
    out
}

/// The text check (layer 1). `Err` is `INVALID_ARGUMENT` (empty, several statements) or
/// `PERMISSION_DENIED` (anything that is not a plain read).
pub fn check(sql: &str) -> Result<()> {
    let toks = tokens(sql);
    let first_semi = toks.iter().position(|t| *t == Token::Semi);
    let statement = &toks[..first_semi.unwrap_or(toks.len())];
    if let Some(semi) = first_semi
        && toks[semi..].iter().any(|t| *t != Token::Semi)
    {
        return Err(Error::invalid(
            "sql",
            "only one statement per query (found text after ';')",
        ));
    }
    let Some(first) = statement.first() else {
        return Err(Error::invalid("sql", "empty query"));
    };
    match first {
        Token::Word(w) if w == "EXPLAIN" => {
            // EXPLAIN [QUERY PLAN] must explain a read: `EXPLAIN COMMIT` names no write word
            // but is no query either.
            let mut rest = statement[1..].iter().peekable();
            if rest.peek() == Some(&&Token::Word("QUERY".into())) {
                rest.next();
                if rest.peek() == Some(&&Token::Word("PLAN".into())) {
                    rest.next();
                }
            }
            match rest.next() {
                Some(Token::Word(w)) if w != "EXPLAIN" && READ_STARTS.contains(&w.as_str()) => {}
                _ => {
                    return Err(Error::Refused(
                        "refused: EXPLAIN only explains SELECT, WITH or VALUES here".into(),
                    ));
                }
            }
        }
        Token::Word(w) if READ_STARTS.contains(&w.as_str()) => {}
        Token::Word(w) if w == "PRAGMA" => {
            return Err(Error::Refused(
                "refused: PRAGMA statements can change the connection; use the read-only \
                 table-valued form, e.g. SELECT * FROM pragma_table_info('jobs')"
                    .into(),
            ));
        }
        Token::Word(w) if NON_READ_STARTS.contains(&w.as_str()) => {
            return Err(Error::Refused(format!(
                "refused: {w}: Query runs read-only statements only (SELECT, WITH, VALUES, EXPLAIN)"
            )));
        }
        _ => {
            return Err(Error::invalid(
                "sql",
                "a query starts with SELECT, WITH, VALUES or EXPLAIN",
            ));
        }
    }
    for (k, t) in statement.iter().enumerate() {
        let Token::Word(w) = t else { continue };
        let writes = WRITE_WORDS.contains(&w.as_str())
            // REPLACE INTO writes; replace(…) is the string function.
            || (w == "REPLACE" && statement.get(k + 1) == Some(&Token::Word("INTO".into())));
        if writes {
            return Err(Error::Refused(format!(
                "refused: {w} writes to or reconfigures the store; Query is read-only \
                 (quote a column named like a keyword: \"{}\")",
                w.to_lowercase()
            )));
        }
    }
    Ok(())
}

impl Reader {
    /// Runs `sql` read-only: [`check`], then at most `max_rows` rows or `max_bytes` of them,
    /// interrupted after `timeout`.
    pub async fn query(
        &self,
        sql: &str,
        max_rows: usize,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<QueryResponse> {
        check(sql)?;
        self.query_unchecked(sql, max_rows, timeout, max_bytes)
            .await
    }

    /// Layer 2 alone: runs `sql` on a read-only connection without the text check. Only the
    /// tests call it directly, to show that SQLite itself refuses what the check refuses.
    pub(crate) async fn query_unchecked(
        &self,
        sql: &str,
        max_rows: usize,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<QueryResponse> {
        let timeout_msg = || {
            Error::Timeout(format!(
                "query ran longer than {} ms and was interrupted (the coordinator's \
                 --query-timeout-ms)",
                timeout.as_millis()
            ))
        };
        // Outer bound, for time spent outside SQLite's VM (waiting for a connection).
        let outer = timeout + Duration::from_secs(1);
        let work = async {
            let mut conn = self.pool.acquire().await?;
            let deadline = Instant::now() + timeout;
            let interrupted = Arc::new(AtomicBool::new(false));
            let flag = interrupted.clone();
            conn.lock_handle()
                .await?
                .set_progress_handler(PROGRESS_OPS, move || {
                    let go_on = Instant::now() < deadline;
                    if !go_on {
                        flag.store(true, Ordering::Relaxed);
                    }
                    go_on
                });
            let result = fetch(&mut conn, sql, max_rows, max_bytes).await;
            if let Ok(mut h) = conn.lock_handle().await {
                h.remove_progress_handler();
            }
            result.map_err(|e| classify(e, interrupted.load(Ordering::Relaxed), timeout_msg))
        };
        tokio::time::timeout(outer, work)
            .await
            .map_err(|_| timeout_msg())?
    }
}

/// Maps a SQLite error of the user's statement onto our error kinds.
fn classify(e: Error, interrupted: bool, timeout: impl Fn() -> Error) -> Error {
    let Error::Db(sqlx::Error::Database(db)) = &e else {
        return e;
    };
    let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
    match code & 0xff {
        // SQLITE_INTERRUPT
        9 if interrupted => timeout(),
        // SQLITE_READONLY and its extended codes
        8 => Error::Refused(format!("refused by the read-only store: {}", db.message())),
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
