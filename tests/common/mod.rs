//! Helpers for the end-to-end tests: run the real `modsync` binary as coordinator, workers and
//! clients on loopback. Every wait is bounded, and every child process is killed when its handle
//! is dropped (also when a test panics), so a failing test never leaves servers behind.

#![allow(dead_code)]

pub mod certs;
pub mod http;
pub mod rpc;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test: this build's, or `$MODSYNC_TEST_BIN` (to run a test against another
/// build, e.g. the one before a fix, and see it fail).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("MODSYNC_TEST_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_modsync").to_string())
    })
}

/// `modsync ARGS` with `envs` (and neither `$MODSYNC_TOKEN` nor `$MODSYNC_COORDINATOR` from
/// this process), killed after `limit`: Some((success, how long it took, stderr)), or None when
/// it was still running.
pub fn run_bounded(
    args: &[&str],
    envs: &[(&str, &str)],
    limit: Duration,
) -> Option<(bool, Duration, String)> {
    let start = Instant::now();
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("MODSYNC_TOKEN")
        .env_remove("MODSYNC_COORDINATOR")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn modsync");
    // Read stderr while it runs: a full pipe would block the child.
    let mut stderr = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let took = start.elapsed();
            return Some((status.success(), took, reader.join().unwrap()));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `sql` with `bind` (if any) on the store file `db` behind the coordinator's back, as a
/// store edited by hand would be (waits for the coordinator's write lock): the rows changed.
pub async fn write_store(db: &Path, sql: &str, bind: Option<i64>) -> u64 {
    use sqlx::{ConnectOptions, Connection};
    let mut store = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(v) = bind {
        query = query.bind(v);
    }
    let changed = query.execute(&mut store).await.unwrap().rows_affected();
    store.close().await.unwrap();
    changed
}

/// A test that cannot run here (`why`: a tool is missing) skips, saying why — unless `require`
/// is set to 1 (`.ci/run` sets it once it has installed the tool) or `CI` is set: then a skip
/// would be a silent pass, so the test fails naming what is missing.
pub fn skip_unless_required(require: &str, why: &str) {
    let required = std::env::var(require).as_deref() == Ok("1");
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    assert!(
        !required && !ci,
        "{why}: this test cannot run, and {} says it must",
        if required { require } else { "CI" }
    );
    eprintln!("skipping: {why}");
}

/// The machine has 2 cores: tests that train must not overlap, or their timings (leases,
/// heartbeats) become meaningless. Each heavy test holds this for its whole run.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child process with its output collected into memory (readable while it runs).
pub struct Proc {
    pub name: String,
    child: Child,
    pub output: Arc<Mutex<String>>,
    lines: Option<mpsc::Receiver<String>>,
}

impl Proc {
    /// Spawns `modsync ARGS`; stdout lines also go to a channel (`next_line`), stderr to the log.
    pub fn spawn(name: &str, args: &[&str], envs: &[(&str, &str)], dir: Option<&Path>) -> Proc {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("MODSYNC_COORDINATOR")
            .env_remove("MODSYNC_TOKEN");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let log = output.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&format!("[out] {line}\n"));
                let _ = tx.send(line);
            }
        });
        let err = child.stderr.take().unwrap();
        let log = output.clone();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&format!("[err] {line}\n"));
            }
        });
        Proc {
            name: name.to_string(),
            child,
            output,
            lines: Some(rx),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, or a panic after `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> String {
        let rx = self.lines.as_ref().expect("stdout lines");
        rx.recv_timeout(timeout).unwrap_or_else(|_| {
            panic!(
                "{}: no output line within {timeout:?}; log:\n{}",
                self.name,
                self.log()
            )
        })
    }

    pub fn log(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Sends a signal by name (`INT`, `TERM`, `KILL`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "cannot send SIG{sig} to {}", self.name);
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for exit; panics (after killing it) if it takes longer than `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads drain what is left.
                thread::sleep(Duration::from_millis(50));
                return status;
            }
            if start.elapsed() > timeout {
                self.kill9();
                panic!(
                    "{} did not exit within {timeout:?}; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!("----- {} -----\n{}", self.name, self.log());
        }
    }
}

/// A `modsync coordinator` process on loopback.
pub struct Coordinator {
    pub proc: Proc,
    pub url: String,
    pub port: u16,
    pub db: PathBuf,
    pub token: Option<String>,
    extra: Vec<String>,
}

/// Short leases so that crash tests finish in seconds.
pub const FAST_LEASES: &[&str] = &[
    "--lease-ms",
    "2000",
    "--heartbeat-ms",
    "250",
    "--reap-every-ms",
    "200",
];

/// Leases long enough that a loaded 2-core machine does not lose them by accident (12 missed
/// heartbeats in a row), short enough that a killed worker's job is back in the queue within
/// seconds.
pub const KILL_TEST_LEASES: &[&str] = &[
    "--lease-ms",
    "3000",
    "--heartbeat-ms",
    "250",
    "--reap-every-ms",
    "200",
];

impl Coordinator {
    /// Starts a coordinator on a free port (port 0; the bound address is read from stdout).
    pub fn start(db: &Path, token: Option<&str>, extra: &[&str]) -> Coordinator {
        Self::start_on(db, token, extra, 0)
    }

    fn start_on(db: &Path, token: Option<&str>, extra: &[&str], port: u16) -> Coordinator {
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "coordinator",
            "--db",
            db.to_str().unwrap(),
            "--listen",
            &listen,
        ];
        if let Some(t) = token {
            args.extend(["--token", t]);
        }
        args.extend(extra);
        let mut proc = Proc::spawn("coordinator", &args, &[], None);
        let line = proc.next_line(Duration::from_secs(30));
        let url = line
            .strip_prefix("modsync coordinator listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        let c = Coordinator {
            proc,
            url,
            port,
            db: db.to_path_buf(),
            token: token.map(str::to_string),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        // Serving starts after the store is open: wait until a call succeeds.
        wait_until(Duration::from_secs(30), "coordinator answers", || {
            c.try_cli(&["status"]).0
        });
        c
    }

    /// Kills it (SIGKILL, no drain) and starts a new one on the same port and file.
    pub fn restart_killed(&mut self) {
        let extra = self.extra.clone();
        self.restart_killed_with(&extra);
    }

    /// `restart_killed`, the new process with the flags `extra` instead of the old ones.
    pub fn restart_killed_with(&mut self, extra: &[impl AsRef<str>]) {
        self.proc.kill9();
        let extra: Vec<&str> = extra.iter().map(AsRef::as_ref).collect();
        // The port was just freed; retry briefly in case the kernel has not let go of it.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Coordinator::start_on(&self.db, self.token.as_deref(), &extra, self.port)
            }));
            match attempt {
                Ok(c) => {
                    *self = c;
                    return;
                }
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(300)),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
    }

    /// `--coordinator URL [--token T]` for a client command.
    pub fn client_args(&self) -> Vec<String> {
        let mut a = vec!["--coordinator".to_string(), self.url.clone()];
        if let Some(t) = &self.token {
            a.extend(["--token".to_string(), t.clone()]);
        }
        a
    }

    /// Runs a client subcommand against this coordinator: (success, stdout, stderr).
    pub fn try_cli(&self, args: &[&str]) -> (bool, String, String) {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.client_args());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run_cli(&refs, Duration::from_secs(60))
    }

    /// Like `try_cli`, but panics unless it succeeds; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.try_cli(args);
        assert!(ok, "modsync {args:?} failed:\n{err}");
        out
    }

    /// `modsync sql --csv QUERY`, parsed: the rows without the header.
    pub fn sql(&self, query: &str) -> Vec<Vec<String>> {
        let out = self.cli(&["sql", "--csv", query]);
        parse_csv(&out).into_iter().skip(1).collect()
    }

    /// One integer from a query that returns one row of one column.
    pub fn sql_int(&self, query: &str) -> i64 {
        let rows = self.sql(query);
        assert_eq!(rows.len(), 1, "{query}: {rows:?}");
        rows[0][0]
            .parse()
            .unwrap_or_else(|_| panic!("{query}: not an integer: {rows:?}"))
    }

    /// Starts a worker process against this coordinator.
    pub fn worker(&self, name: &str, extra: &[&str]) -> Proc {
        let mut args = vec![
            "worker".to_string(),
            "--worker-id".to_string(),
            name.to_string(),
        ];
        args.extend(self.client_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::spawn(name, &refs, &[("RUST_LOG", "info")], None)
    }

    /// Job counts by state of a sweep.
    pub fn states(&self, sweep: &str) -> BTreeMap<String, i64> {
        self.sql(&format!(
            "SELECT state, COUNT(*) FROM jobs WHERE sweep_id = '{sweep}' GROUP BY state"
        ))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect()
    }

    /// Waits until every job of `sweep` is done (panics on failed jobs or timeout).
    pub fn wait_all_done(&self, sweep: &str, total: i64, timeout: Duration) {
        wait_until(
            timeout,
            &format!("all {total} jobs of {sweep} done"),
            || {
                let s = self.states(sweep);
                assert_eq!(s.get("failed"), None, "failed jobs: {s:?}");
                s.get("done") == Some(&total)
            },
        );
    }
}

/// Runs `modsync ARGS` to completion (bounded): (success, stdout, stderr).
pub fn run_cli(args: &[&str], timeout: Duration) -> (bool, String, String) {
    run_cli_in(args, timeout, None)
}

pub fn run_cli_in(args: &[&str], timeout: Duration, dir: Option<&Path>) -> (bool, String, String) {
    run_cli_env(args, &[], timeout, dir)
}

/// `run_cli_in` with extra environment variables.
pub fn run_cli_env(
    args: &[&str],
    envs: &[(&str, &str)],
    timeout: Duration,
    dir: Option<&Path>,
) -> (bool, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("MODSYNC_COORDINATOR")
        .env_remove("MODSYNC_TOKEN");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().expect("spawn modsync");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("modsync {args:?} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    (
        status.success(),
        t_out.join().unwrap(),
        t_err.join().unwrap(),
    )
}

/// Polls `cond` every 100 ms until it is true; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    poll_until(timeout, Duration::from_millis(100), what, cond);
}

/// Polls `cond` every `every` until it is true; panics with `what` after `timeout`. Returns how
/// long it took.
pub fn poll_until(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for: {what}"
        );
        thread::sleep(every);
    }
    start.elapsed()
}

/// Minimal RFC 4180 parser (quoted fields with doubled quotes; no embedded newlines needed).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut fields = Vec::new();
            let mut cur = String::new();
            let mut quoted = false;
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', true) if chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    ('"', _) => quoted = !quoted,
                    (',', false) => fields.push(std::mem::take(&mut cur)),
                    _ => cur.push(c),
                }
            }
            fields.push(cur);
            fields
        })
        .collect()
}

/// A tiny sweep file: burgers, adam, the given widths and seeds, `iters` iterations, evaluated
/// and checkpointed every 50. `extra_train` lines go into `[train]`.
pub fn tiny_sweep(
    name: &str,
    widths: &[u32],
    seeds: &[i32],
    iters: u32,
    extra_train: &str,
) -> String {
    format!(
        r#"name = "{name}"
max_attempts = 3

[grid]
pdes = ["burgers"]
methods = ["adam"]
widths = {widths:?}
seeds = {seeds:?}

[train]
depth = 2
iters = {iters}
eval_every = 50
checkpoint_every = 50
lr_decay = false
{extra_train}
"#
    )
}

/// A sweep of one job (burgers, adam, seed 0, depth 2, no lr decay) of `width` and `iters`,
/// with `max_attempts`; `train` holds the other `[train]` lines (eval_every, lr, …). Leaving
/// out `checkpoint_every` gives the worker's default, 10 × eval_every.
pub fn one_job_sweep(name: &str, width: u32, iters: u32, max_attempts: u32, train: &str) -> String {
    format!(
        r#"name = "{name}"
max_attempts = {max_attempts}

[grid]
pdes = ["burgers"]
methods = ["adam"]
widths = [{width}]
seeds = [0]

[train]
depth = 2
iters = {iters}
lr_decay = false
{train}
"#
    )
}

/// Writes `text` to `dir/file` and returns the path as a string.
pub fn write(dir: &Path, file: &str, text: &str) -> String {
    let p = dir.join(file);
    fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}
