//! The worker's pack thread when something goes wrong, against a real coordinator on loopback:
//!
//! - a pack step that panics fails every member job — one attempt each, with the panic as its
//!   error — and the slot's thread goes on with a new pack: the same slot leases the re-queued
//!   jobs again and trains them to the end;
//! - a job whose config does not have the pack key it was stored (and leased) under is refused
//!   when it joins the pack and failed, while the pack it tried to join trains on.
//!
//! The first needs a step that panics on demand: the worker library's test hook
//! `worker::PANIC_NEXT_STEP_OF_PACK`, so that worker runs in this process (`worker::run`, what
//! `modsync worker` runs). The second forges a stored pack key in the coordinator's store and
//! uses the `modsync worker` binary.
//!
//! Every wait is on a condition of the store, never on a fixed sleep.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::rpc::Rpc;
use common::{Coordinator, KILL_TEST_LEASES, poll_until, serial, tiny_sweep, write};

const POLL: Duration = Duration::from_millis(50);

/// (state, attempts, last_error) of every job of `sweep`, by seed.
fn jobs(rpc: &Rpc, sweep: &str) -> Vec<(String, i64, String)> {
    rpc.sql(&format!(
        "SELECT state, attempts, COALESCE(last_error, '') FROM jobs WHERE sweep_id = '{sweep}' \
         ORDER BY seed"
    ))
    .into_iter()
    .map(|r| (r[0].clone(), r[1].parse().unwrap(), r[2].clone()))
    .collect()
}

#[test]
fn a_panicking_pack_step_fails_every_member_once_and_the_slot_leases_again() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("panic.db"), None, KILL_TEST_LEASES);
    let rpc = Rpc::new(&coord);
    // Three jobs of one pack key, long enough (a few seconds in a pack) that all three are in
    // the pack before any of them could finish.
    const ITERS: i64 = 2_000;
    coord.cli(&[
        "submit",
        &write(
            dir.path(),
            "panic.toml",
            &tiny_sweep("panic", &[8], &[0, 1, 2], ITERS as u32, ""),
        ),
    ]);
    // The first step of a pack of all three panics; the hook then disarms itself.
    worker::PANIC_NEXT_STEP_OF_PACK.store(3, Ordering::SeqCst);
    let config = worker::WorkerConfig {
        coordinator: coord.url.clone(),
        token: None,
        tls_ca: None,
        slots: 1,
        pack: 3,
        device: "cpu".into(),
        worker_id: "w".into(),
        // Ends the worker once the queue stays empty.
        exit_when_idle: Some(Duration::from_secs(2)),
        host: "test".into(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(worker::run(config, async {
                let _ = stopped.await;
            }))
    });
    poll_until(
        Duration::from_secs(300),
        POLL,
        "every job done after one failed attempt",
        || {
            let jobs = jobs(&rpc, "panic");
            assert!(
                jobs.iter().all(|(state, _, _)| state != "failed"),
                "{jobs:?}"
            );
            jobs.iter().all(|(state, _, _)| state == "done")
        },
    );
    let _ = stop.send(());
    let ended = worker.join().expect("the worker thread");
    assert!(ended.is_ok(), "the worker ended with {ended:?}");
    assert_eq!(
        worker::PANIC_NEXT_STEP_OF_PACK.load(Ordering::SeqCst),
        0,
        "the step panicked"
    );
    // Each member failed exactly one attempt, with the panic as its error, and then trained to
    // the end on the same worker (its one slot: the thread went on with a new pack).
    for (seed, (state, attempts, error)) in jobs(&rpc, "panic").into_iter().enumerate() {
        assert_eq!(state, "done");
        assert_eq!(
            attempts, 2,
            "seed {seed}: one failed attempt, one that finished"
        );
        assert!(
            error.starts_with("the trainer panicked: injected fault: a step of a pack of 3"),
            "seed {seed}: {error}"
        );
    }
    assert_eq!(
        rpc.sql_int(&format!(
            "SELECT COUNT(*) FROM results WHERE iters_done = {ITERS} AND status = 'finished' \
             AND worker_id = 'w'"
        )),
        3
    );
}

#[test]
fn a_job_whose_pack_key_does_not_match_is_refused_at_join_and_failed() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("key.db");
    let coord = Coordinator::start(&db, None, KILL_TEST_LEASES);
    let rpc = Rpc::new(&coord);
    // The host job: width 8, long enough to be training through the whole test.
    coord.cli(&[
        "submit",
        &write(
            dir.path(),
            "host.toml",
            &tiny_sweep("host", &[8], &[0], 1_000_000, ""),
        ),
    ]);
    let _w = coord.worker("w", &["--pack", "2", "--device", "cpu"]);
    poll_until(
        Duration::from_secs(60),
        POLL,
        "the host job training",
        || rpc.sql_int("SELECT COUNT(*) FROM metrics") >= 1,
    );
    // A width-6 job: its own pack key, so the slot (leasing width 8 only) leaves it queued…
    coord.cli(&[
        "submit",
        &write(
            dir.path(),
            "guest.toml",
            &tiny_sweep("guest", &[6], &[0], 100, "")
                .replace("max_attempts = 3", "max_attempts = 1"),
        ),
    ]);
    assert_eq!(jobs(&rpc, "guest")[0].0, "queued");
    // …until its stored key says width 8, as a store that disagrees with its configs would.
    let forged = rpc.block_on(common::write_store(
        &db,
        "UPDATE jobs SET pack_key = (SELECT pack_key FROM jobs WHERE sweep_id = 'host') \
         WHERE sweep_id = 'guest' AND state = 'queued'",
        None,
    ));
    assert_eq!(forged, 1);
    poll_until(
        Duration::from_secs(60),
        POLL,
        "the guest job failed",
        || jobs(&rpc, "guest")[0].0 != "queued" && jobs(&rpc, "guest")[0].0 != "running",
    );
    let (state, attempts, error) = jobs(&rpc, "guest").remove(0);
    assert_eq!((state.as_str(), attempts), ("failed", 1), "{error}");
    assert!(
        error.starts_with("cannot join the pack: pack key burgers width 6")
            && error.contains("differs from the pack's burgers width 8"),
        "{error}"
    );
    assert_eq!(
        rpc.sql("SELECT lease_owner FROM jobs WHERE sweep_id = 'guest'")[0][0],
        "w"
    );
    // The pack it tried to join trains on: the host job is still on its first attempt, and its
    // metrics keep coming.
    let rows = rpc.sql_int("SELECT COUNT(*) FROM metrics");
    poll_until(
        Duration::from_secs(60),
        POLL,
        "the host job training on",
        || rpc.sql_int("SELECT COUNT(*) FROM metrics") > rows,
    );
    assert_eq!(
        jobs(&rpc, "host"),
        [("running".to_string(), 1, String::new())]
    );
}
