//! `modsync sql "QUERY" [--csv] [--db FILE]`: read-only SQL on the coordinator's store (or on a
//! store file, read-only), as an aligned table or as CSV with a header row. Anything that
//! writes is refused, by the same guard either way (`coordinator::query`).

use anyhow::{Result, bail};
use clap::Args;
use report::table::{cell, format_table, to_csv};

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
}
