//! Promise 10 on the real binary: Query's stated defaults (10,000 rows, 5 s) and the flags that
//! change them (`--max-query-rows`, `--query-timeout-ms`), seen through `modsync sql`: a result
//! over the row cap is cut at it and the client says which limit cut it, asking for more rows
//! than the cap is refused naming it, and a query over the time limit is interrupted naming it.

mod common;

use std::time::{Duration, Instant};

use common::{Coordinator, parse_csv};

/// Never ends by itself.
const FOREVER: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c";

#[test]
fn query_limits_default_to_10000_rows_and_5_s() {
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("defaults.db"), None, &[]);
    assert_query_limits(&coord, 10_000, Duration::from_secs(5));
}

#[test]
fn query_limit_flags_change_them() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--max-query-rows", "50", "--query-timeout-ms", "300"];
    let coord = Coordinator::start(&dir.path().join("flags.db"), None, &flags);
    assert_query_limits(&coord, 50, Duration::from_millis(300));
}

/// `n` rows of one column.
fn rows_query(n: usize) -> String {
    format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT x FROM c"
    )
}

fn assert_query_limits(coord: &Coordinator, max_rows: usize, timeout: Duration) {
    // A result of exactly the cap comes whole; one row more is cut at the cap.
    for (n, cut) in [(max_rows, false), (max_rows + 1, true)] {
        let (ok, out, err) = coord.try_cli(&["sql", "--csv", &rows_query(n)]);
        assert!(ok, "{n} rows: {err}");
        assert_eq!(parse_csv(&out).len(), 1 + max_rows.min(n), "{n} rows");
        let said =
            err.contains(&format!("cut at {max_rows} rows")) && err.contains("--max-query-rows");
        assert_eq!(said, cut, "{n} rows, stderr: {err}");
    }
    // Asking for more than the cap is refused, naming the limit and its flag.
    let more = (max_rows + 1).to_string();
    let (ok, _, err) = coord.try_cli(&["sql", "--max-rows", &more, "SELECT 1"]);
    let limit = format!("limit of {max_rows} (--max-query-rows)");
    assert!(!ok && err.contains(&limit), "{err}");
    // A query that would run forever is interrupted at the time limit, naming it.
    let started = Instant::now();
    let (ok, _, err) = coord.try_cli(&["sql", FOREVER]);
    let took = started.elapsed();
    let limit = format!("longer than {} ms", timeout.as_millis());
    assert!(
        !ok && err.contains(&limit) && err.contains("--query-timeout-ms"),
        "{err}"
    );
    assert!(took >= timeout, "interrupted after {took:?}");
}
