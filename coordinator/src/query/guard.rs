//! Layer 1 of Query: the text check. [`check_bytes`] refuses text over [`MAX_SQL_BYTES`] or
//! with a NUL byte before anything else happens; [`check`] reads the tokens of the text (no
//! copy of it) and refuses anything but one SELECT / WITH / VALUES / EXPLAIN statement, or a
//! statement that names a writing keyword anywhere. It gives a clear message; the read-only
//! connection (layer 2, [`super`]) is the guarantee.

use crate::error::{Error, Result};
use crate::reader::MAX_SQL_BYTES;

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

// The guard's test disguises live with the end-to-end guard tests; both use the same ones.
#[cfg(test)]
#[path = "../../tests/it/sql_disguises.rs"]
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
        use crate::query::guard::sql_disguises::{SPACES, WRAPPERS};
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
}
