//! A large store for the dashboard's scale benchmark (`bench/dashboard-scale.sh`):
//!
//!     scale_store FILE [SWEEPS] [METRIC_ROWS] [BIG_JOB_ROWS]
//!
//! writes FILE (replacing it) with SWEEPS sweeps (default 5) of 20,000 jobs each
//! (5 pdes × 4 methods × 10 widths × 100 seeds, submitted through the coordinator's own
//! `Store::submit_sweep`, so the schema, migrations and configs are the real ones), 64 workers,
//! a result for every finished job and METRIC_ROWS metric rows in all (default 5,000,000):
//! BIG_JOB_ROWS (default 50,000) for one job, the rest spread evenly over the finished jobs.
//! The newest sweep is still running: jobs queued, running (one per worker) and failed beside
//! the finished ones. Everything after the submissions is a few `INSERT … SELECT` statements over
//! recursive CTEs in one transaction, so the whole store takes 1-1.5 minutes on 2 cores.
//!
//! It prints one line per step and, at the end, `big_job=ID` (the job with BIG_JOB_ROWS rows)
//! and `sweep=ID` per sweep, for the benchmark script to read.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use coordinator::Store;
use modsync_proto::SweepSpec;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

const WORKERS: i64 = 64;
/// When the oldest sweep was created: 2026-11-01 00:00 UTC.
const T0_MS: i64 = 1_793_491_200_000;

fn usage() -> ExitCode {
    eprintln!("usage: scale_store FILE [SWEEPS] [METRIC_ROWS] [BIG_JOB_ROWS]");
    ExitCode::from(2)
}

fn arg(args: &[String], i: usize, default: i64, name: &str) -> Result<i64, String> {
    match args.get(i) {
        None => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| format!("invalid {name}: {s:?} is not a positive integer")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first().map(PathBuf::from) else {
        return usage();
    };
    let parsed = (|| {
        Ok::<_, String>((
            arg(&args, 1, 5, "SWEEPS")?,
            arg(&args, 2, 5_000_000, "METRIC_ROWS")?,
            arg(&args, 3, 50_000, "BIG_JOB_ROWS")?,
        ))
    })();
    let (sweeps, metric_rows, big_rows) = match parsed {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return usage();
        }
    };
    if big_rows > metric_rows {
        eprintln!("error: BIG_JOB_ROWS ({big_rows}) is more than METRIC_ROWS ({metric_rows})");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(generate(&path, sweeps, metric_rows, big_rows)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn generate(
    path: &std::path::Path,
    sweeps: i64,
    metric_rows: i64,
    big_rows: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    for suffix in ["", "-wal", "-shm"] {
        let f = PathBuf::from(format!("{}{suffix}", path.display()));
        if f.exists() {
            std::fs::remove_file(&f)?;
        }
    }

    // The sweeps and their jobs, through the coordinator (real configs, hashes, migrations).
    let store = Store::open(path).await?;
    let mut ids = Vec::new();
    for s in 0..sweeps {
        let spec = SweepSpec {
            name: format!("scale-{s}"),
            pdes: [
                "burgers",
                "helmholtz2d",
                "klein_gordon2d",
                "helmholtz3d",
                "klein_gordon3d",
            ]
            .map(String::from)
            .to_vec(),
            methods: ["adam", "dcgd", "pcgrad", "modsync+dcgd"]
                .map(String::from)
                .to_vec(),
            widths: vec![10, 14, 20, 28, 40, 56, 80, 112, 160, 224],
            seeds: (0..100).collect(),
            base_config_json: r#"{"depth": 3, "iters": 5000, "eval_every": 100}"#.into(),
            max_attempts: 3,
            priority: 0,
            ..Default::default()
        };
        let r = store.submit_sweep(&spec).await?;
        println!(
            "sweep {} with {} jobs ({:.1} s)",
            r.sweep_id,
            r.jobs_total,
            started.elapsed().as_secs_f64()
        );
        ids.push(r.sweep_id);
    }
    store.close().await;

    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Off)
                .pragma("cache_size", "-262144")
                .pragma("temp_store", "memory"),
        )
        .await?;
    let mut tx = pool.begin().await?;
    // Spread the sweeps' creation over the month; the newest one is the live one.
    let live = ids.last().cloned().unwrap_or_default();
    for (i, id) in ids.iter().enumerate() {
        let created = T0_MS + i as i64 * 86_400_000;
        sqlx::query("UPDATE sweeps SET created_at_ms = ?, updated_at_ms = ? WHERE id = ?")
            .bind(created)
            .bind(created)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
         INSERT INTO workers (id, host, device, first_seen_ms, last_seen_ms, jobs_done)
         SELECT printf('worker-%02d', i), printf('node-%02d', i / 8), 'cpu', ?2, ?3 - i * 1000, 0
         FROM n",
    )
    .bind(WORKERS)
    .bind(T0_MS)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    // States: the old sweeps finished (1 in 97 failed), the live one is 70 % through, with one
    // running job per worker. The triggers of migration 0002 count `workers.jobs_done`.
    sqlx::query(
        "UPDATE jobs SET
             lease_owner = printf('worker-%02d', id % ?1),
             attempts = 1,
             state = CASE
                 WHEN id % 97 = 13 THEN 'failed'
                 WHEN sweep_id <> ?2 THEN 'done'
                 WHEN id - (SELECT MIN(id) FROM jobs WHERE sweep_id = ?2) < 14000 THEN 'done'
                 ELSE 'queued' END,
             updated_at_ms = ?3",
    )
    .bind(WORKERS)
    .bind(&live)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE jobs SET attempts = 3, last_error =
             'job ' || id || ' diverged: loss is NaN at iteration ' || (id % 5000) ||
             char(10) || 'trainer-core: 100 consecutive skipped steps'
         WHERE state = 'failed'",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE jobs SET lease_owner = NULL, attempts = 0 WHERE state = 'queued'")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE jobs SET state = 'running', attempts = 1,
             lease_owner = printf('worker-%02d', id % ?1), lease_expires_at_ms = ?2 + 30000
         WHERE id IN (SELECT id FROM jobs WHERE sweep_id = ?3 AND state = 'queued'
                      ORDER BY id LIMIT ?1)",
    )
    .bind(WORKERS)
    .bind(now_ms)
    .bind(&live)
    .execute(&mut *tx)
    .await?;
    println!("states set ({:.1} s)", started.elapsed().as_secs_f64());

    // Results: the error falls with width, differs by method, and is skewed over seeds (a few
    // bad seeds), like real sweeps. The live sweep finished its jobs over the last 40 minutes.
    sqlx::query(
        "INSERT INTO results (job_id, rel_l2_best, rel_l2_min_loss, rel_l2_last, abs_err_best,
             abs_err_max_best, best_iter, min_loss_iter, iters_done, wall_s, iters_per_s,
             num_params, diverged, skipped_steps, status, device, worker_id, result,
             finished_at_ms)
         SELECT id, v, v * 1.05, v * 1.2, v / 3, v, 4900, 4800, 5000, 60.0 + width, 5000 / (60.0 + width),
                3 * width * width + 7 * width + 1, 0, 0, 'finished', 'cpu', lease_owner,
                '{\"config\":' || config_json || ',\"rel_l2_best\":' || v || '}',
                CASE WHEN sweep_id = ?1 THEN ?2 - 2400000 + (id % 14000) * 171
                     ELSE (SELECT created_at_ms FROM sweeps s WHERE s.id = sweep_id)
                          + (id % 20000) * 4000 END
         FROM (
             SELECT j.*, (CASE j.method WHEN 'adam' THEN 0.4 WHEN 'dcgd' THEN 0.3
                                        WHEN 'pcgrad' THEN 0.35 ELSE 0.2 END)
                         / (1.0 + j.width / 40.0)
                         * (1.0 + (abs(random()) % 1000) / 2000.0
                                + CASE WHEN abs(random()) % 10 = 0 THEN 3.0 ELSE 0.0 END) AS v
             FROM jobs j WHERE j.state = 'done'
         )",
    )
    .bind(&live)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    println!("results stored ({:.1} s)", started.elapsed().as_secs_f64());

    // Metric rows: BIG_JOB_ROWS for the live sweep's first finished job, the rest spread over
    // the other finished jobs (evaluations every 100 iterations).
    let big_job: i64 =
        sqlx::query_scalar("SELECT MIN(id) FROM jobs WHERE sweep_id = ? AND state = 'done'")
            .bind(&live)
            .fetch_one(&mut *tx)
            .await?;
    let others: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'done' AND id <> ?")
            .bind(big_job)
            .fetch_one(&mut *tx)
            .await?;
    let rest = metric_rows - big_rows;
    let (per, extra) = if others > 0 {
        (rest / others, rest % others)
    } else {
        (0, 0)
    };
    const METRIC_VALUES: &str =
        "lr, loss_r, loss_b, rel_l2, abs_err, abs_err_max, skipped_steps, elapsed_s, extra, token";
    const METRIC_SELECT: &str = "
        1e-3 * (1.0 - k.i * 1.0 / (k.i + 50.0)),
        (1.0 + (abs(random()) % 100) / 400.0) / (1.0 + k.i),
        (1.0 + (abs(random()) % 100) / 400.0) / (2.0 + 3 * k.i),
        0.9 / (1.0 + k.i / 4.0) + 0.01,
        0.3 / (1.0 + k.i / 4.0),
        0.9 / (1.0 + k.i / 4.0),
        0,
        k.i * 1.2,
        '{\"cos_rb\":' || round(((abs(random()) % 2000) - 1000) / 1000.0, 3) ||
            ',\"kept_frac.0\":' || round((abs(random()) % 1000) / 1000.0, 3) ||
            ',\"kept_frac.1\":' || round((abs(random()) % 1000) / 1000.0, 3) ||
            ',\"excl_frac.0\":' || round((abs(random()) % 1000) / 1000.0, 3) || '}',
        1";
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ?1 - 1)
         INSERT INTO metrics (job_id, iter, {METRIC_VALUES})
         SELECT ?2, k.i * 100, {METRIC_SELECT} FROM k"
    )))
    .bind(big_rows)
    .bind(big_job)
    .execute(&mut *tx)
    .await?;
    if per > 0 || extra > 0 {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ?1),
             d AS (SELECT id, ROW_NUMBER() OVER (ORDER BY id) - 1 AS rn
                   FROM jobs WHERE state = 'done' AND id <> ?3)
             INSERT INTO metrics (job_id, iter, {METRIC_VALUES})
             SELECT d.id, k.i * 100, {METRIC_SELECT}
             FROM d JOIN k ON k.i < ?1 + (d.rn < ?2)
             ORDER BY d.id, k.i"
        )))
        .bind(per)
        .bind(extra)
        .bind(big_job)
        .execute(&mut *tx)
        .await?;
    }
    println!(
        "metric rows stored ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    tx.commit().await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await?;
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM jobs), (SELECT COUNT(*) FROM results),
                (SELECT COUNT(*) FROM metrics)",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    println!(
        "jobs={} results={} metric_rows={} ({:.1} s)",
        counts.0,
        counts.1,
        counts.2,
        started.elapsed().as_secs_f64()
    );
    println!("big_job={big_job}");
    for id in &ids {
        println!("sweep={id}");
    }
    Ok(())
}
