//! One evaluation of a run ([`MetricsRow`]) and [`METRICS_COLUMNS`], the one list of its fixed
//! columns: their names (the row's JSON keys on the wire, the `metrics` table's columns,
//! `metrics.csv`'s header), order and kind. The coordinator's INSERT and `modsync train`'s CSV
//! are written from the list; tests check it against the row's JSON (here), the proto round trip
//! and the migration (coordinator).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// One evaluation: what `metrics.csv` and the coordinator's `metrics` table hold.
///
/// Its JSON (`MetricRow.row_json` on the wire) reads back leniently, as the coordinator has
/// always read it: serde_json writes NaN and ±inf as `null`, so a real that is `null` or missing
/// reads as NaN (stored as SQL NULL) instead of refusing the row of a diverging run — and with
/// it the checkpoint that travels with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// Optimisation steps completed when this row was taken.
    pub iter: u64,
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub lr: f64,
    /// Training losses at the parameters of this row (the batch of step `iter`).
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub loss_r: f64,
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub loss_b: f64,
    /// Relative L2 error on the test grid.
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub rel_l2: f64,
    /// Mean and max absolute error on the test grid.
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub abs_err: f64,
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub abs_err_max: f64,
    /// Steps skipped as non-finite so far.
    pub skipped_steps: u64,
    /// Seconds of training so far (across resumes).
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub elapsed_s: f64,
    /// Method diagnostics (cosine, norms, mask statistics), by name: not a fixed column (the
    /// table keeps them as one JSON object, the CSV as one column per name).
    #[serde(default, deserialize_with = "nan_if_null_values")]
    pub extra: BTreeMap<String, f64>,
}

/// How to read one fixed column of a row, which also says its kind.
#[derive(Clone, Copy, Debug)]
pub enum ReadMetric {
    /// A count.
    Integer(fn(&MetricsRow) -> u64),
    /// A real number, possibly non-finite (which the coordinator stores as NULL).
    Real(fn(&MetricsRow) -> f64),
}

/// One fixed column of a metrics row.
#[derive(Clone, Copy, Debug)]
pub struct MetricsColumn {
    /// The column's JSON key, its name in the coordinator's `metrics` table and in the CSV
    /// header.
    pub name: &'static str,
    pub read: ReadMetric,
}

/// The value of one column of one row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricValue {
    Integer(u64),
    Real(f64),
}

impl MetricsColumn {
    pub fn value(&self, row: &MetricsRow) -> MetricValue {
        match self.read {
            ReadMetric::Integer(read) => MetricValue::Integer(read(row)),
            ReadMetric::Real(read) => MetricValue::Real(read(row)),
        }
    }

    /// A real column: one that may be non-finite, and one a plot of a metric can show.
    pub fn is_real(&self) -> bool {
        matches!(self.read, ReadMetric::Real(_))
    }
}

/// The fixed columns of a metrics row, in the order of `metrics.csv` and the `metrics` table.
/// Adding a field to [`MetricsRow`] means adding it here and a migration that adds the column
/// (the tests named in the module doc fail until both agree).
pub const METRICS_COLUMNS: [MetricsColumn; 9] = [
    integer("iter", |r| r.iter),
    real("lr", |r| r.lr),
    real("loss_r", |r| r.loss_r),
    real("loss_b", |r| r.loss_b),
    real("rel_l2", |r| r.rel_l2),
    real("abs_err", |r| r.abs_err),
    real("abs_err_max", |r| r.abs_err_max),
    integer("skipped_steps", |r| r.skipped_steps),
    real("elapsed_s", |r| r.elapsed_s),
];

/// The names of the real-valued columns of [`METRICS_COLUMNS`] (all but the integer `iter` and
/// `skipped_steps`), in order: what a chart draws and what may arrive non-finite.
pub fn real_metrics_columns() -> impl Iterator<Item = &'static str> {
    METRICS_COLUMNS
        .iter()
        .filter(|c| c.is_real())
        .map(|c| c.name)
}

const fn integer(name: &'static str, read: fn(&MetricsRow) -> u64) -> MetricsColumn {
    MetricsColumn {
        name,
        read: ReadMetric::Integer(read),
    }
}

const fn real(name: &'static str, read: fn(&MetricsRow) -> f64) -> MetricsColumn {
    MetricsColumn {
        name,
        read: ReadMetric::Real(read),
    }
}

fn nan() -> f64 {
    f64::NAN
}

fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn nan_if_null_values<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let values = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(values
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row whose columns all hold different values, so a column that reads another's field
    /// shows.
    fn distinct_row() -> MetricsRow {
        MetricsRow {
            iter: 7,
            lr: 1e-3,
            loss_r: 0.5,
            loss_b: 0.25,
            rel_l2: 0.125,
            abs_err: 0.0625,
            abs_err_max: 2.0,
            skipped_steps: 3,
            elapsed_s: 1.5,
            extra: [("cos".to_string(), -0.5)].into_iter().collect(),
        }
    }

    #[test]
    fn the_columns_are_the_rows_json_keys_with_their_values() {
        let row = distinct_row();
        let json = serde_json::to_value(&row).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: Vec<&str> = METRICS_COLUMNS.iter().map(|c| c.name).collect();
        expected.push("extra");
        expected.sort_unstable();
        assert_eq!(
            keys, expected,
            "MetricsRow's fields and METRICS_COLUMNS differ"
        );
        for column in &METRICS_COLUMNS {
            let value = match column.value(&row) {
                MetricValue::Integer(n) => serde_json::json!(n),
                MetricValue::Real(x) => serde_json::json!(x),
            };
            assert_eq!(
                json[column.name], value,
                "column {} reads another field",
                column.name
            );
        }
        let values: Vec<MetricValue> = METRICS_COLUMNS.iter().map(|c| c.value(&row)).collect();
        for (i, v) in values.iter().enumerate() {
            assert!(
                !values[..i].contains(v),
                "two columns read the same value {v:?}"
            );
        }
    }

    #[test]
    fn json_reads_back_with_non_finite_reals_as_nan() {
        let row = distinct_row();
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(serde_json::from_str::<MetricsRow>(&json).unwrap(), row);

        // Every real column and diagnostic non-finite: written as null, read back as NaN.
        let mut json = serde_json::to_value(&row).unwrap();
        for column in &METRICS_COLUMNS {
            if column.is_real() {
                json[column.name] = serde_json::Value::Null;
            }
        }
        json["extra"]["cos"] = serde_json::Value::Null;
        let back: MetricsRow = serde_json::from_value(json.clone()).unwrap();
        for column in &METRICS_COLUMNS {
            match column.value(&back) {
                MetricValue::Real(x) => assert!(x.is_nan(), "{}: {x}", column.name),
                v => assert_eq!(v, column.value(&row)),
            }
        }
        assert!(back.extra["cos"].is_nan());

        // A missing real reads as NaN too; a missing count is refused.
        json.as_object_mut().unwrap().remove("lr");
        assert!(
            serde_json::from_value::<MetricsRow>(json.clone())
                .unwrap()
                .lr
                .is_nan()
        );
        json.as_object_mut().unwrap().remove("skipped_steps");
        assert!(serde_json::from_value::<MetricsRow>(json).is_err());
    }
}
