//! The modsync gRPC contract: messages and the `Sweeps` service generated from
//! `proto/sweep.proto`. See that file for what each RPC promises.

#![allow(clippy::large_enum_variant)]

/// Package `modsync.v1`.
pub mod v1 {
    tonic::include_proto!("modsync.v1");
}

pub use v1::*;

/// Most jobs one `LeaseJob` may ask for (`max_jobs`), so the most networks a worker slot packs
/// together: far more than any device trains well in one step.
pub const MAX_LEASE_JOBS: u32 = 1_024;

/// `head` followed by the texts of an error's sources, each once, on one line: tonic hides the
/// real cause (connection refused, a rustls error) in the source chain. Shared by the client's
/// status lines and the coordinator's start-up errors.
pub fn with_sources(
    mut head: String,
    mut source: Option<&(dyn std::error::Error + 'static)>,
) -> String {
    while let Some(s) = source {
        let text = s.to_string();
        if !head.contains(&text) {
            head.push_str(": ");
            head.push_str(&text);
        }
        source = s.source();
    }
    head
}

/// CSV cells as every CSV the project writes them (RFC 4180), safe to open in a spreadsheet.
///
/// A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula (and one that
/// starts with a tab, CR or LF may be read the same way once the whitespace is dropped), so a
/// worker id like `=HYPERLINK("http://…","click")` in results.csv would be a live link or worse.
/// [`field`] neutralises such a text cell the way the OWASP guidance ("CSV Injection") says: a
/// single quote in front, which spreadsheets show as a text marker and never evaluate. A cell
/// that is a plain decimal number (`-0.5`, `+3`, `1e-7`) stays as it is, so numbers stay
/// numbers. The dashboard's downloads, `modsync sql --csv`, `curves --out`, `history --out` and
/// `train --out`'s metrics.csv all write their text cells through here.
pub mod csv {
    /// First characters that make a spreadsheet read a cell as a formula.
    const FORMULA_STARTS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\n'];

    /// A text value as one CSV field: neutralised when it would start a formula (see the
    /// module), then quoted when it holds a comma, quote or line break.
    pub fn field(s: &str) -> String {
        let neutral = if s.starts_with(FORMULA_STARTS) && !is_number(s) {
            format!("'{s}")
        } else {
            s.to_string()
        };
        if neutral.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", neutral.replace('"', "\"\""))
        } else {
            neutral
        }
    }

    /// Whether `s` is a plain decimal number: an optional sign, digits with at most one point,
    /// an optional exponent. Nothing else (no `inf`, no spaces), so nothing a formula could
    /// hide in.
    pub fn is_number(s: &str) -> bool {
        let b = s.as_bytes();
        let mut i = 0;
        if matches!(b.first(), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits = |i: &mut usize| {
            let start = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - start
        };
        let mut mantissa = digits(&mut i);
        if b.get(i) == Some(&b'.') {
            i += 1;
            mantissa += digits(&mut i);
        }
        if mantissa == 0 {
            return false;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return false;
            }
        }
        i == b.len()
    }
}

/// The bearer token's one length rule, for every side that takes a token (coordinator,
/// dashboard, workers, clients): they depend on this crate, not on each other.
pub mod token {
    /// The shortest token accepted anywhere: a short one can be guessed, whatever the rate
    /// limit.
    pub const MIN_TOKEN_CHARS: usize = 16;

    /// The error for a token shorter than [`MIN_TOKEN_CHARS`] (`None` when it is long enough),
    /// naming the flags and the variable but never showing the token.
    pub fn short_token(token: &str) -> Option<String> {
        let n = token.trim().chars().count();
        (n < MIN_TOKEN_CHARS).then(|| {
            format!(
                "--token / --token-file / MODSYNC_TOKEN is {n} characters long: use at least \
                 {MIN_TOKEN_CHARS} (e.g. openssl rand -hex 32)"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    /// An error with a text and an optional source.
    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);

    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn csv_fields_never_start_a_formula_and_numbers_stay_numbers() {
        use super::csv::{field, is_number};
        for (cell, want) in [
            (
                r#"=HYPERLINK("http://x","click")"#,
                r#""'=HYPERLINK(""http://x"",""click"")""#,
            ),
            ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
            ("@SUM(1+1)", "'@SUM(1+1)"),
            ("+1+1", "'+1+1"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            ("\n=1", "\"'\n=1\""),
            ("-", "'-"),
            ("-inf", "'-inf"),
            ("- 1", "'- 1"),
            ("-1-1", "'-1-1"),
            ("-1e", "'-1e"),
            // Numbers stay numbers.
            ("-0.5", "-0.5"),
            ("+3", "+3"),
            ("-1e-7", "-1e-7"),
            ("-.5", "-.5"),
            ("-5.", "-5."),
            ("0.25", "0.25"),
            // Ordinary text, quoted where RFC 4180 needs it.
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("a=1", "a=1"),
            ("", ""),
        ] {
            assert_eq!(field(cell), want, "{cell:?}");
        }
        assert!(!is_number("1 2") && !is_number(".") && !is_number("e5") && !is_number("+"));
    }

    #[test]
    fn sources_follow_the_head_once_each() {
        let chain = E(
            "transport error",
            Some(Box::new(E(
                "transport error",
                Some(Box::new(E("connection refused", None))),
            ))),
        );
        let line = super::with_sources("UNAVAILABLE".into(), Some(&chain));
        assert_eq!(line, "UNAVAILABLE: transport error: connection refused");
        assert_eq!(super::with_sources("head".into(), None), "head");
    }
}
