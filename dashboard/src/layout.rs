//! What every page shares: the document around a page's body, the pager, the login form, and
//! how values are written (escaped text, 4 significant digits with the exact value in
//! `data-value`, UTC times, durations, URL segments).

use std::fmt::Write as _;

use crate::escape::esc;

/// The page stylesheet: the charts' rules (shared with the SVG files, `sheet.rs`), then the
/// page's own, which win where both say something (the muted colour of an empty chart).
pub(crate) const STYLE: &str = concat!(
    include_str!("../assets/chart.css"),
    include_str!("../assets/style.css")
);

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
pub(crate) fn num_cell(v: f64) -> String {
    format!(r#"<td class="num" data-value="{v}">{}</td>"#, sig4(v))
}

pub(crate) fn sig4(v: f64) -> String {
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

/// Links to the newer and older pages of a list at `base`.
pub(crate) fn pager(base: &str, page: u32, pages: u32) -> String {
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
