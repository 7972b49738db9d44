//! `modsync sql|status|curves --db FILE` (issue 17): after `sweep run` has ended (its
//! coordinator gone), the store file answers the read commands directly, read-only, with the
//! coordinator's output and the coordinator's SQL guard; `sweep run` says how.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Coordinator, run_cli, run_cli_in, serial, write};

/// A sweep of 2 methods × 2 widths, one seed, a few iterations.
fn sweep_file(name: &str) -> String {
    format!(
        r#"name = "{name}"
[grid]
pdes = ["burgers"]
methods = ["adam", "dcgd"]
widths = [4, 8]
seeds = [0, 1]

[train]
depth = 2
iters = 60
eval_every = 20
lr_decay = false
"#
    )
}

/// Every byte of the store and of its WAL, to show that reading changed nothing. (A
/// read-only reader of a WAL store may leave an empty `-wal` and the `-shm` index behind:
/// SQLite's bookkeeping, not content.)
fn snapshot(db: &Path) -> Vec<Vec<u8>> {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::read(format!("{}{suffix}", db.display())).ok())
        .filter(|bytes| !bytes.is_empty())
        .collect()
}

fn cli_ok(args: &[&str]) -> String {
    let (ok, out, err) = run_cli(args, Duration::from_secs(60));
    assert!(ok, "modsync {args:?} failed:\n{err}");
    out
}

#[test]
fn read_commands_answer_from_the_store_file_as_the_coordinator_does() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "rd.toml", &sweep_file("rd"));
    let (ok, _, err) = run_cli_in(
        &["sweep", "run", &file, "--workers", "2"],
        Duration::from_secs(240),
        Some(dir.path()),
    );
    assert!(ok, "sweep run failed:\n{err}");
    // The end of the run says how to read the store it leaves (relative to where it ran).
    assert!(
        err.contains("query with: modsync sql --db .modsync/rd/sweep.db \"SELECT * FROM curves\""),
        "{err}"
    );
    let db = dir.path().join(".modsync/rd/sweep.db");
    let db_arg = db.to_str().unwrap();
    let before = snapshot(&db);

    let queries: [&[&str]; 6] = [
        &["status"],
        &["status", "rd"],
        &["curves", "rd"],
        &["sql", "SELECT * FROM curves ORDER BY pde, method, width"],
        &[
            "sql",
            "--csv",
            "SELECT id, pde, method, width, seed, state FROM jobs ORDER BY id",
        ],
        &["sql", "--max-rows", "2", "SELECT id FROM jobs ORDER BY id"],
    ];
    let from_file: Vec<String> = queries
        .iter()
        .map(|q| cli_ok(&[*q, &["--db", db_arg]].concat()))
        .collect();
    assert!(
        from_file[1].contains("rd") && from_file[1].contains('8'),
        "{}",
        from_file[1]
    );
    assert_eq!(from_file[4].lines().count(), 1 + 8, "{}", from_file[4]);
    assert!(snapshot(&db) == before, "a --db read changed the store");

    // Writes are refused by the coordinator's guard, with its message, and nothing changes.
    for (sql, says) in [
        ("DELETE FROM jobs", "refused: DELETE"),
        (
            "WITH x AS (SELECT 1) UPDATE jobs SET state = 'queued'",
            "refused: UPDATE",
        ),
        ("PRAGMA query_only = 0", "refused: PRAGMA"),
        ("SELECT 1; DROP TABLE jobs", "only one statement"),
    ] {
        let (ok, _, err) = run_cli(&["sql", sql, "--db", db_arg], Duration::from_secs(30));
        assert!(!ok && err.contains(says), "{sql}: {err}");
    }
    let (ok, _, err) = run_cli(
        &["sql", "--max-rows", "10001", "SELECT 1", "--db", db_arg],
        Duration::from_secs(30),
    );
    assert!(!ok && err.contains("--max-rows"), "{err}");
    assert!(
        snapshot(&db) == before,
        "a refused statement changed the store"
    );

    // A missing file is an error naming --db, and is not created.
    let missing = dir.path().join("nope.db");
    let (ok, _, err) = run_cli(
        &["status", "--db", missing.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(
        !ok && err.contains("invalid --db") && err.contains("no such store file"),
        "{err}"
    );
    assert!(!missing.exists());
    // A file that is not a store is refused as such.
    let other = write(dir.path(), "other.db", "");
    let (ok, _, err) = run_cli(&["status", "--db", &other], Duration::from_secs(30));
    assert!(!ok && err.contains("not a modsync store"), "{err}");

    // The same commands through a coordinator on the same file print the same.
    let coord = Coordinator::start(&db, None, &[]);
    for (q, expected) in queries.iter().zip(&from_file) {
        assert_eq!(&coord.cli(q), expected, "modsync {q:?}");
    }
    // And --db reads work while a coordinator serves the file.
    assert_eq!(&cli_ok(&["status", "--db", db_arg]), &from_file[0]);
}
