//! The Query RPC: writes refused, typed values, row cap, errors, time limit.

use modsync_proto::value::Kind;
use modsync_proto::*;
use tonic::Code;

use crate::common::*;

async fn query(c: &mut Client, sql: &str, max_rows: u32) -> Result<QueryResponse, tonic::Status> {
    c.query(QueryRequest {
        sql: sql.into(),
        max_rows,
    })
    .await
    .map(|r| r.into_inner())
}

#[tokio::test]
async fn writes_are_refused_and_nothing_changes() {
    let (server, mut c) = start_with_sweep(|_| {}, spec("q")).await;
    let copy = server.db.with_file_name("copy.db");
    let vacuum = format!("VACUUM INTO '{}'", copy.display());
    let attach = format!("ATTACH DATABASE '{}' AS other", server.db.display());
    let statements = [
        "INSERT INTO workers (id, host, device, first_seen_ms, last_seen_ms) VALUES ('x','','',0,0)",
        "UPDATE jobs SET state = 'done'",
        "DELETE FROM jobs",
        "REPLACE INTO sweeps SELECT * FROM sweeps",
        "DROP TABLE results",
        "DROP VIEW curves",
        "CREATE TABLE t (x)",
        "ALTER TABLE jobs RENAME TO j",
        &attach,
        "DETACH DATABASE other",
        "PRAGMA query_only = 0",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA user_version = 7",
        &vacuum,
        "VACUUM",
        "REINDEX",
        "ANALYZE",
        "BEGIN IMMEDIATE",
        "SELECT 1; DELETE FROM jobs",
        "WITH x AS (SELECT 1) DELETE FROM jobs",
        "WITH x AS (SELECT id FROM jobs) UPDATE jobs SET state = 'failed' WHERE id IN x",
        "/* comment */ delete from jobs",
    ];
    for s in statements {
        let e = query(&mut c, s, 0).await.unwrap_err();
        assert!(
            matches!(e.code(), Code::PermissionDenied | Code::InvalidArgument),
            "{s}: {e:?}"
        );
    }
    assert!(!copy.exists(), "VACUUM INTO wrote a file");
    assert_eq!(
        sql_i64(&mut c, "SELECT COUNT(*) FROM jobs WHERE state = 'queued'").await,
        12
    );
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM workers").await, 0);
    assert_eq!(
        sql_i64(&mut c, "SELECT COUNT(*) FROM pragma_table_info('results')").await,
        19
    );
}

#[tokio::test]
async fn select_returns_typed_values_and_columns() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    let r = query(
        &mut c,
        "SELECT 1 AS i, 2.5 AS r, 'héllo' AS t, x'00ff' AS b, NULL AS n",
        0,
    )
    .await
    .unwrap();
    assert_eq!(r.columns, ["i", "r", "t", "b", "n"]);
    let values: Vec<Kind> = r.rows[0]
        .values
        .iter()
        .map(|v| v.kind.clone().unwrap())
        .collect();
    assert_eq!(
        values,
        [
            Kind::Integer(1),
            Kind::Real(2.5),
            Kind::Text("héllo".into()),
            Kind::Blob(vec![0, 255]),
            Kind::Null(true)
        ]
    );
    assert!(!r.truncated);
    // Columns even when there are no rows.
    let r = query(&mut c, "SELECT id, state FROM jobs", 0)
        .await
        .unwrap();
    assert_eq!((r.columns.len(), r.rows.len()), (2, 0));
}

#[tokio::test]
async fn row_cap_sets_truncated() {
    let (_server, mut c) = start_with_client(|c| c.max_query_rows = 7).await;
    submit(&mut c, spec("q")).await; // 12 jobs
    let r = query(&mut c, "SELECT id FROM jobs", 5).await.unwrap();
    assert_eq!((r.rows.len(), r.truncated), (5, true));
    // 0 = the coordinator's cap; asking for more than the cap is refused, naming it.
    let r = query(&mut c, "SELECT id FROM jobs", 0).await.unwrap();
    assert_eq!((r.rows.len(), r.truncated), (7, true));
    let e = query(&mut c, "SELECT id FROM jobs", 8).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert_eq!(
        e.message(),
        "invalid max_rows: 8 rows is more than the coordinator's limit of 7 (--max-query-rows)"
    );
    // Exactly at the cap is not truncated.
    let r = query(&mut c, "SELECT id FROM jobs LIMIT 7", 0)
        .await
        .unwrap();
    assert_eq!((r.rows.len(), r.truncated), (7, false));
}

#[tokio::test]
async fn bad_sql_and_slow_sql() {
    let (_server, mut c) = start_with_client(|c| c.query_timeout_ms = 200).await;
    for s in ["SELEC 1", "SELECT * FROM no_such_table", "", "   "] {
        let e = query(&mut c, s, 0).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{s}: {e:?}");
    }
    let e = query(
        &mut c,
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT max(x) FROM n",
        0,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert_eq!(sql_i64(&mut c, "SELECT 6 * 7").await, 42);
}
