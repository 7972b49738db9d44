//! Packing several jobs into one worker process (`modsync worker --slots K`), on the CPU.
//!
//! Two jobs run concurrently in one `--slots 2` worker against a real coordinator; they give the
//! same stored results and metrics as the same two jobs run one at a time by a `--slots 1` worker.
//! Also: `--device` names that are unknown, or that this build lacks, fail at once with a clear
//! error (train and worker).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Coordinator, FAST_LEASES, run_cli, serial, tiny_sweep, write};

/// Iterations per job: long enough (a few seconds) that two leased jobs surely run at once.
const ITERS: u32 = 600;
const WIDTH: u32 = 24;

/// Everything a job stored: its result numbers and every metric row, keyed by seed.
#[derive(Debug)]
struct Stored {
    result: Vec<f64>,
    best_iter: i64,
    iters_done: i64,
    /// iter → (loss_r, loss_b, rel_l2, abs_err)
    metrics: BTreeMap<i64, [f64; 4]>,
}

fn num(s: &str) -> f64 {
    s.parse()
        .unwrap_or_else(|_| panic!("not a number: {s:?} (a NULL would mean non-finite)"))
}

fn stored(coord: &Coordinator, sweep: &str) -> BTreeMap<i64, Stored> {
    let mut out = BTreeMap::new();
    for r in coord.sql(&format!(
        "SELECT j.seed, r.rel_l2_best, r.rel_l2_min_loss, r.rel_l2_last, r.abs_err_best, \
         r.best_iter, r.iters_done, r.status, r.device FROM results r JOIN jobs j ON j.id = r.job_id \
         WHERE j.sweep_id = '{sweep}'"
    )) {
        assert_eq!(r[7], "finished", "{r:?}");
        assert_eq!(r[8], "cpu", "{r:?}");
        out.insert(
            r[0].parse::<i64>().unwrap(),
            Stored {
                result: r[1..5].iter().map(|s| num(s)).collect(),
                best_iter: r[5].parse().unwrap(),
                iters_done: r[6].parse().unwrap(),
                metrics: BTreeMap::new(),
            },
        );
    }
    for r in coord.sql(&format!(
        "SELECT j.seed, m.iter, m.loss_r, m.loss_b, m.rel_l2, m.abs_err FROM metrics m \
         JOIN jobs j ON j.id = m.job_id WHERE j.sweep_id = '{sweep}'"
    )) {
        let seed: i64 = r[0].parse().unwrap();
        let row = [num(&r[2]), num(&r[3]), num(&r[4]), num(&r[5])];
        out.get_mut(&seed)
            .expect("metrics of a job with a result")
            .metrics
            .insert(r[1].parse().unwrap(), row);
    }
    out
}

/// Equal to f32 rounding. On burn-flex the two runs are in fact bit-identical (the same ops in
/// the same order whatever else runs); the tolerance only keeps the test about the claim
/// ("the same training"), not about the exact kernel schedule. A different seed, step or
/// learning rate moves these numbers by far more than 1e-5 relative.
fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()) + 1e-12
}

/// Runs one sweep of two jobs (seeds 0 and 1) on a worker with `slots` slots. Returns what was
/// stored and whether both jobs were seen running at the same moment under this worker's lease.
fn run_sweep(coord: &Coordinator, dir: &std::path::Path, name: &str, slots: &str) -> bool {
    let file = write(
        dir,
        &format!("{name}.toml"),
        &tiny_sweep(name, &[WIDTH], &[0, 1], ITERS, ""),
    );
    coord.cli(&["submit", &file]);
    let mut worker = coord.worker(name, &["--slots", slots, "--device", "cpu"]);
    let start = Instant::now();
    let mut both_running = false;
    loop {
        let states = coord.states(name);
        assert_eq!(states.get("failed"), None, "failed jobs: {states:?}");
        let running_here = coord.sql_int(&format!(
            "SELECT COUNT(*) FROM jobs WHERE sweep_id = '{name}' AND state = 'running' \
             AND lease_owner = '{name}'"
        ));
        both_running |= running_here == 2;
        if states.get("done") == Some(&2) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "sweep {name} did not finish: {states:?}\n{}",
            worker.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    worker.signal("TERM");
    assert!(worker.wait(Duration::from_secs(30)).success());
    assert_eq!(
        coord.sql_int(&format!(
            "SELECT COUNT(*) FROM results r JOIN jobs j ON j.id = r.job_id \
             WHERE j.sweep_id = '{name}' AND r.worker_id = '{name}'"
        )),
        2,
        "both jobs finished by worker {name}"
    );
    both_running
}

/// [start, end] of each job's training in ms since the epoch, from the stored finish time and
/// wall time (no job here is resumed, so that is the whole lease).
fn intervals(coord: &Coordinator, sweep: &str) -> Vec<(f64, f64)> {
    coord
        .sql(&format!(
            "SELECT r.finished_at_ms, r.wall_s FROM results r JOIN jobs j ON j.id = r.job_id \
             WHERE j.sweep_id = '{sweep}' ORDER BY j.seed"
        ))
        .into_iter()
        .map(|r| {
            let end = num(&r[0]);
            (end - 1e3 * num(&r[1]), end)
        })
        .collect()
}

#[test]
fn two_slots_train_two_jobs_at_once_with_the_results_of_one_at_a_time() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Default 30 s leases (heartbeats every 250 ms): no lease can expire on a loaded machine,
    // so no job is ever resumed, and each result's wall time is its whole lease.
    let coord = Coordinator::start(
        &dir.path().join("slots.db"),
        None,
        &["--heartbeat-ms", "250"],
    );

    let packed_overlap = run_sweep(&coord, dir.path(), "packed", "2");
    let serial_overlap = run_sweep(&coord, dir.path(), "single", "1");
    assert!(
        packed_overlap,
        "the --slots 2 worker never held both leases at the same time"
    );
    assert!(
        !serial_overlap,
        "a --slots 1 worker held two leases at once"
    );

    // The training intervals tell the same story as the lease observations.
    let p = intervals(&coord, "packed");
    assert!(
        p[0].0 < p[1].1 && p[1].0 < p[0].1,
        "packed jobs did not overlap in time: {p:?}"
    );
    let s = intervals(&coord, "single");
    assert!(
        s[0].1 <= s[1].0 + 50.0 || s[1].1 <= s[0].0 + 50.0,
        "one-at-a-time jobs overlapped: {s:?}"
    );

    let packed = stored(&coord, "packed");
    let single = stored(&coord, "single");
    assert_eq!(packed.len(), 2);
    assert_eq!(single.len(), 2);
    let mut worst = 0.0f64;
    for seed in [0, 1] {
        let (a, b) = (&packed[&seed], &single[&seed]);
        assert_eq!(a.iters_done, ITERS as i64);
        assert_eq!(a.iters_done, b.iters_done);
        assert_eq!(a.best_iter, b.best_iter, "seed {seed}");
        for (x, y) in a.result.iter().zip(&b.result) {
            worst = worst.max((x - y).abs() / x.abs().max(1e-300));
            assert!(
                same(*x, *y),
                "seed {seed}: {:?} vs {:?}",
                a.result,
                b.result
            );
        }
        assert_eq!(
            a.metrics.keys().collect::<Vec<_>>(),
            b.metrics.keys().collect::<Vec<_>>(),
            "seed {seed}: the same evaluations"
        );
        assert_eq!(a.metrics.len() as u32, ITERS / 50 + 1);
        for (iter, row) in &a.metrics {
            let other = &b.metrics[iter];
            for (x, y) in row.iter().zip(other) {
                worst = worst.max((x - y).abs() / x.abs().max(1e-300));
                assert!(
                    same(*x, *y),
                    "seed {seed} iter {iter}: {row:?} vs {other:?}"
                );
            }
        }
    }
    eprintln!("packed vs one at a time: largest relative difference {worst:.1e}; intervals {p:?}");
    // The two seeds are different runs (so the comparison above could fail).
    assert!(!same(packed[&0].result[0], packed[&1].result[0]));
}

#[test]
fn unknown_or_missing_devices_fail_clearly() {
    let t = Duration::from_secs(60);
    // Unknown names: train and worker, before any work or connection.
    let (ok, _, err) = run_cli(&["train", "--device", "gpu", "--iters", "1"], t);
    assert!(!ok);
    assert!(
        err.contains("invalid --device: unknown device \"gpu\" (expected cpu"),
        "{err}"
    );
    // Port 9 (discard) on loopback: the device error must come before any connection attempt.
    let (ok, _, err) = run_cli(
        &[
            "worker",
            "--device",
            "tpu:0",
            "--coordinator",
            "http://127.0.0.1:9",
        ],
        t,
    );
    assert!(!ok);
    assert!(
        err.contains("invalid --device: unknown device \"tpu:0\""),
        "{err}"
    );
    let (ok, _, err) = run_cli(&["train", "--device", "cuda:x", "--iters", "1"], t);
    assert!(!ok);
    assert!(
        err.contains("invalid --device") && err.contains("cuda:0"),
        "{err}"
    );

    // LibTorch devices in a build without them.
    if !cfg!(feature = "tch") {
        for dev in ["cuda:0", "cpu-tch"] {
            let expected =
                format!("invalid --device: device {dev} needs a modsync built with --features tch");
            let (ok, _, err) = run_cli(&["train", "--device", dev, "--iters", "1"], t);
            assert!(!ok);
            assert!(err.contains(&expected), "train: {err}");
            let (ok, _, err) = run_cli(
                &[
                    "worker",
                    "--device",
                    dev,
                    "--coordinator",
                    "http://127.0.0.1:9",
                ],
                t,
            );
            assert!(!ok);
            assert!(err.contains(&expected), "worker: {err}");
        }
    } else {
        // With LibTorch: no machine has a CUDA device 9999.
        let (ok, _, err) = run_cli(&["train", "--device", "cuda:9999", "--iters", "1"], t);
        assert!(!ok);
        assert!(err.contains("cuda:9999 is not available"), "{err}");
    }
}

/// `--exit-when-idle SECS`: a worker trains what is queued, then exits 0 by itself once its
/// slots have had nothing to do for SECS (batch jobs stop holding their GPU); without the flag
/// it keeps polling. `--exit-when-idle 0` is refused naming the flag.
#[test]
fn an_idle_worker_exits_by_itself_when_asked() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("idle.db"), None, FAST_LEASES);
    let file = write(
        dir.path(),
        "idle.toml",
        &tiny_sweep("idle", &[8], &[0, 1, 2], 3000, ""),
    );
    coord.cli(&["submit", &file]);

    // Each job trains for longer than the idle limit: time spent training is not idle time, so
    // the worker must take the next job after each one instead of leaving.
    let mut leaving = coord.worker("leaving", &["--slots", "1", "--exit-when-idle", "1"]);
    let status = leaving.wait(Duration::from_secs(120));
    assert!(status.success(), "{status:?}\n{}", leaving.log());
    // Every job was done before it left: nothing was dropped on the way out.
    assert_eq!(
        coord.states("idle").get("done"),
        Some(&3),
        "{:?}",
        coord.states("idle")
    );
    assert!(
        leaving.log().contains("--exit-when-idle"),
        "the worker should say why it stopped:\n{}",
        leaving.log()
    );
    // The same idle queue, no flag: still polling well past that idle time.
    let mut staying = coord.worker("staying", &["--slots", "1"]);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        staying.running(),
        "a worker without the flag exited:\n{}",
        staying.log()
    );
    staying.signal("TERM");
    assert!(staying.wait(Duration::from_secs(30)).success());

    let (ok, _, err) = run_cli(
        &[
            "worker",
            "--exit-when-idle",
            "0",
            "--coordinator",
            "http://127.0.0.1:9",
        ],
        Duration::from_secs(30),
    );
    assert!(!ok && err.contains("invalid --exit-when-idle"), "{err}");
}

/// `--slots`, `--pack` and `--device` are one set of flags (`SlotArgs`) for `modsync worker`
/// and `sweep run`'s local workers: both refuse the same bad values, naming the flag, before
/// connecting (worker) or creating anything on disk (sweep run).
#[test]
fn slot_flags_are_refused_alike_by_worker_and_sweep_run() {
    let t = Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.toml",
        &tiny_sweep("slots", &[4], &[0], 10, ""),
    );
    for (flag, value, says) in [
        ("--slots", "0", "invalid --slots: must be at least 1"),
        ("--pack", "0", "invalid --pack: must be in 1..="),
        ("--pack", "100000", "invalid --pack: must be in 1..="),
        (
            "--device",
            "tpu:0",
            "invalid --device: unknown device \"tpu:0\"",
        ),
    ] {
        let (ok, _, err) = run_cli(
            &["worker", flag, value, "--coordinator", "http://127.0.0.1:9"],
            t,
        );
        assert!(!ok && err.contains(says), "worker {flag} {value}: {err}");
        let (ok, _, err) =
            common::run_cli_in(&["sweep", "run", &file, flag, value], t, Some(dir.path()));
        assert!(!ok && err.contains(says), "sweep run {flag} {value}: {err}");
        assert!(
            !dir.path().join(".modsync").exists(),
            "sweep run {flag} {value} created a store"
        );
    }
}
