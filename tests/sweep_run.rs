//! `modsync sweep run` (the embedded coordinator + local workers): interrupted with SIGINT it
//! stops cleanly, and the same command continues and finishes with one result per job. Invalid
//! sweep files are refused with the field named and nothing written, by `sweep run` and `submit`.

mod common;

use std::time::Duration;

use common::{Coordinator, Proc, poll_until, run_cli_in, serial, tiny_sweep, write};

#[test]
fn interrupted_sweep_run_continues_where_it_stopped() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "resume.toml",
        &tiny_sweep("resume", &[4, 8], &[0, 1, 2], 1200, ""),
    );
    let db = dir.path().join("resume.db");
    let out = dir.path().join("out");
    let args = [
        "sweep",
        "run",
        &file,
        "--workers",
        "2",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];

    // The workers' debug lines say when each checkpoint is stored.
    let mut first = Proc::spawn(
        "sweep run #1",
        &args,
        &[("RUST_LOG", "info,worker=debug")],
        None,
    );
    // Interrupt once one job has finished and another is stored at least one checkpoint past 0
    // but is no more than half-way (1200 iterations): it is stopped mid-way, not finished.
    poll_until(
        Duration::from_secs(90),
        Duration::from_millis(20),
        "a finished job, and then a checkpoint of a job in its first half",
        || mid_job_checkpoint_after_a_result(&first.log()),
    );
    first.signal("INT");
    let status = first.wait(Duration::from_secs(60));
    assert!(!status.success(), "an interrupted run exits non-zero");
    assert!(
        first.log().contains("run the same command again"),
        "{}",
        first.log()
    );

    // Look at the store between the two runs.
    let (done_before, resumable) = {
        let coord = Coordinator::start(&db, None, &[]);
        let states = coord.states("resume");
        assert_eq!(
            states.get("running"),
            None,
            "every lease was released: {states:?}"
        );
        let done = *states.get("done").unwrap_or(&0);
        assert!((1..6).contains(&done), "interrupted mid-sweep: {states:?}");
        // The interrupted jobs were released, which gives their attempt back: only the done
        // ones count one.
        assert_eq!(
            coord.sql("SELECT state, attempts, COUNT(*) FROM jobs GROUP BY 1, 2 ORDER BY 1"),
            [
                vec!["done".to_string(), "1".into(), done.to_string()],
                vec!["queued".into(), "0".into(), (6 - done).to_string()]
            ],
            "(state, attempts, jobs)"
        );
        // Jobs released with a checkpoint: the next run must resume them from it.
        let resumable = coord.sql(
            "SELECT c.job_id, c.iter, j.token FROM checkpoints c JOIN jobs j ON j.id = c.job_id \
             WHERE j.state = 'queued' AND c.iter > 0",
        );
        (done, resumable)
    };

    let mut second = Proc::spawn("sweep run #2", &args, &[], None);
    let status = second.wait(Duration::from_secs(120));
    assert!(status.success(), "second run failed:\n{}", second.log());
    let log = second.log();
    assert!(log.contains("6 jobs (0 new)"), "{log}");
    assert!(
        log.contains("burgers") && log.contains("adam"),
        "curves printed:\n{log}"
    );
    assert!(out.join("burgers.csv").exists() && out.join("burgers.svg").exists());

    let coord = Coordinator::start(&db, None, &[]);
    assert_eq!(coord.states("resume").get("done"), Some(&6));
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM results"), 6);
    assert_eq!(
        coord.sql_int("SELECT COUNT(*) FROM results WHERE iters_done != 1200"),
        0
    );
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM jobs"), 6);
    // One attempt each: the interruption counted none.
    assert_eq!(
        coord.sql("SELECT MIN(attempts), MAX(attempts) FROM jobs"),
        [["1", "1"]]
    );
    assert!(done_before < 6);
    // The job seen mid-way at the interruption left its stop checkpoint.
    assert!(
        !resumable.is_empty(),
        "no job was stopped with a checkpoint"
    );
    for row in &resumable {
        let (job, iter, old_token) = (&row[0], &row[1], &row[2]);
        let first_new = coord.sql_int(&format!(
            "SELECT MIN(iter) FROM metrics WHERE job_id = {job} AND token > {old_token}"
        ));
        // A stop checkpoint is taken wherever the run was; the next evaluation is at the next
        // multiple of eval_every (50), and nothing before it was re-run.
        let iter: i64 = iter.parse().unwrap();
        assert_eq!(
            first_new,
            (iter + 49) / 50 * 50,
            "job {job} resumed from its checkpoint at {iter}"
        );
    }
}

/// Whether `log` shows a finished job followed by a stored checkpoint at an iteration in
/// 1..=600 (the workers' debug line "checkpoint of job J at iteration I stored").
fn mid_job_checkpoint_after_a_result(log: &str) -> bool {
    let Some(done) = log.find("done: Finished") else {
        return false;
    };
    log[done..].lines().any(|line| {
        line.split("at iteration ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|i| i.parse::<u64>().ok())
            .is_some_and(|i| (1..=600).contains(&i))
    })
}

const GOOD: &str = r#"name = "bad"
[grid]
pdes = ["burgers"]
methods = ["adam"]
widths = [4]
seeds = [0]
[train]
depth = 2
iters = 50
lr = 0.001
"#;

/// (what is changed, the file, a field name the error must mention)
fn invalid_files() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "unknown key",
            GOOD.replace("depth = 2", "dpeth = 2"),
            "dpeth",
        ),
        ("unknown top key", format!("colour = 1\n{GOOD}"), "colour"),
        (
            "unknown grid key",
            GOOD.replace("seeds =", "sedes ="),
            "sedes",
        ),
        (
            "unknown pde",
            GOOD.replace("\"burgers\"", "\"navier\""),
            "grid.pdes[0]",
        ),
        (
            "unknown method",
            GOOD.replace("\"adam\"", "\"sgdd\""),
            "grid.methods[0]",
        ),
        (
            "empty axis",
            GOOD.replace("methods = [\"adam\"]", "methods = []"),
            "grid.methods",
        ),
        (
            "width 0",
            GOOD.replace("widths = [4]", "widths = [4, 0]"),
            "grid.widths[1]",
        ),
        (
            "negative seed",
            GOOD.replace("seeds = [0]", "seeds = [-1]"),
            "grid.seeds[0]",
        ),
        ("NaN lr", GOOD.replace("lr = 0.001", "lr = nan"), "train.lr"),
        (
            "infinite lr",
            GOOD.replace("lr = 0.001", "lr = inf"),
            "train.lr",
        ),
        (
            "bad name",
            GOOD.replace("name = \"bad\"", "name = \"a b\""),
            "name",
        ),
    ]
}

#[test]
fn invalid_sweep_files_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("store.db"), None, &[]);
    for (what, text, field) in invalid_files() {
        let file = write(dir.path(), "bad.toml", &text);

        let (ok, _, err) = coord.try_cli(&["submit", &file]);
        assert!(!ok, "submit accepted a file with {what}");
        assert!(err.contains(field), "{what}: {err:?} should name {field}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err:?}");

        // `sweep run` refuses it before creating its store or any directory.
        let (ok, _, err) = run_cli_in(
            &["sweep", "run", &file, "--workers", "1"],
            Duration::from_secs(30),
            Some(dir.path()),
        );
        assert!(!ok, "sweep run accepted a file with {what}");
        assert!(err.contains(field), "{what}: {err:?} should name {field}");
        assert!(
            !dir.path().join(".modsync").exists(),
            "{what}: sweep run created files"
        );
    }
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM sweeps"), 0);
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM jobs"), 0);

    // The unchanged file is fine (so the cases above fail for the reason they name).
    let file = write(dir.path(), "good.toml", GOOD);
    assert_eq!(coord.cli(&["submit", &file]).trim(), "bad");
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM jobs"), 1);
}

#[test]
fn missing_file_and_bad_flags_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run_cli_in(
        &["sweep", "run", "nope.toml"],
        Duration::from_secs(30),
        Some(dir.path()),
    );
    assert!(!ok && err.contains("nope.toml"), "{err}");
    let file = write(dir.path(), "good.toml", GOOD);
    let (ok, _, err) = run_cli_in(
        &["sweep", "run", &file, "--workers", "0"],
        Duration::from_secs(30),
        Some(dir.path()),
    );
    assert!(!ok && err.contains("--workers"), "{err}");
    assert!(!dir.path().join(".modsync").exists());
    let (ok, _, err) = run_cli_in(
        &["worker", "--device", "cuda:0"],
        Duration::from_secs(30),
        None,
    );
    assert!(
        !ok && err.contains("device cuda:0 needs a modsync built with --features tch"),
        "{err}"
    );
}
