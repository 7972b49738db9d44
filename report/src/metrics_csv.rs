//! `metrics.csv` of `modsync train --out`: one line per evaluation, the header first. The fixed
//! columns are trainer-core's `METRICS_COLUMNS`, then one column per diagnostic the first row
//! has (`MetricsRow::extra`, by name), so it holds what the coordinator's `metrics` table does.

use std::io::Write;

use trainer_core::{METRICS_COLUMNS, MetricValue, MetricsRow};

use crate::files::csv_number;

/// Writes rows as they come (and flushes each), so a killed run keeps its history.
pub struct MetricsCsv<W: Write> {
    out: W,
    /// The diagnostics' columns, fixed by the first row (the header is written with it); a
    /// later row's diagnostic missing there is an empty cell, one not there is left out.
    extra_columns: Option<Vec<String>>,
}

impl<W: Write> MetricsCsv<W> {
    pub fn new(out: W) -> Self {
        MetricsCsv {
            out,
            extra_columns: None,
        }
    }

    pub fn write(&mut self, row: &MetricsRow) -> std::io::Result<()> {
        let extra = match &self.extra_columns {
            Some(extra) => extra,
            None => {
                let extra: Vec<String> = row.extra.keys().cloned().collect();
                // Names through the shared CSV field (quoted, never a formula).
                let header: Vec<String> = METRICS_COLUMNS
                    .iter()
                    .map(|c| c.name)
                    .chain(extra.iter().map(String::as_str))
                    .map(modsync_proto::csv::field)
                    .collect();
                writeln!(self.out, "{}", header.join(","))?;
                self.extra_columns.insert(extra)
            }
        };
        let cells: Vec<String> = METRICS_COLUMNS
            .iter()
            .map(|c| match c.value(row) {
                MetricValue::Integer(n) => n.to_string(),
                MetricValue::Real(x) => csv_number(x),
            })
            .chain(
                extra
                    .iter()
                    .map(|k| row.extra.get(k).map_or(String::new(), |v| csv_number(*v))),
            )
            .collect();
        writeln!(self.out, "{}", cells.join(","))?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(iter: u64, extra: &[(&str, f64)]) -> MetricsRow {
        MetricsRow {
            iter,
            lr: 1e-3,
            loss_r: 0.5,
            loss_b: f64::NAN,
            rel_l2: 0.125,
            abs_err: 1.5e-7,
            abs_err_max: f64::INFINITY,
            skipped_steps: 3,
            elapsed_s: 2.0,
            extra: extra.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    /// The file `modsync train --out` has always written: this header, in this order, numbers
    /// in shortest round-trip form, diagnostics by the first row's names.
    #[test]
    fn writes_the_header_then_a_line_per_row() {
        let mut csv = MetricsCsv::new(Vec::new());
        csv.write(&row(0, &[("cos", -0.5), ("a", 1.0)])).unwrap();
        csv.write(&row(100, &[("cos", 0.25), ("new", 9.0)]))
            .unwrap();
        let text = String::from_utf8(csv.out).unwrap();
        assert_eq!(
            text,
            "iter,lr,loss_r,loss_b,rel_l2,abs_err,abs_err_max,skipped_steps,elapsed_s,a,cos\n\
             0,0.001,0.5,NaN,0.125,0.00000015,inf,3,2,1,-0.5\n\
             100,0.001,0.5,NaN,0.125,0.00000015,inf,3,2,,0.25\n"
        );
    }
}
