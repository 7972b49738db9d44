//! Chaos: a sweep of 30 tiny real training jobs on 4 `modsync worker` processes against a
//! `modsync coordinator` process, while a driver SIGKILLs a random worker every few seconds
//! (starting a replacement each time) and SIGKILLs and restarts the coordinator twice on the same
//! file and port. At the end every job has exactly one result, every evaluation row is there
//! once, the SQLite file passes `integrity_check`, and at least one job visibly resumed from a
//! checkpoint (a later lease's metric rows start past iteration 0).
//!
//! Half of the workers train packs (`--pack 4`, continuous batching), half one job at a time
//! (`--pack 1`), so a kill cuts short a whole pack as often as a single job.
//!
//! The kill schedule comes from a seeded RNG; the seed is printed, and `CHAOS_SEED=N` replays a
//! schedule (the timing of the machine still varies).

mod common;

use std::time::{Duration, Instant};

use common::{Coordinator, Proc, serial, tiny_sweep, write};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WIDTHS: [u32; 3] = [4, 6, 8];
const SEEDS: i32 = 10;
const JOBS: i64 = 30;
const ITERS: i64 = 1_200;
/// Evaluations (and checkpoints) every 50 iterations: 0, 50, …, 1200.
const ROWS_PER_JOB: i64 = ITERS / 50 + 1;
const WORKERS: usize = 4;
/// Hang guard for the whole sweep (it takes about a minute on 2 cores).
const SWEEP_LIMIT: Duration = Duration::from_secs(420);

const LEASES: &[&str] = common::KILL_TEST_LEASES;

/// Spawns worker `w{n}`: packs of 4 for even n, one job at a time for odd n.
fn spawn_worker(coord: &Coordinator, n: usize) -> Proc {
    let name = format!("w{n}");
    let pack = if n % 2 == 0 { "4" } else { "1" };
    let mut args = vec![
        "worker".to_string(),
        "--worker-id".to_string(),
        name.clone(),
        "--pack".to_string(),
        pack.to_string(),
    ];
    args.extend(coord.client_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    // One compute thread each: four workers already oversubscribe two cores.
    Proc::spawn(
        &name,
        &refs,
        &[("RUST_LOG", "info"), ("RAYON_NUM_THREADS", "1")],
        None,
    )
}

#[test]
fn sweep_survives_killed_workers_and_coordinator_restarts() {
    let _serial = serial();
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("chaos: seed {seed} (replay the schedule with CHAOS_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chaos.db");
    let mut coord = Coordinator::start(&db, None, LEASES);
    let seeds: Vec<i32> = (0..SEEDS).collect();
    let text = tiny_sweep("chaos", &WIDTHS, &seeds, ITERS as u32, "")
        // Every kill can cost an attempt; the point here is that nothing is lost, not the cap.
        .replace("max_attempts = 3", "max_attempts = 100");
    let file = write(dir.path(), "chaos.toml", &text);
    coord.cli(&["submit", &file]);
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM jobs"), JOBS);

    let mut spawned = 0usize;
    let mut next_worker = || {
        spawned += 1;
        spawned
    };
    let mut workers: Vec<Proc> = (0..WORKERS)
        .map(|_| spawn_worker(&coord, next_worker()))
        .collect();

    // The coordinator dies after these many jobs are done (two distinct points mid-sweep).
    let first = rng.random_range(4..=9);
    let restarts_at = [first, rng.random_range(first + 6..=first + 12)];
    let mut restarts = 0usize;
    let mut worker_kills = 0usize;
    // The first worker kill targets the owner of a job with a checkpoint past 0, so a resume is
    // certain to happen; it is retried until the job was really cut short.
    let mut resume_forced = false;
    let mut next_kill = Instant::now() + Duration::from_millis(rng.random_range(1_500..3_000));
    let start = Instant::now();

    loop {
        assert!(
            start.elapsed() < SWEEP_LIMIT,
            "chaos sweep not done after {SWEEP_LIMIT:?} (seed {seed}): {:?}",
            coord.states("chaos")
        );
        let states = coord.states("chaos");
        assert_eq!(
            states.get("failed"),
            None,
            "failed jobs (seed {seed}): {states:?}"
        );
        let done = states.get("done").copied().unwrap_or(0);
        if done == JOBS {
            break;
        }
        if restarts < restarts_at.len() && done >= restarts_at[restarts] {
            eprintln!(
                "chaos: t={:.1}s SIGKILL coordinator ({done} done)",
                start.elapsed().as_secs_f64()
            );
            coord.restart_killed();
            restarts += 1;
            continue;
        }
        if Instant::now() >= next_kill {
            let victim = if resume_forced {
                Some(rng.random_range(0..workers.len()))
            } else {
                let owners = coord.sql(
                    "SELECT j.lease_owner, j.id FROM jobs j JOIN checkpoints c ON c.job_id = j.id \
                     WHERE j.state = 'running' AND c.iter >= 100 AND c.iter <= 900 \
                     AND c.token = j.token ORDER BY j.id LIMIT 1",
                );
                owners.first().and_then(|row| {
                    let i = workers.iter().position(|w| w.name == row[0])?;
                    workers[i].kill9();
                    // It counts if the job did not finish just before the kill.
                    let state = coord.sql(&format!("SELECT state FROM jobs WHERE id = {}", row[1]));
                    resume_forced = state[0][0] == "running";
                    Some(i)
                })
            };
            if let Some(i) = victim {
                workers[i].kill9();
                worker_kills += 1;
                let n = next_worker();
                eprintln!(
                    "chaos: t={:.1}s SIGKILL worker {} → w{n}",
                    start.elapsed().as_secs_f64(),
                    workers[i].name
                );
                workers[i] = spawn_worker(&coord, n);
                next_kill = Instant::now() + Duration::from_millis(rng.random_range(2_000..4_000));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let wall = start.elapsed();
    assert_eq!(restarts, 2, "both coordinator restarts happened");
    assert!(
        resume_forced,
        "a worker was killed mid-job with a checkpoint"
    );

    // ---- what the store says, read while the last coordinator still runs ----
    let attempts = coord.sql_int("SELECT SUM(attempts) FROM jobs");
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM results"), JOBS);
    assert_eq!(
        coord.sql_int("SELECT COUNT(DISTINCT job_id) FROM results"),
        JOBS
    );
    assert_eq!(
        coord.sql_int(
            "SELECT COUNT(*) FROM jobs j LEFT JOIN results r ON r.job_id = j.id \
             WHERE r.job_id IS NULL OR j.state != 'done'"
        ),
        0,
        "a job without its result"
    );
    assert_eq!(
        coord.sql_int(&format!(
            "SELECT COUNT(*) FROM results WHERE iters_done != {ITERS} OR diverged != 0"
        )),
        0
    );
    // Every evaluation 0, 50, …, ITERS of every job, once (the key makes "once" certain).
    assert_eq!(
        coord.sql_int(&format!(
            "SELECT COUNT(*) FROM (SELECT job_id FROM metrics GROUP BY job_id \
             HAVING COUNT(*) = {ROWS_PER_JOB} AND MIN(iter) = 0 AND MAX(iter) = {ITERS} \
             AND SUM(iter % 50) = 0)"
        )),
        JOBS,
        "a job is missing evaluation rows"
    );
    // Resumed: the rows of a later lease start at its checkpoint, not at 0.
    let resumed = coord.sql_int(
        "SELECT COUNT(DISTINCT job_id) FROM (SELECT job_id, token, MIN(iter) AS first \
         FROM metrics GROUP BY job_id, token) WHERE first > 0",
    );
    assert!(resumed >= 1, "no job resumed from a checkpoint");

    // ---- the file itself, after the coordinator is gone ----
    coord.proc.kill9();
    for w in &mut workers {
        w.kill9();
    }
    let check = Coordinator::start(&db, None, &[]);
    let integrity = check.sql("SELECT * FROM pragma_integrity_check");
    assert_eq!(integrity, vec![vec!["ok".to_string()]], "integrity_check");
    let fk = check.sql("SELECT COUNT(*) FROM pragma_foreign_key_check");
    assert_eq!(fk, vec![vec!["0".to_string()]], "foreign_key_check");
    assert_eq!(check.sql_int("SELECT COUNT(*) FROM results"), JOBS);
    eprintln!(
        "chaos: seed {seed}: {JOBS} jobs done in {:.1}s with {worker_kills} workers and 2 \
         coordinators SIGKILLed; {attempts} leases in all, {resumed} jobs resumed from a \
         checkpoint; integrity ok",
        wall.as_secs_f64()
    );
}
