//! The pages, rendered on the server as HTML strings: a layout, then one function per page
//! that turns the `data` structs into markup. Every value comes from the store and is escaped
//! ([`esc`], from `escape.rs`). Numbers are shown to 4 significant digits; the exact value is
//! in the cell's `data-value`, so a test (or a script) can compare it with SQL.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::data::{
    CurveStat, ErrorKind, JobPage, JobRow, SweepPage, SweepRow, SweepsPage, WorkersPage,
};
use crate::escape::esc;
use crate::svg::{self, Chart, Scale, Series};
use crate::ticks;
use trainer_core::diagnostic_kind::{self, AxisScale, DiagnosticKind};

const STYLE: &str = include_str!("../assets/style.css");

/// `s` as one URL path segment or query value (sweep names are letters, digits, `._-`, but
/// nothing here relies on it).
pub fn url_part(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A number to 4 significant digits, with its exact value for scripts and tests.
fn num_cell(v: f64) -> String {
    format!(r#"<td class="num" data-value="{v}">{}</td>"#, sig4(v))
}

fn sig4(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
        format!("{v:.3e}")
    } else {
        let decimals = if v == 0.0 {
            0
        } else {
            (3 - v.abs().log10().floor() as i32).max(0) as usize
        };
        format!("{v:.decimals$}")
    }
}

/// UTC time of a `*_ms` column: `2026-12-02 18:04:05`.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A duration in words: `45 s`, `12 min`, `3.5 h`, `2.1 d`.
pub fn duration(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else if secs < 5400.0 {
        format!("{:.0} min", secs / 60.0)
    } else if secs < 172_800.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.1} d", secs / 86_400.0)
    }
}

/// The whole document around `body`. `live`: the page refreshes its `<main>` every 2 s. The
/// header carries a logout button on every page (`POST /logout`; without a token there is no
/// session and it only leads back to the page list).
pub fn layout(title: &str, body: &str, live: bool) -> String {
    let script = if live {
        r#"<script src="/assets/live.js" defer></script>"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · modsync</title><style>{STYLE}</style>{script}</head>
<body><header><a class="brand" href="/">modsync</a><nav><a href="/">Sweeps</a><a href="/workers">Workers</a></nav><span id="updated" data-updates="0"></span><form method="post" action="/logout" class="logout"><button type="submit">Log out</button></form></header>
<main id="live">{body}</main></body></html>
"#,
        title = esc(title),
    )
}

fn pager(base: &str, page: u32, pages: u32) -> String {
    if pages <= 1 {
        return String::new();
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut out = String::from(r#"<nav class="pager">"#);
    if page > 1 {
        let _ = write!(out, r#"<a href="{base}{sep}page={}">← newer</a>"#, page - 1);
    }
    let _ = write!(out, "<span>page {page} of {pages}</span>");
    if page < pages {
        let _ = write!(out, r#"<a href="{base}{sep}page={}">older →</a>"#, page + 1);
    }
    out.push_str("</nav>");
    out
}

fn progress(s: &SweepRow) -> String {
    format!(
        r#"<span class="progress" data-value="{p}"><progress max="100" value="{p:.1}"></progress> {p:.0} %</span>"#,
        p = s.progress_pct
    )
}

/// The counts by state as cells, each with its state as class.
fn state_cells(s: &SweepRow) -> String {
    let mut out = String::new();
    for (class, n) in [
        ("queued", s.queued),
        ("running", s.running),
        ("done", s.done),
        ("failed", s.failed),
        ("cancelled", s.cancelled),
    ] {
        let _ = write!(out, r#"<td class="num {class}" data-value="{n}">{n}</td>"#);
    }
    out
}

fn rate_cells(s: &SweepRow) -> String {
    format!(
        r#"<td class="num rate" data-value="{}">{:.1}</td><td class="eta">{}</td>"#,
        s.jobs_per_hour,
        s.jobs_per_hour,
        match s.eta_s {
            Some(eta) if s.queued + s.running > 0 => duration(eta),
            _ if s.queued + s.running == 0 => "finished".into(),
            _ => "—".into(),
        }
    )
}

const STATE_HEADERS: &str =
    "<th>queued</th><th>running</th><th>done</th><th>failed</th><th>cancelled</th>";

/// Page 1: every sweep.
pub fn sweeps(p: &SweepsPage) -> String {
    let mut out = String::from("<h1>Sweeps</h1>");
    if p.sweeps.is_empty() {
        out.push_str(r#"<p class="empty">No sweeps yet: <code>modsync submit FILE</code> or <code>modsync sweep run FILE</code>.</p>"#);
        return out;
    }
    let _ = write!(
        out,
        r#"<table class="sweeps"><thead><tr><th>sweep</th><th>created (UTC)</th><th>progress</th><th>total</th>{STATE_HEADERS}<th>jobs/h</th><th>ETA</th></tr></thead><tbody>"#
    );
    for s in &p.sweeps {
        let _ = write!(
            out,
            r#"<tr class="sweep" data-sweep="{id}"><td><a href="/sweeps/{url}">{id}</a></td><td>{created}</td><td>{progress}</td><td class="num total" data-value="{total}">{total}</td>{states}{rate}</tr>"#,
            id = esc(&s.id),
            url = url_part(&s.id),
            created = utc(s.created_at_ms),
            progress = progress(s),
            total = s.total,
            states = state_cells(s),
            rate = rate_cells(s),
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&pager("/", p.page, p.pages));
    out
}

/// The PDEs and methods of a sweep page, in order of first appearance.
fn distinct<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen: Vec<T> = Vec::new();
    for i in items {
        if !seen.contains(&i) {
            seen.push(i);
        }
    }
    seen
}

/// Page 2: one sweep.
pub fn sweep(p: &SweepPage) -> String {
    let s = &p.sweep;
    let id = url_part(&s.id);
    let mut out = format!(
        r#"<h1>Sweep {name}</h1><table class="summary"><thead><tr><th>progress</th><th>total</th>{STATE_HEADERS}<th>jobs/h</th><th>ETA</th></tr></thead><tbody><tr class="sweep" data-sweep="{name}"><td>{progress}</td><td class="num total" data-value="{total}">{total}</td>{states}{rate}</tr></tbody></table>
<p class="downloads">Download: <a href="/sweeps/{id}/curves.csv">curves.csv</a> · <a href="/sweeps/{id}/results.csv">results.csv</a> · <a href="/api/sweeps/{id}?error={e}">JSON</a></p>"#,
        name = esc(&s.id),
        progress = progress(s),
        total = s.total,
        states = state_cells(s),
        rate = rate_cells(s),
        e = p.error.as_str(),
    );
    out.push_str(r#"<p class="choice">Error: "#);
    for k in ErrorKind::ALL {
        if k == p.error {
            let _ = write!(out, r#"<strong class="chosen">{}</strong> "#, k.label());
        } else {
            let _ = write!(
                out,
                r#"<a href="/sweeps/{id}?error={}">{}</a> "#,
                k.as_str(),
                k.label()
            );
        }
    }
    out.push_str("</p>");
    let lines = distinct(p.stats.iter().map(CurveStat::line));
    let pdes = distinct(p.stats.iter().map(|c| c.pde.as_str()));
    if pdes.is_empty() {
        out.push_str(r#"<p class="empty">No finished jobs yet: the curves appear with the first result.</p>"#);
    }
    for pde in &pdes {
        let of_pde: Vec<&CurveStat> = p.stats.iter().filter(|c| c.pde == *pde).collect();
        let _ = write!(
            out,
            r#"<section class="pde" data-pde="{pde}"><h2>{pde}</h2>{chart}{table}</section>"#,
            pde = esc(pde),
            chart = scaling_chart(p, pde, &lines, &of_pde),
            table = method_width_table(&lines, &of_pde),
        );
    }
    if p.dots_truncated {
        let _ = write!(
            out,
            r#"<p class="note">Cells with more than {max} seeds draw every k-th seed by error as a dot (at most {max}); the band and the statistics cover all of them.</p>"#,
            max = crate::data::MAX_CELL_DOTS
        );
    }
    if !p.failed.is_empty() {
        out.push_str(r#"<h2>Failed jobs</h2>"#);
        out.push_str(&jobs_table(&p.failed, "failed"));
    }
    out.push_str("<h2>Jobs</h2>");
    out.push_str(&jobs_table(&p.jobs, "jobs"));
    out.push_str(&pager(
        &format!("/sweeps/{id}?error={}", p.error.as_str()),
        p.page,
        p.pages,
    ));
    out
}

/// Relative L2 against width, log–log: per line (a method, or a method and a series of a sweep
/// with extra axes) the median over seeds, the min–max band and each seed as a dot.
fn scaling_chart(p: &SweepPage, pde: &str, lines: &[(&str, &str)], stats: &[&CurveStat]) -> String {
    let mut widths: Vec<f64> = stats.iter().map(|c| c.width as f64).collect();
    widths.sort_by(f64::total_cmp);
    widths.dedup();
    let series: Vec<Series> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let of: Vec<&&CurveStat> = stats.iter().filter(|c| c.line() == *line).collect();
            if of.is_empty() {
                return None;
            }
            let (color, marker) = ticks::style(i);
            Some(Series {
                name: line_name(*line),
                color,
                marker,
                points: of
                    .iter()
                    .map(|c| (c.width as f64, Some(c.median)))
                    .collect(),
                markers: true,
                band: of.iter().map(|c| (c.width as f64, c.min, c.max)).collect(),
                dots: p
                    .dots
                    .iter()
                    .filter(|d| d.pde == pde && (d.method.as_str(), d.series.as_str()) == *line)
                    .map(|d| {
                        (
                            d.width as f64,
                            d.value,
                            format!("job {} seed {}: {}", d.job_id, d.seed, sig4(d.value)),
                        )
                    })
                    .collect(),
            })
        })
        .collect();
    let y_label = format!("relative L2 ({}), median over seeds", p.error.label());
    svg::render(
        &Chart {
            class: "scaling",
            title: &format!("{pde}: error against width"),
            x_label: "width (hidden units per layer)",
            y_label: &y_label,
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            x_ticks: (widths.len() <= 12).then_some(widths),
        },
        &series,
    )
}

/// A line's name in legends and tables: the method, then its series when it has one.
fn line_name((method, series): (&str, &str)) -> String {
    if series.is_empty() {
        method.to_string()
    } else {
        format!("{method} · {series}")
    }
}

/// Lines (methods, or method and series) × widths: the median (and n) per cell, the best
/// median of each width marked; the cell's mean, std, min and max in its tooltip and, exact, in
/// its `data-*` attributes.
fn method_width_table(lines: &[(&str, &str)], stats: &[&CurveStat]) -> String {
    let mut widths: Vec<i64> = stats.iter().map(|c| c.width).collect();
    widths.sort_unstable();
    widths.dedup();
    let mut out = String::from(r#"<table class="grid"><thead><tr><th>method \ width</th>"#);
    for w in &widths {
        let _ = write!(out, r#"<th class="num">{w}</th>"#);
    }
    out.push_str("</tr></thead><tbody>");
    let best: Vec<Option<f64>> = widths
        .iter()
        .map(|w| {
            stats
                .iter()
                .filter(|c| c.width == *w)
                .map(|c| c.median)
                .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.min(v))))
        })
        .collect();
    for line in lines {
        let _ = write!(
            out,
            r#"<tr data-method="{m}" data-series="{s}"><th>{name}</th>"#,
            m = esc(line.0),
            s = esc(line.1),
            name = esc(&line_name(*line)),
        );
        for (w, b) in widths.iter().zip(&best) {
            match stats.iter().find(|c| c.line() == *line && c.width == *w) {
                Some(c) => {
                    let is_best = Some(c.median) == *b;
                    let _ = write!(
                        out,
                        r#"<td class="num{}" data-width="{w}" data-value="{v}" data-n="{n}" data-mean="{mean}" data-std="{std}" data-min="{min}" data-max="{max}" title="n={n}: mean {mean4} ± {std4} (sample std), min {min4}, max {max4}">{star}{s} <small>n={n}</small></td>"#,
                        if is_best { " best" } else { "" },
                        v = c.median,
                        n = c.n,
                        mean = c.mean,
                        std = c.std,
                        min = c.min,
                        max = c.max,
                        mean4 = sig4(c.mean),
                        std4 = sig4(c.std),
                        min4 = sig4(c.min),
                        max4 = sig4(c.max),
                        star = if is_best { "★ " } else { "" },
                        s = sig4(c.median),
                    );
                }
                None => out.push_str(r#"<td class="num">—</td>"#),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A list of jobs; a `series` column where a job has one (a sweep with axes or variants).
fn jobs_table(jobs: &[JobRow], class: &str) -> String {
    let with_series = jobs.iter().any(|j| !j.series.is_empty());
    let mut out = format!(
        r#"<table class="{class}"><thead><tr><th>job</th><th>pde</th><th>method</th>{series}<th>width</th><th>seed</th><th>state</th><th>attempts</th><th>worker</th><th>last error</th></tr></thead><tbody>"#,
        series = if with_series { "<th>series</th>" } else { "" }
    );
    for j in jobs {
        let series = match with_series {
            true => format!(r#"<td class="series">{}</td>"#, esc(&j.series)),
            false => String::new(),
        };
        let _ = write!(
            out,
            r#"<tr class="job {state}" data-job="{id}"><td><a href="/jobs/{id}">{id}</a></td><td>{pde}</td><td>{method}</td>{series}<td class="num">{w}</td><td class="num">{seed}</td><td class="state">{state}</td><td class="num">{a}</td><td>{worker}</td><td class="error">{err}</td></tr>"#,
            id = j.id,
            pde = esc(&j.pde),
            method = esc(&j.method),
            w = j.width,
            seed = j.seed,
            state = esc(&j.state),
            a = j.attempts,
            worker = esc(j.worker.as_deref().unwrap_or("")),
            err = esc(j.error.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// Page 3: one job.
pub fn job(p: &JobPage) -> String {
    let j = &p.job;
    let mut out = format!(
        r#"<h1>Job {id}</h1><p class="crumbs">sweep <a href="/sweeps/{sweep_url}">{sweep}</a> · {pde} · {method}{series} · width {w} · seed {seed}</p>
<table class="facts"><tbody><tr><th>state</th><td class="state {state}">{state}</td></tr><tr><th>attempts</th><td>{a} of {max}</td></tr><tr><th>worker</th><td>{worker}</td></tr><tr><th>host / device</th><td>{host} / {device}</td></tr><tr><th>lease expires (UTC)</th><td>{lease}</td></tr><tr><th>updated (UTC)</th><td>{updated}</td></tr><tr><th>metric rows</th><td class="num" data-value="{rows}">{rows}</td></tr></tbody></table>"#,
        id = j.id,
        sweep_url = url_part(&p.sweep_id),
        sweep = esc(&p.sweep_id),
        pde = esc(&j.pde),
        method = esc(&j.method),
        series = match j.series.as_str() {
            "" => String::new(),
            series => format!(" · {}", esc(series)),
        },
        w = j.width,
        seed = j.seed,
        state = esc(&j.state),
        a = j.attempts,
        max = p.max_attempts,
        worker = esc(j.worker.as_deref().unwrap_or("—")),
        host = esc(p.host.as_deref().unwrap_or("—")),
        device = esc(p.device.as_deref().unwrap_or("—")),
        lease = p.lease_expires_at_ms.map(utc).unwrap_or_else(|| "—".into()),
        updated = utc(p.updated_at_ms),
        rows = p.series.rows,
    );
    if let Some(r) = &p.result {
        let _ = write!(
            out,
            r#"<h2>Result</h2><table class="result"><thead><tr><th>rel L2 best</th><th>at min loss</th><th>last</th><th>best iter</th><th>iterations</th><th>wall s</th><th>parameters</th><th>status</th><th>device</th></tr></thead><tbody><tr>{}{}{}<td class="num">{}</td><td class="num">{}</td>{}<td class="num">{}</td><td>{}</td><td>{}</td></tr></tbody></table>"#,
            num_cell(r.rel_l2_best),
            num_cell(r.rel_l2_min_loss),
            num_cell(r.rel_l2_last),
            r.best_iter,
            r.iters_done,
            num_cell(r.wall_s),
            r.num_params,
            esc(&r.status),
            esc(&r.device),
        );
    }
    if let Some(e) = &p.last_error {
        let _ = write!(
            out,
            r#"<h2>Last error</h2><pre class="error">{}</pre>"#,
            esc(e)
        );
    }
    out.push_str(r#"<h2>Curves</h2><div class="charts">"#);
    let s = &p.series;
    let xs: Vec<f64> = s.iter.iter().map(|i| *i as f64).collect();
    let line = |i: usize, name: &str, ys: &[Option<f64>]| {
        let (color, marker) = ticks::style(i);
        Series {
            name: name.to_string(),
            color,
            marker,
            points: xs.iter().copied().zip(ys.iter().copied()).collect(),
            markers: xs.len() <= 60,
            band: vec![],
            dots: vec![],
        }
    };
    let chart = |class: &'static str, title: &str, y_label: &str, y_scale, series: &[Series]| {
        svg::render(
            &Chart {
                class,
                title,
                x_label: "iteration",
                y_label,
                x_scale: Scale::Linear,
                y_scale,
                x_ticks: None,
            },
            series,
        )
    };
    out.push_str(&chart(
        "losses",
        "training losses",
        "loss",
        Scale::Log,
        &[
            line(0, "L_r (residual)", &s.loss_r),
            line(1, "L_b (boundary)", &s.loss_b),
        ],
    ));
    out.push_str(&chart(
        "rel-l2",
        "relative L2 error",
        "relative L2",
        Scale::Log,
        &[line(2, "rel L2", &s.rel_l2)],
    ));
    out.push_str(&chart(
        "lr",
        "learning rate",
        "lr",
        Scale::Log,
        &[line(3, "lr", &s.lr)],
    ));
    out.push_str("</div>");
    // Diagnostics: one panel per kind, each with its own axis (`diagnostic_panels`).
    let panels = diagnostic_panels(&xs, &s.extra);
    if !panels.is_empty() {
        let _ = write!(
            out,
            r#"<h2>Diagnostics</h2><div class="charts diagnostics">{panels}</div>"#
        );
    }
    let config = serde_json::to_string_pretty(&p.config).unwrap_or_default();
    let _ = write!(
        out,
        r#"<h2>Config</h2><pre class="config">{}</pre>"#,
        esc(&config)
    );
    out
}

/// The CSS class of a diagnostics panel (`diag-cos` and `diag` as before the kinds).
fn diagnostic_class(kind: DiagnosticKind) -> &'static str {
    match kind {
        DiagnosticKind::Cosines => "diag-cos",
        DiagnosticKind::Kept => "diag-kept",
        DiagnosticKind::Exclusive => "diag-exclusive",
        DiagnosticKind::Orthogonality => "diag-orth",
        DiagnosticKind::Norms => "diag-norms",
        DiagnosticKind::LossS => "diag-loss-s",
        DiagnosticKind::Reweighting => "diag-rw",
        DiagnosticKind::Weights => "diag-weights",
        DiagnosticKind::Resets => "diag-resets",
        DiagnosticKind::Other => "diag",
    }
}

/// A job's diagnostics (`metrics.extra`, aligned with the rows' iterations `xs`), one chart per
/// kind of [`DiagnosticKind`] that has a value, in its order: its own y axis and scale (log for
/// norms, at least 0..1 for fractions, …), members ordered by layer, each member in the same
/// colour in every panel of a layer. A member's missing values (e.g. `orth_frac`, measured
/// every `diag_every` steps) are skipped, not gaps, so a sparse diagnostic is still a line.
/// Counters (resets) are marks where they grow. A kind without any value has no panel.
fn diagnostic_panels(xs: &[f64], extra: &BTreeMap<String, Vec<Option<f64>>>) -> String {
    let mut out = String::new();
    // Every panel spans the job's iterations, however few values a diagnostic has.
    let x_span = xs.first().zip(xs.last()).map(|(a, b)| (*a, *b));
    for kind in DiagnosticKind::ALL {
        let mut members: Vec<(&str, &[Option<f64>])> = extra
            .iter()
            .filter(|(name, _)| DiagnosticKind::of(name) == kind)
            .map(|(name, ys)| (name.as_str(), ys.as_slice()))
            .filter(|(_, ys)| ys.iter().any(|v| v.is_some_and(f64::is_finite)))
            .collect();
        if members.is_empty() {
            continue;
        }
        members.sort_by(|a, b| {
            (diagnostic_kind::layer_of(a.0), a.0).cmp(&(diagnostic_kind::layer_of(b.0), b.0))
        });
        let class = diagnostic_class(kind);
        if kind.is_counter() {
            let lanes: Vec<svg::Lane> = members
                .iter()
                .enumerate()
                .map(|(i, (name, ys))| svg::Lane {
                    name: name.to_string(),
                    label: diagnostic_kind::layer_of(name)
                        .map_or_else(|| name.to_string(), |l| format!("l{l}")),
                    color: ticks::style(i).0,
                    events: diagnostic_kind::counter_steps(ys)
                        .into_iter()
                        .filter_map(|(row, by)| {
                            let x = *xs.get(row)?;
                            let total = ys[row]?;
                            Some((x, format!("{name}: +{by} at iteration {x}, {total} in all")))
                        })
                        .collect(),
                })
                .collect();
            let chart = Chart {
                class,
                title: kind.title(),
                x_label: "iteration",
                y_label: kind.y_label(),
                x_scale: Scale::Linear,
                y_scale: Scale::Linear,
                x_ticks: None,
            };
            out.push_str(&svg::render_events(&chart, xs, &lanes));
            continue;
        }
        let values = members
            .iter()
            .flat_map(|(_, ys)| ys.iter().flatten().copied());
        let (y_scale, y_label) = match kind.scale().resolve(values) {
            AxisScale::Log => (Scale::Log, format!("{} (log)", kind.y_label())),
            _ => (Scale::Linear, kind.y_label().to_string()),
        };
        let series: Vec<Series> = members
            .iter()
            .enumerate()
            .map(|(i, (name, ys))| {
                let (color, marker) = ticks::style(i);
                let points: Vec<(f64, Option<f64>)> = xs
                    .iter()
                    .zip(ys.iter())
                    .filter(|(_, y)| y.is_some())
                    .map(|(x, y)| (*x, *y))
                    .collect();
                Series {
                    name: name.to_string(),
                    color,
                    marker,
                    markers: points.len() <= 60,
                    points,
                    band: vec![],
                    dots: vec![],
                }
            })
            .collect();
        let chart = Chart {
            class,
            title: kind.title(),
            x_label: "iteration",
            y_label: &y_label,
            x_scale: Scale::Linear,
            y_scale,
            x_ticks: None,
        };
        out.push_str(&svg::render_bounded(
            &chart,
            &series,
            x_span,
            kind.y_range(),
        ));
    }
    out
}

/// Page 4: the workers.
pub fn workers(p: &WorkersPage, now_ms: i64) -> String {
    let mut out = String::from("<h1>Workers</h1>");
    if p.workers.is_empty() {
        out.push_str(r#"<p class="empty">No worker has leased a job yet.</p>"#);
        return out;
    }
    out.push_str(r#"<table class="workers"><thead><tr><th>worker</th><th>host</th><th>device</th><th>last seen</th><th>current jobs</th><th>jobs done</th></tr></thead><tbody>"#);
    for w in &p.workers {
        let ago = ((now_ms - w.last_seen_ms).max(0)) as f64 / 1000.0;
        let _ = write!(
            out,
            r#"<tr class="worker" data-worker="{id}"><td>{id}</td><td>{host}</td><td>{device}</td><td title="{at} UTC">{ago} ago</td><td class="num running" data-value="{r}">{r}</td><td class="num done" data-value="{d}">{d}</td></tr>"#,
            id = esc(&w.id),
            host = esc(&w.host),
            device = esc(&w.device),
            at = utc(w.last_seen_ms),
            ago = duration(ago),
            r = w.running,
            d = w.jobs_done,
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&pager("/workers", p.page, p.pages));
    out
}

/// The login form; `next` is where to go after it (a local path), `wrong` after a bad token.
pub fn login(next: &str, wrong: bool) -> String {
    let note = if wrong {
        r#"<p class="error" role="alert">That is not the token.</p>"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in · modsync</title><style>{STYLE}</style></head>
<body><main class="login"><h1>modsync dashboard</h1>{note}<form method="post" action="/login"><label>Token <input type="password" name="token" autocomplete="current-password" autofocus required></label><input type="hidden" name="next" value="{next}"><button type="submit">Log in</button></form>
<p class="note">The coordinator's <code>--token</code>. It is checked once; the browser then keeps only a session id.</p></main></body></html>
"#,
        next = esc(next)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_formats() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url_part("a b/c"), "a%20b%2Fc");
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_796_234_645_000), "2026-12-02 18:04:05");
        assert_eq!(sig4(0.012345678), "0.01235");
        assert_eq!(sig4(12.5), "12.50");
        assert_eq!(sig4(0.00001234), "1.234e-5");
        assert_eq!(duration(30.0), "30 s");
        assert_eq!(duration(7200.0), "2.0 h");
    }
}
