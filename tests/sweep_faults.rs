//! Crashes: a worker killed with SIGKILL mid-job, and a coordinator killed and restarted
//! mid-sweep. Nothing is lost, nothing is duplicated, and re-leased jobs resume from their last
//! checkpoint instead of iteration 0.

mod common;

use std::time::Duration;

use common::{Coordinator, FAST_LEASES, serial, tiny_sweep, wait_until, write};

#[test]
fn killed_worker_job_is_re_leased_and_resumes_from_its_checkpoint() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("kill.db"), None, FAST_LEASES);
    // One job, long enough to be killed in the middle.
    let file = write(
        dir.path(),
        "kill.toml",
        &tiny_sweep("kill", &[8], &[0], 1500, ""),
    );
    coord.cli(&["submit", &file]);

    let mut w1 = coord.worker("w1", &[]);
    // Kill only once a checkpoint past iteration 0 is stored.
    wait_until(Duration::from_secs(60), "a first checkpoint", || {
        coord.sql_int("SELECT COUNT(*) FROM checkpoints WHERE iter >= 100") == 1
    });
    w1.kill9();
    let ckpt_iter = coord.sql_int("SELECT iter FROM checkpoints");
    let first_token = coord.sql_int("SELECT token FROM jobs");
    assert!(
        ckpt_iter > 0 && ckpt_iter < 1500,
        "checkpoint at {ckpt_iter}"
    );
    assert_eq!(coord.states("kill").get("running"), Some(&1));

    // The lease expires (2 s), the reaper re-queues the job, a new worker resumes it.
    let _w2 = coord.worker("w2", &[]);
    coord.wait_all_done("kill", 1, Duration::from_secs(90));

    let second_token = coord.sql_int("SELECT token FROM jobs");
    assert!(
        second_token > first_token,
        "re-leased with a new fencing token"
    );
    assert_eq!(coord.sql_int("SELECT attempts FROM jobs"), 2);
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM results"), 1);
    assert_eq!(coord.sql_int("SELECT iters_done FROM results"), 1500);
    assert_eq!(
        coord.sql("SELECT worker_id FROM results")[0][0],
        "w2",
        "the result comes from the second worker"
    );
    // The second attempt's first row is the checkpoint's iteration, not 0: it continued.
    let first_row_of_second = coord.sql_int(&format!(
        "SELECT MIN(iter) FROM metrics WHERE token = {second_token}"
    ));
    assert_eq!(first_row_of_second, ckpt_iter, "resumed at the checkpoint");
    // Iteration 0 was only ever reported by the first attempt.
    assert_eq!(
        coord.sql_int("SELECT token FROM metrics WHERE iter = 0"),
        first_token
    );
    // Every evaluation 0, 50, …, 1500 is there exactly once.
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM metrics"), 31);
    assert_eq!(
        coord.sql_int("SELECT COUNT(*) FROM metrics WHERE iter % 50 != 0"),
        0
    );
}

#[test]
fn coordinator_restart_mid_sweep_loses_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Leases long enough to outlive the restart gap, so running jobs keep their workers.
    let mut coord = Coordinator::start(
        &dir.path().join("restart.db"),
        Some("s3cret"),
        &[
            "--lease-ms",
            "6000",
            "--heartbeat-ms",
            "250",
            "--reap-every-ms",
            "200",
        ],
    );
    let file = write(
        dir.path(),
        "restart.toml",
        &tiny_sweep("restart", &[4, 8], &[0, 1], 600, ""),
    );
    coord.cli(&["submit", &file]);
    let _w1 = coord.worker("w1", &[]);
    let _w2 = coord.worker("w2", &[]);
    wait_until(
        Duration::from_secs(60),
        "jobs running with checkpoints",
        || coord.sql_int("SELECT COUNT(*) FROM checkpoints") >= 1,
    );
    coord.restart_killed();
    // The sweep survived the restart as it was.
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM jobs"), 4);
    coord.wait_all_done("restart", 4, Duration::from_secs(120));

    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM results"), 4);
    assert_eq!(
        coord.sql_int("SELECT COUNT(*) FROM results WHERE iters_done != 600"),
        0
    );
    // Every evaluation of every job (0, 50, …, 600) is stored once: no report was lost.
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM metrics"), 4 * 13);
    assert_eq!(
        coord.sql_int(
            "SELECT COUNT(*) FROM (SELECT job_id FROM metrics GROUP BY job_id \
             HAVING COUNT(*) = 13 AND MIN(iter) = 0 AND MAX(iter) = 600)"
        ),
        4
    );
}
