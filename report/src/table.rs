//! Query answers as text: an aligned table for the terminal, CSV for files (RFC 4180, no cell
//! a spreadsheet would run as a formula).

use modsync_proto::value::Kind;
use modsync_proto::{QueryResponse, Value};

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
