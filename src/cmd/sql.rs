//! `modsync sql "QUERY" [--csv] [--db FILE]`: read-only SQL on the coordinator's store (or on a
//! store file, read-only), as an aligned table or as CSV with a header row. Anything that
//! writes is refused, by the same guard either way (`coordinator::query`).

use anyhow::{Result, bail};
use clap::Args;
use modsync_proto::value::Kind;
use modsync_proto::{QueryResponse, Value};

use crate::source::SourceArgs;

#[derive(Args)]
pub struct SqlArgs {
    /// One SQL statement, e.g. "SELECT * FROM curves". Tables: sweeps, jobs, results, metrics,
    /// checkpoints, workers; views: curves, curve_stats, curve_seeds.
    query: String,
    /// CSV with a header row instead of a table.
    #[arg(long)]
    csv: bool,
    /// Most rows to return (0 = the coordinator's cap; more than the cap is refused).
    #[arg(long, default_value_t = 0)]
    max_rows: u32,
    #[command(flatten)]
    source: SourceArgs,
}

pub fn run(args: SqlArgs) -> Result<()> {
    if args.query.trim().is_empty() {
        bail!("invalid QUERY: empty");
    }
    let mut source = args.source.open()?;
    let response = source.query("sql", &args.query, args.max_rows)?;
    if args.csv {
        print!("{}", to_csv(&response));
    } else {
        let rows: Vec<Vec<String>> = response
            .rows
            .iter()
            .map(|r| r.values.iter().map(cell).collect())
            .collect();
        let headers: Vec<&str> = response.columns.iter().map(String::as_str).collect();
        print!("{}", format_table(&headers, &rows));
    }
    if response.truncated {
        eprintln!(
            "note: {}",
            cut_note(response.rows.len(), args.max_rows, &source.row_cap_note())
        );
    }
    Ok(())
}

/// Which limit cut a result of `rows` rows: the one asked for with --max-rows, or the
/// source's own (`caps`; a --max-rows above its row cap is refused, so that cap only cuts when
/// none was asked for).
fn cut_note(rows: usize, asked: u32, caps: &str) -> String {
    if asked != 0 && rows == asked as usize {
        format!("the result was cut at {rows} rows (--max-rows {asked})")
    } else {
        format!("the result was cut at {rows} rows by {caps}")
    }
}

/// A value as a table cell: NULL spelled out, reals in shortest round-trip form.
pub fn cell(v: &Value) -> String {
    match &v.kind {
        None | Some(Kind::Null(_)) => "NULL".to_string(),
        Some(Kind::Integer(i)) => i.to_string(),
        Some(Kind::Real(r)) => format!("{r}"),
        Some(Kind::Text(t)) => t.clone(),
        Some(Kind::Blob(b)) => format!("<{} bytes>", b.len()),
    }
}

/// RFC 4180 CSV: a header row, NULL as an empty field, blobs as hex. Text (and the column
/// names) through [`csv_field`]: a cell a spreadsheet would run as a formula starts with `'`.
pub fn to_csv(response: &QueryResponse) -> String {
    let mut out = String::new();
    let header: Vec<String> = response.columns.iter().map(|c| csv_field(c)).collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for row in &response.rows {
        let fields: Vec<String> = row
            .values
            .iter()
            .map(|v| match &v.kind {
                None | Some(Kind::Null(_)) => String::new(),
                Some(Kind::Integer(i)) => i.to_string(),
                Some(Kind::Real(r)) => format!("{r}"),
                Some(Kind::Text(t)) => csv_field(t),
                Some(Kind::Blob(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
            })
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

pub use modsync_proto::csv::field as csv_field;

/// An aligned plain-text table: a header, a rule, then the rows. Numbers are right-aligned.
pub fn format_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate().take(n) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..n)
        .map(|i| {
            rows.iter().any(|r| r.get(i).is_some_and(|c| c != "NULL"))
                && rows.iter().all(|r| {
                    r.get(i)
                        .is_none_or(|c| c == "NULL" || c.parse::<f64>().is_ok())
                })
        })
        .collect();
    let line = |cells: Vec<String>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if numeric[i] {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_result_names_the_limit_that_cut_it() {
        assert_eq!(
            cut_note(5, 5, "the caps"),
            "the result was cut at 5 rows (--max-rows 5)"
        );
        for (rows, asked) in [(10_000, 0), (7, 9)] {
            let note = cut_note(rows, asked, "the --max-query-rows cap");
            assert!(
                note.contains(&format!("cut at {rows} rows")) && note.contains("--max-query-rows"),
                "{note}"
            );
        }
    }

    #[test]
    fn table_aligns_and_csv_quotes() {
        let t = format_table(
            &["name", "n"],
            &[
                vec!["a".into(), "10".into()],
                vec!["bcd".into(), "2".into()],
            ],
        );
        assert_eq!(t, "name   n\n----  --\na     10\nbcd    2\n");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }

    #[test]
    fn csv_neutralises_formulas_in_text_and_names_and_keeps_numbers() {
        let text = |t: &str| Value {
            kind: Some(Kind::Text(t.into())),
        };
        let response = QueryResponse {
            columns: vec![
                "=name".into(),
                "n".into(),
                "x".into(),
                "t".into(),
                "u".into(),
            ],
            rows: vec![modsync_proto::Row {
                values: vec![
                    text(r#"=HYPERLINK("http://x","click")"#),
                    Value {
                        kind: Some(Kind::Integer(-3)),
                    },
                    Value {
                        kind: Some(Kind::Real(-0.5)),
                    },
                    text("-0.5"),
                    text("@SUM(1+1)"),
                ],
            }],
            truncated: false,
        };
        assert_eq!(
            to_csv(&response),
            "'=name,n,x,t,u\n\"'=HYPERLINK(\"\"http://x\"\",\"\"click\"\")\",-3,-0.5,-0.5,'@SUM(1+1)\n"
        );
    }
}
