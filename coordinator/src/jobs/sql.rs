//! Shared pieces of the jobs statements: the placeholder builders of the set-based statements
//! and the two small statements every fenced write may need (why it was refused; the owner's
//! `last_seen_ms`).

use sqlx::{AssertSqlSafe, SqliteConnection};

use crate::error::{Error, Result};
use crate::fence::stale;

/// `?, ?, …`: `n` placeholders, for an `IN (…)` list. Only placeholders: every value is bound.
pub(crate) fn list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `(?, ?, …), (?, ?, …), …`: `rows` tuples of `width` placeholders, for a `VALUES` list.
pub(crate) fn placeholders(rows: usize, width: usize) -> String {
    vec![format!("({})", list(width)); rows].join(", ")
}

/// A statement built from fixed SQL, [`list`] and [`placeholders`] only.
pub(crate) fn query(
    sql: String,
) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(AssertSqlSafe(sql))
}

/// Why a fenced write matched no live lease: the job does not exist (NOT_FOUND) or `token`
/// does not hold its lease (FAILED_PRECONDITION). Only called after the fenced statement changed
/// nothing, so it never decides anything: tokens only grow, a token that did not hold the lease
/// then never holds it later.
pub(crate) async fn refusal(conn: &mut SqliteConnection, job_id: i64, token: i64) -> Error {
    let row: std::result::Result<Option<JobLease>, _> =
        sqlx::query_as("SELECT state, token FROM jobs WHERE id = ?")
            .bind(job_id)
            .fetch_optional(&mut *conn)
            .await;
    match row {
        Err(e) => e.into(),
        Ok(None) => Error::NotFound(format!("no job {job_id}")),
        Ok(Some(JobLease {
            state,
            token: current,
        })) => stale(job_id, token, &state, current),
    }
}

/// A job's state and current fencing token, as [`refusal`] reads them.
#[derive(sqlx::FromRow)]
struct JobLease {
    state: String,
    token: i64,
}

/// Marks the lease owner as seen now (writes the writer does not batch: fail, release).
pub(crate) async fn touch_worker(
    conn: &mut SqliteConnection,
    owner: Option<&str>,
    now: i64,
) -> Result<()> {
    if let Some(owner) = owner {
        sqlx::query("UPDATE workers SET last_seen_ms = ? WHERE id = ?")
            .bind(now)
            .bind(owner)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_make_one_tuple_per_row() {
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(placeholders(1, 1), "(?)");
        assert_eq!(list(3), "?, ?, ?");
    }
}
