//! Packs end to end: two `modsync worker --pack 4` processes on loopback train a sweep of
//! mixed methods, two learning rates (an extra axis, so packs mix series) and two pack keys; one of them is SIGKILLed mid-sweep while it trains a pack.
//! Every job ends with exactly one result, the killed worker's jobs resume from their
//! checkpoints (in another worker's pack, with other partners), and every result and every
//! metric row equals — f64, relative difference ≤ 1e-10 — the same sweep trained one job at a
//! time by a `--pack 1` worker without faults.
//!
//! Every wait is on a condition of the store, never on a fixed sleep.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::rpc::Rpc;
use common::{Coordinator, KILL_TEST_LEASES, Proc, poll_until, serial, write};

const ITERS: i64 = 1_000;
/// 2 methods × 2 learning rates (an extra axis: the series) × 2 widths (the pack keys) × 2
/// seeds.
const JOBS: i64 = 16;
const POLL: Duration = Duration::from_millis(50);

fn sweep(name: &str) -> String {
    format!(
        r#"name = "{name}"
max_attempts = 10

[grid]
pdes = ["burgers"]
methods = ["adam", "dcgd"]
widths = [6, 8]
seeds = [0, 1]

[grid.axes]
lr = [1e-3, 3e-3]

[train]
depth = 2
iters = {ITERS}
eval_every = 50
checkpoint_every = 50
lr_decay = false
precision = "f64"
"#
    )
}

/// (method, series, width, seed) → the numbers a job stored: its result and every metric row.
type Stored = BTreeMap<(String, String, i64, i64), Vec<f64>>;

fn stored(rpc: &Rpc, sweep: &str) -> Stored {
    let mut out: Stored = BTreeMap::new();
    for r in rpc.sql(&format!(
        "SELECT j.method, j.series, j.width, j.seed, r.rel_l2_best, r.rel_l2_min_loss, \
         r.rel_l2_last, r.abs_err_best, r.abs_err_max_best, r.best_iter, r.min_loss_iter, \
         r.iters_done FROM results r JOIN jobs j ON j.id = r.job_id WHERE j.sweep_id = '{sweep}'"
    )) {
        let key = (
            r[0].clone(),
            r[1].clone(),
            r[2].parse().unwrap(),
            r[3].parse().unwrap(),
        );
        out.insert(key, r[4..].iter().map(|s| num(s)).collect());
    }
    for r in rpc.sql(&format!(
        "SELECT j.method, j.series, j.width, j.seed, m.iter, m.loss_r, m.loss_b, m.rel_l2, \
         m.abs_err FROM metrics m JOIN jobs j ON j.id = m.job_id WHERE j.sweep_id = '{sweep}' \
         ORDER BY m.job_id, m.iter"
    )) {
        let key = (
            r[0].clone(),
            r[1].clone(),
            r[2].parse().unwrap(),
            r[3].parse().unwrap(),
        );
        out.get_mut(&key)
            .expect("metrics of a job with a result")
            .extend(r[4..].iter().map(|s| num(s)));
    }
    out
}

fn num(s: &str) -> f64 {
    s.parse()
        .unwrap_or_else(|_| panic!("not a number: {s:?} (NULL would mean non-finite)"))
}

fn pack_worker(coord: &Coordinator, name: &str, pack: &str) -> Proc {
    coord.worker(name, &["--pack", pack, "--device", "cpu"])
}

#[test]
fn a_packed_sweep_survives_a_killed_worker_with_the_results_of_one_job_at_a_time() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("packs.db"), None, KILL_TEST_LEASES);
    let rpc = Rpc::new(&coord);

    // ---- packed, with a SIGKILL ----
    coord.cli(&[
        "submit",
        &write(dir.path(), "packed.toml", &sweep("packed")),
    ]);
    let mut a = pack_worker(&coord, "a", "4");
    let _b = pack_worker(&coord, "b", "4");
    // Kill A once it trains a full pack and one of its jobs has a checkpoint mid-run.
    let mut full_pack = false;
    poll_until(
        Duration::from_secs(120),
        POLL,
        "worker a training 4 jobs, one checkpointed mid-run",
        || {
            let held = rpc
                .sql_int("SELECT COUNT(*) FROM jobs WHERE state = 'running' AND lease_owner = 'a'");
            full_pack |= held == 4;
            full_pack
                && held >= 1
                && rpc.sql_int(&format!(
                    "SELECT COUNT(*) FROM jobs j JOIN checkpoints c ON c.job_id = j.id \
                     WHERE j.state = 'running' AND j.lease_owner = 'a' AND c.token = j.token \
                     AND c.iter >= 100 AND c.iter <= {}",
                    ITERS - 200
                )) >= 1
        },
    );
    a.kill9();
    let killed_jobs =
        rpc.sql_int("SELECT COUNT(*) FROM jobs WHERE state = 'running' AND lease_owner = 'a'");
    assert!(killed_jobs >= 1);
    poll_until(
        Duration::from_secs(300),
        POLL,
        "every packed job done",
        || {
            let failed = rpc.sql_int("SELECT COUNT(*) FROM jobs WHERE state = 'failed'");
            assert_eq!(failed, 0, "{}", coord.proc.log());
            rpc.sql_int("SELECT COUNT(*) FROM jobs WHERE state = 'done'") == JOBS
        },
    );

    // Exactly one result per job, every one complete.
    assert_eq!(rpc.sql_int("SELECT COUNT(*) FROM results"), JOBS);
    assert_eq!(
        rpc.sql_int("SELECT COUNT(DISTINCT job_id) FROM results"),
        JOBS
    );
    assert_eq!(
        rpc.sql_int(&format!(
            "SELECT COUNT(*) FROM results WHERE iters_done != {ITERS} OR status != 'finished'"
        )),
        0
    );
    // The killed worker's jobs continued from their checkpoints: a later lease's first metric
    // row is past iteration 0, and no iteration is stored twice (the key makes that certain).
    let resumed = rpc.sql_int(
        "SELECT COUNT(DISTINCT job_id) FROM (SELECT job_id, token, MIN(iter) AS first \
         FROM metrics GROUP BY job_id, token) WHERE first > 0",
    );
    assert!(resumed >= 1, "no job resumed from a checkpoint");
    assert_eq!(
        rpc.sql_int("SELECT COUNT(*) FROM metrics"),
        JOBS * (ITERS / 50 + 1)
    );
    let packed = stored(&rpc, "packed");

    // ---- the same sweep, one job at a time, no faults ----
    coord.cli(&[
        "submit",
        &write(dir.path(), "single.toml", &sweep("single")),
    ]);
    let _c = pack_worker(&coord, "c", "1");
    let mut most_held = 0;
    poll_until(
        Duration::from_secs(300),
        POLL,
        "every single job done",
        || {
            most_held = most_held.max(rpc.sql_int(
                "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND lease_owner = 'c'",
            ));
            rpc.sql_int("SELECT COUNT(*) FROM jobs WHERE sweep_id = 'single' AND state = 'done'")
                == JOBS
        },
    );
    assert!(most_held <= 1, "a --pack 1 worker held {most_held} leases");
    let single = stored(&rpc, "single");

    assert_eq!(packed.len(), JOBS as usize);
    assert_eq!(
        packed.keys().collect::<Vec<_>>(),
        single.keys().collect::<Vec<_>>()
    );
    let mut worst = 0.0f64;
    for (key, p) in &packed {
        let s = &single[key];
        assert_eq!(p.len(), s.len(), "{key:?}: the same evaluations");
        for (x, y) in p.iter().zip(s) {
            let rel = (x - y).abs() / x.abs().max(y.abs()).max(1e-300);
            worst = worst.max(rel);
            assert!(rel <= 1e-10, "{key:?}: {x} vs {y}\n{p:?}\n{s:?}");
        }
    }
    // Both series are there, and different seeds, methods and learning rates are different
    // runs, so the comparison above could fail.
    let series: std::collections::BTreeSet<&str> = packed.keys().map(|k| k.1.as_str()).collect();
    assert_eq!(
        series.into_iter().collect::<Vec<_>>(),
        ["lr=0.001", "lr=0.003"]
    );
    let firsts: std::collections::BTreeSet<u64> = packed.values().map(|v| v[0].to_bits()).collect();
    assert_eq!(firsts.len(), JOBS as usize);
    eprintln!(
        "packs: {killed_jobs} jobs of a killed pack, {resumed} resumed from checkpoints; \
         largest relative difference to one job at a time: {worst:.1e}"
    );
}
