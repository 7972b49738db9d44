//! How the SQL-guard tests dress up a forbidden statement. Shared by the guard's unit property
//! tests (`src/query/guard.rs`, included by path) and the end-to-end ones through Query
//! (`query_guard.rs`), so both attack with the same disguises.

/// Ways to dress a statement up as (or next to) a read; `{}` is the statement.
pub(crate) const WRAPPERS: &[&str] = &[
    "{}",
    "WITH x AS (SELECT 1) {}",
    "WITH RECURSIVE x(n) AS (SELECT 1) {}",
    "SELECT 1; {}",
    "{}; SELECT 1",
    "SELECT 1 /* ; */ ; {}",
    "EXPLAIN {}",
    "EXPLAIN QUERY PLAN {}",
    "/* SELECT */ {}",
    "-- SELECT\n{}",
    "SELECT * FROM ({})",
    "VALUES (1); {}",
    "SELECT 'a'';' ; {}",
    "SELECT \"x;\" FROM (SELECT 1 AS \"x;\");{}",
];

/// What a space inside the statement may be replaced with: other whitespace or a comment.
pub(crate) const SPACES: &[&str] = &[" ", "\t", "\n", "  ", "/**/", "/* x */", "\r\n", " --c\n"];
