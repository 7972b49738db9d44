//! The dashboard over HTTP(S) on a real store file: who gets in (token, session cookie, bearer
//! header), that nothing can write through it, and that the numbers it shows are the numbers
//! SQL gives over the same store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coordinator::{Reader, Store};
use dashboard::DashboardConfig;
use modsync_proto::SweepSpec;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

const TOKEN: &str = "dashboard-test-token-4f1c";

/// A store with one sweep: 2 pdes × 2 methods × 2 widths × 3 seeds = 24 jobs. Every job of
/// burgers is done with a result and metric rows; helmholtz2d has one running, one failed job
/// and the rest queued.
/// A store file at `db` holding `specs`, submitted through the coordinator, and a raw pool on
/// it for writing by hand what workers would have reported.
async fn submitted(db: &Path, specs: Vec<SweepSpec>) -> SqlitePool {
    let store = Store::open(db).await.unwrap();
    for spec in &specs {
        store.submit_sweep(spec).await.unwrap();
    }
    store.close().await;
    SqlitePool::connect_with(SqliteConnectOptions::new().filename(db))
        .await
        .unwrap()
}

async fn fixture(dir: &Path) -> PathBuf {
    let db = dir.join("store.db");
    // Fill in what workers would have reported, straight into the file.
    let pool = submitted(
        &db,
        vec![SweepSpec {
            name: "fx".into(),
            pdes: vec!["burgers".into(), "helmholtz2d".into()],
            methods: vec!["adam".into(), "dcgd".into()],
            widths: vec![8, 16],
            seeds: vec![0, 1, 2],
            base_config_json: r#"{"iters": 20, "eval_every": 10}"#.into(),
            max_attempts: 3,
            priority: 0,
            ..Default::default()
        }],
    )
    .await;
    let now: i64 = 1_796_234_645_000;
    for w in ["w1", "w2"] {
        sqlx::query("INSERT INTO workers (id, host, device, first_seen_ms, last_seen_ms, jobs_done) VALUES (?, 'node-a', 'cpu', ?, ?, 0)")
            .bind(w).bind(now).bind(now).execute(&pool).await.unwrap();
    }
    let jobs: Vec<(i64, String, String, i64, i64)> =
        sqlx::query_as("SELECT id, pde, method, width, seed FROM jobs ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (id, pde, method, width, seed) in &jobs {
        if pde == "burgers" {
            // Distinct values per cell, so a mixed-up cell shows.
            let m = if method == "adam" { 1.0 } else { 0.5 };
            let best = m * 0.1 / (*width as f64) * (1.0 + 0.3 * *seed as f64);
            let worker = if seed % 2 == 0 { "w1" } else { "w2" };
            sqlx::query(
                "UPDATE jobs SET state = 'done', attempts = 1, lease_owner = ? WHERE id = ?",
            )
            .bind(worker)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO results (job_id, rel_l2_best, rel_l2_min_loss, rel_l2_last, abs_err_best,
                     abs_err_max_best, best_iter, min_loss_iter, iters_done, wall_s, iters_per_s,
                     num_params, diverged, skipped_steps, status, device, worker_id, result, finished_at_ms)
                 VALUES (?, ?, ?, ?, 0.01, 0.02, 20, 20, 20, 1.5, 13.3, 100, 0, 0, 'finished', 'cpu', ?, '{}', ?)",
            )
            .bind(id).bind(best).bind(best * 1.1).bind(best * 1.2).bind(worker).bind(now - 60_000)
            .execute(&pool).await.unwrap();
            for iter in [0i64, 10, 20] {
                sqlx::query(
                    "INSERT INTO metrics (job_id, iter, lr, loss_r, loss_b, rel_l2, abs_err, abs_err_max,
                         skipped_steps, elapsed_s, extra, token)
                     VALUES (?, ?, 0.001, ?, ?, ?, 0.1, 0.2, 0, 1.0, ?, 1)",
                )
                .bind(id).bind(iter)
                .bind(1.0 / (iter + 1) as f64).bind(0.5 / (iter + 1) as f64).bind(best * 2.0)
                .bind(r#"{"cos_rb": 0.25, "kept_frac.0": 0.9}"#)
                .execute(&pool).await.unwrap();
            }
        }
    }
    let first_helmholtz = jobs.iter().find(|j| j.1 == "helmholtz2d").unwrap().0;
    sqlx::query("UPDATE jobs SET state = 'running', attempts = 1, lease_owner = 'w1', lease_expires_at_ms = ? WHERE id = ?")
        .bind(now + 30_000).bind(first_helmholtz).execute(&pool).await.unwrap();
    sqlx::query("UPDATE jobs SET state = 'failed', attempts = 3, last_error = 'diverged: <NaN> & more\nsecond line' WHERE id = ?")
        .bind(first_helmholtz + 1).execute(&pool).await.unwrap();
    pool.close().await;
    db
}

/// A dashboard served from a thread of its own; stopped when dropped.
struct Served {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    scheme: &'static str,
}

impl Served {
    fn start(db: &Path, config: DashboardConfig) -> Served {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let db = db.to_path_buf();
        let scheme = config.scheme();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let reader = Reader::open(&db).await.map_err(|e| e.to_string())?;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                dashboard::serve(reader, listener, config, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("dashboard started");
        Served {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            scheme,
        }
    }

    fn url(&self, path: &str) -> String {
        let host = if self.scheme == "https" {
            format!("localhost:{}", self.addr.port())
        } else {
            self.addr.to_string()
        };
        format!("{}://{host}{path}", self.scheme)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// (status, body, Set-Cookie / Location headers) of a GET with extra headers.
fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String, Option<String>) {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap(), location)
}

const BEARER: &str = "Bearer dashboard-test-token-4f1c";

/// Every GET route of the fixture.
fn routes(job: i64) -> Vec<String> {
    vec![
        "/".into(),
        "/?page=1".into(),
        "/sweeps/fx".into(),
        "/sweeps/fx?error=min_loss".into(),
        "/sweeps/fx?fragment=1".into(),
        format!("/jobs/{job}"),
        "/workers".into(),
        "/api/sweeps".into(),
        "/api/sweeps/fx".into(),
        format!("/api/jobs/{job}"),
        "/api/workers".into(),
        "/sweeps/fx/curves.csv".into(),
        "/sweeps/fx/results.csv".into(),
        "/assets/live.js".into(),
    ]
}

fn first_job(db: &Path) -> i64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = Reader::open(db).await.unwrap();
        sqlx::query_scalar("SELECT MIN(id) FROM jobs WHERE pde = 'burgers'")
            .fetch_one(r.pool())
            .await
            .unwrap()
    })
}

/// The fixture's dashboard behind [`TOKEN`], and the fixture's first burgers job.
fn served_with_token(dir: &Path) -> (Served, i64) {
    let db = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fixture(dir));
    let job = first_job(&db);
    let served = Served::start(
        &db,
        DashboardConfig {
            token: Some(TOKEN.into()),
            ..DashboardConfig::default()
        },
    );
    (served, job)
}

#[test]
fn requests_without_the_token_or_a_session_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (s, job) = served_with_token(dir.path());
    for route in routes(job) {
        let url = s.url(&route);
        let (status, body, location) = get(&url, &[]);
        // A browser asking for a page is sent to the login form; anything else gets 401.
        match status {
            303 => assert!(
                location
                    .as_deref()
                    .is_some_and(|l| l.starts_with("/login?next=")),
                "{route}: {location:?}"
            ),
            401 => {}
            other => panic!("{route}: {other} without a token\n{body}"),
        }
        assert!(
            !body.contains("fx,") && !body.contains("burgers"),
            "{route} leaked data"
        );
        for wrong in ["Bearer nope", "Bearer ", "Basic ZGFzaGJvYXJk", TOKEN] {
            let (status, _, _) = get(&url, &[("authorization", wrong)]);
            assert!(
                status == 401 || status == 303,
                "{route} with {wrong:?}: {status}"
            );
        }
        let (status, body, _) = get(&url, &[("authorization", BEARER)]);
        assert_eq!(status, 200, "{route} with the token: {body}");
        let forged = format!("{}=0000", "modsync_session");
        let (status, _, _) = get(&url, &[("cookie", &forged)]);
        assert!(
            status == 401 || status == 303,
            "{route} with a forged session: {status}"
        );
    }

    // The login form: a wrong token opens nothing, the right one a session whose cookie is
    // HttpOnly, SameSite=Strict and is not the token.
    let wrong = agent()
        .post(s.url("/login"))
        .send_form([("token", "nope"), ("next", "/workers")])
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let ok = agent()
        .post(s.url("/login"))
        .send_form([("token", TOKEN), ("next", "/workers")])
        .unwrap();
    assert_eq!(ok.status().as_u16(), 303);
    assert_eq!(ok.headers().get("location").unwrap(), "/workers");
    let set_cookie = ok
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains(TOKEN),
        "the cookie holds the token: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let (status, body, _) = get(&s.url("/workers"), &[("cookie", &cookie)]);
    assert_eq!(status, 200);
    assert!(body.contains("w1"), "{body}");
    // An off-site `next` is not followed.
    let off = agent()
        .post(s.url("/login"))
        .send_form([("token", TOKEN), ("next", "//evil.example/")])
        .unwrap();
    assert_eq!(off.headers().get("location").unwrap(), "/");
    // Logging out ends the session.
    let out = agent()
        .post(s.url("/logout"))
        .header("cookie", &cookie)
        .send_empty()
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    let (status, _, _) = get(&s.url("/api/workers"), &[("cookie", &cookie)]);
    assert_eq!(status, 401, "a logged-out session still works");
}

#[test]
fn without_a_token_only_loopback_is_served() {
    let none = DashboardConfig::default();
    assert!(
        none.check_exposure("127.0.0.1:8080".parse().unwrap())
            .is_ok()
    );
    assert!(none.check_exposure("[::1]:8080".parse().unwrap()).is_ok());
    let e = none
        .check_exposure("0.0.0.0:8080".parse().unwrap())
        .unwrap_err();
    assert!(e.contains("--insecure-no-auth"), "{e}");
    let open = DashboardConfig {
        insecure_no_auth: true,
        ..DashboardConfig::default()
    };
    assert!(open.check_exposure("0.0.0.0:8080".parse().unwrap()).is_ok());
    let blank = DashboardConfig {
        token: Some("  ".into()),
        ..DashboardConfig::default()
    };
    assert!(
        blank
            .check_exposure("127.0.0.1:1".parse().unwrap())
            .is_err()
    );
}

/// Every byte of the store and its WAL.
fn snapshot(db: &Path) -> Vec<Vec<u8>> {
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::read(format!("{}{s}", db.display())).ok())
        .filter(|bytes| !bytes.is_empty())
        .collect()
}

#[test]
fn nothing_can_write_through_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(fixture(dir.path()));
    let job = first_job(&db);
    let before = snapshot(&db);
    let s = Served::start(&db, DashboardConfig::default());
    for route in routes(job) {
        let url = s.url(&route);
        assert_eq!(get(&url, &[]).0, 200, "{route}");
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let req = ureq::http::Request::builder()
                .method(method)
                .uri(&url)
                .body(())
                .unwrap();
            let status = agent().run(req).unwrap().status().as_u16();
            assert!(status == 405 || status == 404, "{method} {route}: {status}");
        }
    }
    drop(s);
    assert!(
        snapshot(&db) == before,
        "serving the dashboard changed the store"
    );
    // The pool the dashboard reads through refuses writes inside SQLite.
    rt.block_on(async {
        let r = Reader::open(&db).await.unwrap();
        for sql in [
            "DELETE FROM jobs",
            "UPDATE jobs SET state = 'queued'",
            "INSERT INTO workers (id, host, device, first_seen_ms, last_seen_ms) VALUES ('x', '', '', 0, 0)",
        ] {
            let e = sqlx::query(sql).execute(r.pool()).await.unwrap_err();
            assert!(e.to_string().contains("readonly") || e.to_string().contains("read-only") || e.to_string().contains("query_only"), "{sql}: {e}");
        }
    });
    assert!(snapshot(&db) == before);
}

/// The `data-value`s of the cells in `html` whose opening tag contains `marker`.
fn values_after(html: &str, marker: &str) -> Vec<String> {
    html.match_indices(marker)
        .filter_map(|(i, _)| {
            let tag_end = html[i..].find('>')? + i;
            let tag_start = html[..i].rfind('<')?;
            let tag = &html[tag_start..tag_end];
            let v = tag.split("data-value=\"").nth(1)?;
            Some(v[..v.find('"')?].to_string())
        })
        .collect()
}

#[test]
fn numbers_on_the_pages_are_the_numbers_sql_gives() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(fixture(dir.path()));
    let job = first_job(&db);
    let s = Served::start(&db, DashboardConfig::default());
    let reader = rt.block_on(Reader::open(&db)).unwrap();
    let sql_rows = |sql: &str| -> Vec<(String, String, i64, f64)> {
        rt.block_on(sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(reader.pool()))
            .unwrap()
    };
    let sql_int = |sql: &str| -> i64 {
        rt.block_on(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(reader.pool()),
        )
        .unwrap()
    };

    // The sweep page's method × width table: the medians of the `curves` view.
    let (_, page, _) = get(&s.url("/sweeps/fx"), &[]);
    let view = sql_rows(
        "SELECT pde, method, width, median FROM curves WHERE sweep_id = 'fx' ORDER BY pde, method, width",
    );
    assert_eq!(view.len(), 4, "{view:?}");
    for (pde, method, width, median) in &view {
        let section = page.split(&format!(r#"data-pde="{pde}""#)).nth(1).unwrap();
        let row = section
            .split(&format!(r#"<tr data-method="{method}" data-series="">"#))
            .nth(1)
            .unwrap();
        let row = &row[..row.find("</tr>").unwrap()];
        let shown = values_after(row, &format!(r#"data-width="{width}""#));
        assert_eq!(shown, vec![median.to_string()], "{pde} {method} {width}");
    }
    // The best per width is the cell of the smallest median of that width (dcgd's, by
    // construction): that cell and no other carries the mark.
    for (pde, method, width, median) in &view {
        let smallest = view
            .iter()
            .filter(|v| v.0 == *pde && v.2 == *width)
            .map(|v| v.3)
            .fold(f64::INFINITY, f64::min);
        let tag = grid_cell(&page, pde, method, *width);
        let marked = attr(tag, "class").is_some_and(|c| c.split(' ').any(|c| c == "best"));
        assert_eq!(
            marked,
            *median == smallest,
            "{pde} {method} {width} (median {median}, smallest {smallest}): {tag}"
        );
        assert_eq!(
            marked,
            method == "dcgd",
            "the fixture's best is dcgd's: {tag}"
        );
        let cell = &page[page.find(tag).unwrap() + tag.len()..];
        let cell = &cell[..cell.find("</td>").unwrap()];
        assert_eq!(
            cell.contains('★'),
            marked,
            "the star of {pde} {method} {width}: {cell}"
        );
    }
    assert_eq!(
        page.matches(r#"num best""#).count(),
        2,
        "one best per width"
    );
    // One line per method in the plot.
    let plot = page.split(r#"data-pde="burgers""#).nth(1).unwrap();
    let plot = &plot[..plot.find("</svg>").unwrap()];
    assert_eq!(plot.matches(r#"class="line""#).count(), 2);
    assert_eq!(
        plot.matches(r#"class="dot""#).count(),
        12,
        "one dot per seed"
    );

    // The error at minimum loss: medians from the results table directly.
    let (_, page, _) = get(&s.url("/sweeps/fx?error=min_loss"), &[]);
    for (method, width) in [("adam", 8), ("dcgd", 16)] {
        let median: f64 = rt
            .block_on(
                sqlx::query_scalar(
                    "SELECT r.rel_l2_min_loss FROM results r JOIN jobs j ON j.id = r.job_id
                     WHERE j.sweep_id = 'fx' AND j.pde = 'burgers' AND j.method = ? AND j.width = ?
                     ORDER BY r.rel_l2_min_loss LIMIT 1 OFFSET 1",
                )
                .bind(method)
                .bind(width)
                .fetch_one(reader.pool()),
            )
            .unwrap();
        let section = page.split(r#"data-pde="burgers""#).nth(1).unwrap();
        let row = section
            .split(&format!(r#"<tr data-method="{method}" data-series="">"#))
            .nth(1)
            .unwrap();
        let row = &row[..row.find("</tr>").unwrap()];
        assert_eq!(
            values_after(row, &format!(r#"data-width="{width}""#)),
            vec![median.to_string()],
            "{method} {width}"
        );
    }

    // Counts by state, on the sweeps list and the sweep page.
    let (_, list, _) = get(&s.url("/"), &[]);
    for state in ["queued", "running", "done", "failed", "cancelled"] {
        let n = sql_int(&format!(
            "SELECT COUNT(*) FROM jobs WHERE sweep_id = 'fx' AND state = '{state}'"
        ));
        assert_eq!(
            values_after(&list, &format!(r#"class="num {state}""#)),
            vec![n.to_string()],
            "{state}"
        );
    }
    let done = sql_int("SELECT COUNT(*) FROM jobs WHERE state IN ('done', 'failed', 'cancelled')");
    let total = sql_int("SELECT COUNT(*) FROM jobs");
    assert_eq!(
        values_after(&list, r#"class="progress""#),
        vec![(100.0 * done as f64 / total as f64).to_string()]
    );
    // The failed job and its (escaped) error.
    let (_, page, _) = get(&s.url("/sweeps/fx"), &[]);
    assert!(
        page.contains("diverged: &lt;NaN&gt; &amp; more"),
        "the error is shown escaped"
    );

    // Workers: running jobs and jobs done.
    let (_, workers, _) = get(&s.url("/workers"), &[]);
    for w in ["w1", "w2"] {
        let row = workers
            .split(&format!(r#"data-worker="{w}""#))
            .nth(1)
            .unwrap();
        let row = &row[..row.find("</tr>").unwrap()];
        let running = sql_int(&format!(
            "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND lease_owner = '{w}'"
        ));
        let done = sql_int(&format!("SELECT jobs_done FROM workers WHERE id = '{w}'"));
        assert_eq!(
            values_after(row, "num running"),
            vec![running.to_string()],
            "{w}"
        );
        assert_eq!(values_after(row, "num done"), vec![done.to_string()], "{w}");
    }

    // A job page: its metric rows drawn as curves, its result.
    let (_, page, _) = get(&s.url(&format!("/jobs/{job}")), &[]);
    let rows = sql_int(&format!(
        "SELECT COUNT(*) FROM metrics WHERE job_id = {job}"
    ));
    assert_eq!(rows, 3);
    assert!(
        page.contains(&format!(r#"data-value="{rows}""#)),
        "metric row count"
    );
    let losses = page.split(r#"chart losses""#).nth(1).unwrap();
    let losses = &losses[..losses.find("</svg>").unwrap()];
    assert_eq!(losses.matches(r#"class="line""#).count(), 2, "L_r and L_b");
    assert!(
        page.contains("gradient cosines") && page.contains("kept_frac.0"),
        "diagnostics"
    );
    let best: f64 = rt
        .block_on(
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT rel_l2_best FROM results WHERE job_id = {job}"
            )))
            .fetch_one(reader.pool()),
        )
        .unwrap();
    assert!(
        page.contains(&format!(r#"data-value="{best}""#)),
        "rel_l2_best {best}"
    );
    // The JSON has the same series.
    let (_, json, _) = get(&s.url(&format!("/api/jobs/{job}")), &[]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["series"]["iter"], serde_json::json!([0, 10, 20]));
    // Every real column of METRICS_COLUMNS is a series of its own: the page keeps no list.
    let keys: std::collections::BTreeSet<&str> = v["series"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let want: std::collections::BTreeSet<&str> = trainer_core::METRICS_COLUMNS
        .iter()
        .filter(|c| c.is_real())
        .map(|c| c.name)
        .chain(["iter", "extra", "rows"])
        .collect();
    assert_eq!(keys, want, "the job's series are the metrics columns");
    assert_eq!(
        v["series"]["extra"]["cos_rb"],
        serde_json::json!([0.25, 0.25, 0.25])
    );

    // The downloads: the curves view's rows, and one results row per job.
    let (status, curves, _) = get(&s.url("/sweeps/fx/curves.csv"), &[]);
    assert_eq!(status, 200);
    let lines: Vec<&str> = curves.lines().collect();
    assert_eq!(lines[0], "pde,method,width,n,mean,std,median,min");
    assert_eq!(lines.len(), 1 + view.len());
    for ((pde, method, width, median), line) in view.iter().zip(&lines[1..]) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(
            (f[0], f[1], f[2], f[6]),
            (
                pde.as_str(),
                method.as_str(),
                &*width.to_string(),
                &*median.to_string()
            )
        );
    }
    let (status, results, _) = get(&s.url("/sweeps/fx/results.csv"), &[]);
    assert_eq!(status, 200);
    let lines: Vec<&str> = results.lines().collect();
    assert_eq!(lines.len() as i64, 1 + total);
    let header: Vec<&str> = lines[0].split(',').collect();
    assert!(
        header.contains(&"config.width") && header.contains(&"config.iters"),
        "{header:?}"
    );
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let first: Vec<&str> = lines
        .iter()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f[col("job_id")] == job.to_string())
        .unwrap();
    assert_eq!(first[col("rel_l2_best")], best.to_string());
    assert_eq!(first[col("config.iters")], "20");
}

#[test]
fn https_with_the_coordinators_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let db = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fixture(dir.path()));
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let s = Served::start(
        &db,
        DashboardConfig {
            token: Some(TOKEN.into()),
            tls_cert: Some(cert_path),
            tls_key: Some(key_path),
            ..DashboardConfig::default()
        },
    );
    let ca = ureq::tls::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![ca])))
        .build();
    let tls_agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(tls)
        .build()
        .into();
    let mut ok = tls_agent
        .get(s.url("/api/sweeps"))
        .header("authorization", BEARER)
        .call()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(ok.body_mut().read_to_string().unwrap().contains("\"fx\""));
    let refused = tls_agent.get(s.url("/api/sweeps")).call().unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let login = tls_agent
        .post(s.url("/login"))
        .send_form([("token", TOKEN)])
        .unwrap();
    let cookie = login.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Plain HTTP to the HTTPS port gets no page.
    let plain = agent().get(format!("http://{}/", s.addr)).call();
    assert!(plain.is_err() || plain.unwrap().status().as_u16() != 200);
}

/// A store with a sweep whose (method, width) cells have 1, 2 or 5 finished seeds (n = 1 with
/// std 0, an even and an odd median), one failed job without a result, the rest queued; the
/// three errors of a result distinct and in no seed order. A second sweep with far larger
/// errors must not leak into the first one's statistics.
async fn skewed_fixture(dir: &Path) -> PathBuf {
    let db = dir.join("skew.db");
    let specs = [("skew", 5), ("other", 2)].map(|(name, seeds)| SweepSpec {
        name: name.into(),
        pdes: vec!["burgers".into()],
        methods: vec!["adam".into(), "dcgd".into()],
        widths: vec![8, 16, 32],
        seeds: (0..seeds).collect(),
        base_config_json: r#"{"iters": 20, "eval_every": 10}"#.into(),
        max_attempts: 3,
        priority: 0,
        ..Default::default()
    });
    let pool = submitted(&db, specs.to_vec()).await;
    let finished = |sweep: &str, method: &str, width: i64| match (sweep, method, width) {
        ("other", _, _) => 2,
        ("skew", "adam", 8) | ("skew", "dcgd", 16) => 1,
        ("skew", "adam", 16) | ("skew", "dcgd", 32) => 2,
        _ => 5,
    };
    let jobs: Vec<(i64, String, String, i64, i64)> =
        sqlx::query_as("SELECT id, sweep_id, method, width, seed FROM jobs ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut k = 0.0f64;
    for (id, sweep, method, width, seed) in &jobs {
        let done = finished(sweep, method, *width);
        if *seed < done {
            k += 1.0;
            let scale = if sweep == "other" { 1e3 } else { 1.0 };
            let best = scale * 0.01 * (1.0 + (k * 7.3).sin().abs()) / *width as f64;
            let min_loss = best * (1.2 + (k * 3.1).cos());
            let last = best * (1.5 + (k * 1.7).sin());
            sqlx::query(
                "UPDATE jobs SET state = 'done', attempts = 1, lease_owner = 'w1' WHERE id = ?",
            )
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO results (job_id, rel_l2_best, rel_l2_min_loss, rel_l2_last, abs_err_best,
                     abs_err_max_best, best_iter, min_loss_iter, iters_done, wall_s, iters_per_s,
                     num_params, diverged, skipped_steps, status, device, worker_id, result, finished_at_ms)
                 VALUES (?, ?, ?, ?, 0.01, 0.02, 20, 20, 20, 1.5, 13.3, 100, 0, 0, 'finished', 'cpu', 'w1', '{}', ?)",
            )
            .bind(id).bind(best).bind(min_loss).bind(last).bind(1_796_234_645_000i64 + id)
            .execute(&pool).await.unwrap();
        } else if sweep == "skew" && method == "adam" && *width == 16 && *seed == done {
            sqlx::query(
                "UPDATE jobs SET state = 'failed', attempts = 3, lease_owner = 'w1',
                     last_error = 'diverged at iteration 7' WHERE id = ?",
            )
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    pool.close().await;
    db
}

/// One (pde, method, width) cell's statistics.
#[derive(Debug)]
struct CellStats {
    method: String,
    width: i64,
    n: i64,
    mean: f64,
    std: f64,
    median: f64,
    min: f64,
    max: f64,
}

/// The statistics of sweep `sweep`'s burgers cells over `col`, each by its own plain SQL (no
/// window functions, nothing shared with the dashboard or the view): COUNT, AVG, MIN, MAX per
/// cell; the median as the AVG of the middle one or two values (LIMIT/OFFSET over the sorted
/// values); the sample std from the sum of squared deviations from that mean (0 for n = 1).
async fn reference_stats(reader: &Reader, sweep: &str, col: &str) -> Vec<CellStats> {
    let values = format!(
        "SELECT r.{col} AS v FROM jobs j JOIN results r ON r.job_id = j.id
         WHERE j.sweep_id = ?1 AND j.pde = 'burgers' AND j.method = ?2 AND j.width = ?3"
    );
    let cells: Vec<(String, i64, i64, f64, f64, f64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT j.method, j.width, COUNT(*), AVG(r.{col}), MIN(r.{col}), MAX(r.{col})
         FROM jobs j JOIN results r ON r.job_id = j.id
         WHERE j.sweep_id = ? AND j.pde = 'burgers'
         GROUP BY j.method, j.width ORDER BY j.method, j.width"
        )))
        .bind(sweep)
        .fetch_all(reader.pool())
        .await
        .unwrap();
    let mut out = Vec::new();
    for (method, width, n, mean, min, max) in cells {
        let median: f64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT AVG(v) FROM ({values} ORDER BY v LIMIT ?4 OFFSET ?5)"
        )))
        .bind(sweep)
        .bind(&method)
        .bind(width)
        .bind(2 - n % 2)
        .bind((n - 1) / 2)
        .fetch_one(reader.pool())
        .await
        .unwrap();
        let std: f64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT CASE WHEN COUNT(*) > 1 THEN sqrt(SUM((v - ?4) * (v - ?4)) / (COUNT(*) - 1))
                    ELSE 0.0 END FROM ({values})"
        )))
        .bind(sweep)
        .bind(&method)
        .bind(width)
        .bind(mean)
        .fetch_one(reader.pool())
        .await
        .unwrap();
        out.push(CellStats {
            method,
            width,
            n,
            mean,
            std,
            median,
            min,
            max,
        });
    }
    out
}

/// The value of attribute `name` in an HTML tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(r#" {name}=""#);
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].to_string())
}

/// The opening tag of the method × width table's cell of (pde, method, width).
fn grid_cell<'a>(page: &'a str, pde: &str, method: &str, width: i64) -> &'a str {
    let section = page
        .split(&format!(r#"data-pde="{pde}""#))
        .nth(1)
        .unwrap_or_else(|| panic!("no section {pde}"));
    let row = section
        .split(&format!(r#"<tr data-method="{method}" data-series="">"#))
        .nth(1)
        .unwrap_or_else(|| panic!("no row {method}"));
    let row = &row[..row.find("</tr>").unwrap()];
    let at = row
        .find(&format!(r#"data-width="{width}""#))
        .unwrap_or_else(|| panic!("no cell {method} {width}"));
    let start = row[..at].rfind('<').unwrap();
    &row[start..at + row[at..].find('>').unwrap()]
}

/// Equal up to the order of a floating-point sum (mean, std): 1e-12 relative.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

#[test]
fn statistics_over_uneven_seeds_are_the_numbers_sql_gives() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(skewed_fixture(dir.path()));
    let s = Served::start(&db, DashboardConfig::default());
    let reader = rt.block_on(Reader::open(&db)).unwrap();
    let number = |s: &str| -> f64 { s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}")) };

    for (error, col) in [
        ("best", "rel_l2_best"),
        ("min_loss", "rel_l2_min_loss"),
        ("last", "rel_l2_last"),
    ] {
        let reference = rt.block_on(reference_stats(&reader, "skew", col));
        let ns: Vec<i64> = reference.iter().map(|c| c.n).collect();
        assert_eq!(ns, [1, 2, 5, 5, 1, 2], "the fixture's seeds per cell");
        let (status, page, _) = get(&s.url(&format!("/sweeps/skew?error={error}")), &[]);
        assert_eq!(status, 200);
        for c in &reference {
            let tag = grid_cell(&page, "burgers", &c.method, c.width);
            let what = format!("{error} {} {}: {tag}", c.method, c.width);
            let get = |name: &str| attr(tag, name).unwrap_or_else(|| panic!("{name} in {what}"));
            // Order-free: exactly SQL's.
            assert_eq!(get("data-n"), c.n.to_string(), "n, {what}");
            assert_eq!(number(&get("data-value")), c.median, "median, {what}");
            assert_eq!(number(&get("data-min")), c.min, "min, {what}");
            assert_eq!(number(&get("data-max")), c.max, "max, {what}");
            // Sums: SQL's up to the order SQLite adds them in.
            assert!(
                close(number(&get("data-mean")), c.mean),
                "mean, {what}: {}",
                c.mean
            );
            assert!(
                close(number(&get("data-std")), c.std),
                "std, {what}: {}",
                c.std
            );
            if c.n == 1 {
                assert_eq!(number(&get("data-std")), 0.0, "std of one seed, {what}");
            }
        }
        // Every finished seed is a dot; the failed job is not.
        let plot = page.split(r#"data-pde="burgers""#).nth(1).unwrap();
        let plot = &plot[..plot.find("</svg>").unwrap()];
        assert_eq!(
            plot.matches(r#"class="dot""#).count() as i64,
            ns.iter().sum::<i64>(),
            "{error}: one dot per finished seed"
        );
        // The JSON has the same numbers.
        let (_, json, _) = get(&s.url(&format!("/api/sweeps/skew?error={error}")), &[]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let stats = v["stats"].as_array().unwrap();
        assert_eq!(stats.len(), reference.len());
        for (j, c) in stats.iter().zip(&reference) {
            assert_eq!(
                (j["method"].as_str().unwrap(), j["width"].as_i64().unwrap()),
                (c.method.as_str(), c.width)
            );
            assert_eq!(j["n"].as_i64(), Some(c.n));
            assert_eq!(j["median"].as_f64(), Some(c.median), "{error} {c:?}");
            assert_eq!(j["min"].as_f64(), Some(c.min));
            assert!(close(j["mean"].as_f64().unwrap(), c.mean));
            assert!(close(j["std"].as_f64().unwrap(), c.std));
        }
        // The page's and the JSON's numbers are the `curve_stats` view's for this error, to
        // the last bit: one definition of the statistics (migration 0006).
        let view: Vec<(String, i64, i64, f64, f64, f64, f64, f64)> = rt
            .block_on(
                sqlx::query_as(
                    "SELECT method, width, n, mean, std, median, min, max FROM curve_stats
                     WHERE sweep_id = 'skew' AND pde = 'burgers' AND metric = ?
                     ORDER BY method, series, width",
                )
                .bind(col)
                .fetch_all(reader.pool()),
            )
            .unwrap();
        assert_eq!(view.len(), reference.len(), "{error}: {view:?}");
        for (v, j) in view.iter().zip(stats) {
            let what = format!("{error} {} {}", v.0, v.1);
            let tag = grid_cell(&page, "burgers", &v.0, v.1);
            let shown = |name: &str| number(&attr(tag, name).unwrap());
            assert_eq!(
                (
                    shown("data-n") as i64,
                    shown("data-mean"),
                    shown("data-std"),
                    shown("data-value"),
                    shown("data-min"),
                    shown("data-max")
                ),
                (v.2, v.3, v.4, v.5, v.6, v.7),
                "page against curve_stats, {what}"
            );
            let json = |name: &str| j[name].as_f64().unwrap();
            assert_eq!(
                (
                    j["method"].as_str().unwrap(),
                    j["width"].as_i64().unwrap(),
                    j["n"].as_i64().unwrap(),
                    json("mean"),
                    json("std"),
                    json("median"),
                    json("min"),
                    json("max")
                ),
                (v.0.as_str(), v.1, v.2, v.3, v.4, v.5, v.6, v.7),
                "JSON against curve_stats, {what}"
            );
        }
    }
    let (_, page, _) = get(&s.url("/sweeps/skew"), &[]);
    assert!(
        page.contains("diverged at iteration 7"),
        "the failed job is listed"
    );

    // curves.csv: the `curves` view's rows, and the same numbers as the reference.
    let reference = rt.block_on(reference_stats(&reader, "skew", "rel_l2_best"));
    let view: Vec<(String, i64, i64, f64, f64, f64, f64)> = rt
        .block_on(
            sqlx::query_as(
                "SELECT method, width, n, mean, std, median, min FROM curves
                 WHERE sweep_id = 'skew' ORDER BY pde, method, width",
            )
            .fetch_all(reader.pool()),
        )
        .unwrap();
    let (status, csv, _) = get(&s.url("/sweeps/skew/curves.csv"), &[]);
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "pde,method,width,n,mean,std,median,min");
    assert_eq!(lines.len(), 1 + reference.len(), "{csv}");
    for ((line, c), v) in lines[1..].iter().zip(&reference).zip(&view) {
        let f: Vec<&str> = line.split(',').collect();
        let what = format!("curves.csv {line}");
        assert_eq!(
            (f[0], f[1], number(f[2]) as i64),
            ("burgers", c.method.as_str(), c.width),
            "{what}"
        );
        assert_eq!(f[3], c.n.to_string(), "n, {what}");
        assert_eq!(number(f[6]), c.median, "median, {what}");
        assert_eq!(number(f[7]), c.min, "min, {what}");
        assert!(close(number(f[4]), c.mean), "mean, {what}: {}", c.mean);
        assert!(close(number(f[5]), c.std), "std, {what}: {}", c.std);
        // The view's numbers to the last bit, and the page's too (the same statement).
        assert_eq!(
            (
                number(f[3]) as i64,
                number(f[4]),
                number(f[5]),
                number(f[6]),
                number(f[7])
            ),
            (v.2, v.3, v.4, v.5, v.6),
            "{what} against the view"
        );
        let tag = grid_cell(&page, "burgers", &c.method, c.width);
        assert_eq!(
            attr(tag, "data-mean").map(|m| number(&m)),
            Some(v.3),
            "page mean = view's"
        );
        assert_eq!(
            attr(tag, "data-std").map(|m| number(&m)),
            Some(v.4),
            "page std = view's"
        );
    }
}

/// (status, headers by lower-case name, body) of a request.
fn fetch(
    req: ureq::http::Request<impl ureq::AsSendBody>,
) -> (u16, std::collections::BTreeMap<String, String>, String) {
    let what = format!("{} {}", req.method(), req.uri());
    let mut resp = agent().run(req).unwrap_or_else(|e| panic!("{what}: {e}"));
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let status = resp.status().as_u16();
    (status, headers, resp.body_mut().read_to_string().unwrap())
}

/// The security headers on every kind of answer: pages, JSON, downloads, the script, a 404, the
/// login form, a wrong login, a redirect to it and a 401. The CSP allows nothing but this
/// server's own script and the inline stylesheet, and forbids framing (as does
/// X-Frame-Options); the pages hold no inline script the CSP would block.
#[test]
fn every_answer_carries_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (s, job) = served_with_token(dir.path());
    let request = |method: &str, path: &str, auth: bool| {
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(s.url(path));
        if auth {
            b = b.header("authorization", BEARER);
        }
        b
    };
    let mut answers = Vec::new();
    for route in routes(job) {
        answers.push((
            format!("GET {route}"),
            200,
            fetch(request("GET", &route, true).body(()).unwrap()),
        ));
    }
    for (what, status, req) in [
        (
            "a missing page",
            404,
            request("GET", "/no/such/page", true).body(()).unwrap(),
        ),
        (
            "the login form",
            200,
            request("GET", "/login", false).body(()).unwrap(),
        ),
        (
            "a page without login",
            303,
            request("GET", "/sweeps/fx", false)
                .header("accept", "text/html")
                .body(())
                .unwrap(),
        ),
        (
            "JSON without login",
            401,
            request("GET", "/api/sweeps", false).body(()).unwrap(),
        ),
        (
            "a write",
            405,
            request("POST", "/sweeps/fx", true).body(()).unwrap(),
        ),
    ] {
        answers.push((what.to_string(), status, fetch(req)));
    }
    answers.push((
        "a wrong login".into(),
        401,
        fetch(
            request("POST", "/login", false)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("token=nope&next=%2F")
                .unwrap(),
        ),
    ));
    let directives = |csp: &str| -> std::collections::BTreeSet<String> {
        csp.split(';')
            .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|d| !d.is_empty())
            .collect()
    };
    let expected_csp = directives(
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; \
         img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    for (what, status, (got, headers, body)) in &answers {
        assert_eq!(got, status, "{what}: {body}");
        let header = |name: &str| {
            headers
                .get(name)
                .unwrap_or_else(|| panic!("{what}: no {name} header in {headers:?}"))
                .as_str()
        };
        assert_eq!(
            directives(header("content-security-policy")),
            expected_csp,
            "{what}"
        );
        assert_eq!(header("x-frame-options"), "DENY", "{what}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(header("cache-control"), "no-store", "{what}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
        // `script-src 'self'`: every script is this server's file, none inline.
        for (i, _) in body.match_indices("<script") {
            assert!(
                body[i..].starts_with(r#"<script src="/assets/"#),
                "{what}: a script the CSP blocks: {}",
                &body[i..(i + 80).min(body.len())]
            );
        }
    }
    assert!(
        answers
            .iter()
            .any(|(_, _, (_, _, b))| b.contains("<script src=")),
        "no page with the live script was checked"
    );
}

/// A store for the thinning and paging tests. Sweep `thin` (burgers × adam, dcgd × width 8, 16
/// × seeds 0..60 = 240 jobs) has cells of 60 (adam 8), 25 (dcgd 8) and 26 (adam 16) finished
/// seeds, none for dcgd 16, and its last job running; each cell's errors distinct and in no
/// seed order (`rel_l2_best` and `rel_l2_last` in different orders). Job `long` has 4,500
/// metric rows, job `exact` 2,000 (= MAX_POINTS). 54 more one-job sweeps `s00`..`s53`, older
/// than `thin` in that order; 53 workers `w00`..`w52`, last seen in that order.
struct Lists {
    db: PathBuf,
    long: i64,
    exact: i64,
}

const T0: i64 = 1_796_234_645_000;

async fn lists_fixture(dir: &Path) -> Lists {
    let db = dir.join("lists.db");
    let sweep = |name: &str, methods: &[&str], widths: Vec<u64>, seeds: i64| SweepSpec {
        name: name.into(),
        pdes: vec!["burgers".into()],
        methods: methods.iter().map(|m| m.to_string()).collect(),
        widths,
        seeds: (0..seeds).collect(),
        base_config_json: r#"{"iters": 20, "eval_every": 10}"#.into(),
        max_attempts: 3,
        priority: 0,
        ..Default::default()
    };
    let specs = std::iter::once(sweep("thin", &["adam", "dcgd"], vec![8, 16], 60))
        .chain((0..54).map(|k| sweep(&format!("s{k:02}"), &["adam"], vec![8], 1)))
        .collect();
    let pool = submitted(&db, specs).await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE sweeps SET created_at_ms = ? WHERE name = 'thin'")
        .bind(T0 + 100)
        .execute(&mut *tx)
        .await
        .unwrap();
    for k in 0..54i64 {
        sqlx::query("UPDATE sweeps SET created_at_ms = ? WHERE name = ?")
            .bind(T0 + k)
            .bind(format!("s{k:02}"))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    for k in 0..53i64 {
        sqlx::query("INSERT INTO workers (id, host, device, first_seen_ms, last_seen_ms, jobs_done) VALUES (?, 'node', 'cpu', ?, ?, 0)")
            .bind(format!("w{k:02}")).bind(T0).bind(T0 + k * 1000).execute(&mut *tx).await.unwrap();
    }
    let jobs: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT j.id, j.method, j.width, j.seed FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
         WHERE s.name = 'thin' ORDER BY j.id",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(jobs.len(), 240);
    for (id, method, width, seed) in &jobs {
        let finished = match (method.as_str(), *width) {
            ("adam", 8) => 60,
            ("dcgd", 8) => 25,
            ("adam", 16) => 26,
            _ => 0,
        };
        if *seed >= finished {
            continue;
        }
        let scale = if method == "adam" { 1e-3 } else { 1.5e-3 } / (*width as f64 / 8.0);
        // seed ↦ 37·seed and 13·seed (mod 60) are permutations of 0..60: distinct errors whose
        // order is neither the seeds' nor each other's.
        let best = scale * (1.0 + ((seed * 37) % 60) as f64);
        let last = scale * (100.0 + ((seed * 13) % 60) as f64);
        sqlx::query(
            "UPDATE jobs SET state = 'done', attempts = 1, lease_owner = 'w00' WHERE id = ?",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO results (job_id, rel_l2_best, rel_l2_min_loss, rel_l2_last, abs_err_best,
                 abs_err_max_best, best_iter, min_loss_iter, iters_done, wall_s, iters_per_s,
                 num_params, diverged, skipped_steps, status, device, worker_id, result, finished_at_ms)
             VALUES (?, ?, ?, ?, 0.01, 0.02, 20, 20, 20, 1.5, 13.3, 100, 0, 0, 'finished', 'cpu', 'w00', '{}', ?)",
        )
        .bind(id).bind(best).bind(best * 1.1).bind(last).bind(T0)
        .execute(&mut *tx).await.unwrap();
    }
    let last_job = jobs.last().unwrap().0;
    sqlx::query("UPDATE jobs SET state = 'running', attempts = 1, lease_owner = 'w01', lease_expires_at_ms = ? WHERE id = ?")
        .bind(T0 + 60_000).bind(last_job).execute(&mut *tx).await.unwrap();
    let (long, exact) = (jobs[0].0, jobs[1].0);
    for (job, rows) in [(long, 4_500i64), (exact, 2_000)] {
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2)
             INSERT INTO metrics (job_id, iter, lr, loss_r, loss_b, rel_l2, abs_err, abs_err_max,
                 skipped_steps, elapsed_s, extra, token)
             SELECT ?1, 10 * i, 0.001, 1.0 / (i + 1), 0.5 / (i + 1), 0.25 / (i + 1), 0.1, 0.2, 0,
                    i, '{\"cos_rb\": 0.5}', 1 FROM n",
        )
        .bind(job)
        .bind(rows)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    // The workers' triggers stamped w00 and w01 with the time of the job updates above.
    for k in 0..53i64 {
        sqlx::query("UPDATE workers SET last_seen_ms = ? WHERE id = ?")
            .bind(T0 + k * 1000)
            .bind(format!("w{k:02}"))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    pool.close().await;
    Lists { db, long, exact }
}

/// The job ids of the seed dots in the scaling plot of `pde` on a sweep page (from each dot's
/// tooltip, `job N seed S: value`).
fn dot_jobs(page: &str, pde: &str) -> Vec<i64> {
    let plot = page.split(&format!(r#"data-pde="{pde}""#)).nth(1).unwrap();
    let plot = &plot[..plot.find("</svg>").unwrap()];
    let mut ids: Vec<i64> = plot
        .split(r#"<circle class="dot""#)
        .skip(1)
        .map(|dot| {
            let title = dot.split("<title>job ").nth(1).unwrap();
            title[..title.find(' ').unwrap()].parse().unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// A cell of more than MAX_CELL_DOTS seeds draws every k-th seed by the chosen error (ranks 1,
/// 1 + k, …; k = ⌈n / MAX_CELL_DOTS⌉) and says so; a cell of exactly MAX_CELL_DOTS draws all;
/// the statistics (and the band, from min and max) still cover every seed.
#[test]
fn a_cell_with_more_seeds_than_dots_draws_every_kth_by_error() {
    use dashboard::pages::sweep::MAX_CELL_DOTS;
    assert_eq!(MAX_CELL_DOTS, 25, "the fixture's cells straddle 25");
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lists = rt.block_on(lists_fixture(dir.path()));
    let reader = rt.block_on(Reader::open(&lists.db)).unwrap();
    let s = Served::start(&lists.db, DashboardConfig::default());
    for (error, col) in [("best", "rel_l2_best"), ("last", "rel_l2_last")] {
        let mut expected = Vec::new();
        for (method, width, n, k) in [("adam", 8, 60, 3), ("dcgd", 8, 25, 1), ("adam", 16, 26, 2)] {
            // The cell's jobs by error, from SQL.
            let by_error: Vec<(i64, f64)> = rt
                .block_on(
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT r.job_id, r.{col} FROM results r JOIN jobs j ON j.id = r.job_id
                         WHERE j.sweep_id = 'thin' AND j.method = ? AND j.width = ?
                         ORDER BY r.{col}"
                    )))
                    .bind(method)
                    .bind(width)
                    .fetch_all(reader.pool()),
                )
                .unwrap();
            assert_eq!(by_error.len(), n, "{method} {width}");
            assert_eq!(k as i64, (n as i64 + MAX_CELL_DOTS - 1) / MAX_CELL_DOTS);
            let drawn: Vec<i64> = by_error.iter().step_by(k).map(|(id, _)| *id).collect();
            assert!(drawn.len() as i64 <= MAX_CELL_DOTS);
            expected.extend(drawn);
            // Statistics over every seed, not only the drawn ones.
            let (_, json, _) = get(&s.url(&format!("/api/sweeps/thin?error={error}")), &[]);
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            let stat = v["stats"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["method"] == method && c["width"] == width)
                .unwrap_or_else(|| panic!("no stats of {method} {width}"))
                .clone();
            assert_eq!(stat["n"], n, "{error} {method} {width}");
            assert_eq!(
                stat["min"].as_f64(),
                Some(by_error[0].1),
                "{error} {method} {width}"
            );
            assert_eq!(
                stat["max"].as_f64(),
                Some(by_error[n - 1].1),
                "{error} {method} {width}"
            );
        }
        expected.sort_unstable();
        assert_eq!(expected.len(), 20 + 25 + 13);
        let (status, page, _) = get(&s.url(&format!("/sweeps/thin?error={error}")), &[]);
        assert_eq!(status, 200);
        assert_eq!(
            dot_jobs(&page, "burgers"),
            expected,
            "{error}: the dots drawn"
        );
        assert!(
            page.contains(&format!(
                "Cells with more than {MAX_CELL_DOTS} seeds draw every k-th"
            )),
            "{error}: the page says some seeds are not drawn"
        );
        let (_, json, _) = get(&s.url(&format!("/api/sweeps/thin?error={error}")), &[]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["dots_truncated"], true);
        let mut json_dots: Vec<i64> = v["dots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["job_id"].as_i64().unwrap())
            .collect();
        json_dots.sort_unstable();
        assert_eq!(json_dots, expected, "{error}: the JSON's dots");
    }
    // A sweep whose cells all fit draws every seed and says nothing.
    let db = rt.block_on(fixture(dir.path()));
    let small = Served::start(&db, DashboardConfig::default());
    let (_, page, _) = get(&small.url("/sweeps/fx"), &[]);
    assert_eq!(dot_jobs(&page, "burgers").len(), 12);
    assert!(!page.contains("Cells with more than"));
}

/// The number of points of each `<path class="line">` in the chart of class `class`.
fn line_points(page: &str, class: &str) -> Vec<usize> {
    let chart = page
        .split(&format!(r#"<svg class="chart {class}""#))
        .nth(1)
        .unwrap_or_else(|| panic!("no chart {class}"));
    let chart = &chart[..chart.find("</svg>").unwrap()];
    chart
        .split(r#"<path class="line" d=""#)
        .skip(1)
        .map(|p| p[..p.find('"').unwrap()].matches(['M', 'L']).count())
        .collect()
}

/// A run of more metric rows than MAX_POINTS is drawn from every k-th row (k = ⌈rows /
/// MAX_POINTS⌉), the first and the last kept; one of exactly MAX_POINTS rows is drawn whole;
/// the page counts every stored row.
#[test]
fn a_long_run_is_thinned_to_max_points_keeping_the_first_and_last_rows() {
    use dashboard::pages::job::MAX_POINTS;
    assert_eq!(
        MAX_POINTS, 2_000,
        "the fixture's runs are 4,500 and 2,000 rows"
    );
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lists = rt.block_on(lists_fixture(dir.path()));
    let s = Served::start(&lists.db, DashboardConfig::default());
    for (job, rows, k) in [(lists.long, 4_500i64, 3i64), (lists.exact, 2_000, 1)] {
        let mut kept: Vec<i64> = (0..rows).step_by(k as usize).collect();
        if kept.last() != Some(&(rows - 1)) {
            kept.push(rows - 1);
        }
        assert!(kept.len() as i64 <= MAX_POINTS);
        let iters: Vec<i64> = kept.iter().map(|i| 10 * i).collect();
        let (status, json, _) = get(&s.url(&format!("/api/jobs/{job}")), &[]);
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let series = &v["series"];
        assert_eq!(series["rows"], rows, "job {job}: rows stored");
        let got: Vec<i64> = series["iter"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_i64().unwrap())
            .collect();
        assert_eq!(
            got.len(),
            kept.len(),
            "job {job}: points drawn of {rows} rows"
        );
        assert_eq!(got, iters, "job {job}: the rows drawn");
        // Each value belongs to its own row (rel_l2 = 0.25 / (row + 1)).
        let rel: Vec<f64> = series["rel_l2"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let want: Vec<f64> = kept.iter().map(|i| 0.25 / (i + 1) as f64).collect();
        assert_eq!(rel, want, "job {job}: rel_l2 of the rows drawn");
        assert_eq!(
            series["extra"]["cos_rb"].as_array().unwrap().len(),
            kept.len(),
            "job {job}: diagnostics thinned alike"
        );
        let (_, page, _) = get(&s.url(&format!("/jobs/{job}")), &[]);
        assert!(
            page.contains(&format!(
                r#"<td class="num" data-value="{rows}">{rows}</td>"#
            )),
            "job {job}: the row count"
        );
        assert_eq!(line_points(&page, "rel-l2"), vec![kept.len()], "job {job}");
        assert_eq!(
            line_points(&page, "losses"),
            vec![kept.len(); 2],
            "job {job}"
        );
    }
}

/// The `data-NAME` values of the rows of `html`, in order.
fn row_ids(html: &str, name: &str) -> Vec<String> {
    html.split(&format!(r#" data-{name}=""#))
        .skip(1)
        .map(|r| r[..r.find('"').unwrap()].to_string())
        .collect()
}

/// Page 2 of each list (sweeps newest first, a sweep's jobs running first then by id,
/// workers last seen first) holds exactly the rows after the first 50, in order, and links
/// back to page 1; a page past the end is empty; HTML and JSON agree.
#[test]
fn page_two_of_every_list_holds_the_rows_after_the_first_fifty() {
    use dashboard::pages::PAGE;
    assert_eq!(PAGE, 50);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lists = rt.block_on(lists_fixture(dir.path()));
    let reader = rt.block_on(Reader::open(&lists.db)).unwrap();
    let s = Served::start(&lists.db, DashboardConfig::default());
    // The fixture's orders, from how it was made.
    let sweeps: Vec<String> = std::iter::once("thin".to_string())
        .chain((0..54).rev().map(|k| format!("s{k:02}")))
        .collect();
    let workers: Vec<String> = (0..53).rev().map(|k| format!("w{k:02}")).collect();
    let mut jobs: Vec<(i64, String)> = rt
        .block_on(
            sqlx::query_as("SELECT id, state FROM jobs WHERE sweep_id = 'thin'")
                .fetch_all(reader.pool()),
        )
        .unwrap();
    jobs.sort_by_key(|(id, state)| (state != "running", *id));
    let jobs: Vec<String> = jobs.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(jobs.len(), 240);
    let sweep_ids: Vec<String> = rt
        .block_on(
            sqlx::query_scalar("SELECT id FROM sweeps ORDER BY created_at_ms DESC")
                .fetch_all(reader.pool()),
        )
        .unwrap();
    let names: Vec<String> = rt
        .block_on(
            sqlx::query_scalar("SELECT name FROM sweeps ORDER BY created_at_ms DESC")
                .fetch_all(reader.pool()),
        )
        .unwrap();
    assert_eq!(names, sweeps, "the fixture's sweep order");
    for (what, path, api, key, json_list, json_key, all, pages) in [
        (
            "sweeps",
            "/",
            "/api/sweeps",
            "sweep",
            "sweeps",
            "id",
            &sweep_ids,
            2,
        ),
        (
            "jobs",
            "/sweeps/thin",
            "/api/sweeps/thin",
            "job",
            "jobs",
            "id",
            &jobs,
            5,
        ),
        (
            "workers",
            "/workers",
            "/api/workers",
            "worker",
            "workers",
            "id",
            &workers,
            2,
        ),
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, page, _) = get(&s.url(&format!("{path}{sep}page=2")), &[]);
        assert_eq!(status, 200, "{what} page 2");
        // The sweep page's own summary row is not a list row.
        let list = match what {
            "jobs" => page.split(r#"<table class="jobs">"#).nth(1).unwrap(),
            _ => &page,
        };
        let end = (2 * PAGE as usize).min(all.len());
        assert_eq!(
            row_ids(list, key),
            all[PAGE as usize..end].to_vec(),
            "{what}: page 2"
        );
        assert!(
            page.contains(&format!("<span>page 2 of {pages}</span>")),
            "{what}"
        );
        assert!(
            page.contains("page=1\">← newer</a>"),
            "{what}: a link back to page 1"
        );
        assert_eq!(
            page.contains("page=3\">older →</a>"),
            pages > 2,
            "{what}: a link on to page 3"
        );
        let (_, page1, _) = get(&s.url(path), &[]);
        let list1 = match what {
            "jobs" => page1
                .split(r#"<table class="jobs">"#)
                .nth(1)
                .unwrap()
                .to_string(),
            _ => page1.clone(),
        };
        assert_eq!(
            row_ids(&list1, key),
            all[..PAGE as usize].to_vec(),
            "{what}: page 1"
        );
        let (_, json, _) = get(&s.url(&format!("{api}?page=2")), &[]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (v["page"].as_u64(), v["pages"].as_u64()),
            (Some(2), Some(pages))
        );
        let ids: Vec<String> = v[json_list]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| match &r[json_key] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(ids, all[PAGE as usize..end].to_vec(), "{what}: JSON page 2");
        let (status, json, _) = get(&s.url(&format!("{api}?page={}", pages + 1)), &[]);
        assert_eq!(status, 200, "{what}: past the end");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v[json_list].as_array().unwrap().len(),
            0,
            "{what}: past the end"
        );
    }
}

/// A store with one sweep `diag` of two done jobs at width 8, rows every 20 iterations up to
/// 200: `adam`, whose rows carry the plain diagnostics (cosine, norms, the orthogonality
/// fraction at iterations 0 and 100 only), and
/// `modsync+dcgd`, whose rows carry ModSync's for three masked layers too, an L_s near 320, a
/// reset of layer 0 at iterations 60 and 140, and a diagnostic no kind knows. (adam, modsync
/// job ids.)
async fn diagnostics_fixture(dir: &Path) -> (PathBuf, i64, i64) {
    let db = dir.join("diag.db");
    let pool = submitted(
        &db,
        vec![SweepSpec {
            name: "diag".into(),
            pdes: vec!["burgers".into()],
            methods: vec!["adam".into(), "modsync+dcgd".into()],
            widths: vec![8],
            seeds: vec![0],
            base_config_json: r#"{"iters": 200, "eval_every": 20}"#.into(),
            max_attempts: 3,
            priority: 0,
            ..Default::default()
        }],
    )
    .await;
    let jobs: Vec<(i64, String)> = sqlx::query_as("SELECT id, method FROM jobs ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let id = |m: &str| jobs.iter().find(|j| j.1 == m).unwrap().0;
    let (adam, modsync) = (id("adam"), id("modsync+dcgd"));
    for (job, _) in &jobs {
        sqlx::query("UPDATE jobs SET state = 'done', attempts = 1 WHERE id = ?")
            .bind(job)
            .execute(&pool)
            .await
            .unwrap();
    }
    for iter in (0..=200i64).step_by(20) {
        let t = iter as f64 / 200.0;
        let mut extra = serde_json::json!({
            "cos_rb": -0.8 + t,
            // Two decades over the run.
            "norm_g_r": 3.0 * 10f64.powf(-2.0 * t),
            "norm_g_b": 0.5 * 10f64.powf(-t),
        });
        // Measured every 100 iterations, and not at the last row.
        if iter % 100 == 0 && iter < 200 {
            extra["orth_frac"] = serde_json::json!(1.0 - 0.3 * t);
        }
        let plain = extra.clone();
        extra["loss_s"] = serde_json::json!(320.0 - 20.0 * t);
        extra["mystery_value"] = serde_json::json!(7.0 + t);
        for l in 0..3 {
            let l_f = l as f64;
            extra[format!("kept_frac_l{l}")] = serde_json::json!(1.0 - (0.2 + 0.1 * l_f) * t);
            extra[format!("exclusive_frac_l{l}")] = serde_json::json!((0.05 + 0.05 * l_f) * t);
            extra[format!("rw_mean_l{l}")] = serde_json::json!(1.0 + 0.01 * l_f * t);
            let resets = if l == 0 {
                i64::from(iter >= 60) + i64::from(iter >= 140)
            } else {
                0
            };
            extra[format!("resets_l{l}")] = serde_json::json!(resets);
        }
        for (job, extra) in [(adam, &plain), (modsync, &extra)] {
            sqlx::query(
                "INSERT INTO metrics (job_id, iter, lr, loss_r, loss_b, rel_l2, abs_err, abs_err_max,
                     skipped_steps, elapsed_s, extra, token)
                 VALUES (?, ?, 0.001, ?, ?, 0.1, 0.1, 0.2, 0, 1.0, ?, 1)",
            )
            .bind(job)
            .bind(iter)
            .bind(1.0 / (iter + 1) as f64)
            .bind(0.5 / (iter + 1) as f64)
            .bind(extra.to_string())
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    pool.close().await;
    (db, adam, modsync)
}

/// The `<svg>` of the chart of class `class` on `page` (the class exactly: `diag` is not
/// `diag-cos`).
fn chart_of<'a>(page: &'a str, class: &str) -> Option<&'a str> {
    let start = page.find(&format!(r#"<svg class="chart {class}""#))?;
    let chart = &page[start..];
    Some(&chart[..chart.find("</svg>").unwrap() + 6])
}

/// The classes of every chart on `page`, in order.
fn chart_classes(page: &str) -> Vec<String> {
    page.split(r#"<svg class="chart "#)
        .skip(1)
        .map(|c| c[..c.find('"').unwrap()].to_string())
        .collect()
}

/// The `data-series` names of a chart, in order.
fn series_of(chart: &str) -> Vec<String> {
    row_ids(chart, "series")
}

/// The numeric attribute `name` of the first tag of `chart` that starts with `tag_start`.
fn number_attr(chart: &str, tag_start: &str, name: &str) -> f64 {
    let tag = &chart[chart
        .find(tag_start)
        .unwrap_or_else(|| panic!("no {tag_start}"))..];
    let tag = &tag[..tag.find('>').unwrap()];
    attr(tag, name).unwrap().parse().unwrap()
}

/// The job page draws each kind of diagnostic in a panel of its own with its own axis: the
/// per-layer fractions apart from L_s ≈ 320 and the norms (on a log axis), the resets as marks
/// where the counter grows, an unknown name in "other", each legend below its plot area. A
/// plain adam job has only the panels of its diagnostics, none of them empty.
#[test]
fn a_job_page_draws_each_kind_of_diagnostic_in_its_own_panel() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (db, adam, modsync) = rt.block_on(diagnostics_fixture(dir.path()));
    let s = Served::start(&db, DashboardConfig::default());

    let (status, page, _) = get(&s.url(&format!("/jobs/{modsync}")), &[]);
    assert_eq!(status, 200);
    assert_eq!(
        chart_classes(&page),
        [
            "losses",
            "rel-l2",
            "lr",
            "diag-cos",
            "diag-kept",
            "diag-exclusive",
            "diag-orth",
            "diag-norms",
            "diag-loss-s",
            "diag-rw",
            "diag-resets",
            "diag",
        ]
    );
    let layers =
        |prefix: &str| -> Vec<String> { (0..3).map(|l| format!("{prefix}_l{l}")).collect() };
    for (class, want) in [
        ("diag-cos", vec!["cos_rb".to_string()]),
        ("diag-kept", layers("kept_frac")),
        ("diag-exclusive", layers("exclusive_frac")),
        ("diag-orth", vec!["orth_frac".into()]),
        ("diag-norms", vec!["norm_g_b".into(), "norm_g_r".into()]),
        ("diag-loss-s", vec!["loss_s".into()]),
        ("diag-rw", layers("rw_mean")),
        ("diag-resets", layers("resets")),
        ("diag", vec!["mystery_value".into()]),
    ] {
        let chart = chart_of(&page, class).unwrap();
        assert_eq!(series_of(chart), want, "{class}");
        assert!(!chart.contains("no values yet"), "{class} is empty");
        if class != "diag-resets" {
            // Every line is drawn, and the legend lies below the plot area (the frame).
            let points = line_points(&page, class);
            assert!(points.iter().all(|p| *p >= 2), "{class}: {points:?}");
            let frame_bottom = number_attr(chart, r#"<rect class="frame""#, "y")
                + number_attr(chart, r#"<rect class="frame""#, "height");
            let legend = &chart[chart.find(r#"<g class="legend">"#).unwrap()..];
            let first_text_y = number_attr(legend, "<text", "y");
            // Text is drawn above its baseline: 12 px tall at most, plus the x tick labels.
            assert!(
                first_text_y - 12.0 > frame_bottom + 16.0,
                "{class}: legend text at {first_text_y}, plot area ends at {frame_bottom}"
            );
        }
    }
    // Axes: fractions over 0..1 and cosines over −1..1, whatever the values; norms on a log
    // axis (two decades, 0.03 to 3, labelled 1-2-5); L_s on an axis of its own.
    let ticks = |class: &str| -> Vec<String> {
        chart_of(&page, class)
            .unwrap()
            .split(r#"class="tick y""#)
            .skip(1)
            .map(|t| t[t.find('>').unwrap() + 1..t.find('<').unwrap()].to_string())
            .collect()
    };
    assert_eq!(ticks("diag-kept"), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
    assert_eq!(
        ticks("diag-exclusive"),
        ["0", "0.2", "0.4", "0.6", "0.8", "1"]
    );
    assert_eq!(ticks("diag-cos"), ["-1", "-0.5", "0", "0.5", "1"]);
    let norms = ticks("diag-norms");
    assert!(
        ["0.05", "0.1", "0.2", "0.5", "1", "2"]
            .iter()
            .all(|t| norms.contains(&t.to_string())),
        "log ticks of the norms: {norms:?}"
    );
    assert!(
        chart_of(&page, "diag-norms")
            .unwrap()
            .contains("norm (log)")
    );
    let loss_s: Vec<f64> = ticks("diag-loss-s")
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert!(
        loss_s.iter().all(|t| (295.0..=325.0).contains(t)) && loss_s.len() >= 2,
        "L_s on its own linear axis: {loss_s:?}"
    );
    // Resets: one mark per increase of a counter (layer 0 at iterations 60 and 140), none
    // where it stays 0, and no line.
    let resets = chart_of(&page, "diag-resets").unwrap();
    assert!(!resets.contains(r#"class="line""#), "{resets}");
    let marks = |lane: &str| {
        let g = resets
            .split(&format!(r#"data-series="{lane}""#))
            .nth(1)
            .unwrap();
        let g = &g[..g.find("</g>").unwrap()];
        g.matches(r#"class="mark""#).count()
    };
    assert_eq!(
        [marks("resets_l0"), marks("resets_l1"), marks("resets_l2")],
        [2, 0, 0]
    );
    assert!(
        resets.contains("resets_l0: +1 at iteration 60, 1 in all"),
        "{resets}"
    );
    assert!(
        resets.contains("resets_l0: +1 at iteration 140, 2 in all"),
        "{resets}"
    );
    // orth_frac is measured every 100 iterations only: one line through its two values, on
    // the job's iteration axis (to 200, as the losses), not one of its own.
    assert_eq!(line_points(&page, "diag-orth"), [2]);
    let x_ticks = |class: &str| -> Vec<String> {
        chart_of(&page, class)
            .unwrap()
            .split(r#"class="tick x""#)
            .skip(1)
            .map(|t| t[t.find('>').unwrap() + 1..t.find('<').unwrap()].to_string())
            .collect()
    };
    assert_eq!(x_ticks("diag-orth"), x_ticks("losses"));
    assert_eq!(x_ticks("diag-resets"), x_ticks("losses"));

    // A plain adam job: the panels of its diagnostics and no other, none empty.
    let (_, page, _) = get(&s.url(&format!("/jobs/{adam}")), &[]);
    assert_eq!(
        chart_classes(&page),
        [
            "losses",
            "rel-l2",
            "lr",
            "diag-cos",
            "diag-orth",
            "diag-norms"
        ]
    );
    assert!(!page.contains("no values yet"), "an empty panel");
    assert!(!page.contains("none in these rows"));
}

/// A sweep over an extra axis (`lr`) and two variants: every result's value encodes its series,
/// width and seed, so a line that mixed two series would show it.
async fn series_fixture(dir: &Path) -> PathBuf {
    let db = dir.join("series.db");
    let pool = submitted(
        &db,
        vec![SweepSpec {
            name: "ax".into(),
            pdes: vec!["burgers".into()],
            methods: vec!["adam".into()],
            widths: vec![8, 16],
            seeds: vec![0, 1, 2],
            base_config_json: r#"{"iters": 20, "eval_every": 10}"#.into(),
            axes: vec![modsync_proto::GridAxis {
                path: "lr".into(),
                values_json: "[0.001, 0.003]".into(),
            }],
            variants: vec![
                modsync_proto::GridVariant {
                    name: "plain".into(),
                    settings_json: "{}".into(),
                },
                modsync_proto::GridVariant {
                    name: "no_decay".into(),
                    settings_json: r#"{"lr_decay": false}"#.into(),
                },
            ],
            ..Default::default()
        }],
    )
    .await;
    let jobs: Vec<(i64, String, i64, i64)> =
        sqlx::query_as("SELECT id, series, width, seed FROM jobs ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(jobs.len(), 24);
    for (id, series, width, seed) in &jobs {
        sqlx::query("UPDATE jobs SET state = 'done', attempts = 1 WHERE id = ?")
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO results (job_id, rel_l2_best, rel_l2_min_loss, rel_l2_last, abs_err_best,
                 abs_err_max_best, best_iter, min_loss_iter, iters_done, wall_s, iters_per_s,
                 num_params, diverged, skipped_steps, status, device, worker_id, result, finished_at_ms)
             VALUES (?, ?, ?, ?, 0.01, 0.02, 20, 20, 20, 1.5, 13.3, 100, 0, 0, 'finished', 'cpu', 'w', '{}', 0)",
        )
        .bind(id)
        .bind(series_value(series, *width, *seed))
        .bind(0.5)
        .bind(0.5)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    db
}

/// The fixture's best relative L2 of a job.
fn series_value(series: &str, width: i64, seed: i64) -> f64 {
    let base = match series {
        "plain lr=0.001" => 0.1,
        "plain lr=0.003" => 0.2,
        "no_decay lr=0.001" => 0.3,
        "no_decay lr=0.003" => 0.4,
        other => panic!("unexpected series {other:?}"),
    };
    base / width as f64 + 0.001 * seed as f64
}

#[test]
fn a_sweep_with_series_has_one_line_and_one_row_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let db = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(series_fixture(dir.path()));
    let served = Served::start(&db, DashboardConfig::default());
    let (status, page, _) = get(&served.url("/sweeps/ax"), &[]);
    assert_eq!(status, 200, "{page}");
    for series in [
        "no_decay lr=0.001",
        "no_decay lr=0.003",
        "plain lr=0.001",
        "plain lr=0.003",
    ] {
        // The table: one row per series, each cell the median of its own three seeds.
        let row = page
            .split(&format!(
                r#"<tr data-method="adam" data-series="{series}">"#
            ))
            .nth(1)
            .unwrap_or_else(|| panic!("no row for {series}"));
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(row.contains(&format!("<th>adam · {series}</th>")), "{row}");
        for width in [8, 16] {
            let at = row.find(&format!(r#"data-width="{width}""#)).unwrap();
            let tag = &row[row[..at].rfind('<').unwrap()..at + row[at..].find('>').unwrap()];
            let median: f64 = attr(tag, "data-value").unwrap().parse().unwrap();
            assert_eq!(median, series_value(series, width, 1), "{series} {width}");
            assert_eq!(attr(tag, "data-n").as_deref(), Some("3"));
        }
        // The chart: a line named after the series.
        assert!(
            page.contains(&format!("adam · {series}")),
            "no legend entry for {series}"
        );
    }
    // curves.csv: a series column, one row per (series, width).
    let (status, csv, _) = get(&served.url("/sweeps/ax/curves.csv"), &[]);
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("pde,method,series,width,n,mean,std,median,min")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 8, "{csv}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("burgers,adam,plain lr=0.003,16,3,")),
        "{csv}"
    );
    // results.csv streams every job, series by series.
    let (status, results, _) = get(&served.url("/sweeps/ax/results.csv"), &[]);
    assert_eq!(status, 200);
    assert_eq!(results.lines().count(), 1 + 24);
}
