//! `modsync sql` only reads; a coordinator started with a token refuses every client command and
//! every worker that does not present it.

mod common;

use std::time::Duration;

use common::{Coordinator, run_cli, run_cli_env, tiny_sweep, write};

#[test]
fn sql_refuses_every_statement_that_writes() {
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("ro.db"), None, &[]);
    let file = write(
        dir.path(),
        "ro.toml",
        &tiny_sweep("ro", &[4], &[0, 1], 50, ""),
    );
    coord.cli(&["submit", &file]);
    let attached = dir.path().join("other.db");
    let attach = format!("ATTACH DATABASE '{}' AS other", attached.display());
    let writes = [
        "INSERT INTO sweeps (id, name, spec, max_attempts, created_at_ms, updated_at_ms) VALUES ('x', 'x', '{}', 1, 0, 0)",
        "UPDATE jobs SET state = 'done'",
        "DELETE FROM jobs",
        "DROP TABLE results",
        "DROP VIEW curves",
        "CREATE TABLE evil (x)",
        &attach,
        "PRAGMA user_version = 7",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA query_only = 0",
        "SELECT 1; DELETE FROM jobs",
        "WITH x AS (SELECT 1) UPDATE jobs SET attempts = 9",
        "REPLACE INTO workers (id, host, device, first_seen_ms, last_seen_ms) VALUES ('a','b','c',0,0)",
        "VACUUM",
    ];
    for sql in writes {
        let (ok, out, err) = coord.try_cli(&["sql", sql]);
        assert!(!ok, "a write was accepted: {sql}\n{out}");
        assert!(!err.trim().is_empty(), "{sql}: no message");
        assert_eq!(err.trim().lines().count(), 1, "{sql}: one line: {err}");
    }
    // Nothing changed.
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM jobs"), 2);
    assert_eq!(
        coord.sql_int("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND attempts = 0"),
        2
    );
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM sweeps"), 1);
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM workers"), 0);
    assert!(!attached.exists(), "ATTACH created a file");
    // Reads work, as a table too.
    let table = coord.cli(&["sql", "SELECT id, state FROM jobs ORDER BY id"]);
    assert_eq!(table, "id  state\n--  ------\n 1  queued\n 2  queued\n");
}

#[test]
fn a_wrong_or_missing_token_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("auth.db"), Some("right-token"), &[]);
    let file = write(
        dir.path(),
        "auth.toml",
        &tiny_sweep("auth", &[4], &[0], 50, ""),
    );
    // The right token works.
    assert_eq!(coord.cli(&["submit", &file]).trim(), "auth");

    let url = coord.url.as_str();
    let commands: Vec<Vec<&str>> = vec![
        vec!["submit", &file],
        vec!["status"],
        vec!["status", "auth"],
        vec!["curves", "auth"],
        vec!["sql", "SELECT 1"],
        vec!["cancel", "auth"],
        vec!["retry", "auth"],
    ];
    for token in [Some("wrong-token"), None] {
        for cmd in &commands {
            let mut args = cmd.clone();
            args.extend(["--coordinator", url]);
            if let Some(t) = token {
                args.extend(["--token", t]);
            }
            let (ok, out, err) = run_cli(&args, Duration::from_secs(30));
            assert!(!ok, "{args:?} was accepted:\n{out}");
            assert!(err.contains("UNAUTHENTICATED"), "{args:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        }
        // A worker with a bad token gives up at once with an error, having leased nothing.
        let mut args = vec!["worker", "--coordinator", url];
        if let Some(t) = token {
            args.extend(["--token", t]);
        }
        let (ok, _, err) = run_cli(&args, Duration::from_secs(30));
        assert!(!ok, "worker with token {token:?} kept running");
        assert!(err.contains("UNAUTHENTICATED"), "{err}");
    }
    // The token from the environment works, and nothing was changed by the refused calls.
    let (ok, text, err) = run_cli_env(
        &["status", "auth", "--coordinator", url],
        &[("MODSYNC_TOKEN", "right-token")],
        Duration::from_secs(30),
        None,
    );
    assert!(ok, "{err}");
    let line = text.lines().find(|l| l.starts_with("auth")).expect(&text);
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["auth", "1", "1", "0", "0", "0", "0"],
        "{text}"
    );
}

/// A token that cannot appear in a log by accident.
const SECRET: &str = "tok-7f3a9c1e-NEVER-LOGGED-b52d";

/// Starts `modsync coordinator` with `SECRET` and RUST_LOG=trace; returns it and its URL.
fn traced_coordinator(db: &std::path::Path) -> (common::Proc, String) {
    let args = [
        "coordinator",
        "--db",
        db.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--token",
        SECRET,
    ];
    let mut proc = common::Proc::spawn("coordinator", &args, &[("RUST_LOG", "trace")], None);
    let line = proc.next_line(Duration::from_secs(30));
    let url = line
        .strip_prefix("modsync coordinator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (proc, url)
}

#[test]
fn the_token_is_never_logged_even_at_trace_level() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut coordinator, url) = traced_coordinator(&dir.path().join("leak.db"));
    let url = url.as_str();
    let authorized = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--coordinator", url]);
        run_cli_env(
            &all,
            &[("MODSYNC_TOKEN", SECRET), ("RUST_LOG", "trace")],
            Duration::from_secs(60),
            None,
        )
    };
    common::wait_until(Duration::from_secs(30), "coordinator answers", || {
        authorized(&["status"]).0
    });
    let file = write(
        dir.path(),
        "leak.toml",
        &tiny_sweep("leak", &[4], &[0], 50, ""),
    );
    let (ok, _, err) = authorized(&["submit", &file]);
    assert!(ok, "{err}");

    // A worker that gets the token from the environment, tracing everything it does.
    let mut worker = common::Proc::spawn(
        "worker",
        &["worker", "--worker-id", "leak-w1", "--coordinator", url],
        &[("MODSYNC_TOKEN", SECRET), ("RUST_LOG", "trace")],
        None,
    );
    common::wait_until(Duration::from_secs(180), "the job is done", || {
        assert!(worker.running(), "the worker exited:\n{}", worker.log());
        let (ok, out, _) = authorized(&["status", "leak"]);
        ok && out.lines().any(|l| {
            l.split_whitespace().collect::<Vec<_>>() == ["leak", "1", "0", "0", "1", "0", "0"]
        })
    });

    // Unauthorized calls: no token, a wrong one, and ones that contain the right token (so a
    // coordinator that logged what it was sent would log the secret).
    let wrong_ones = [
        None,
        Some("wrong".to_string()),
        Some(format!("{SECRET}x")),
        Some(format!("x{SECRET}")),
    ];
    for token in &wrong_ones {
        let mut args = vec!["status", "--coordinator", url];
        if let Some(t) = token {
            args.extend(["--token", t]);
        }
        let (ok, _, err) = run_cli_env(
            &args,
            &[("RUST_LOG", "trace")],
            Duration::from_secs(60),
            None,
        );
        assert!(!ok, "{token:?} was accepted");
        assert!(err.contains("UNAUTHENTICATED"), "{err}");
    }
    // Authorized calls of every client command that reads.
    for args in [
        vec!["status"],
        vec!["status", "leak"],
        vec!["sql", "SELECT COUNT(*) FROM results"],
        vec![
            "curves",
            "leak",
            "--out",
            dir.path().join("curves").to_str().unwrap(),
        ],
    ] {
        let (ok, out, err) = authorized(&args);
        assert!(ok, "{args:?}: {err}");
        assert!(
            !out.contains(SECRET) && !err.contains(SECRET),
            "{args:?} printed the token"
        );
    }

    worker.signal("TERM");
    assert!(
        worker.wait(Duration::from_secs(60)).success(),
        "{}",
        worker.log()
    );
    coordinator.signal("TERM");
    assert!(
        coordinator.wait(Duration::from_secs(60)).success(),
        "{}",
        coordinator.log()
    );
    for p in [&coordinator, &worker] {
        let log = p.log();
        // Trace level really was on (so the check below means something) …
        assert!(
            log.contains("TRACE") || log.contains("DEBUG"),
            "{}: no trace output",
            p.name
        );
        assert!(log.lines().count() > 20, "{}: {log}", p.name);
        // … and the token is nowhere in stdout or stderr.
        let leaks: Vec<&str> = log.lines().filter(|l| l.contains(SECRET)).take(3).collect();
        assert!(leaks.is_empty(), "{} logged the token: {leaks:?}", p.name);
    }
}
