//! The dashboard in a real browser (issue 17): a `modsync coordinator --http` process with a
//! token, two `modsync worker` processes and a tiny sweep (2 methods × 2 widths), driven with
//! headless Chromium through WebDriver (`chromedriver`, plain JSON over HTTP). It logs in
//! through the form, then checks the DOM: the sweep is listed, its page updates without a
//! reload while jobs run and reaches 100 %, each PDE's plot has one line per method, and a job
//! page shows its loss curves. Screenshots go to target/dashboard-screenshots/.
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
        let mut r = ureq::get(self.url("screenshot")).call().unwrap();
        let v: Value = r.body_mut().read_json().unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
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

/// 2 methods × 2 widths × 1 seed on one PDE.
fn sweep_file() -> String {
    r#"name = "browser"
max_attempts = 2

[grid]
pdes = ["burgers"]
methods = ["adam", "dcgd"]
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
    let mut coord = Coordinator::start(&db, Some(TOKEN), &["--http", "127.0.0.1:0"]);
    let line = coord.proc.next_line(Duration::from_secs(10));
    let web = line
        .strip_prefix("modsync dashboard on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .trim_end_matches('/')
        .to_string();

    let driver = Driver::start(&driver);
    let browser = Browser::open(&driver, &chromium);
    // Before any sweep: the login form, then the (empty) sweeps page.
    browser.go(&format!("{web}/"));
    browser.wait_for(
        Duration::from_secs(10),
        "the login form",
        "return document.querySelector('input[name=token]') !== null;",
    );
    browser.js(&format!(
        "document.querySelector('input[name=token]').value = '{TOKEN}'; \
         document.querySelector('form').submit(); return true;"
    ));
    browser.wait_for(
        Duration::from_secs(10),
        "the sweeps page after logging in",
        "return document.querySelector('h1') !== null && document.querySelector('h1').textContent === 'Sweeps';",
    );
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
        "the plot with both methods",
        "const s = document.querySelectorAll('section.pde'); return s.length === 1 && \
         [...s].every(p => p.querySelectorAll('svg.scaling g.series path.line').length === 2);",
    );
    let methods = browser.js(
        "return [...document.querySelectorAll('section.pde svg.scaling g.series')].map(g => g.dataset.series);",
    );
    assert_eq!(methods, json!(["adam", "dcgd"]));
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
    coord.proc.signal("TERM");
}
