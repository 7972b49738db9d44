//! The promises of docs/operations.md, "Guarantees", about one worker's life, each checked on
//! real `modsync coordinator` and `modsync worker` processes on loopback, with the fault
//! injected by signals:
//!
//! - SIGTERM mid-job: the stop checkpoint is stored and the job released, re-leasable at once,
//!   no attempt counted;
//! - SIGSTOP past the lease, another worker takes the job, SIGCONT: every write of the first is
//!   refused, it drops the job within a heartbeat, one result;
//! - a diverging run is a result with finite errors; a trainer error is FailJob, one attempt,
//!   `last_error` set;
//! - SIGKILL several evaluations after the last checkpoint (default `checkpoint_every`): the
//!   lost stretch is trained again and every evaluation row is stored exactly once;
//! - a checkpoint over `--max-checkpoint-bytes` is refused, the worker trains on, and its next
//!   checkpoint is stored.
//!
//! Tiny networks (width 8–32, depth 2) and a few thousand iterations: each test takes seconds.
//! The store is read through `Query` (common::rpc), polled every 20 ms.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::rpc::Rpc;
use common::{Coordinator, one_job_sweep, poll_until, serial, wait_until, write};
use modsync_proto::ReportProgressRequest;
use trainer_core::{Checkpoint, RunResult, RunStatus, TrainConfig, Trainer};

const POLL: Duration = Duration::from_millis(20);

/// (state, token, attempts, lease owner) of the only job.
fn job(rpc: &Rpc) -> (String, i64, i64, String) {
    let r = &rpc.sql("SELECT state, token, attempts, COALESCE(lease_owner, '') FROM jobs")[0];
    (
        r[0].clone(),
        r[1].parse().unwrap(),
        r[2].parse().unwrap(),
        r[3].clone(),
    )
}

/// The iterations of the metric rows written under `token`.
fn rows_of(rpc: &Rpc, token: i64) -> BTreeSet<i64> {
    rpc.sql(&format!("SELECT iter FROM metrics WHERE token = {token}"))
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect()
}

/// Every evaluation 0, 50, …, `iters` is stored exactly once, and nothing else.
fn assert_every_evaluation_once(rpc: &Rpc, iters: i64) {
    let evaluations = iters / 50 + 1;
    assert_eq!(
        rpc.sql(
            "SELECT COUNT(*), COUNT(DISTINCT iter), MIN(iter), MAX(iter), \
                 SUM(iter % 50 != 0) FROM metrics"
        )[0],
        [evaluations, evaluations, 0, iters, 0].map(|n| n.to_string()),
        "(rows, distinct iterations, first, last, off the evaluation grid)"
    );
}

#[test]
fn sigterm_mid_job_stores_the_stop_checkpoint_and_releases_at_once() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Leases far longer than the test: a job that can be leased again was released, not reaped.
    let coord = Coordinator::start(
        &dir.path().join("term.db"),
        None,
        &["--lease-ms", "120000", "--heartbeat-ms", "250"],
    );
    let rpc = Rpc::new(&coord);
    // checkpoint_every beyond iters: the only checkpoint this run can store is its stop checkpoint.
    let iters = 20_000;
    let file = write(
        dir.path(),
        "term.toml",
        &one_job_sweep(
            "term",
            8,
            iters,
            3,
            "eval_every = 50\ncheckpoint_every = 1000000",
        ),
    );
    coord.cli(&["submit", &file]);
    let mut w1 = coord.worker("w1", &[]);
    wait_until(Duration::from_secs(60), "evaluations up to 200", || {
        rpc.sql_opt("SELECT MAX(iter) FROM metrics")
            .is_some_and(|i| i >= 200)
    });
    let (state, token, attempts, _) = job(&rpc);
    assert_eq!((state.as_str(), attempts), ("running", 1));

    w1.signal("TERM");
    assert!(w1.wait(Duration::from_secs(30)).success(), "{}", w1.log());
    assert!(w1.log().contains("released"), "{}", w1.log());

    // The lease was given back, not counted, and the stop checkpoint is stored.
    let (state, token_after, attempts, _) = job(&rpc);
    assert_eq!(
        (state.as_str(), token_after, attempts),
        ("queued", token, 0),
        "(state, token, attempts) after SIGTERM"
    );
    let ckpt = rpc.sql("SELECT iter, token FROM checkpoints");
    assert_eq!(ckpt.len(), 1, "no stop checkpoint: {ckpt:?}");
    let ckpt_iter: i64 = ckpt[0][0].parse().unwrap();
    assert_eq!(ckpt[0][1], token.to_string(), "written by w1's lease");
    assert!(
        (200..iters as i64).contains(&ckpt_iter),
        "stopped mid-job: checkpoint at {ckpt_iter}"
    );
    // The rows before the stop were sent with it: every evaluation before its iteration (the
    // one at the stop iteration itself is the resumed run's first), none beyond.
    assert_eq!(
        rpc.sql("SELECT COUNT(*), MAX(iter) FROM metrics")[0],
        [(ckpt_iter + 49) / 50, (ckpt_iter - 1) / 50 * 50].map(|n| n.to_string())
    );

    // Leasable again at once: no lease expiry involved (leases last 120 s).
    let again = rpc.lease("w2").expect("the released job is leased at once");
    assert_eq!(again.attempt, 1, "the SIGTERM did not count an attempt");
    assert_eq!(again.token, token + 1);
    let resumed = Checkpoint::from_bytes(&again.checkpoint).expect("the stop checkpoint");
    assert_eq!(resumed.iter as i64, ckpt_iter);
    eprintln!("SIGTERM: stop checkpoint at iteration {ckpt_iter}, leased again at once");
}

#[test]
fn a_sigstopped_worker_past_its_lease_is_fenced_off_and_drops_the_job() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    const HEARTBEAT_MS: u64 = 250;
    // 4 s leases: long enough that b's lease survives a loaded machine (exactly 2 attempts).
    let coord = Coordinator::start(
        &dir.path().join("stop.db"),
        None,
        &[
            "--lease-ms",
            "4000",
            "--heartbeat-ms",
            &HEARTBEAT_MS.to_string(),
            "--reap-every-ms",
            "200",
        ],
    );
    let rpc = Rpc::new(&coord);
    let iters = 3000;
    // Default checkpoint_every (500): stopped at ~200, `a` has no checkpoint yet, so `b` starts
    // far behind it and cannot overwrite rows `a` might wrongly get stored after SIGCONT.
    let file = write(
        dir.path(),
        "stop.toml",
        &one_job_sweep("stop", 8, iters, 5, "eval_every = 50"),
    );
    coord.cli(&["submit", &file]);
    let mut a = coord.worker("a", &[]);
    poll_until(
        Duration::from_secs(60),
        POLL,
        "a's evaluations up to 200",
        || {
            rpc.sql_opt("SELECT MAX(iter) FROM metrics")
                .is_some_and(|i| i >= 200)
        },
    );
    a.signal("STOP");
    let (_, token_a, _, owner) = job(&rpc);
    assert_eq!(owner, "a");

    // Its lease expires; `b` takes the job over.
    let b = coord.worker("b", &[]);
    poll_until(Duration::from_secs(60), POLL, "b leases the job", || {
        job(&rpc).3 == "b"
    });
    let (state, token_b, attempts, _) = job(&rpc);
    assert_eq!(
        (state.as_str(), token_b, attempts),
        ("running", token_a + 1, 2)
    );
    // Everything `a` got stored before it froze (its last in-flight write, if any, is answered
    // long before a 4 s lease expires).
    let rows_a = rows_of(&rpc, token_a);
    let ckpt_before = rpc.sql("SELECT iter, token FROM checkpoints");
    assert!(!rows_a.is_empty());

    a.signal("CONT");
    let took = poll_until(
        Duration::from_secs(20),
        Duration::from_millis(5),
        "a drops the job",
        || a.log().contains("abandoning it"),
    );
    // Its first write after SIGCONT (the heartbeat tick it missed fires at once) is refused and
    // the trainer stops at its next step: one heartbeat, plus scheduling on a loaded machine.
    assert!(
        took < Duration::from_millis(HEARTBEAT_MS + 1500),
        "a dropped the job {took:?} after SIGCONT"
    );
    eprintln!("SIGCONT: a dropped the job after {took:?}");
    // Nothing it sent after SIGCONT was stored: no new row of its token (b, far behind, has
    // not reached those iterations), no checkpoint of its, and the lease is b's.
    let stale_rows: Vec<i64> = rows_of(&rpc, token_a)
        .difference(&rows_a)
        .copied()
        .collect();
    assert!(
        stale_rows.is_empty(),
        "rows of a's stale lease stored: {stale_rows:?}"
    );
    let ckpt_now = rpc.sql("SELECT iter, token FROM checkpoints");
    assert!(
        ckpt_now.first().is_none_or(|c| c[1] != token_a.to_string()) || ckpt_now == ckpt_before,
        "a's stale checkpoint stored: {ckpt_now:?} (before: {ckpt_before:?})"
    );
    assert_eq!(job(&rpc), ("running".into(), token_b, 2, "b".into()));

    coord.wait_all_done("stop", 1, Duration::from_secs(120));
    assert_eq!(
        rpc.sql("SELECT COUNT(*), MIN(worker_id), MAX(worker_id) FROM results")[0],
        ["1", "b", "b"]
    );
    assert_eq!(job(&rpc).2, 2, "attempts");
    assert_every_evaluation_once(&rpc, iters as i64);
    // a's rows all come before b's first one: b replaced whatever a had stored past its resume
    // point, and a added nothing after it lost the lease.
    let first_b = rpc.sql_int(&format!(
        "SELECT MIN(iter) FROM metrics WHERE token = {token_b}"
    ));
    assert_eq!(
        rpc.sql_opt(&format!(
            "SELECT MAX(iter) FROM metrics WHERE token = {token_a}"
        ))
        .map_or(true, |i| i < first_b),
        true
    );
    assert!(
        !a.log().contains("done:"),
        "a reported a result:\n{}",
        a.log()
    );
    assert!(
        a.running(),
        "a stopped instead of going back to the queue:\n{}",
        a.log()
    );
    drop(b);
}

#[test]
fn a_diverging_run_is_a_result_with_finite_errors() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(
        &dir.path().join("diverge.db"),
        None,
        &["--heartbeat-ms", "250"],
    );
    let rpc = Rpc::new(&coord);
    // lr 1e100: the first step sends the weights to ~1e100, every later step is non-finite
    // and skipped, and after max_consecutive_skips (100) of them the run has diverged.
    let file = write(
        dir.path(),
        "diverge.toml",
        &one_job_sweep("diverge", 8, 2000, 3, "eval_every = 50\nlr = 1e100"),
    );
    coord.cli(&["submit", &file]);
    let w = coord.worker("w1", &[]);
    coord.wait_all_done("diverge", 1, Duration::from_secs(60));
    assert!(w.log().contains("done: Diverged"), "{}", w.log());

    let r = &rpc.sql(
        "SELECT status, diverged, iters_done, skipped_steps, rel_l2_best, rel_l2_min_loss, \
         rel_l2_last, abs_err_best, abs_err_max_best, wall_s, iters_per_s, result FROM results",
    )[0];
    assert_eq!(r[..2], ["diverged", "1"]);
    let iters_done: i64 = r[2].parse().unwrap();
    assert!(
        iters_done < 2000 && r[3].parse::<i64>().unwrap() >= 100,
        "{r:?}"
    );
    for (i, v) in r[4..11].iter().enumerate() {
        let x: f64 = v.parse().unwrap_or(f64::NAN);
        assert!(x.is_finite(), "results column {} is {v:?}: {r:?}", i + 4);
    }
    // The stored RunResult JSON has every number (NaN would be null and fail to parse).
    let result: RunResult = serde_json::from_str(&r[11]).expect("a complete RunResult");
    assert_eq!(result.status, RunStatus::Diverged);
    // The errors are those of the last finite evaluation, and it is a stored row.
    let last_finite = &rpc
        .sql("SELECT rel_l2 FROM metrics WHERE rel_l2 IS NOT NULL ORDER BY iter DESC LIMIT 1")[0]
        [0];
    assert_eq!(last_finite.parse::<f64>().unwrap(), result.rel_l2_last);
    assert_eq!(
        rpc.sql("SELECT attempts, COALESCE(last_error, '') FROM jobs")[0],
        ["1", ""]
    );
}

#[test]
fn a_trainer_error_fails_the_job_with_its_message_and_one_attempt() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(
        &dir.path().join("broken.db"),
        None,
        &["--heartbeat-ms", "250"],
    );
    let rpc = Rpc::new(&coord);
    // max_attempts 1: the first failure ends the job, so its attempts are exactly what the
    // failure counted.
    let file = write(
        dir.path(),
        "broken.toml",
        &one_job_sweep("broken", 8, 400, 1, "eval_every = 50"),
    );
    coord.cli(&["submit", &file]);

    // Every config a sweep file can give passes TrainConfig::validate, which the coordinator
    // runs; what fails only inside the trainer is a checkpoint it cannot resume from. Store one
    // that decodes (so the coordinator takes it) and has the job's config (so the worker uses
    // it) but a parameter vector of the wrong length, and give the job back.
    let planted = rpc.lease("planter").unwrap();
    let config: TrainConfig = serde_json::from_str(&planted.config_json).unwrap();
    let trainer = Trainer::new(config, &trainer_core::default_device()).unwrap();
    let mut ckpt = trainer.checkpoint(0.0);
    for (name, v) in &mut ckpt.vectors {
        if name == "theta" {
            v.truncate(1);
        }
    }
    rpc.report(ReportProgressRequest {
        job_id: planted.job_id,
        token: planted.token,
        worker_id: "planter".into(),
        metrics: Vec::new(),
        checkpoint: ckpt.to_bytes(),
    })
    .expect("a checkpoint that decodes is stored");
    rpc.release(&planted, "planter").unwrap();
    assert_eq!(job(&rpc).2, 0, "the release gave its attempt back");

    let w = coord.worker("w1", &[]);
    poll_until(Duration::from_secs(60), POLL, "the job fails", || {
        // One read: two could see `queued`, then `running` once the worker leased it.
        let state = job(&rpc).0;
        state != "running" && state != "queued"
    });
    let r = &rpc.sql("SELECT state, attempts, COALESCE(last_error, '') FROM jobs")[0];
    assert_eq!(r[..2], ["failed", "1"], "{r:?}");
    assert!(
        r[2].contains("theta has 1 values"),
        "last_error should carry the trainer's message: {:?}",
        r[2]
    );
    assert_eq!(rpc.sql_int("SELECT COUNT(*) FROM results"), 0);
    assert!(w.log().contains("job failed"), "{}", w.log());
}

#[test]
fn sigkill_several_evaluations_after_the_checkpoint_stores_every_evaluation_once() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // 4 s leases: w2's lease must survive a loaded machine (the tokens are checked exactly).
    let coord = Coordinator::start(
        &dir.path().join("lost.db"),
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
    let iters = 1200;
    // No checkpoint_every: the worker's default, 10 × eval_every = 500.
    let file = write(
        dir.path(),
        "lost.toml",
        &one_job_sweep("lost", 24, iters, 3, "eval_every = 50"),
    );
    coord.cli(&["submit", &file]);
    let mut w1 = coord.worker("w1", &[]);
    poll_until(
        Duration::from_secs(60),
        POLL,
        "3 evaluations past a checkpoint at 500",
        || {
            let r = &rpc
                .sql("SELECT (SELECT iter FROM checkpoints), (SELECT MAX(iter) FROM metrics)")[0];
            let (ckpt, last) = (r[0].parse::<i64>(), r[1].parse::<i64>());
            matches!((ckpt, last), (Ok(c), Ok(l)) if c >= 500 && l >= c + 150)
        },
    );
    w1.kill9();
    let (_, token1, _, _) = job(&rpc);
    // Once the lease has expired and the job is queued, every write of w1 is in (any later one
    // would be refused): read what it left.
    wait_until(Duration::from_secs(30), "the job re-queued", || {
        job(&rpc).0 == "queued"
    });
    let ckpt = rpc.sql_int("SELECT iter FROM checkpoints");
    let last = rpc.sql_int("SELECT MAX(iter) FROM metrics");
    assert_eq!(ckpt % 500, 0, "checkpoints every 10 evaluations: {ckpt}");
    assert!(
        last - ckpt >= 150,
        "killed {} evaluations after the checkpoint at {ckpt}",
        (last - ckpt) / 50
    );

    eprintln!("SIGKILL at evaluation {last}, last checkpoint {ckpt}");
    let w2 = coord.worker("w2", &[]);
    coord.wait_all_done("lost", 1, Duration::from_secs(120));
    assert!(
        w2.log().contains(&format!("resuming at {ckpt}")),
        "{}",
        w2.log()
    );
    let token2 = job(&rpc).1;
    assert_eq!(token2, token1 + 1);
    assert_every_evaluation_once(&rpc, iters as i64);
    // The lost stretch [ckpt, last] was trained again and its rows replaced: w1's rows end
    // before the checkpoint, w2's start at it.
    assert_eq!(
        rpc.sql(&format!(
            "SELECT MAX(iter) FROM metrics WHERE token = {token1} UNION ALL \
             SELECT MIN(iter) FROM metrics WHERE token = {token2}"
        )),
        [[(ckpt - 50).to_string()], [ckpt.to_string()]]
    );
    assert_eq!(rpc.sql_int("SELECT COUNT(*) FROM results"), 1);
}

#[test]
fn a_refused_oversize_checkpoint_is_skipped_and_the_next_one_stored() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let leases = ["--lease-ms", "10000", "--heartbeat-ms", "250"];
    // 1024 bytes, the smallest cap: a width-8 checkpoint (3 × 105 f64 and its header) is larger.
    let mut coord = Coordinator::start(
        &dir.path().join("big.db"),
        None,
        &[&leases[..], &["--max-checkpoint-bytes", "1024"]].concat(),
    );
    let rpc = Rpc::new(&coord);
    let iters = 4000;
    let file = write(
        dir.path(),
        "big.toml",
        &one_job_sweep(
            "big",
            8,
            iters,
            3,
            "eval_every = 50\ncheckpoint_every = 200",
        ),
    );
    coord.cli(&["submit", &file]);
    let w1 = coord.worker("w1", &[]);
    let marker = "refused the checkpoint of iteration ";
    wait_until(Duration::from_secs(60), "a refused checkpoint", || {
        w1.log().contains(marker)
    });
    let log = w1.log();
    let refused: i64 = log[log.find(marker).unwrap() + marker.len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // It trains on: evaluations after the refused checkpoint are stored; the checkpoint is not.
    poll_until(Duration::from_secs(60), POLL, "evaluations past it", || {
        rpc.sql_int("SELECT COALESCE(MAX(iter), 0) FROM metrics") >= refused + 100
    });
    assert_eq!(rpc.sql_int("SELECT COUNT(*) FROM checkpoints"), 0);
    let (state, token, _, _) = job(&rpc);
    assert_eq!(state, "running");

    // The same store with room for it: the next checkpoint of the same lease is stored.
    coord.restart_killed_with(&leases);
    let rpc = Rpc::new(&coord);
    poll_until(Duration::from_secs(60), POLL, "a checkpoint stored", || {
        rpc.sql_int("SELECT COUNT(*) FROM checkpoints") == 1
    });
    let r = &rpc.sql("SELECT iter, token FROM checkpoints")[0];
    assert!(r[0].parse::<i64>().unwrap() > refused, "{r:?}");
    assert_eq!(r[1], token.to_string(), "stored by the same lease");
    eprintln!(
        "checkpoint of iteration {refused} refused, then {} stored",
        r[0]
    );
    coord.wait_all_done("big", 1, Duration::from_secs(120));
    assert_eq!(
        job(&rpc).2,
        1,
        "one attempt: the refusal did not cost the lease"
    );
    assert_eq!(rpc.sql("SELECT worker_id FROM results"), [["w1"]]);
    assert_every_evaluation_once(&rpc, iters as i64);
}
