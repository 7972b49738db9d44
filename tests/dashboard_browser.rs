//! The dashboard in a real browser (issue 17): a `modsync coordinator --http` process with a
//! token, two `modsync worker` processes and a tiny sweep (3 methods × 2 widths), driven with
//! headless Chromium through WebDriver (`chromedriver`, plain JSON over HTTP). It logs in
//! through the form, then checks the DOM: the sweep is listed, its page updates without a
//! reload while jobs run and reaches 100 %, each PDE's plot has one line per method, a job
//! page shows its loss curves, and (issue 27) its diagnostics in one panel per kind — a
//! modsync+dcgd job's kept and exclusive fractions, norms, L_s, R_w and resets apart, a plain
//! adam job's cosine and norms and nothing empty — each panel visible, its legend clear of its
//! plot area and of the other entries. Screenshots go to target/dashboard-screenshots/.
//!
//! `docs_screenshot_of_job_diagnostics` (ignored: it writes into docs/) draws the job page of
//! a real width-512 modsync+dcgd run (results/capacity-failure/ablation/pooled_modsync_dcgd)
//! and saves its diagnostics as docs/dashboard-job-diagnostics.png:
//! `cargo test --release --test dashboard_browser -- --ignored docs_screenshot`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test says why and passes, unless MODSYNC_REQUIRE_CHROMIUM=1.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Coordinator, serial, wait_until, write};
use serde_json::{Value, json};

const TOKEN: &str = "browser-test-token-7d2e";

/// The first of `names` found on PATH.
fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// A chromedriver process on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(binary: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let d = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_until(Duration::from_secs(20), "chromedriver answers", || {
            ureq::get(format!("{}/status", d.url)).call().is_ok()
        });
        d
    }
}

/// One WebDriver session (a headless Chromium); closed when dropped.
struct Browser<'a> {
    driver: &'a Driver,
    session: String,
}

impl<'a> Browser<'a> {
    fn open(driver: &'a Driver, chromium: &Path) -> Browser<'a> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1800"]
            }
        }}});
        let v = post(&format!("{}/session", driver.url), &caps);
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Browser { driver, session }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/session/{}/{rest}", self.driver.url, self.session)
    }

    fn go(&self, url: &str) {
        post(&self.url("url"), &json!({ "url": url }));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    fn js(&self, script: &str) -> Value {
        post(
            &self.url("execute/sync"),
            &json!({ "script": script, "args": [] }),
        )["value"]
            .clone()
    }

    fn screenshot(&self, name: &str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), self.png("screenshot")).unwrap();
    }

    /// A PNG from the WebDriver endpoint `what` (`screenshot`, `element/ID/screenshot`).
    fn png(&self, what: &str) -> Vec<u8> {
        let mut r = ureq::get(self.url(what)).call().unwrap();
        let v: Value = r.body_mut().read_json().unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap()
    }

    /// Resizes the window (an element screenshot is cut at the window's edge).
    fn resize(&self, width: u32, height: u32) {
        post(
            &self.url("window/rect"),
            &json!({ "width": width, "height": height }),
        );
    }

    /// A PNG of the first element that matches `css`, as the page draws it.
    fn element_png(&self, css: &str) -> Vec<u8> {
        let v = post(
            &self.url("element"),
            &json!({ "using": "css selector", "value": css }),
        );
        let id = v["value"]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string();
        self.png(&format!("element/{id}/screenshot"))
    }

    /// Logs in through the form at `web` (the dashboard's URL) and waits for the sweeps page.
    fn log_in(&self, web: &str) {
        self.go(&format!("{web}/"));
        self.wait_for(
            Duration::from_secs(10),
            "the login form",
            "return document.querySelector('input[name=token]') !== null;",
        );
        self.js(&format!(
            "document.querySelector('input[name=token]').value = '{TOKEN}'; \
             document.querySelector('form').submit(); return true;"
        ));
        self.wait_for(
            Duration::from_secs(10),
            "the sweeps page after logging in",
            "return document.querySelector('h1') !== null && document.querySelector('h1').textContent === 'Sweeps';",
        );
    }

    /// Polls `script` until it returns true.
    fn wait_for(&self, timeout: Duration, what: &str, script: &str) {
        let start = Instant::now();
        loop {
            if self.js(script) == Value::Bool(true) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; page:\n{}",
                self.js("return document.body.innerText;")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = ureq::delete(format!("{}/session/{}", self.driver.url, self.session)).call();
    }
}

/// A coordinator on `db` with the token and its dashboard (`--http`), and the dashboard's URL
/// (no trailing slash) as it prints it.
fn serve_dashboard(db: &Path) -> (Coordinator, String) {
    let mut coord = Coordinator::start(db, Some(TOKEN), &["--http", "127.0.0.1:0"]);
    let line = coord.proc.next_line(Duration::from_secs(10));
    let web = line
        .strip_prefix("modsync dashboard on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .trim_end_matches('/')
        .to_string();
    (coord, web)
}

fn post(url: &str, body: &Value) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut r = agent.post(url).send_json(body).unwrap();
    let status = r.status().as_u16();
    let v: Value = r.body_mut().read_json().unwrap();
    assert!(status == 200, "WebDriver {url}: {status} {v}");
    v
}

/// 3 methods × 2 widths × 1 seed on one PDE.
fn sweep_file() -> String {
    r#"name = "browser"
max_attempts = 2

[grid]
pdes = ["burgers"]
methods = ["adam", "dcgd", "modsync+dcgd"]
widths = [4, 8]
seeds = [0]

[train]
depth = 2
iters = 600
eval_every = 20
checkpoint_every = 200
lr_decay = false
"#
    .to_string()
}

#[test]
fn the_dashboard_in_a_browser_shows_a_sweep_live() {
    let chromium = find(&["chromium", "chromium-browser"]);
    let driver = find(&["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        common::skip_unless_required(
            "MODSYNC_REQUIRE_CHROMIUM",
            "chromium or chromedriver is not on PATH (Debian: apt-get install chromium \
             chromium-driver; .ci/run installs them)",
        );
        return;
    };
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (coord, web) = serve_dashboard(&db);

    let driver = Driver::start(&driver);
    let browser = Browser::open(&driver, &chromium);
    // Before any sweep: the login form, then the (empty) sweeps page.
    browser.log_in(&web);
    let cookie_visible = browser.js("return document.cookie;");
    assert_eq!(
        cookie_visible,
        json!(""),
        "the session cookie must be HttpOnly"
    );

    let file = write(dir.path(), "browser.toml", &sweep_file());
    coord.cli(&["submit", &file]);

    // The sweeps list picks the sweep up by itself (live), then its page.
    browser.wait_for(
        Duration::from_secs(10),
        "the sweep in the list",
        "return document.querySelector('tr.sweep[data-sweep=browser]') !== null;",
    );
    browser.screenshot("1-sweeps");
    browser.go(&format!("{web}/sweeps/browser"));
    browser.wait_for(
        Duration::from_secs(10),
        "the sweep page",
        "return document.querySelector('span.progress') !== null;",
    );
    // A mark that a reload would wipe out.
    browser.js("window.__noReload = 'still here'; return true;");
    let progress = "return Number(document.querySelector('span.progress').dataset.value);";
    assert_eq!(
        browser.js(progress).as_f64(),
        Some(0.0),
        "no worker has started yet"
    );
    // Workers start only now, so every job runs while the page watches (a job takes about a
    // second here: started earlier, the sweep could end before the page loads).
    let _workers = [coord.worker("bw1", &[]), coord.worker("bw2", &[])];
    browser.wait_for(
        Duration::from_secs(120),
        "a live update while jobs run",
        "return Number(document.getElementById('updated').dataset.updates) > 0;",
    );
    browser.screenshot("2-sweep-running");
    browser.wait_for(
        Duration::from_secs(180),
        "progress 100 %",
        "return Number(document.querySelector('span.progress').dataset.value) === 100;",
    );
    assert_eq!(
        browser.js("return window.__noReload;"),
        json!("still here"),
        "the page reloaded instead of updating"
    );
    // One plot per PDE, one line per method in it.
    browser.wait_for(
        Duration::from_secs(10),
        "the plot with every method",
        "const s = document.querySelectorAll('section.pde'); return s.length === 1 && \
         [...s].every(p => p.querySelectorAll('svg.scaling g.series path.line').length === 3);",
    );
    let methods = browser.js(
        "return [...document.querySelectorAll('section.pde svg.scaling g.series')].map(g => g.dataset.series);",
    );
    assert_eq!(methods, json!(["adam", "dcgd", "modsync+dcgd"]));
    browser.screenshot("3-sweep-done");

    // A job page: its loss curves (L_r and L_b), drawn from its metric rows.
    let job = coord.sql_int("SELECT MIN(id) FROM jobs WHERE sweep_id = 'browser'");
    browser.go(&format!("{web}/jobs/{job}"));
    browser.wait_for(
        Duration::from_secs(10),
        "the job's loss curves",
        "const l = document.querySelectorAll('svg.losses g.series path.line'); \
         return l.length === 2 && [...l].every(p => p.getAttribute('d').split('L').length > 5);",
    );
    browser.screenshot("4-job");

    // Its diagnostics, one panel per kind: plain adam has the cosine, the norms (and the
    // orthogonality fraction, measured at iteration 0), no ModSync panel and no empty one.
    let adam = coord.sql_int(
        "SELECT MIN(id) FROM jobs WHERE sweep_id = 'browser' AND method = 'adam' AND width = 8",
    );
    browser.go(&format!("{web}/jobs/{adam}"));
    let panels = diagnostic_panels(&browser);
    let classes: Vec<&str> = panels.iter().map(|p| p.0.as_str()).collect();
    assert!(
        classes.starts_with(&["diag-cos"])
            && classes.contains(&"diag-norms")
            && classes
                .iter()
                .all(|c| ["diag-cos", "diag-orth", "diag-norms"].contains(c)),
        "adam's panels: {classes:?}"
    );
    browser.screenshot("5-job-adam");
    // modsync+dcgd: ModSync's fractions per layer, L_s, R_w and resets apart.
    let modsync = coord.sql_int(
        "SELECT MIN(id) FROM jobs WHERE sweep_id = 'browser' AND method = 'modsync+dcgd' AND width = 8",
    );
    browser.go(&format!("{web}/jobs/{modsync}"));
    let panels = diagnostic_panels(&browser);
    let classes: Vec<&str> = panels.iter().map(|p| p.0.as_str()).collect();
    for want in [
        "diag-cos",
        "diag-kept",
        "diag-exclusive",
        "diag-norms",
        "diag-loss-s",
        "diag-rw",
        "diag-resets",
    ] {
        assert!(classes.contains(&want), "{want} missing: {classes:?}");
    }
    assert!(
        !classes.contains(&"diag"),
        "a diagnostic of no kind: {classes:?}"
    );
    // Depth 2: three masked layers, each a line of its own in the per-layer panels.
    for (class, series) in &panels {
        if ["diag-kept", "diag-exclusive", "diag-rw", "diag-resets"].contains(&class.as_str()) {
            assert_eq!(series.len(), 3, "{class}: {series:?}");
        }
    }
    browser.screenshot("6-job-modsync");

    // A sweep over an extra axis (issue 27): one line and one table row per (method, series),
    // named "method · series", its legend below the plot and its entries apart.
    let file = write(dir.path(), "axes.toml", &axes_sweep_file());
    coord.cli(&["submit", &file]);
    browser.go(&format!("{web}/sweeps/browser-axes"));
    browser.wait_for(
        Duration::from_secs(180),
        "the axes sweep done, with a line per series",
        "const s = document.querySelector('span.progress'); return s !== null && \
         Number(s.dataset.value) === 100 && \
         document.querySelectorAll('section.pde svg.scaling g.series path.line').length === 4;",
    );
    let lines = chart_layout(&browser, "section.pde svg.scaling");
    let names = [
        "adam · lr=0.001",
        "adam · lr=0.01",
        "dcgd · lr=0.001",
        "dcgd · lr=0.01",
    ];
    assert_eq!(
        lines,
        [("scaling".to_string(), names.map(String::from).to_vec())]
    );
    let rows = browser.js(
        "return [...document.querySelectorAll('section.pde tr[data-series]')]\
         .map(r => r.dataset.method + ' · ' + r.dataset.series);",
    );
    assert_eq!(rows, json!(names), "one table row per series");
    let jobs = browser.js(
        "return [...document.querySelectorAll('table.jobs tr.job')]\
         .map(r => r.cells[2].textContent + ' · ' + r.querySelector('td.series').textContent).sort();",
    );
    let per_job: Vec<&str> = names.iter().flat_map(|n| [*n, *n]).collect();
    assert_eq!(jobs, json!(per_job), "the job list names each job's series");
    browser.screenshot("7-sweep-axes");
    coord.proc.signal("TERM");
}

/// 2 methods × 2 widths × 1 seed over an extra axis, lr: 4 series.
fn axes_sweep_file() -> String {
    r#"name = "browser-axes"
max_attempts = 2

[grid]
pdes = ["burgers"]
methods = ["adam", "dcgd"]
widths = [4, 8]
seeds = [0]

[grid.axes]
lr = [0.001, 0.01]

[train]
depth = 2
iters = 200
eval_every = 20
lr_decay = false
"#
    .to_string()
}

/// On the job page now open: waits for its diagnostics and checks their layout
/// ([`chart_layout`]); returns each panel's class and series names, in order.
fn diagnostic_panels(browser: &Browser) -> Vec<(String, Vec<String>)> {
    browser.wait_for(
        Duration::from_secs(10),
        "the diagnostics panels",
        "return document.querySelectorAll('div.diagnostics svg.chart').length > 0;",
    );
    chart_layout(browser, "div.diagnostics svg.chart")
}

/// Checks every chart `selector` finds: drawn (visible, with a size), not empty (but a resets
/// panel may be), no legend entry over its plot area (`rect.frame`) or out of its `<svg>`, no
/// two legend entries overlapping, every line with points; returns each chart's class and
/// series names, in order.
fn chart_layout(browser: &Browser, selector: &str) -> Vec<(String, Vec<String>)> {
    let report = browser.js(&format!(
        "const selector = {};\n{}",
        json!(selector),
        r#"
        const box = e => { const r = e.getBoundingClientRect();
            return { l: r.left, t: r.top, r: r.right, b: r.bottom }; };
        const overlap = (a, b) => a.l < b.r - 0.5 && b.l < a.r - 0.5 && a.t < b.b - 0.5 && b.t < a.b - 0.5;
        const inside = (a, b) => a.l >= b.l - 0.5 && a.r <= b.r + 0.5 && a.t >= b.t - 0.5 && a.b <= b.b + 0.5;
        const panels = [], problems = [];
        for (const svg of document.querySelectorAll(selector)) {
            const cls = [...svg.classList].find(c => c !== 'chart');
            const s = box(svg), style = getComputedStyle(svg);
            if (s.r - s.l < 200 || s.b - s.t < 100 || style.display === 'none' || style.visibility !== 'visible')
                problems.push(cls + ': not visible ' + JSON.stringify(s));
            if (svg.querySelector('.empty') && !svg.classList.contains('diag-resets'))
                problems.push(cls + ': empty: ' + svg.querySelector('.empty').textContent);
            const frame = svg.querySelector('rect.frame');
            if (!frame) { problems.push(cls + ': no plot area'); continue; }
            const f = box(frame);
            const legend = svg.querySelector('g.legend');
            if (legend) {
                const entries = [...legend.children].map(box);
                entries.forEach((e, i) => {
                    if (overlap(e, f)) problems.push(cls + ': legend entry ' + i + ' overlaps the plot area');
                    if (!inside(e, s)) problems.push(cls + ': legend entry ' + i + ' runs out of the chart');
                    entries.slice(0, i).forEach((o, j) => {
                        if (overlap(e, o)) problems.push(cls + ': legend entries ' + j + ' and ' + i + ' overlap');
                    });
                });
                for (const p of svg.querySelectorAll('path.line'))
                    if ((p.getAttribute('d').match(/[ML]/g) || []).length < 1)
                        problems.push(cls + ': a line without points');
            } else if (!svg.classList.contains('diag-resets')) {
                problems.push(cls + ': no legend');
            }
            panels.push([cls, [...svg.querySelectorAll('g.series')].map(g => g.dataset.series)]);
        }
        return { panels, problems };
        "#
    ));
    assert_eq!(report["problems"], json!([]), "{report}");
    report["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let series = p[1].as_array().unwrap();
            (
                p[0].as_str().unwrap().to_string(),
                series
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// The columns of a `metrics.csv` before the diagnostics (`modsync train` writes them first).
const CSV_COLUMNS: [&str; 9] = [
    "iter",
    "lr",
    "loss_r",
    "loss_b",
    "rel_l2",
    "abs_err",
    "abs_err_max",
    "skipped_steps",
    "elapsed_s",
];

/// An INSERT of every row of the `metrics.csv` at `path` as metric rows of `job`, its
/// diagnostic columns into `extra`.
fn metrics_insert(path: &Path, job: i64) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..9], CSV_COLUMNS, "{}", path.display());
    let rows: Vec<String> = lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let num = |i: usize| -> String {
                cells[i]
                    .parse::<f64>()
                    .map_or("NULL".into(), |v| format!("{v:?}"))
            };
            let extra: serde_json::Map<String, Value> = header[9..]
                .iter()
                .zip(&cells[9..])
                .filter_map(|(name, cell)| {
                    Some((name.to_string(), json!(cell.parse::<f64>().ok()?)))
                })
                .collect();
            format!(
                "({job}, {}, {}, {}, {}, {}, {}, {}, {}, {}, '{}', 1)",
                cells[0].parse::<i64>().unwrap(),
                num(1),
                num(2),
                num(3),
                num(4),
                num(5),
                num(6),
                cells[7].parse::<i64>().unwrap(),
                num(8),
                Value::Object(extra).to_string().replace('\'', "''")
            )
        })
        .collect();
    format!(
        "INSERT INTO metrics (job_id, iter, lr, loss_r, loss_b, rel_l2, abs_err, abs_err_max,          skipped_steps, elapsed_s, extra, token) VALUES {}",
        rows.join(", ")
    )
}

/// docs/dashboard-job-diagnostics.png: the diagnostics of a real modsync+dcgd run (burgers,
/// width 512, depth 5, 2,000 iterations; results/capacity-failure/ablation/pooled_modsync_dcgd)
/// on its job page, after the same checks as above; beside it (to target/) the page of the
/// DCGD run of the same setting. Ignored: it writes into docs/.
#[test]
#[ignore = "writes docs/dashboard-job-diagnostics.png; run with --ignored docs_screenshot"]
fn docs_screenshot_of_job_diagnostics() {
    let chromium = find(&["chromium", "chromium-browser"]);
    let driver = find(&["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        panic!(
            "chromium or chromedriver is not on PATH (apt-get install chromium chromium-driver)"
        );
    };
    let _serial = serial();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runs = root.join("results/capacity-failure/ablation");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let (coord, web) = serve_dashboard(&db);
    let file = write(
        dir.path(),
        "docs.toml",
        r#"name = "capacity-failure-w512"
max_attempts = 1

[grid]
pdes = ["burgers"]
methods = ["dcgd", "modsync+dcgd"]
widths = [512]
seeds = [0]

[train]
depth = 5
iters = 2000
eval_every = 100
pde_options.boundary_loss = "pooled_mean"
"#,
    );
    coord.cli(&["submit", &file]);
    // No worker: the runs' rows go into the store as a worker would have reported them.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut jobs = Vec::new();
    for (method, run) in [
        ("dcgd", "pooled_dcgd"),
        ("modsync+dcgd", "pooled_modsync_dcgd"),
    ] {
        let job = coord.sql_int(&format!(
            "SELECT id FROM jobs WHERE sweep_id = 'capacity-failure-w512' AND method = '{method}'"
        ));
        let rows = rt.block_on(common::write_store(
            &db,
            &metrics_insert(&runs.join(run).join("metrics.csv"), job),
            None,
        ));
        assert_eq!(rows, 21, "{run}");
        rt.block_on(common::write_store(
            &db,
            "UPDATE jobs SET state = 'done', attempts = 1 WHERE id = ?",
            Some(job),
        ));
        jobs.push(job);
    }
    let driver = Driver::start(&driver);
    let browser = Browser::open(&driver, &chromium);
    browser.log_in(&web);
    browser.go(&format!("{web}/jobs/{}", jobs[0]));
    let panels = diagnostic_panels(&browser);
    assert_eq!(
        panels.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["diag-cos", "diag-orth", "diag-norms"]
    );
    browser.screenshot("docs-job-dcgd");
    browser.go(&format!("{web}/jobs/{}", jobs[1]));
    let panels = diagnostic_panels(&browser);
    let six = |p: &str| -> Vec<String> { (0..6).map(|l| format!("{p}_l{l}")).collect() };
    let want: Vec<(String, Vec<String>)> = [
        ("diag-cos", vec!["cos_rb".to_string()]),
        ("diag-kept", six("kept_frac")),
        ("diag-exclusive", six("exclusive_frac")),
        ("diag-orth", vec!["orth_frac".into()]),
        ("diag-norms", vec!["norm_g_b".into(), "norm_g_r".into()]),
        ("diag-loss-s", vec!["loss_s".into()]),
        ("diag-rw", six("rw_mean")),
        ("diag-resets", six("resets")),
    ]
    .into_iter()
    .map(|(c, s)| (c.to_string(), s))
    .collect();
    assert_eq!(panels, want);
    browser.screenshot("docs-job-modsync");
    // Tall enough for the whole section (four rows of panels).
    browser.resize(1280, 4000);
    let png = browser.element_png("div.diagnostics");
    std::fs::write(root.join("docs/dashboard-job-diagnostics.png"), png).unwrap();
    coord.proc.signal("TERM");
}
