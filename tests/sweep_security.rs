//! `modsync sql` only reads; a coordinator started with a token refuses every client command and
//! every worker that does not present it; an empty or blank token is refused everywhere (never
//! "no authentication"), and without a token only loopback is served unless `--insecure-no-auth`.

mod common;

use std::path::Path;
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
    let coord = Coordinator::start(
        &dir.path().join("auth.db"),
        Some("right-token-0123456789"),
        &[],
    );
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
    for token in [Some("wrong-token-0123456789"), None] {
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
        &[("MODSYNC_TOKEN", "right-token-0123456789")],
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
        Some("wrong-wrong-wrong-wrong".to_string()),
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

/// What an empty or whitespace-only token looks like: from the flag, or from the environment
/// (a Kubernetes Secret without the key, `MODSYNC_TOKEN=` in an env file).
const BLANK_TOKENS: [&str; 3] = ["", " ", " \t "];

/// The refusal names the flag and the variable, on one line.
fn assert_names_empty_token(err: &str, what: &str) {
    assert!(
        err.contains("--token") && err.contains("MODSYNC_TOKEN") && err.contains("empty"),
        "{what}: the error does not name --token / MODSYNC_TOKEN being empty:\n{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
}

/// The bug of issue 12: `--token ""` (or an empty `$MODSYNC_TOKEN`) used to start the
/// coordinator with no authentication at all. Now it does not start.
#[test]
fn an_empty_or_blank_token_does_not_start_the_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    // The coordinator: every blank token, as a flag and from the environment.
    for (i, token) in BLANK_TOKENS.iter().enumerate() {
        let db = dir.path().join(format!("blank{i}.db"));
        let db = db.to_str().unwrap();
        let base = ["coordinator", "--db", db, "--listen", "127.0.0.1:0"];
        let mut flag = base.to_vec();
        flag.extend(["--token", token]);
        for (args, envs, how) in [
            (flag, vec![], "--token"),
            (
                base.to_vec(),
                vec![("MODSYNC_TOKEN", *token)],
                "$MODSYNC_TOKEN",
            ),
        ] {
            let what = format!("coordinator with {how} {token:?}");
            let err = match start_or_fail(&args, &envs) {
                Ok((proc, _)) => panic!("{what} started serving:\n{}", proc.log()),
                Err(log) => log,
            };
            let err: String = err
                .lines()
                .map(|l| l.trim_start_matches("[err] "))
                .collect();
            assert_names_empty_token(&err, &what);
        }
        assert!(
            !Path::new(db).exists(),
            "{token:?}: the database was opened"
        );
    }
}

/// Neither does a worker or a client with such a token start: they refuse before sending
/// anything, even against a loopback coordinator without a token (which would serve them).
#[test]
fn an_empty_or_blank_token_is_refused_by_workers_and_clients() {
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("open.db"), None, &[]);
    let file = write(
        dir.path(),
        "blank.toml",
        &tiny_sweep("blank", &[4], &[0], 50, ""),
    );
    let url = coord.url.as_str();
    let curves_out = dir.path().join("curves");
    let commands: Vec<Vec<&str>> = vec![
        vec!["submit", &file],
        vec!["status"],
        vec!["sql", "SELECT 1"],
        vec!["curves", "blank", "--out", curves_out.to_str().unwrap()],
        vec!["cancel", "blank"],
        vec!["retry", "blank"],
        vec!["worker", "--worker-id", "blank-w"],
    ];
    for token in BLANK_TOKENS {
        for cmd in &commands {
            let mut with_flag = cmd.clone();
            with_flag.extend(["--coordinator", url, "--token", token]);
            let mut with_env = cmd.clone();
            with_env.extend(["--coordinator", url]);
            for (args, envs) in [
                (with_flag, vec![]),
                (with_env, vec![("MODSYNC_TOKEN", token)]),
            ] {
                let what = format!("{args:?} {envs:?}");
                let (ok, out, err) = run_cli_env(&args, &envs, Duration::from_secs(30), None);
                assert!(!ok, "{what} was accepted:\n{out}");
                assert_names_empty_token(&err, &what);
            }
        }
    }
    // Nothing reached the store: no sweep, no worker.
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM sweeps"), 0);
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM workers"), 0);
    // The same commands work without a token (so the refusals above are about the token).
    assert_eq!(coord.cli(&["submit", &file]).trim(), "blank");
}

/// Starts `modsync coordinator ARGS` and returns the process and its first stdout line, or
/// (having waited for it to exit) its failure output.
fn start_or_fail(args: &[&str], envs: &[(&str, &str)]) -> Result<(common::Proc, String), String> {
    let mut proc = common::Proc::spawn("coordinator", args, envs, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if proc
            .log()
            .contains("[out] modsync coordinator listening on ")
        {
            let line = proc.next_line(Duration::from_secs(5));
            return Ok((proc, line));
        }
        if !proc.running() {
            let status = proc.wait(Duration::from_secs(5));
            assert!(
                !status.success(),
                "exited 0 without serving: {}",
                proc.log()
            );
            return Err(proc.log());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "neither served nor failed: {}",
            proc.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Secure by default: without a token only loopback is served; a non-loopback address needs a
/// token or an explicit `--insecure-no-auth` (which contradicts a token).
#[test]
fn a_non_loopback_address_needs_a_token_or_insecure_no_auth() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("open.db");
    let db = db.to_str().unwrap();
    let on = |listen: &'static str| vec!["coordinator", "--db", db, "--listen", listen];

    // Every interface, no token: refused before anything is bound or opened, naming the flags.
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let err = start_or_fail(&on(listen), &[]).map(|_| ()).unwrap_err();
        for name in ["--insecure-no-auth", "--token", "MODSYNC_TOKEN", "loopback"] {
            assert!(err.contains(name), "{listen}: no {name} in:\n{err}");
        }
        assert!(!err.contains("listening"), "{err}");
        assert!(!Path::new(db).exists(), "{listen}: the database was opened");
    }
    // A token and the flag together: refused too (which one was meant?).
    let mut both = on("0.0.0.0:0");
    both.extend(["--insecure-no-auth", "--token", "t0k-0123456789abcdef"]);
    let err = start_or_fail(&both, &[]).map(|_| ()).unwrap_err();
    assert!(err.contains("contradicts"), "{err}");
    let err = start_or_fail(
        &[&on("0.0.0.0:0")[..], &["--insecure-no-auth"]].concat(),
        &[("MODSYNC_TOKEN", "t0k-0123456789abcdef")],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(err.contains("contradicts"), "{err}");

    // With a token it serves every interface, and the token is required.
    let (mut with_token, line) = start_or_fail(
        &on("0.0.0.0:0"),
        &[("MODSYNC_TOKEN", "t0k-0123456789abcdef")],
    )
    .unwrap_or_else(|e| panic!("with a token: {e}"));
    let port = line.rsplit(':').next().unwrap().to_string();
    let local = format!("http://127.0.0.1:{port}");
    common::wait_until(Duration::from_secs(30), "it answers with the token", || {
        run_cli(
            &[
                "status",
                "--coordinator",
                &local,
                "--token",
                "t0k-0123456789abcdef",
            ],
            Duration::from_secs(30),
        )
        .0
    });
    let (ok, _, err) = run_cli(
        &["status", "--coordinator", &local],
        Duration::from_secs(30),
    );
    assert!(!ok && err.contains("UNAUTHENTICATED"), "{err}");
    with_token.signal("TERM");
    assert!(with_token.wait(Duration::from_secs(30)).success());

    // With --insecure-no-auth it serves every interface to anyone, and warns.
    let (mut open, line) = start_or_fail(
        &[&on("0.0.0.0:0")[..], &["--insecure-no-auth"]].concat(),
        &[],
    )
    .unwrap_or_else(|e| panic!("with --insecure-no-auth: {e}"));
    let port = line.rsplit(':').next().unwrap().to_string();
    let local = format!("http://127.0.0.1:{port}");
    common::wait_until(
        Duration::from_secs(30),
        "it answers without a token",
        || {
            run_cli(
                &["status", "--coordinator", &local],
                Duration::from_secs(30),
            )
            .0
        },
    );
    assert!(
        open.log().contains("without authentication"),
        "no warning: {}",
        open.log()
    );
    open.signal("TERM");
    assert!(open.wait(Duration::from_secs(30)).success());

    // Loopback without a token stays allowed (every other test relies on it too).
    let (mut lo, line) = start_or_fail(&on("127.0.0.1:0"), &[]).expect("loopback without a token");
    let url = line.trim_start_matches("modsync coordinator listening on ");
    common::wait_until(
        Duration::from_secs(30),
        "it answers without a token",
        || run_cli(&["status", "--coordinator", url], Duration::from_secs(30)).0,
    );
    lo.signal("TERM");
    assert!(lo.wait(Duration::from_secs(30)).success());
}
