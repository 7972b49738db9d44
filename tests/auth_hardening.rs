//! Issue 26, weaknesses 7, 8 and 10, tried from outside against the real binary on loopback:
//!
//! 7. DNS rebinding: the dashboard answered any `Host`, so a web page on a rebinding name could
//!    read a token-less dashboard (loopback, and always under `sweep run`). Now a foreign `Host`
//!    gets 421, and `sweep run`'s dashboard has its run's random token and prints a login URL.
//! 8. Guessing: a wrong token cost nothing on gRPC (50 guesses in 0.5 s), the login's delay was
//!    per request (parallel guesses all got their answer), and any non-blank token was accepted.
//!    Now failed attempts are limited per client address, shared by both ports, and tokens
//!    shorter than 16 characters are refused at start-up naming the flag.
//! 10. The token on the command line shows in `ps`: `--token-file` reads it from a file.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::{Duration, Instant};

use common::http::{dashboard_addr, header, request};
use common::{Coordinator, Proc, run_bounded, run_cli, run_cli_env, serial, tiny_sweep, write};
use modsync_proto::ListSweepsRequest;

const TOKEN: &str = "auth-hardening-token-0123456789";

/// `GET path` to `addr` with `Host: host` and extra header lines.
fn get_as(addr: &str, host: &str, path: &str, extra: &str) -> (u16, Vec<(String, String)>, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"),
    )
}

// ---------------------------------------------------------------------------------------------
// 7. DNS rebinding.

/// Without a token (loopback) the dashboard answers only to the names it is reached by: the
/// loopback names and addresses, the address it listens on, and `--public-url`'s host.
#[test]
fn the_dashboard_refuses_a_foreign_host() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = |port: &str| {
        vec![
            format!("evil.example:{port}"),
            "evil.example".to_string(),
            format!("localhost.evil.example:{port}"),
            format!("127.0.0.1.evil.example:{port}"),
            format!("dash.example.org.evil.example:{port}"),
        ]
    };
    // As started by default: no token, loopback, no --public-url.
    let mut coord = Coordinator::start(
        &dir.path().join("host.db"),
        None,
        &["--http", "127.0.0.1:0"],
    );
    let web = dashboard_addr(&mut coord);
    let port = web.rsplit(':').next().unwrap().to_string();
    for host in [
        web.clone(),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
        "127.0.0.1".to_string(),
    ] {
        let (status, _, body) = get_as(&web, &host, "/", "");
        assert_eq!(status, 200, "Host: {host}: {body}");
    }
    for host in foreign(&port)
        .into_iter()
        .chain([format!("dash.example.org:{port}")])
    {
        for path in ["/", "/api/sweeps", "/login", "/sweeps/x/results.csv"] {
            let (status, _, body) = get_as(&web, &host, path, "");
            assert_eq!(status, 421, "Host: {host} {path}: {body}");
            assert!(!body.contains("<table"), "Host: {host} {path}: {body}");
        }
    }
    // No Host at all (HTTP/1.0) is refused too.
    let (status, _, _) = request(&web, "GET / HTTP/1.0\r\n\r\n");
    assert_eq!(status, 421);
    drop(coord);

    // With --public-url its host is answered as well, and nothing else new.
    let mut coord = Coordinator::start(
        &dir.path().join("host.db"),
        None,
        &[
            "--http",
            "127.0.0.1:0",
            "--public-url",
            "http://dash.example.org:8080/",
        ],
    );
    let web = dashboard_addr(&mut coord);
    let port = web.rsplit(':').next().unwrap().to_string();
    for host in [
        format!("dash.example.org:{port}"),
        "DASH.example.org".into(),
        web.clone(),
    ] {
        let (status, _, body) = get_as(&web, &host, "/", "");
        assert_eq!(status, 200, "Host: {host}: {body}");
    }
    for host in foreign(&port) {
        let (status, _, body) = get_as(&web, &host, "/api/sweeps", "");
        assert_eq!(status, 421, "Host: {host}: {body}");
    }
    // A --public-url that is not a URL is refused at start-up, naming the flag.
    let (ok, _, err) = run_cli(
        &[
            "coordinator",
            "--db",
            dir.path().join("host.db").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--public-url",
            "dash.example.org",
        ],
        Duration::from_secs(30),
    );
    assert!(!ok && err.contains("--public-url"), "{err}");
}

/// `sweep run`'s dashboard now has the run's random token: a page without login is refused, and
/// the URL printed at the start logs the browser in (a session cookie) and goes on to `/`.
#[test]
fn sweep_run_dashboard_needs_its_printed_login_url() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Long enough to still run while the test looks at its dashboard; interrupted at the end.
    let file = write(
        dir.path(),
        "login.toml",
        &tiny_sweep("rebind-check", &[4], &[0], 200_000, ""),
    );
    let db = dir.path().join("login.db");
    let out = dir.path().join("out");
    let mut run = Proc::spawn(
        "sweep run",
        &[
            "sweep",
            "run",
            &file,
            "--workers",
            "1",
            "--db",
            db.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
        None,
    );
    let mut line = String::new();
    common::wait_until(Duration::from_secs(60), "the dashboard line", || {
        line = run
            .log()
            .lines()
            .find(|l| l.contains("dashboard: "))
            .unwrap_or("")
            .to_string();
        !line.is_empty()
    });
    let url = line
        .split("dashboard: ")
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    eprintln!("printed: {url}");

    // Without logging in: no data.
    let (status, headers, body) = get_as(addr, addr, "/", "");
    assert!(
        status == 303 || status == 401,
        "GET / without login: {status} {headers:?}\n{body}"
    );
    let (status, _, body) = get_as(addr, addr, "/api/sweeps", "");
    assert_eq!(status, 401, "{body}");
    // A made-up login URL opens nothing.
    let (status, headers, _) = get_as(addr, addr, "/login?code=0123456789abcdef", "");
    assert!(
        header(&headers, "set-cookie").is_none(),
        "{status} {headers:?}"
    );
    // The printed one logs in and goes to the sweeps.
    let (status, headers, body) = get_as(addr, addr, path, "");
    assert_eq!(status, 303, "{path}: {headers:?} {body}");
    assert_eq!(header(&headers, "location"), Some("/"));
    let cookie = header(&headers, "set-cookie")
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, _, body) = get_as(addr, addr, "/", &format!("Cookie: {cookie}\r\n"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("rebind-check"),
        "the sweep is not listed: {body}"
    );
    // And a rebinding name gets nothing, cookie or not.
    let (status, _, _) = get_as(addr, "evil.example", "/", &format!("Cookie: {cookie}\r\n"));
    assert_eq!(status, 421);

    run.signal("INT");
    run.wait(Duration::from_secs(60));
}

// ---------------------------------------------------------------------------------------------
// 8. Guessing.

/// One `ListSweeps` with `token`: Ok, or the status code and message.
fn list_with(
    rt: &tokio::runtime::Runtime,
    url: &str,
    token: &str,
) -> Result<(), (tonic::Code, String)> {
    let mut client = {
        let _inside = rt.enter();
        modsync_client::connect(url, Some(token)).unwrap()
    };
    rt.block_on(client.list_sweeps(ListSweepsRequest {}))
        .map(|_| ())
        .map_err(|s| (s.code(), s.message().to_string()))
}

/// A POST of the login form with `token`: the status and the Retry-After header.
fn login(addr: &str, token: &str) -> (u16, Option<String>) {
    let body = format!("token={token}&next=%2F");
    let (status, headers, _) = request(
        addr,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: \
             application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: \
             close\r\n\r\n{body}",
            body.len()
        ),
    );
    (status, header(&headers, "retry-after").map(str::to_string))
}

/// The burst and refill of the default limit (`--auth-failures-per-minute 30`): 30 failures
/// at once, then one every 2 s.
fn allowed_checks(took: Duration) -> usize {
    30 + (took.as_secs_f64() / 2.0).floor() as usize + 1
}

/// 50 wrong tokens sent one after the other over gRPC: only the first ones are checked
/// (UNAUTHENTICATED), the rest refused unchecked (UNAVAILABLE, "too many failed"); the limit is
/// shared with the dashboard's port. With a stricter limit, the right token is refused too
/// while the address is locked out (else the lock-out would tell a right guess from a wrong
/// one), and works again after Retry-After. And 40 parallel wrong logins: the same limit, not a
/// delay per request.
#[test]
fn wrong_tokens_in_a_burst_are_limited_on_both_ports() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");

    // Default limit: 50 wrong guesses, one after the other, as fast as they are answered.
    let mut coord = Coordinator::start(
        &dir.path().join("guess.db"),
        Some(TOKEN),
        &["--http", "127.0.0.1:0"],
    );
    let web = dashboard_addr(&mut coord);
    let start = Instant::now();
    let mut checked = 0;
    let mut limited = 0;
    let mut other = Vec::new();
    for i in 0..50 {
        match list_with(&rt, &coord.url, &format!("wrong-guess-{i:04}-0123456789")) {
            Err((tonic::Code::Unauthenticated, _)) => checked += 1,
            Err((tonic::Code::Unavailable, m)) if m.contains("too many failed") => limited += 1,
            r => other.push(format!("{r:?}")),
        }
    }
    let took = start.elapsed();
    eprintln!(
        "gRPC, default limit: 50 wrong tokens in {took:.2?}: {checked} checked \
         (UNAUTHENTICATED), {limited} refused unchecked (UNAVAILABLE), other {other:?}"
    );
    assert!(other.is_empty(), "{other:?}");
    assert!(
        (1..=allowed_checks(took)).contains(&checked) && limited == 50 - checked,
        "{checked} of 50 wrong tokens were checked in {took:?} ({limited} limited)"
    );
    // The same address on the dashboard's port is limited as well, a right bearer token too.
    let (status, headers, _) = get_as(
        &web,
        &web,
        "/api/sweeps",
        "Authorization: Bearer wrong-guess-x-0123456789\r\n",
    );
    assert_eq!(
        status, 429,
        "the dashboard's port does not share the limit: {headers:?}"
    );
    drop(coord);

    // A stricter limit, to see the lock-out without racing its end: 10 a minute.
    let mut coord = Coordinator::start(
        &dir.path().join("lock.db"),
        Some(TOKEN),
        &["--http", "127.0.0.1:0", "--auth-failures-per-minute", "10"],
    );
    let web = dashboard_addr(&mut coord);
    for i in 0..11 {
        let _ = list_with(&rt, &coord.url, &format!("wrong-guess-{i:04}-0123456789"));
    }
    let right = list_with(&rt, &coord.url, TOKEN);
    assert!(
        matches!(&right, Err((tonic::Code::Unavailable, m)) if m.contains("too many failed")),
        "the right token during the lock-out: {right:?}"
    );
    let (status, headers, _) = get_as(&web, &web, "/api/sweeps", &bearer);
    assert_eq!(
        status, 429,
        "the right bearer token on the dashboard during the lock-out"
    );
    let retry: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!((1..=6).contains(&retry), "Retry-After {retry}");
    thread::sleep(Duration::from_secs(retry) + Duration::from_millis(300));
    assert_eq!(list_with(&rt, &coord.url, TOKEN), Ok(()));
    let (status, _, _) = get_as(&web, &web, "/api/sweeps", &bearer);
    assert_eq!(status, 200);
    drop(coord);

    // The login form, default limit: 40 wrong logins at once.
    let mut coord = Coordinator::start(
        &dir.path().join("guess2.db"),
        Some(TOKEN),
        &["--http", "127.0.0.1:0"],
    );
    let web = dashboard_addr(&mut coord);
    let start = Instant::now();
    let answers: Vec<(u16, Option<String>)> = (0..40)
        .map(|i| {
            let web = web.clone();
            thread::spawn(move || login(&web, &format!("wrong-login-{i:04}-0123456789")))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let took = start.elapsed();
    let wrong = answers.iter().filter(|a| a.0 == 401).count();
    let limited = answers.iter().filter(|a| a.0 == 429).count();
    eprintln!(
        "login, default limit: 40 parallel wrong tokens in {took:.2?}: {wrong} checked (401), \
         {limited} refused unchecked (429)"
    );
    assert_eq!(wrong + limited, 40, "{answers:?}");
    assert!(
        (1..=allowed_checks(took)).contains(&wrong),
        "{wrong} of 40 parallel wrong logins were checked in {took:?}"
    );
    assert!(
        answers.iter().filter(|a| a.0 == 429).all(|a| a.1.is_some()),
        "a 429 without Retry-After"
    );
    // Locked out: the right token on the form is refused too.
    assert_eq!(login(&web, TOKEN).0, 429);
}

/// A token shorter than 16 characters is refused at start-up with an error naming the flag, by
/// the coordinator, the dashboard, a worker and a client, from the flag and from the variable.
#[test]
fn short_tokens_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("short.db");
    let db = db.to_str().unwrap();
    let short = "fifteen-chars-x"; // 15
    assert_eq!(short.len(), 15);
    let commands: Vec<(&str, Vec<&str>)> = vec![
        (
            "coordinator",
            vec!["coordinator", "--db", db, "--listen", "127.0.0.1:0"],
        ),
        (
            "coordinator --http",
            vec![
                "coordinator",
                "--db",
                db,
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ],
        ),
        (
            "dashboard",
            vec!["dashboard", "--db", db, "--listen", "127.0.0.1:0"],
        ),
        (
            "worker",
            vec!["worker", "--coordinator", "http://127.0.0.1:9"],
        ),
        (
            "status",
            vec!["status", "--coordinator", "http://127.0.0.1:9"],
        ),
        (
            "sql",
            vec!["sql", "SELECT 1", "--coordinator", "http://127.0.0.1:9"],
        ),
    ];
    // The dashboard reads an existing store.
    {
        let c = Coordinator::start(&dir.path().join("short.db"), None, &[]);
        drop(c);
    }
    for (what, base) in &commands {
        let mut with_flag = base.clone();
        with_flag.extend(["--token", short]);
        for (args, envs, how) in [
            (with_flag, vec![], "--token"),
            (
                base.clone(),
                vec![("MODSYNC_TOKEN", short)],
                "MODSYNC_TOKEN",
            ),
        ] {
            let outcome = run_bounded(&args, &envs, Duration::from_secs(10));
            let Some((ok, _, err)) = outcome else {
                panic!("{what} with a 15-character token ({how}) kept running (it was accepted)");
            };
            assert!(!ok, "{what} ({how}): exited 0");
            assert!(
                err.contains("--token") && err.contains("16"),
                "{what} ({how}): the error does not name --token and the minimum: {err}"
            );
            assert!(
                !err.contains(short),
                "{what} ({how}) printed the token: {err}"
            );
        }
    }
    // Exactly 16 is enough.
    let c = Coordinator::start(&dir.path().join("ok.db"), Some("sixteen-chars-xy"), &[]);
    assert!(c.try_cli(&["status"]).0);
}

// ---------------------------------------------------------------------------------------------
// 10. --token-file.

/// `modsync SUB --db DB --listen 127.0.0.1:0 --token-file FILE` (SUB: coordinator or
/// dashboard) and where it listens, from its first line: the coordinator's URL, the
/// dashboard's `host:port`.
fn serve_with_token_file(sub: &str, db: &std::path::Path, file: &str) -> (Proc, String) {
    let args = [
        sub,
        "--db",
        db.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        file,
    ];
    let mut proc = Proc::spawn(sub, &args, &[], None);
    let line = proc.next_line(Duration::from_secs(30));
    let at = line
        .strip_prefix("modsync coordinator listening on ")
        .or_else(|| {
            line.strip_prefix("modsync dashboard on http://")
                .map(|a| a.trim_end_matches('/'))
        })
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    (proc, at)
}

/// `--token-file` on the coordinator, a client, a worker and the dashboard: the file's token
/// (its trailing newline dropped) is used and never appears on the command line; an empty or
/// missing file is an error naming --token-file; it and --token do not go together.
#[test]
fn token_file_keeps_the_token_off_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = file.to_str().unwrap().to_string();
    let db = dir.path().join("file.db");

    // The coordinator, from the file: nothing secret in its command line.
    let (mut proc, url) = serve_with_token_file("coordinator", &db, &file);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", proc.pid())).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(TOKEN),
        "the token is on the command line"
    );
    // A client with the file, with the variable, and without either.
    common::wait_until(Duration::from_secs(30), "status with --token-file", || {
        run_cli(
            &["status", "--coordinator", &url, "--token-file", &file],
            Duration::from_secs(30),
        )
        .0
    });
    let (ok, _, err) = run_cli_env(
        &["status", "--coordinator", &url],
        &[("MODSYNC_TOKEN", TOKEN)],
        Duration::from_secs(30),
        None,
    );
    assert!(ok, "MODSYNC_TOKEN: {err}");
    let (ok, _, err) = run_cli(&["status", "--coordinator", &url], Duration::from_secs(30));
    assert!(!ok && err.contains("token"), "{err}");
    // The help says where the token may come from.
    let (_, help, _) = run_cli(&["status", "--help"], Duration::from_secs(30));
    assert!(
        help.contains("--token-file") && help.contains("MODSYNC_TOKEN"),
        "{help}"
    );

    // A worker with the file registers (its lease polls carry the token).
    let sweep = write(dir.path(), "f.toml", &tiny_sweep("f", &[4], &[0], 50, ""));
    assert!(
        run_cli(
            &[
                "submit",
                &sweep,
                "--coordinator",
                &url,
                "--token-file",
                &file
            ],
            Duration::from_secs(30)
        )
        .0
    );
    let mut worker = Proc::spawn(
        "worker",
        &[
            "worker",
            "--coordinator",
            &url,
            "--token-file",
            &file,
            "--worker-id",
            "from-file",
        ],
        &[],
        None,
    );
    common::wait_until(
        Duration::from_secs(60),
        "the worker finishes the job",
        || {
            let (_, out, _) = run_cli(
                &[
                    "sql",
                    "--csv",
                    "SELECT COUNT(*) FROM results",
                    "--coordinator",
                    &url,
                    "--token-file",
                    &file,
                ],
                Duration::from_secs(30),
            );
            out.lines().nth(1) == Some("1")
        },
    );
    worker.signal("TERM");
    worker.wait(Duration::from_secs(60));

    // Empty, blank and missing files: errors naming --token-file, for every kind of command.
    let empty = write(dir.path(), "empty", "");
    let blank = write(dir.path(), "blank", " \n\n");
    let missing = dir.path().join("missing").to_str().unwrap().to_string();
    for bad in [&empty, &blank, &missing] {
        for args in [
            vec!["status", "--coordinator", url.as_str(), "--token-file", bad],
            vec!["worker", "--coordinator", url.as_str(), "--token-file", bad],
            vec![
                "coordinator",
                "--db",
                db.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--token-file",
                bad,
            ],
            vec![
                "dashboard",
                "--db",
                db.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--token-file",
                bad,
            ],
        ] {
            let outcome = run_bounded(&args, &[], Duration::from_secs(10));
            let Some((ok, _, err)) = outcome else {
                panic!("{args:?} kept running");
            };
            assert!(!ok && err.contains("--token-file"), "{args:?}: {err}");
        }
    }
    // Not both.
    let (ok, _, err) = run_cli(
        &[
            "status",
            "--coordinator",
            &url,
            "--token-file",
            &file,
            "--token",
            TOKEN,
        ],
        Duration::from_secs(30),
    );
    assert!(!ok && err.contains("--token-file"), "{err}");
    proc.signal("TERM");
    proc.wait(Duration::from_secs(30));

    // The dashboard from the file: logging in with the file's token works.
    let (_dashboard, addr) = serve_with_token_file("dashboard", &db, &file);
    let (status, _, _) = get_as(
        &addr,
        &addr,
        "/api/sweeps",
        &format!("Authorization: Bearer {TOKEN}\r\n"),
    );
    assert_eq!(status, 200);
}
