//! Crashes: a worker killed with SIGKILL mid-job, and a coordinator killed and restarted
//! mid-sweep. Nothing is lost, nothing is duplicated, and re-leased jobs resume from their last
//! checkpoint instead of iteration 0. Across the coordinator's restart, leases that did not
//! expire keep their worker (no attempt counted) and a token from before a re-lease is refused.
//!
//! Every wait is on a condition of the store (polled through `Query`), never on a fixed sleep.

mod common;

use std::time::Duration;

use common::rpc::{Rpc, metric_row, result_json};
use common::{Coordinator, poll_until, serial, tiny_sweep, wait_until, write};
use modsync_proto::{CompleteJobRequest, ReportProgressRequest};
use tonic::Code;

const POLL: Duration = Duration::from_millis(20);

#[test]
fn killed_worker_job_is_re_leased_and_resumes_from_its_checkpoint() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // 4 s leases renewed every 250 ms: a loaded machine would have to starve the worker for
    // 16 heartbeats in a row before the surviving lease expired and counted a third attempt.
    let coord = Coordinator::start(
        &dir.path().join("kill.db"),
        None,
        &[
            "--lease-ms",
            "4000",
            "--heartbeat-ms",
            "250",
            "--reap-every-ms",
            "200",
        ],
    );
    let rpc = Rpc::new(&coord);
    // One job, long enough to be killed in the middle.
    let file = write(
        dir.path(),
        "kill.toml",
        &tiny_sweep("kill", &[8], &[0], 1500, ""),
    );
    coord.cli(&["submit", &file]);

    let mut w1 = coord.worker("w1", &[]);
    // Kill only once a checkpoint past iteration 0 is stored.
    poll_until(Duration::from_secs(60), POLL, "a first checkpoint", || {
        rpc.sql_int("SELECT COUNT(*) FROM checkpoints WHERE iter >= 100") == 1
    });
    w1.kill9();
    let first_token = rpc.sql_int("SELECT token FROM jobs");
    assert_eq!(coord.states("kill").get("running"), Some(&1));
    // A report w1 sent just before it died may still be committed: read the checkpoint only
    // once the lease has expired and the job is queued, when any later write of w1's token
    // would be refused.
    wait_until(Duration::from_secs(30), "the job re-queued", || {
        coord.states("kill").get("queued") == Some(&1)
    });
    let ckpt_iter = rpc.sql_int("SELECT iter FROM checkpoints");
    assert!(
        ckpt_iter > 0 && ckpt_iter < 1500,
        "checkpoint at {ckpt_iter}"
    );

    // Another worker resumes it from there.
    let _w2 = coord.worker("w2", &[]);
    coord.wait_all_done("kill", 1, Duration::from_secs(90));

    let second_token = rpc.sql_int("SELECT token FROM jobs");
    assert_eq!(
        second_token,
        first_token + 1,
        "re-leased once, with a new fencing token"
    );
    assert_eq!(rpc.sql_int("SELECT attempts FROM jobs"), 2);
    assert_eq!(rpc.sql_int("SELECT COUNT(*) FROM results"), 1);
    assert_eq!(rpc.sql_int("SELECT iters_done FROM results"), 1500);
    assert_eq!(
        rpc.sql("SELECT worker_id FROM results")[0][0],
        "w2",
        "the result comes from the second worker"
    );
    // The second attempt's first row is the checkpoint's iteration, not 0: it continued.
    let first_row_of_second = rpc.sql_int(&format!(
        "SELECT MIN(iter) FROM metrics WHERE token = {second_token}"
    ));
    assert_eq!(first_row_of_second, ckpt_iter, "resumed at the checkpoint");
    // Iteration 0 was only ever reported by the first attempt.
    assert_eq!(
        rpc.sql_int("SELECT token FROM metrics WHERE iter = 0"),
        first_token
    );
    // Every evaluation 0, 50, …, 1500 is there exactly once.
    assert_eq!(rpc.sql_int("SELECT COUNT(*) FROM metrics"), 31);
    assert_eq!(
        rpc.sql_int("SELECT COUNT(*) FROM metrics WHERE iter % 50 != 0"),
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
        Some("s3cret-s3cret-s3cret"),
        &[
            "--lease-ms",
            "6000",
            "--heartbeat-ms",
            "250",
            "--reap-every-ms",
            "200",
        ],
    );
    let rpc = Rpc::new(&coord);
    let file = write(
        dir.path(),
        "restart.toml",
        &tiny_sweep("restart", &[4, 8], &[0, 1], 600, ""),
    );
    coord.cli(&["submit", &file]);
    // A hand-driven worker leases the first job and then goes silent: its lease will expire
    // (after the restart) and the job will be re-leased by a real worker.
    let ghost = rpc.lease("ghost").expect("a queued job");
    let _w1 = coord.worker("w1", &[]);
    let _w2 = coord.worker("w2", &[]);
    poll_until(
        Duration::from_secs(60),
        POLL,
        "both workers training, with checkpoints",
        || {
            rpc.sql_int(&format!(
                "SELECT COUNT(*) FROM jobs j JOIN checkpoints c ON c.job_id = j.id \
                 WHERE j.state = 'running' AND j.id != {}",
                ghost.job_id
            )) == 2
        },
    );
    coord.restart_killed();
    let rpc = Rpc::new(&coord);
    // The sweep survived the restart as it was.
    assert_eq!(rpc.sql_int("SELECT COUNT(*) FROM jobs"), 4);

    // The ghost's lease expires and a real worker takes the job over; then every write with
    // the ghost's token, from before that re-lease, is refused and writes nothing.
    poll_until(
        Duration::from_secs(60),
        POLL,
        "the ghost's job re-leased",
        || {
            rpc.sql_int(&format!(
                "SELECT token FROM jobs WHERE id = {}",
                ghost.job_id
            )) > ghost.token
        },
    );
    let refused = |what: &str, r: Result<(), tonic::Status>| match r {
        Err(s) if s.code() == Code::FailedPrecondition => {}
        other => panic!("{what} with a stale token: {other:?}"),
    };
    refused("Heartbeat", rpc.heartbeat(&ghost, "ghost").map(|_| ()));
    refused(
        "ReportProgress",
        rpc.report(ReportProgressRequest {
            job_id: ghost.job_id,
            token: ghost.token,
            worker_id: "ghost".into(),
            metrics: vec![metric_row(0)],
            checkpoint: Vec::new(),
        })
        .map(|_| ()),
    );
    refused(
        "CompleteJob",
        rpc.complete(CompleteJobRequest {
            job_id: ghost.job_id,
            token: ghost.token,
            worker_id: "ghost".into(),
            result_json: result_json(&ghost),
            device: "cpu".into(),
        }),
    );
    refused("FailJob", rpc.fail(&ghost, "ghost", "stale"));
    refused("ReleaseJob", rpc.release(&ghost, "ghost"));

    coord.wait_all_done("restart", 4, Duration::from_secs(120));
    // Jobs whose workers survived the restart kept their lease: one attempt each. The ghost's
    // job counted two (its expired lease and the real one).
    assert_eq!(
        rpc.sql_int(&format!(
            "SELECT MAX(attempts) FROM jobs WHERE id != {}",
            ghost.job_id
        )),
        1
    );
    assert_eq!(
        rpc.sql(&format!(
            "SELECT j.attempts, r.worker_id != 'ghost', COALESCE(j.last_error, '') != 'stale' \
             FROM jobs j JOIN results r ON r.job_id = j.id WHERE j.id = {}",
            ghost.job_id
        )),
        [["2", "1", "1"]]
    );
    assert_eq!(
        rpc.sql_int(&format!(
            "SELECT COUNT(*) FROM metrics WHERE job_id = {} AND token = {}",
            ghost.job_id, ghost.token
        )),
        0,
        "the ghost's stale row was stored"
    );

    assert_eq!(rpc.sql_int("SELECT COUNT(*) FROM results"), 4);
    assert_eq!(
        rpc.sql_int("SELECT COUNT(*) FROM results WHERE iters_done != 600"),
        0
    );
    // Every evaluation of every job (0, 50, …, 600) is stored once: no report was lost.
    assert_eq!(rpc.sql_int("SELECT COUNT(*) FROM metrics"), 4 * 13);
    assert_eq!(
        rpc.sql_int(
            "SELECT COUNT(*) FROM (SELECT job_id FROM metrics GROUP BY job_id \
             HAVING COUNT(*) = 13 AND MIN(iter) = 0 AND MAX(iter) = 600)"
        ),
        4
    );
}
