//! The coordinator load generator (`bench/coordinator-load`) at a small size: a real
//! coordinator, simulated workers, stalled workers writing with stale fencing tokens, and the
//! database checks. Asserts only correctness (nothing lost, nothing done twice, no stale write
//! accepted), never timing.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coordinator-load"))
        .args(args)
        .output()
        .expect("run coordinator-load");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `key=value` from the last line.
fn field(last: &str, key: &str) -> String {
    last.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {last:?}"))
        .to_string()
}

#[test]
fn small_load_loses_nothing_and_refuses_every_stale_write() {
    let (ok, stdout, stderr) = run(&[
        "--jobs",
        "300",
        "--workers",
        "50",
        "--work-ms",
        "100",
        "--lease-ms",
        "400",
        "--heartbeat-ms",
        "100",
        "--reap-every-ms",
        "50",
        "--stall-fraction",
        "0.06",
        "--timeout-s",
        "120",
    ]);
    assert!(ok, "coordinator-load failed:\n{stdout}\n{stderr}");
    let last = stdout.lines().last().expect("output");
    assert!(last.starts_with("cycles_per_s="), "{last}");
    for key in ["lost", "duplicated", "stale_accepted"] {
        assert_eq!(field(last, key), "0", "{key}: {stdout}");
    }
    // The fault injection really happened: 3 stalled workers, 4 stale writes each, all refused
    // after another worker had taken the job over.
    assert!(
        stdout.contains(
            "3 stalled workers, 3 jobs taken over before the writes; 12 sent, 12 refused"
        ),
        "{stdout}"
    );
    // At least some stale writes met a job another worker was running (not only finished
    // ones): those are the writes a broken fence would let through.
    let live: u64 = stdout
        .split("FAILED_PRECONDITION; ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no refusal breakdown in {stdout}"));
    assert!(live > 0, "{stdout}");
    assert!(
        stdout.contains("database: jobs 300 (done 300), results 300"),
        "{stdout}"
    );
    let p99: f64 = field(last, "p99_ms").parse().expect("p99_ms is a number");
    assert!(p99 > 0.0);
}

#[test]
fn bad_arguments_name_the_flag() {
    for (args, flag) in [
        (&["--jobs", "0"][..], "--jobs"),
        (&["--workers", "x"][..], "--workers"),
        (&["--stall-fraction", "0.9"][..], "--stall-fraction"),
        (
            &["--heartbeat-ms", "2000", "--lease-ms", "1000"][..],
            "--heartbeat-ms",
        ),
        (
            &["--workers", "10", "--connections", "20"][..],
            "--connections",
        ),
        (&["--work-ms", "5000"][..], "--lease-ms"),
    ] {
        let (ok, stdout, stderr) = run(args);
        assert!(!ok, "{args:?} was accepted:\n{stdout}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
