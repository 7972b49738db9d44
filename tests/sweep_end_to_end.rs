//! End to end: the `modsync coordinator` binary, two `modsync worker` processes and the client
//! commands on loopback. A tiny sweep finishes; `modsync curves` agrees with statistics this test
//! computes itself from the `results` table; a resubmission creates nothing.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Coordinator, FAST_LEASES, parse_csv, serial, tiny_sweep, write};

/// n, mean, sample std, median, min — computed here independently of the coordinator's view.
fn stats(v: &mut [f64]) -> (usize, f64, f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let std = if n > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (n, mean, std, median, v[0])
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

#[test]
fn two_workers_finish_a_sweep_and_curves_match_plain_sql() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("e2e.db"), None, FAST_LEASES);
    let file = write(
        dir.path(),
        "e2e.toml",
        &tiny_sweep("e2e", &[4, 8], &[0, 1, 2], 150, ""),
    );

    let (ok, stdout, stderr) = coord.try_cli(&["submit", &file]);
    assert!(ok, "submit failed: {stderr}");
    assert_eq!(stdout.trim(), "e2e", "submit prints the sweep id");
    assert!(stderr.contains("6 jobs, 6 created"), "{stderr}");

    let _w1 = coord.worker("w1", &[]);
    let _w2 = coord.worker("w2", &[]);
    coord.wait_all_done("e2e", 6, Duration::from_secs(120));

    // Both workers took part, and every job has exactly one result.
    assert_eq!(
        coord.sql_int("SELECT COUNT(DISTINCT worker_id) FROM results"),
        2,
        "both workers should have finished jobs"
    );
    assert_eq!(
        coord.sql_int(
            "SELECT COUNT(*) FROM jobs j WHERE (SELECT COUNT(*) FROM results r WHERE r.job_id = j.id) != 1"
        ),
        0
    );
    assert_eq!(
        coord.sql_int("SELECT COUNT(*) FROM results WHERE iters_done != 150"),
        0
    );

    // Our own statistics, from plain SQL on `results`.
    let rows = coord.sql(
        "SELECT j.pde, j.method, j.width, r.rel_l2_best FROM results r \
         JOIN jobs j ON j.id = r.job_id WHERE j.sweep_id = 'e2e'",
    );
    assert_eq!(rows.len(), 6);
    let mut groups: BTreeMap<(String, String, u64), Vec<f64>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r[0].clone(), r[1].clone(), r[2].parse().unwrap()))
            .or_default()
            .push(r[3].parse().unwrap());
    }
    assert_eq!(groups.len(), 2);

    let out = dir.path().join("curves");
    let table = coord.cli(&["curves", "e2e", "--out", out.to_str().unwrap()]);
    let csv = std::fs::read_to_string(out.join("burgers.csv")).unwrap();
    let csv = parse_csv(&csv);
    assert_eq!(csv[0].join(","), "pde,method,width,n,mean,std,median,min");
    assert_eq!(csv.len() - 1, groups.len(), "{csv:?}");
    for row in &csv[1..] {
        let key = (
            row[0].clone(),
            row[1].clone(),
            row[2].parse::<u64>().unwrap(),
        );
        let (n, mean, std, median, min) = stats(groups.get_mut(&key).expect("known group"));
        let got: Vec<f64> = row[4..].iter().map(|x| x.parse().unwrap()).collect();
        assert_eq!(row[3].parse::<usize>().unwrap(), n, "{key:?}");
        for (name, want, got) in [
            ("mean", mean, got[0]),
            ("std", std, got[1]),
            ("median", median, got[2]),
            ("min", min, got[3]),
        ] {
            assert!(
                close(want, got),
                "{key:?} {name}: curves {got} vs SQL {want}"
            );
        }
        // The printed table shows the same numbers.
        let printed = format!("{:.4e}", mean);
        assert!(
            table
                .lines()
                .any(|l| l.contains(&format!(" {} ", key.2)) && l.contains(&printed)),
            "table lacks width {} mean {printed}:\n{table}",
            key.2
        );
    }
    let svg = std::fs::read_to_string(out.join("burgers.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("adam"), "not a plot");

    // Resubmitting the same sweep creates no jobs and keeps every result.
    let (ok, stdout, stderr) = coord.try_cli(&["submit", &file]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "e2e");
    assert!(stderr.contains("6 jobs, 0 created"), "{stderr}");
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM jobs"), 6);
    assert_eq!(coord.states("e2e").get("done"), Some(&6));
    assert_eq!(coord.sql_int("SELECT COUNT(*) FROM results"), 6);

    // status shows the counts.
    let status = coord.cli(&["status", "e2e"]);
    let line = status
        .lines()
        .find(|l| l.starts_with("e2e"))
        .expect(&status);
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells, ["e2e", "6", "0", "0", "6", "0", "0"], "{status}");
}

/// A sweep with an extra axis (issue 27) through real processes: the coordinator binary, two
/// workers, the client commands. Each job trains with its own axis value (the lr of every
/// metric row), `job_axes` answers GROUP BY without JSON, and `modsync curves` and `modsync
/// history` give one line per series with the statistics plain SQL gives.
#[test]
fn two_workers_finish_a_sweep_over_an_axis_with_one_curve_per_series() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("axes.db"), None, FAST_LEASES);
    let file = write(
        dir.path(),
        "axes.toml",
        &tiny_sweep(
            "axes",
            &[4],
            &[0, 1, 2],
            100,
            "\n[grid.axes]\nlr = [0.001, 0.01]",
        ),
    );
    let (ok, _, stderr) = coord.try_cli(&["submit", &file]);
    assert!(ok, "submit failed: {stderr}");
    assert!(stderr.contains("6 jobs, 6 created"), "{stderr}");
    let _w1 = coord.worker("w1", &[]);
    let _w2 = coord.worker("w2", &[]);
    coord.wait_all_done("axes", 6, Duration::from_secs(120));

    // Every metric row of a job was trained at its own axis value (lr_decay is off).
    assert_eq!(
        coord.sql_int(
            "SELECT COUNT(*) FROM metrics m JOIN job_axes a ON a.job_id = m.job_id \
             WHERE a.axis = 'lr' AND m.lr != CAST(a.value AS REAL)"
        ),
        0
    );
    assert_eq!(
        coord.sql(
            "SELECT j.series, a.value, COUNT(*) FROM jobs j JOIN job_axes a ON a.job_id = j.id \
             GROUP BY j.series, a.value ORDER BY j.series"
        ),
        [["lr=0.001", "0.001", "3"], ["lr=0.01", "0.01", "3"]]
    );

    // Our own statistics per series from `results`, against `modsync curves`' CSV.
    let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in
        coord.sql("SELECT j.series, r.rel_l2_best FROM results r JOIN jobs j ON j.id = r.job_id")
    {
        groups
            .entry(r[0].clone())
            .or_default()
            .push(r[1].parse().unwrap());
    }
    let out = dir.path().join("curves");
    coord.cli(&["curves", "axes", "--out", out.to_str().unwrap()]);
    let csv = parse_csv(&std::fs::read_to_string(out.join("burgers.csv")).unwrap());
    assert_eq!(
        csv[0].join(","),
        "pde,method,series,width,n,mean,std,median,min"
    );
    assert_eq!(csv.len() - 1, 2, "one row per series: {csv:?}");
    for row in &csv[1..] {
        let (n, mean, std, median, min) = stats(groups.get_mut(&row[2]).expect("a known series"));
        assert_eq!(row[4].parse::<usize>().unwrap(), n, "{row:?}");
        let got: Vec<f64> = row[5..].iter().map(|x| x.parse().unwrap()).collect();
        for (want, got) in [mean, std, median, min].into_iter().zip(got) {
            assert!(close(want, got), "{row:?}: curves {got} vs SQL {want}");
        }
    }

    // `modsync history`: one panel per series, the median over the series' seeds.
    let history = dir.path().join("history");
    coord.cli(&[
        "history",
        "axes",
        "--metric",
        "lr",
        "--out",
        history.to_str().unwrap(),
    ]);
    let csv = parse_csv(&std::fs::read_to_string(history.join("lr.csv")).unwrap());
    assert_eq!(
        csv[0].join(","),
        "pde,method,series,seed,width,iter,n,median,min,max"
    );
    let per_series: BTreeMap<(String, String), usize> =
        csv[1..].iter().fold(BTreeMap::new(), |mut m, r| {
            *m.entry((r[2].clone(), r[7].clone())).or_default() += 1;
            m
        });
    assert_eq!(
        per_series.keys().cloned().collect::<Vec<_>>(),
        [
            ("lr=0.001".to_string(), "0.001".to_string()),
            ("lr=0.01".to_string(), "0.01".to_string())
        ],
        "each series' line sits at its own lr: {csv:?}"
    );
    assert!(csv[1..].iter().all(|r| r[6] == "3"), "3 seeds per point");
    let svg = std::fs::read_to_string(history.join("lr.svg")).unwrap();
    assert!(svg.contains("adam · lr=0.001") && svg.contains("adam · lr=0.01"));
}
