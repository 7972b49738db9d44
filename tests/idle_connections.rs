//! Issue 26, hole 2, tried from outside: idle TCP connections against a real `modsync
//! coordinator --http` process on loopback whose open-file limit is lowered with `prlimit`
//! (util-linux). Before the fix a connection that sent nothing was never closed, so 300 of them
//! under `--nofile=256` left the process without file descriptors for good: `modsync status` and
//! the dashboard got no answer, and tonic's accept loop retried `accept` on EMFILE without
//! pausing, spinning a core. Now a silent connection is closed after `--idle-timeout-ms`
//! (5 s by default), both accept loops back off on EMFILE, and each port has a connection cap.
//!
//! Every count here is bounded (hundreds of loopback connections, seconds of waiting).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::http::dashboard_addr;
use common::{Coordinator, run_bounded, serial};

const TOKEN: &str = "idle-connections-token-0123456789";

/// The open-file limit the coordinator runs under, and how many idle connections are opened
/// against it: more than it can hold.
const NOFILE: u32 = 256;
const IDLE: usize = 300;
/// A real client must be answered within this long after the idle connections were opened.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// The coordinator may use at most this much CPU (user + system) while they sit there; a
/// spinning accept loop uses about one core, i.e. about as much CPU time as wall time.
const CPU_BOUND: Duration = Duration::from_millis(1500);

/// Whether `prlimit` (util-linux) is installed; without it the test is skipped, unless
/// `MODSYNC_REQUIRE_PRLIMIT=1` makes that a failure.
fn have_prlimit() -> bool {
    let found = Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        common::skip_unless_required(
            "MODSYNC_REQUIRE_PRLIMIT",
            "prlimit is not installed (Debian package util-linux)",
        );
    }
    found
}

/// Lowers the open-file limit (soft and hard) of a running process.
fn set_nofile(pid: u32, n: u32) {
    let out = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={n}:{n}")])
        .output()
        .expect("run prlimit");
    assert!(
        out.status.success(),
        "prlimit --pid {pid} --nofile={n}:{n}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// User + system CPU time of a process so far, from /proc/PID/stat (fields 14 and 15, in clock
/// ticks).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64)
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// How many sockets the process holds open (listening ones included).
fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

/// `n` TCP connections to `addr` that never send anything. They connect even when the server
/// does not accept them (the kernel's listen backlog completes the handshake).
fn open_idle(addr: &str, n: usize) -> Vec<TcpStream> {
    let addr: SocketAddr = addr.parse().unwrap();
    (0..n)
        .map(|i| {
            TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("idle connection {i} to {addr}: {e}"))
        })
        .collect()
}

/// `GET path` with the bearer token on a fresh connection: the status code and how long the
/// answer took, or why there was none within `limit`.
fn get(addr: &str, path: &str, limit: Duration) -> Result<(u16, Duration), String> {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(limit)).unwrap();
    s.set_write_timeout(Some(limit)).unwrap();
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)
        .map_err(|e| format!("no answer after {:?}: {e}", start.elapsed()))?;
    let took = start.elapsed();
    let code = String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0);
    Ok((code, took))
}

/// What one flood of idle connections did to the clients and the coordinator's CPU.
struct Flood {
    port: &'static str,
    grpc: Option<(bool, Duration, String)>,
    http: Result<(u16, Duration), String>,
    cpu: Duration,
    wall: Duration,
}

impl std::fmt::Display for Flood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let grpc = match &self.grpc {
            Some((ok, took, err)) => format!("status ok={ok} after {took:.1?} {}", err.trim()),
            None => "status: no answer".to_string(),
        };
        let http = match &self.http {
            Ok((code, took)) => format!("GET / {code} after {took:.1?}"),
            Err(e) => format!("GET /: {e}"),
        };
        write!(
            f,
            "{IDLE} idle connections to the {} port: {grpc}; {http}; coordinator CPU {:.2?} over {:.1?}",
            self.port, self.cpu, self.wall
        )
    }
}

#[test]
fn idle_connections_beyond_the_file_limit_neither_block_clients_nor_spin() {
    if !have_prlimit() {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(
        &dir.path().join("idle.db"),
        Some(TOKEN),
        &["--http", "127.0.0.1:0"],
    );
    let web = dashboard_addr(&mut coord);
    let grpc = format!("127.0.0.1:{}", coord.port);
    let pid = coord.proc.pid();
    set_nofile(pid, NOFILE);

    let mut floods = Vec::new();
    for (port, target) in [("gRPC", grpc.clone()), ("HTTP", web.clone())] {
        let idle = open_idle(&target, IDLE);
        let (t0, cpu0) = (Instant::now(), cpu_time(pid));
        // Both clients at once, each bounded a little past the limit (to report how late).
        let limit = ANSWER_WITHIN + Duration::from_secs(5);
        let url = coord.url.clone();
        let status = thread::spawn(move || {
            run_bounded(
                &["status", "--coordinator", &url, "--token", TOKEN],
                &[],
                limit,
            )
        });
        let web2 = web.clone();
        let page = thread::spawn(move || get(&web2, "/", limit));
        let grpc_answer = status.join().unwrap();
        let http_answer = page.join().unwrap();
        let flood = Flood {
            port,
            grpc: grpc_answer,
            http: http_answer,
            cpu: cpu_time(pid).saturating_sub(cpu0),
            wall: t0.elapsed(),
        };
        eprintln!("{flood}");
        floods.push(flood);
        drop(idle);
        // Let the server see the closed connections before the next flood.
        thread::sleep(Duration::from_secs(1));
    }

    let mut problems = Vec::new();
    for f in &floods {
        match &f.grpc {
            Some((true, took, _)) if *took <= ANSWER_WITHIN => {}
            _ => problems.push(format!(
                "{}: modsync status not answered within {ANSWER_WITHIN:?}",
                f.port
            )),
        }
        match &f.http {
            Ok((200, took)) if *took <= ANSWER_WITHIN => {}
            _ => problems.push(format!(
                "{}: the dashboard not answered within {ANSWER_WITHIN:?}",
                f.port
            )),
        }
        if f.cpu > CPU_BOUND {
            problems.push(format!(
                "{}: the coordinator used {:.2?} of CPU in {:.1?} (bound {CPU_BOUND:?}): a spinning accept loop",
                f.port, f.cpu, f.wall
            ));
        }
    }
    let summary: Vec<String> = floods.iter().map(|f| f.to_string()).collect();
    assert!(
        problems.is_empty(),
        "{}\n{}\nlog:\n{}",
        problems.join("\n"),
        summary.join("\n"),
        coord.proc.log()
    );
}

/// A connection that sends nothing, or only the start of what it must send (part of the HTTP/2
/// preface; part of an HTTP request's headers), is closed by the server within 10 s.
#[test]
fn silent_and_stalled_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(
        &dir.path().join("silent.db"),
        Some(TOKEN),
        &["--http", "127.0.0.1:0"],
    );
    let web = dashboard_addr(&mut coord);
    let grpc = format!("127.0.0.1:{}", coord.port);
    let cases: [(&str, &str, &[u8]); 4] = [
        ("gRPC, nothing sent", &grpc, b""),
        (
            "gRPC, half the HTTP/2 preface",
            &grpc,
            b"PRI * HTTP/2.0\r\n",
        ),
        ("HTTP, nothing sent", &web, b""),
        (
            "HTTP, half a request",
            &web,
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        ),
    ];
    // All at once, so the test waits ~one timeout, not four.
    let start = Instant::now();
    let handles: Vec<_> = cases
        .iter()
        .map(|(what, addr, sent)| {
            let (what, addr, sent) = (what.to_string(), addr.to_string(), sent.to_vec());
            thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.write_all(&sent).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(12))).unwrap();
                let t = Instant::now();
                let mut buf = [0u8; 1024];
                // The server may answer a broken request (408/400) before closing: read to EOF.
                let outcome = loop {
                    match s.read(&mut buf) {
                        Ok(0) => break Ok(t.elapsed()),
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                            break Ok(t.elapsed());
                        }
                        Err(e) => break Err(format!("still open after {:?} ({e})", t.elapsed())),
                    }
                };
                (what, outcome)
            })
        })
        .collect();
    let mut problems = Vec::new();
    for h in handles {
        let (what, outcome) = h.join().unwrap();
        eprintln!("{what}: {outcome:?}");
        match outcome {
            Ok(took) if took <= Duration::from_secs(10) => {}
            Ok(took) => problems.push(format!("{what}: closed only after {took:?}")),
            Err(e) => problems.push(format!("{what}: {e}")),
        }
    }
    assert!(
        problems.is_empty(),
        "{} (after {:?})\n{}",
        problems.join("\n"),
        start.elapsed(),
        coord.proc.log()
    );
    // The server still answers.
    assert!(coord.try_cli(&["status"]).0);
    assert_eq!(
        get(&web, "/", Duration::from_secs(10)).map(|a| a.0),
        Ok(200)
    );
}

/// With `--max-connections` and `--http-max-connections` at 16, a flood of 48 idle connections
/// to each port leaves the process holding at most 16 accepted connections per port (the others
/// wait in the kernel's backlog), and a real client is answered once the idle ones time out.
#[test]
fn each_port_holds_at_most_its_connection_cap() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(
        &dir.path().join("cap.db"),
        Some(TOKEN),
        &[
            "--http",
            "127.0.0.1:0",
            "--max-connections",
            "16",
            "--http-max-connections",
            "16",
            "--idle-timeout-ms",
            "2000",
        ],
    );
    let web = dashboard_addr(&mut coord);
    let grpc = format!("127.0.0.1:{}", coord.port);
    let pid = coord.proc.pid();
    // Let the start-up probe's connection go.
    thread::sleep(Duration::from_millis(500));
    let before = open_sockets(pid);
    let idle_grpc = open_idle(&grpc, 48);
    let idle_web = open_idle(&web, 48);
    thread::sleep(Duration::from_millis(1000));
    let during = open_sockets(pid);
    eprintln!("sockets of the coordinator: {before} before, {during} with 2 × 48 idle connections");
    assert!(
        during <= before + 32,
        "{during} sockets with 2 × 48 idle connections (cap 16 per port, {before} before)"
    );
    // 48 idle connections per port, 16 at a time, 2 s each: the client's turn comes within
    // about 3 × 2 s.
    let t0 = Instant::now();
    let answered = run_bounded(
        &["status", "--coordinator", &coord.url, "--token", TOKEN],
        &[],
        Duration::from_secs(20),
    );
    eprintln!("modsync status behind the flood: {answered:?}");
    assert!(
        answered
            .as_ref()
            .is_some_and(|(ok, took, _)| *ok && *took <= Duration::from_secs(10)),
        "{answered:?} after {:?}",
        t0.elapsed()
    );
    let page = get(&web, "/", Duration::from_secs(20));
    eprintln!("GET / behind the flood: {page:?}");
    assert!(
        page.as_ref()
            .is_ok_and(|(code, took)| *code == 200 && *took <= Duration::from_secs(10)),
        "{page:?}"
    );
    drop((idle_grpc, idle_web));
}
