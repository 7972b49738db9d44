//! Migrations applied to a store that already holds data: a file that an older build left at
//! version 3 or 5 (sweeps, jobs, results in it), opened by this build. And the schema they make
//! against trainer-core's definitions (the `metrics` table against `METRICS_COLUMNS`).

use coordinator::{MIGRATOR, Store};
use sqlx::AssertSqlSafe;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use trainer_core::{METRICS_COLUMNS, ReadMetric};

/// A pool on the SQLite file `db`, created empty if missing; no migration applied.
async fn pool_on(db: &std::path::Path) -> SqlitePool {
    SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(db)
            .create_if_missing(true),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_metrics_table_has_the_columns_of_a_metrics_row() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool_on(&dir.path().join("fresh.db")).await;
    MIGRATOR.run(&pool).await.unwrap();
    let table: Vec<(String, String)> =
        sqlx::query_as("SELECT name, type FROM pragma_table_info('metrics') ORDER BY cid")
            .fetch_all(&pool)
            .await
            .unwrap();
    // The row's fixed columns, between the storage columns: which job the row is of, the
    // diagnostics map as one JSON object (`MetricsRow::extra`), and the lease that wrote it.
    let mut expected = vec![("job_id".to_string(), "INTEGER".to_string())];
    expected.extend(METRICS_COLUMNS.iter().map(|c| {
        let sql_type = match c.read {
            ReadMetric::Integer(_) => "INTEGER",
            ReadMetric::Real(_) => "REAL",
        };
        (c.name.to_string(), sql_type.to_string())
    }));
    expected.push(("extra".into(), "TEXT".into()));
    expected.push(("token".into(), "INTEGER".into()));
    assert_eq!(
        table, expected,
        "the metrics table and trainer-core's METRICS_COLUMNS differ"
    );
    pool.close().await;
}

/// The `curves` view of version 1 as a plain SELECT (the body of its CREATE VIEW).
fn curves_v1() -> String {
    let init = include_str!("../../../migrations/0001_init.sql");
    let body = init
        .split("CREATE VIEW curves AS")
        .nth(1)
        .expect("0001 defines the curves view");
    body.trim().trim_end_matches(';').to_string()
}

type CurveRow = (String, String, String, i64, i64, f64, f64, f64, f64);

/// Fills a store at version 3 or later: two sweeps; per (pde, method, width) 0, 1, 2 or 5
/// finished seeds (the three errors of a result distinct and ranked differently), one failed job. Returns the number
/// of jobs.
async fn fill(pool: &SqlitePool) -> i64 {
    for s in ["a", "b"] {
        sqlx::query(
            "INSERT INTO sweeps (id, name, spec, max_attempts, created_at_ms, updated_at_ms)
             VALUES (?, ?, '{}', 3, 0, 0)",
        )
        .bind(s)
        .bind(s)
        .execute(pool)
        .await
        .unwrap();
    }
    let mut k = 0.0f64;
    let mut jobs = 0;
    for s in ["a", "b"] {
        for pde in ["burgers", "helmholtz2d"] {
            for (m, method) in ["adam", "dcgd"].into_iter().enumerate() {
                for (w, width) in [8i64, 16].into_iter().enumerate() {
                    let finished = [0, 1, 2, 5][(m * 2 + w + usize::from(s == "b")) % 4];
                    for seed in 0..5i64 {
                        let state = if seed < finished { "done" } else { "queued" };
                        let id: i64 = sqlx::query_scalar(
                            "INSERT INTO jobs (sweep_id, pde, method, width, seed, config_json,
                                 config_hash, state, max_attempts, created_at_ms, updated_at_ms)
                             VALUES (?, ?, ?, ?, ?, '{}', ?, ?, 3, 0, 0) RETURNING id",
                        )
                        .bind(s)
                        .bind(pde)
                        .bind(method)
                        .bind(width)
                        .bind(seed)
                        .bind(format!("{s}{pde}{method}{width}{seed}"))
                        .bind(state)
                        .fetch_one(pool)
                        .await
                        .unwrap();
                        jobs += 1;
                        if state == "done" {
                            k += 1.0;
                            let v = 0.01 * (1.0 + (k * 7.3).sin().abs()) / width as f64;
                            sqlx::query(
                                "INSERT INTO results (job_id, rel_l2_best, rel_l2_min_loss,
                                     rel_l2_last, abs_err_best, abs_err_max_best, best_iter,
                                     min_loss_iter, iters_done, wall_s, iters_per_s, num_params,
                                     diverged, skipped_steps, status, device, worker_id, result,
                                     finished_at_ms)
                                 VALUES (?, ?, ?, ?, 0, 0, 0, 0, 10, 1, 10, 100, 0, 0,
                                         'finished', 'cpu', 'w', '{}', ?)",
                            )
                            .bind(id)
                            .bind(v)
                            .bind(v * (1.2 + (k * 3.1).cos()))
                            .bind(v * (1.5 + (k * 1.7).sin()))
                            .bind(1_000 + id)
                            .execute(pool)
                            .await
                            .unwrap();
                        }
                    }
                }
            }
        }
    }
    sqlx::query(
        "UPDATE jobs SET state = 'failed', last_error = 'boom'
         WHERE id = (SELECT MIN(id) FROM jobs WHERE state = 'queued')",
    )
    .execute(pool)
    .await
    .unwrap();
    jobs
}

#[tokio::test]
async fn version_4_applies_to_a_store_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let pool = pool_on(&db).await;
    MIGRATOR.run_to(3, &pool).await.unwrap();

    let jobs = fill(&pool).await;
    pool.close().await;

    // This build opens it: migration 4 runs over the data.
    let store = Store::open(&db).await.unwrap();
    let pool = store.reader().pool();
    let versions: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap();
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap();
    assert_eq!(versions.last(), Some(&(latest, true)), "{versions:?}");
    assert!(latest >= 4);
    let (count, results): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM jobs), (SELECT COUNT(*) FROM results)")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(count, jobs);
    assert!(results > 10, "{results}");
    // Version 5: jobs stored before extra axes existed are in the one empty series.
    let unlabelled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE series = ''")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(unlabelled, jobs);
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name IN
             ('jobs_cells', 'results_finished') ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(indexes, ["jobs_cells", "results_finished"]);

    // The new view gives version 1's numbers, over the rows that were there before.
    let old: Vec<CurveRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT sweep_id, pde, method, width, n, mean, std, median, min FROM ({})
         ORDER BY sweep_id, pde, method, width",
        curves_v1()
    )))
    .fetch_all(pool)
    .await
    .unwrap();
    let new: Vec<CurveRow> = sqlx::query_as(
        "SELECT sweep_id, pde, method, width, n, mean, std, median, min FROM curves
         ORDER BY sweep_id, pde, method, width",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(new, old);
    // 2 sweeps × 2 pdes × 2 methods × 2 widths, less the cells with no finished seed.
    assert_eq!(new.len(), 12, "{new:?}");
    assert!(new.iter().any(|r| r.4 == 2) && new.iter().any(|r| r.4 == 5));
    // …and reads one sweep through the index, not every result of every sweep.
    let plan: Vec<(i64, i64, i64, String)> =
        sqlx::query_as("EXPLAIN QUERY PLAN SELECT * FROM curves WHERE sweep_id = 'a'")
            .fetch_all(pool)
            .await
            .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|r| r.3).collect();
    assert!(
        plan.iter().any(|d| d.contains("jobs_cells (sweep_id=?)")),
        "{plan:?}"
    );
    store.close().await;
}

/// The `curves` view of version 5 as a plain SELECT over the error `col` of the results (for
/// `rel_l2_best`, the body of its CREATE VIEW; the dashboard ran it for all three errors).
fn curves_v5(col: &str) -> String {
    let v5 = include_str!("../../../migrations/0005_series.sql");
    let body = v5
        .split("CREATE VIEW curves AS")
        .nth(1)
        .expect("0005 defines the curves view");
    body.trim()
        .trim_end_matches(';')
        .replace("rel_l2_best", col)
}

/// Version 6's `curve_stats` and `curves` give version 5's numbers to the last bit, for every
/// error, over the rows that were there before; `curves` keeps its columns; a filter on the keys
/// still reads one sweep's PDE through the jobs index.
#[tokio::test]
async fn version_6_computes_version_5s_numbers_for_every_error() {
    type Stat = (
        String,
        String,
        String,
        String,
        String,
        i64,
        i64,
        f64,
        f64,
        f64,
        f64,
        f64,
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v5.db");
    let pool = pool_on(&db).await;
    MIGRATOR.run_to(5, &pool).await.unwrap();
    fill(&pool).await;
    // Two series in one sweep's cells.
    sqlx::query("UPDATE jobs SET series = 'lr=0.1' WHERE sweep_id = 'b' AND seed % 2 = 0")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // This build opens it: migration 6 runs. Version 5's SQL runs on it too (it reads only
    // tables, which the migration does not touch; `sqrt` is the store connections' function).
    let store = Store::open(&db).await.unwrap();
    let pool = store.reader().pool();
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap();
    assert!(latest >= 6);
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('curves') ORDER BY cid")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        columns,
        [
            "sweep_id", "pde", "method", "series", "width", "n", "mean", "std", "median", "min"
        ]
    );
    type CurvesRow = (String, String, String, String, i64, i64, f64, f64, f64, f64);
    let v5_curves: Vec<CurvesRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT * FROM ({})",
        curves_v5("rel_l2_best")
    )))
    .fetch_all(pool)
    .await
    .unwrap();
    let v6_curves: Vec<CurvesRow> = sqlx::query_as("SELECT * FROM curves")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(
        v6_curves, v5_curves,
        "curves: the same rows in the same order"
    );
    let mut v5_stats: Vec<Stat> = Vec::new();
    for col in ["rel_l2_best", "rel_l2_min_loss", "rel_l2_last"] {
        // Version 5's statistics of `col`, with the max of each cell beside them.
        let rows: Vec<Stat> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT c.sweep_id, c.pde, c.method, c.series, '{col}', c.width, c.n, c.mean, c.std,
                    c.median, c.min,
                    (SELECT MAX(r.{col}) FROM results r JOIN jobs j ON j.id = r.job_id
                     WHERE (j.sweep_id, j.pde, j.method, j.series, j.width)
                         = (c.sweep_id, c.pde, c.method, c.series, c.width))
             FROM ({}) c",
            curves_v5(col)
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        v5_stats.extend(rows);
    }
    let mut v6_stats: Vec<Stat> = sqlx::query_as(
        "SELECT sweep_id, pde, method, series, metric, width, n, mean, std, median, min, max
         FROM curve_stats",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let key = |r: &Stat| {
        (
            r.0.clone(),
            r.1.clone(),
            r.2.clone(),
            r.3.clone(),
            r.4.clone(),
            r.5,
        )
    };
    v5_stats.sort_by_key(key);
    v6_stats.sort_by_key(key);
    assert_eq!(v6_stats, v5_stats);
    // 2 sweeps × 2 pdes × 2 methods × 2 widths, less the cells with no finished seed, one
    // cell of sweep b in two series; for three errors.
    assert!(v6_stats.len() > 3 * 12, "{}", v6_stats.len());
    assert!(v6_stats.iter().any(|r| r.3 == "lr=0.1"));
    // The three errors rank the seeds differently: their statistics are not one error's.
    let medians = |metric: &str| -> Vec<f64> {
        v6_stats
            .iter()
            .filter(|r| r.4 == metric)
            .map(|r| r.9)
            .collect()
    };
    assert_ne!(medians("rel_l2_min_loss"), medians("rel_l2_best"));
    assert_ne!(medians("rel_l2_last"), medians("rel_l2_min_loss"));

    // A filter on the keys reads one sweep's PDE through the index, for one error.
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT * FROM curve_seeds
         WHERE sweep_id = 'a' AND pde = 'burgers' AND metric = 'rel_l2_last'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|r| r.3).collect();
    assert!(
        plan.iter()
            .any(|d| d.contains("jobs_cells (sweep_id=? AND pde=?)")),
        "{plan:?}"
    );
    assert!(
        plan.iter().any(|d| d.contains("PRIMARY KEY (metric=?)")),
        "{plan:?}"
    );
    store.close().await;
}
