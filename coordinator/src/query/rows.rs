//! A Query's answer: its rows, each value in its SQLite storage class, up to the row and byte
//! caps ([`fetch`]), and the SQLite errors of the user's statement as our error kinds
//! ([`classify`]).

use modsync_proto::{QueryResponse, Row, Value, value::Kind};
use prost::Message;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Column, Executor, Row as _, SqlSafeStr, Statement, TypeInfo, ValueRef};
use tokio_stream::StreamExt;

use crate::error::{Error, Result};

/// Room left in the gRPC message for framing (at most a quarter of a small message).
const RESPONSE_MARGIN: usize = 64 * 1024;

/// Maps a SQLite error of the user's statement onto our error kinds.
pub(super) fn classify(
    e: Error,
    interrupted: bool,
    max_bytes: usize,
    timeout: impl Fn() -> Error,
) -> Error {
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

pub(super) async fn fetch(
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
