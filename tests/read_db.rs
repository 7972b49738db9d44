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

/// `modsync history --db FILE --metric KIND` (issue 27): a kind of diagnostics is every member
/// of it the sweep has, one line per member in a panel per method and width, the median over
/// seeds, with a `member` column in the CSV; a single diagnostic still gives today's CSV; a
/// kind the sweep has none of is an error naming what it has. The store is written by hand:
/// dcgd and modsync+dcgd at widths 8 and 16, seeds 0 and 1, rows at iterations 0, 20, 40.
#[test]
fn history_of_a_kind_of_diagnostics_from_the_store_file() {
    use modsync_proto::SweepSpec;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = coordinator::Store::open(&db).await.unwrap();
        store
            .submit_sweep(&SweepSpec {
                name: "h".into(),
                pdes: vec!["burgers".into()],
                methods: vec!["dcgd".into(), "modsync+dcgd".into()],
                widths: vec![8, 16],
                seeds: vec![0, 1],
                base_config_json: r#"{"iters": 40, "eval_every": 20}"#.into(),
                max_attempts: 1,
                priority: 0,
                ..Default::default()
            })
            .await
            .unwrap();
        store.close().await;
        let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&db))
            .await
            .unwrap();
        let jobs: Vec<(i64, String, i64, i64)> =
            sqlx::query_as("SELECT id, method, width, seed FROM jobs ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        for (id, method, width, seed) in jobs {
            for iter in [0i64, 20, 40] {
                let t = iter as f64 / 40.0;
                let mut extra = serde_json::json!({
                    "cos_rb": -0.5 + t,
                    "norm_g_r": 10f64.powf(-2.0 * t),
                    "norm_g_b": 0.5,
                });
                if method == "modsync+dcgd" {
                    for l in 0..2 {
                        // Distinct per layer, width and seed.
                        extra[format!("kept_frac_l{l}")] = serde_json::json!(
                            1.0 - 0.1 * (l + 1) as f64 * t
                                - 0.01 * seed as f64
                                - 0.001 * width as f64
                        );
                        extra[format!("resets_l{l}")] =
                            serde_json::json!(i64::from(iter >= 20 && l == 0));
                    }
                    extra["loss_s"] = serde_json::json!(100.0 - t);
                }
                sqlx::query(
                    "INSERT INTO metrics (job_id, iter, lr, loss_r, loss_b, rel_l2, abs_err,
                         abs_err_max, skipped_steps, elapsed_s, extra, token)
                     VALUES (?, ?, 0.001, 1.0, 0.5, 0.1, 0.1, 0.2, 0, 1.0, ?, 1)",
                )
                .bind(id)
                .bind(iter)
                .bind(extra.to_string())
                .execute(&pool)
                .await
                .unwrap();
            }
        }
        pool.close().await;
    });
    let out = dir.path().join("out");
    let history = |args: &[&str]| -> (bool, String) {
        let (ok, _, err) = run_cli(
            &[
                &["history", "h", "--db", db.to_str().unwrap()][..],
                &["--out", out.to_str().unwrap()],
                args,
            ]
            .concat(),
            Duration::from_secs(60),
        );
        (ok, err)
    };
    let csv = |name: &str| -> Vec<Vec<String>> {
        common::parse_csv(&std::fs::read_to_string(out.join(name)).unwrap())
    };

    let (ok, err) = history(&["--metric", "kept"]);
    assert!(ok, "{err}");
    let rows = csv("kept.csv");
    assert_eq!(
        rows[0],
        [
            "pde", "method", "seed", "width", "member", "iter", "n", "median", "min", "max"
        ]
    );
    // 2 widths × 2 layers × 3 iterations, only modsync+dcgd, the seeds pooled.
    assert_eq!(rows.len(), 1 + 12);
    assert!(
        rows[1..]
            .iter()
            .all(|r| r[1] == "modsync+dcgd" && r[2].is_empty() && r[6] == "2")
    );
    let members: Vec<&str> = rows[1..4].iter().map(|r| r[4].as_str()).collect();
    assert_eq!(
        members, ["kept_frac_l0"; 3],
        "lines in order: width, member, iteration"
    );
    // Width 8, layer 1, iteration 40: 1 − 0.2 − 0.008, less 0.01 for seed 1.
    let r = rows[1..]
        .iter()
        .find(|r| r[3] == "8" && r[4] == "kept_frac_l1" && r[5] == "40")
        .unwrap();
    let v = |i: usize| r[i].parse::<f64>().unwrap();
    assert!(
        (v(7) - 0.787).abs() < 1e-12
            && (v(8) - 0.782).abs() < 1e-12
            && (v(9) - 0.792).abs() < 1e-12,
        "{r:?}"
    );
    let svg = std::fs::read_to_string(out.join("kept.svg")).unwrap();
    for text in [
        "h: kept fraction per layer",
        "burgers, modsync+dcgd, width 8",
        "burgers, modsync+dcgd, width 16",
        "kept_frac_l0",
        "kept_frac_l1",
    ] {
        assert!(svg.contains(text), "{text} missing from kept.svg");
    }
    assert!(!svg.contains("burgers, dcgd"), "dcgd has no kept fraction");

    // Norms: both methods; per seed, a panel per method, width and seed.
    let (ok, err) = history(&["--metric", "norms", "--per-seed"]);
    assert!(ok, "{err}");
    let rows = csv("norms_per_seed.csv");
    assert_eq!(
        rows.len(),
        1 + 2 * 2 * 2 * 2 * 3,
        "methods × widths × seeds × members × iters"
    );
    assert!(rows[1..].iter().all(|r| r[2] == "0" || r[2] == "1"));
    let svg = std::fs::read_to_string(out.join("norms_per_seed.svg")).unwrap();
    assert!(
        svg.contains("burgers, dcgd, width 16, seed 1"),
        "per-seed panels"
    );

    // Resets: counted where they grow.
    let (ok, err) = history(&["--metric", "resets"]);
    assert!(ok, "{err}");
    assert_eq!(csv("resets.csv").len(), 1 + 2 * 2 * 3);

    // A single diagnostic, as before: no member column.
    let (ok, err) = history(&["--metric", "cos_rb"]);
    assert!(ok, "{err}");
    let rows = csv("cos_rb.csv");
    assert_eq!(
        rows[0],
        [
            "pde", "method", "seed", "width", "iter", "n", "median", "min", "max"
        ]
    );
    assert_eq!(rows.len(), 1 + 2 * 2 * 3);

    // A kind the sweep has none of.
    let (ok, err) = history(&["--metric", "weights"]);
    assert!(!ok, "no loss weights in this sweep");
    assert!(
        err.contains("has no diagnostics of kind weights")
            && err.contains("cos_rb, kept_frac_l0, kept_frac_l1, loss_s, norm_g_b"),
        "{err}"
    );
}
