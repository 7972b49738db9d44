//! TLS end to end: `modsync coordinator --tls-cert/--tls-key` with a certificate signed by a CA
//! made here (rcgen), a `modsync worker --tls-ca` that finishes a tiny sweep over it, client
//! commands with `--tls-ca` / `$MODSYNC_TLS_CA`, and the clear errors for every mismatch.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    FAST_LEASES, Proc, certs, run_cli, run_cli_env, serial, tiny_sweep, wait_until, write,
};

const TOKEN: &str = "tls-e2e-token-0123456789";

/// [`certs::make_certs`] as the path strings the command line takes: (ca.pem, server.pem,
/// server.key).
fn make_certs(dir: &Path, name: &str) -> (String, String, String) {
    let text = |p: PathBuf| p.to_str().unwrap().to_string();
    let (ca, cert, key) = certs::make_certs(dir, name);
    (text(ca), text(cert), text(key))
}

/// A TLS coordinator process and its printed URL.
struct TlsCoordinator {
    /// Killed when dropped.
    _proc: Proc,
    url: String,
}

fn start_tls_coordinator(db: &Path, cert: &str, key: &str, ca: &str) -> TlsCoordinator {
    let mut args = vec![
        "coordinator",
        "--db",
        db.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--token",
        TOKEN,
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ];
    args.extend(FAST_LEASES);
    let mut proc = Proc::spawn("coordinator", &args, &[], None);
    let line = proc.next_line(Duration::from_secs(30));
    let url = line
        .strip_prefix("modsync coordinator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{line}");
    let c = TlsCoordinator { _proc: proc, url };
    wait_until(
        Duration::from_secs(30),
        "the TLS coordinator answers",
        || c.cli(&["status"], Some(ca)).0,
    );
    c
}

impl TlsCoordinator {
    /// `modsync ARGS --coordinator URL --token T [--tls-ca CA]`.
    fn cli(&self, args: &[&str], ca: Option<&str>) -> (bool, String, String) {
        let mut all = args.to_vec();
        all.extend(["--coordinator", &self.url, "--token", TOKEN]);
        if let Some(ca) = ca {
            all.extend(["--tls-ca", ca]);
        }
        run_cli(&all, Duration::from_secs(60))
    }

    /// The `status` row of a sweep, split into words.
    fn status_row(&self, sweep: &str, ca: &str) -> Vec<String> {
        let (ok, out, err) = self.cli(&["status", sweep], Some(ca));
        assert!(ok, "status failed: {err}");
        out.lines()
            .find(|l| l.starts_with(sweep))
            .unwrap_or_else(|| panic!("no row for {sweep}: {out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn a_worker_finishes_a_sweep_over_tls() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path(), "main");
    let (other_ca, _, _) = make_certs(dir.path(), "other");
    let coord = start_tls_coordinator(&dir.path().join("tls.db"), &cert, &key, &ca);
    let file = write(
        dir.path(),
        "tls.toml",
        &tiny_sweep("tls", &[4, 6], &[0], 50, ""),
    );
    let (ok, out, err) = coord.cli(&["submit", &file], Some(&ca));
    assert!(ok, "submit over TLS failed: {err}");
    assert_eq!(out.trim(), "tls");

    let worker_args = [
        "worker",
        "--worker-id",
        "tls-w1",
        "--coordinator",
        &coord.url,
        "--token",
        TOKEN,
        "--tls-ca",
        &ca,
    ];
    let mut worker = Proc::spawn("worker", &worker_args, &[("RUST_LOG", "info")], None);
    wait_until(Duration::from_secs(180), "both jobs done over TLS", || {
        assert!(worker.running(), "the worker exited:\n{}", worker.log());
        let row = coord.status_row("tls", &ca);
        // sweep total queued running done failed cancelled
        assert_eq!(row[5], "0", "failed jobs: {row:?}");
        row[4] == "2"
    });
    worker.signal("TERM");
    assert!(
        worker.wait(Duration::from_secs(60)).success(),
        "{}",
        worker.log()
    );

    // The CA from the environment works as well as the flag.
    let (ok, out, err) = run_cli_env(
        &[
            "status",
            "tls",
            "--coordinator",
            &coord.url,
            "--token",
            TOKEN,
        ],
        &[("MODSYNC_TLS_CA", ca.as_str())],
        Duration::from_secs(60),
        None,
    );
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("tls")), "{out}");
    // Results and curves came through the encrypted channel too.
    let (ok, out, err) = coord.cli(&["sql", "--csv", "SELECT COUNT(*) FROM results"], Some(&ca));
    assert!(ok, "{err}");
    assert_eq!(out.lines().nth(1), Some("2"), "{out}");

    // Mismatches are one clear line each, and never fall back to plaintext.
    let plain_url = coord.url.replacen("https://", "http://", 1);
    let one_line = |args: &[&str], envs: &[(&str, &str)], needles: &[&str]| {
        let (ok, out, err) = run_cli_env(args, envs, Duration::from_secs(60), None);
        assert!(!ok, "{args:?} succeeded:\n{out}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
        }
    };
    // https without a CA to trust.
    one_line(
        &["status", "--coordinator", &coord.url, "--token", TOKEN],
        &[],
        &["--tls-ca"],
    );
    // http with a CA (flag or environment).
    one_line(
        &[
            "status",
            "--coordinator",
            &plain_url,
            "--token",
            TOKEN,
            "--tls-ca",
            &ca,
        ],
        &[],
        &["--tls-ca", "https://"],
    );
    one_line(
        &["status", "--coordinator", &plain_url, "--token", TOKEN],
        &[("MODSYNC_TLS_CA", ca.as_str())],
        &["--tls-ca", "https://"],
    );
    // Plaintext against the TLS port, and TLS trusting another CA: not reachable.
    one_line(
        &["status", "--coordinator", &plain_url, "--token", TOKEN],
        &[],
        &["https://", "--tls-ca"],
    );
    one_line(
        &[
            "status",
            "--coordinator",
            &coord.url,
            "--token",
            TOKEN,
            "--tls-ca",
            &other_ca,
        ],
        &[],
        &["UNAVAILABLE"],
    );
    // An unreadable CA file names the flag and the path.
    let missing = dir.path().join("nope.pem");
    let missing = missing.to_str().unwrap();
    one_line(
        &[
            "status",
            "--coordinator",
            &coord.url,
            "--token",
            TOKEN,
            "--tls-ca",
            missing,
        ],
        &[],
        &["--tls-ca", "nope.pem"],
    );
    // A worker told https without a CA, or http with one, refuses to start.
    for (url, ca_flag) in [(&coord.url, None), (&plain_url, Some(ca.as_str()))] {
        let mut args = vec!["worker", "--coordinator", url, "--token", TOKEN];
        if let Some(c) = ca_flag {
            args.extend(["--tls-ca", c]);
        }
        one_line(&args, &[], &["--tls-ca"]);
    }
    // The refused calls changed nothing.
    assert_eq!(
        coord.status_row("tls", &ca),
        ["tls", "2", "0", "0", "2", "0", "0"]
    );
}

#[test]
fn bad_tls_flags_of_the_coordinator_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path(), "x");
    let db = dir.path().join("never.db");
    let db_s = db.to_str().unwrap();
    let missing: PathBuf = dir.path().join("absent.pem");
    let missing = missing.to_str().unwrap();
    let garbage = write(dir.path(), "garbage.pem", "hello");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--tls-cert", &cert], vec!["--tls-key"]),
        (vec!["--tls-key", &key], vec!["--tls-cert"]),
        (
            vec!["--tls-cert", missing, "--tls-key", &key],
            vec!["--tls-cert", "absent.pem"],
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", missing],
            vec!["--tls-key", "absent.pem"],
        ),
        (
            vec!["--tls-cert", &garbage, "--tls-key", &key],
            vec!["--tls-cert", "garbage.pem"],
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &ca],
            vec!["--tls-key", "x-ca.pem"],
        ),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["coordinator", "--db", db_s, "--listen", "127.0.0.1:0"];
        args.extend(&flags);
        let (ok, out, err) = run_cli(&args, Duration::from_secs(30));
        assert!(!ok, "{flags:?} was accepted:\n{out}");
        assert!(!out.contains("listening"), "{flags:?}: {out}");
        for n in needles {
            assert!(err.contains(n), "{flags:?}: {err:?} lacks {n:?}");
        }
    }
    assert!(
        !db.exists(),
        "a store was created by a coordinator that could not start"
    );
}
