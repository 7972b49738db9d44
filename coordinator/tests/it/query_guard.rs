//! The Query RPC against generated attacks: statements that write, ATTACH, change pragmas,
//! VACUUM INTO, CTEs wrapping writes, keywords hidden by comments, several statements, mixed
//! case. None may get through: each is refused (PERMISSION_DENIED or INVALID_ARGUMENT), and
//! after each attempt the store is exactly as it was and no file appeared next to it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use modsync_proto::value::Kind;
use modsync_proto::*;
use proptest::prelude::*;
use tonic::Code;

use crate::common::*;
use crate::sql_disguises::{SPACES, WRAPPERS};

/// Statements that write, change the schema or the connection, or reach other files. `{P}` is
/// the store's directory.
const WRITES: &[&str] = &[
    "INSERT INTO sweeps (id, name, spec, max_attempts, created_at_ms, updated_at_ms) VALUES ('x', 'x', '{}', 1, 0, 0)",
    "INSERT OR REPLACE INTO workers VALUES ('x', '', '', 0, 0, 0)",
    "REPLACE INTO workers VALUES ('x', '', '', 0, 0, 0)",
    "INSERT INTO workers SELECT 'y', host, device, 0, 0, 0 FROM workers LIMIT 1 ON CONFLICT DO NOTHING",
    "UPDATE jobs SET state = 'done'",
    "UPDATE OR IGNORE results SET rel_l2_best = 0",
    "DELETE FROM results",
    "DELETE FROM jobs WHERE id IN (SELECT job_id FROM results)",
    "DROP TABLE metrics",
    "DROP VIEW curves",
    "DROP INDEX jobs_queue",
    "CREATE TABLE t (x)",
    "CREATE TEMP TABLE t (x)",
    "CREATE TEMP VIEW v AS SELECT 1",
    "CREATE INDEX i ON jobs (seed)",
    "CREATE TRIGGER tr AFTER INSERT ON jobs BEGIN DELETE FROM results; END",
    "ALTER TABLE jobs RENAME TO j2",
    "ALTER TABLE jobs ADD COLUMN x",
    "ATTACH DATABASE '{P}/a.db' AS a",
    "ATTACH '{P}/b.db' AS b",
    "ATTACH 'file:{P}/c.db?mode=rwc' AS c",
    "DETACH DATABASE main",
    "PRAGMA query_only = 0",
    "PRAGMA query_only = OFF",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA user_version = 7",
    "PRAGMA writable_schema = ON",
    "PRAGMA main.application_id = 5",
    "PRAGMA foreign_keys = off",
    "VACUUM",
    "VACUUM INTO '{P}/copy.db'",
    "VACUUM main INTO '{P}/copy2.db'",
    "REINDEX",
    "ANALYZE",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "SAVEPOINT s",
    "RELEASE s",
    "ROLLBACK",
    "END",
];

/// Reads that call functions or table-valued pragmas with side effects elsewhere, or try to.
/// They may succeed (when harmless) or fail, but must change nothing and create no file.
const SNEAKY_READS: &[&str] = &[
    "SELECT load_extension('{P}/x')",
    "SELECT * FROM pragma_journal_mode('delete')",
    "SELECT * FROM pragma_user_version(9)",
    "SELECT * FROM pragma_query_only(0)",
    "SELECT writefile('{P}/w', 'x')",
    "SELECT readfile('/etc/passwd')",
    "SELECT * FROM pragma_table_info('jobs')",
    "SELECT sqlite_compileoption_get(0)",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT count(*) FROM c",
];

/// `sql` with ASCII letters' case flipped where `flips` says, spaces replaced by other
/// whitespace or comments (only in the statement, not in the wrapper's own comments).
fn dress(wrapper: &str, statement: &str, flips: &[bool], spaces: &[usize], dir: &Path) -> String {
    let flip = |s: &str, k: &mut usize, spaces: Option<&[usize]>| -> String {
        let mut out = String::new();
        let mut sp = 0;
        for c in s.chars() {
            match (c, spaces) {
                (' ', Some(spaces)) => {
                    out.push_str(SPACES[spaces[sp % spaces.len()] % SPACES.len()]);
                    sp += 1;
                }
                (c, _) if c.is_ascii_alphabetic() => {
                    let f = flips[*k % flips.len()];
                    *k += 1;
                    out.push(if f {
                        if c.is_ascii_uppercase() {
                            c.to_ascii_lowercase()
                        } else {
                            c.to_ascii_uppercase()
                        }
                    } else {
                        c
                    });
                }
                (c, _) => out.push(c),
            }
        }
        out
    };
    let mut k = 0;
    let wrapper = flip(wrapper, &mut k, None);
    let statement = flip(statement, &mut k, Some(spaces));
    // The path is substituted last, so its case and spaces stay real.
    wrapper
        .replace("{}", &statement)
        .replace("{P}", &dir.display().to_string())
        .replace("{p}", &dir.display().to_string())
}

/// Everything a write could change: schema, pragmas, every table's contents.
const FINGERPRINT: &str = "SELECT \
    (SELECT group_concat(type || ':' || name || ':' || coalesce(sql, ''), '|') \
       FROM (SELECT * FROM sqlite_schema ORDER BY type, name)), \
    (SELECT schema_version FROM pragma_schema_version), \
    (SELECT user_version FROM pragma_user_version), \
    (SELECT application_id FROM pragma_application_id), \
    (SELECT group_concat(id || state || token || attempts || coalesce(lease_owner, ''), ',') FROM jobs), \
    (SELECT group_concat(job_id || ':' || rel_l2_best, ',') FROM results), \
    (SELECT group_concat(job_id || ':' || iter || ':' || coalesce(loss_r, ''), ',') FROM metrics), \
    (SELECT group_concat(id || spec, ',') FROM sweeps), \
    (SELECT group_concat(id || host, ',') FROM workers), \
    (SELECT COUNT(*) FROM checkpoints), \
    (SELECT COUNT(*) FROM sqlite_temp_schema)";

async fn fingerprint(c: &mut Client) -> Vec<Vec<Kind>> {
    sql(c, FINGERPRINT).await
}

fn files(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    server: Server,
    client: Client,
    before: Vec<Vec<Kind>>,
    files: BTreeSet<PathBuf>,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (server, client, before) = rt.block_on(async {
            let (server, mut c) = start_with_client(|_| {}).await;
            // Something in every table.
            submit(&mut c, spec("q")).await;
            let done = lease(&mut c, "w1").await.unwrap();
            complete(&mut c, &done, "w1", 0.125).await;
            let running = lease(&mut c, "w2").await.unwrap();
            c.report_progress(ReportProgressRequest {
                job_id: running.job_id,
                token: running.token,
                worker_id: "w2".into(),
                metrics: vec![MetricRow {
                    row_json: r#"{"iter":0,"lr":0.001,"loss_r":0.5,"loss_b":0.25,"rel_l2":1.0,
                        "abs_err":0.5,"abs_err_max":1.0,"skipped_steps":0,"elapsed_s":0.1}"#
                        .into(),
                }],
                checkpoint: Vec::new(),
            })
            .await
            .unwrap();
            let before = fingerprint(&mut c).await;
            (server, c, before)
        });
        let files = files(server.db.parent().unwrap());
        Fixture {
            rt,
            server,
            client,
            before,
            files,
        }
    })
}

/// Runs `sql` through Query; returns its status code (Ok as `Code::Ok`) after checking that the
/// store and its directory are unchanged.
fn attempt(sql_text: &str) -> Result<Code, TestCaseError> {
    let f = fixture();
    let mut c = f.client.clone();
    let code = f.rt.block_on(async {
        let r = tokio::time::timeout(
            Duration::from_secs(20),
            c.query(QueryRequest {
                sql: sql_text.to_string(),
                max_rows: 0,
            }),
        )
        .await
        .expect("Query answered (no hang)");
        match r {
            Ok(_) => Code::Ok,
            Err(s) => {
                assert!(s.message().len() <= 2_048, "{} bytes", s.message().len());
                s.code()
            }
        }
    });
    let now = f.rt.block_on(fingerprint(&mut c));
    prop_assert_eq!(&now, &f.before, "the store changed after {:?}", sql_text);
    let dir = f.server.db.parent().unwrap();
    prop_assert_eq!(
        files(dir),
        f.files.clone(),
        "files appeared or vanished after {:?}",
        sql_text
    );
    Ok(code)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_writes_never_get_through(
        write in prop::sample::select(WRITES),
        wrapper in prop::sample::select(WRAPPERS),
        flips in prop::collection::vec(any::<bool>(), 1..16),
        spaces in prop::collection::vec(0usize..8, 1..8),
    ) {
        let dir = fixture().server.db.parent().unwrap().to_path_buf();
        let sql_text = dress(wrapper, write, &flips, &spaces, &dir);
        let code = attempt(&sql_text)?;
        prop_assert!(
            matches!(code, Code::PermissionDenied | Code::InvalidArgument),
            "{:?} for {:?}", code, sql_text
        );
    }

    #[test]
    fn sneaky_reads_change_nothing(
        read in prop::sample::select(SNEAKY_READS),
        flips in prop::collection::vec(any::<bool>(), 1..16),
        spaces in prop::collection::vec(0usize..8, 1..8),
    ) {
        let dir = fixture().server.db.parent().unwrap().to_path_buf();
        let sql_text = dress("{}", read, &flips, &spaces, &dir);
        let code = attempt(&sql_text)?;
        prop_assert!(
            matches!(code, Code::Ok | Code::PermissionDenied | Code::InvalidArgument),
            "{:?} for {:?}", code, sql_text
        );
        if read.contains("load_extension") {
            prop_assert_ne!(code, Code::Ok, "load_extension ran");
        }
    }
}

#[test]
fn the_fingerprint_sees_a_change() {
    // The check above is only as good as the fingerprint: a real write must move it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_server, mut c) = start_with_sweep(|_| {}, spec("f")).await;
        let before = fingerprint(&mut c).await;
        let job = lease(&mut c, "w").await.unwrap();
        let after = fingerprint(&mut c).await;
        assert_ne!(before, after, "leasing a job must change the fingerprint");
        complete(&mut c, &job, "w", 0.5).await;
        assert_ne!(after, fingerprint(&mut c).await);
    });
}
