//! What `modsync history` makes of a sweep: one metric of the metric rows (a column such as `rel_l2` or `loss_b`, or a diagnostic such as `cos_rb`) over
//! the iterations, per method and width, the median over seeds with the seeds' range — how a
//! capacity failure unfolds, e.g. cos(g_r, g_b) going to 0 at width 512. As CSV and
//! as an SVG file (one panel per method, one line per width: the median, the seeds' band).
//! `--per-seed` keeps the seeds apart (one panel per method and seed): a failure that only one
//! seed shows is averaged away by the median. A sweep with extra axes or variants (issue 27)
//! has one panel per method and series (`modsync+dcgd · lr=0.001`), and its CSV a `series`
//! column; a sweep without them looks as before.
//!
//! `--metric` may also name a kind of diagnostics (`trainer_core::diagnostic_kind`, the same
//! grouping as the dashboard's job page): `cosines`, `kept`, `exclusive`, `orthogonality`,
//! `norms`, `sparsity` (L_s), `reweighting` (R_w), `weights` (λ), `resets` or `other`. Then
//! every diagnostic of that kind the sweep has is drawn: one panel per method and width (and
//! seed with `--per-seed`), one line per member (`kept_frac_l0`, `kept_frac_l1`, …: the same
//! colour in every panel), on the kind's axis — at least 0..1 for fractions and −1..1 for
//! cosines, log for norms, log once the values span more than 20× for L_s, R_w and λ — with
//! the panels of one method in a row, one column per width (with one width, the methods side
//! by side), and the legend below the panels. Resets are counters: a mark where the count
//! grows (y: resets so far, from 0), no line. `DIR/<kind>.csv` then has a `member` column
//! naming the diagnostic of each row.

mod chart;

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use trainer_core::diagnostic_kind::{self, DiagnosticKind};
use trainer_core::real_metrics_columns;

use self::chart::{ChartLine, ChartStyle};
use crate::files::csv_number;
use crate::source::Source;
use crate::table::{cell, csv_field};

/// What to draw: `modsync history`'s arguments.
pub struct Request<'a> {
    pub sweep: &'a str,
    /// A metric column, a diagnostic, or a kind of diagnostics.
    pub metric: &'a str,
    /// Only these methods; every method when empty.
    pub methods: &'a [String],
    /// |value| instead of the value.
    pub abs: bool,
    /// One line per seed instead of the median over seeds.
    pub per_seed: bool,
}

/// The files of a history: `<stem>.csv` and `<stem>.svg`.
pub struct Files {
    pub stem: String,
    pub csv: String,
    pub svg: String,
    /// How many lines they hold.
    pub lines: usize,
}

/// Names that can be put into the SQL text: the metric is quoted into a JSON path, so it must
/// be a plain identifier.
pub fn check_metric(metric: &str) -> Result<()> {
    let ok = !metric.is_empty()
        && metric.len() <= 64
        && metric
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        bail!("invalid --metric: {metric:?} is not a metric name (letters, digits and _)");
    }
    Ok(())
}

/// The SELECT returning (pde, method, series, width, seed, iter, value) of every finite value.
fn select(sweep: &str, metric: &str) -> String {
    // A real column of the metrics table is read directly; anything else is looked up in the
    // row's diagnostics (`extra`).
    let value = if real_metrics_columns().any(|c| c == metric) {
        format!("m.{metric}")
    } else {
        format!("json_extract(m.extra, '$.{metric}')")
    };
    format!(
        "SELECT j.pde, j.method, j.series, j.width, j.seed, m.iter, {value} AS v \
         FROM metrics m JOIN jobs j ON j.id = m.job_id \
         WHERE j.sweep_id = '{}' AND v IS NOT NULL \
         ORDER BY j.pde, j.method, j.series, j.width, m.iter, j.seed",
        sweep.replace('\'', "''")
    )
}

/// One point of a line: an iteration with the median and range over seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryPoint {
    pub iter: u64,
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// Which values one line summarises: a method (in a series, where the sweep has axes) at a
/// width, with `--per-seed` one seed, and for a kind of diagnostics one member of it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct LineKey {
    pde: String,
    method: String,
    /// The job's axis values or variant name (`jobs.series`); empty in a sweep without axes.
    series: String,
    seed: Option<u64>,
    width: u64,
    member: Option<String>,
}

impl LineKey {
    /// The panel: per method (lines by width), or per method and width (lines by member).
    fn panel(&self) -> String {
        let mut panel = format!("{}, {}", self.pde, self.method);
        if !self.series.is_empty() {
            panel.push_str(&format!(" · {}", self.series));
        }
        if self.member.is_some() {
            panel.push_str(&format!(", width {}", self.width));
        }
        if let Some(seed) = self.seed {
            panel.push_str(&format!(", seed {seed}"));
        }
        panel
    }

    /// The line's name in the legend.
    fn name(&self) -> String {
        match &self.member {
            Some(member) => member.clone(),
            None => format!("width {}", self.width),
        }
    }
}

/// Each line's points in iteration order.
type Lines = BTreeMap<LineKey, Vec<HistoryPoint>>;

/// Which rows to keep and how to group them.
struct Grouping<'a> {
    methods: &'a [String],
    abs: bool,
    per_seed: bool,
}

/// The query's (pde, method, series, width, seed, iter, value) rows as lines: values of one
/// line and iteration summarised over seeds (one value each with `per_seed`). An eighth cell,
/// where there is one, names the member of a kind the value is of.
fn group_rows(rows: &[Vec<String>], how: &Grouping) -> Lines {
    let mut samples: BTreeMap<LineKey, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for row in rows {
        let cell = |i: usize| row.get(i).cloned().unwrap_or_default();
        let method = cell(1);
        if !how.methods.is_empty() && !how.methods.contains(&method) {
            continue;
        }
        let (Ok(width), Ok(seed), Ok(iter), Ok(mut v)) = (
            cell(3).parse::<u64>(),
            cell(4).parse::<u64>(),
            cell(5).parse::<u64>(),
            cell(6).parse::<f64>(),
        ) else {
            continue;
        };
        if how.abs {
            v = v.abs();
        }
        let key = LineKey {
            pde: cell(0),
            method,
            series: cell(2),
            seed: how.per_seed.then_some(seed),
            width,
            member: row.get(7).cloned(),
        };
        samples
            .entry(key)
            .or_default()
            .entry(iter)
            .or_default()
            .push(v);
    }
    samples
        .into_iter()
        .map(|(key, by_iter)| {
            let points = by_iter
                .into_iter()
                .map(|(iter, values)| summarise(iter, values))
                .collect();
            (key, points)
        })
        .collect()
}

/// The SELECT of the distinct diagnostic names of a sweep's metric rows.
fn select_names(sweep: &str) -> String {
    format!(
        "SELECT DISTINCT e.key FROM metrics m JOIN jobs j ON j.id = m.job_id, json_each(m.extra) e \
         WHERE j.sweep_id = '{}' ORDER BY e.key",
        sweep.replace('\'', "''")
    )
}

/// The SELECT returning (pde, method, series, width, seed, iter, value) of every finite value of the
/// diagnostic `name` (any text: it is a quoted SQL string, not a JSON path).
fn select_member(sweep: &str, name: &str) -> String {
    format!(
        "SELECT j.pde, j.method, j.series, j.width, j.seed, m.iter, e.value AS v \
         FROM metrics m JOIN jobs j ON j.id = m.job_id, json_each(m.extra) e \
         WHERE j.sweep_id = '{}' AND e.key = '{}' AND v IS NOT NULL \
         ORDER BY j.pde, j.method, j.series, j.width, m.iter, j.seed",
        sweep.replace('\'', "''"),
        name.replace('\'', "''")
    )
}

/// Runs `query` and returns its rows as text, refusing a cut answer.
fn rows_of(source: &mut Source, sweep: &str, query: &str) -> Result<Vec<Vec<String>>> {
    let response = source.query("history", query, 0)?;
    if response.truncated {
        bail!(
            "history: the rows of sweep {sweep} were cut at {}; ask fewer with --method",
            source.row_cap_note()
        );
    }
    Ok(response
        .rows
        .iter()
        .map(|r| r.values.iter().map(cell).collect())
        .collect())
}

/// The diagnostics of `kind` in sweep `sweep`, in the order of their lines.
fn members(source: &mut Source, sweep: &str, kind: DiagnosticKind) -> Result<Vec<String>> {
    let names: Vec<String> = rows_of(source, sweep, &select_names(sweep))?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
    let mut of_kind: Vec<String> = names
        .iter()
        .filter(|n| DiagnosticKind::of(n) == kind)
        .cloned()
        .collect();
    if of_kind.is_empty() {
        bail!(
            "history: sweep {sweep} has no diagnostics of kind {} (its diagnostics: {})",
            kind.name(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    }
    diagnostic_kind::sort_members(&mut of_kind);
    Ok(of_kind)
}

/// The history `request` asks for, read from `source`.
pub fn history(source: &mut Source, request: &Request) -> Result<Files> {
    let Request {
        sweep,
        metric,
        abs,
        per_seed,
        ..
    } = *request;
    check_metric(metric)?;
    let kind = DiagnosticKind::from_name(metric);
    // One query per member of a kind (each under the row cap by itself), its name appended.
    let (rows, members) = match kind {
        Some(kind) => {
            let members = members(source, sweep, kind)?;
            let mut rows = Vec::new();
            for member in &members {
                let query = select_member(sweep, member);
                rows.extend(rows_of(source, sweep, &query)?.into_iter().map(|mut r| {
                    r.push(member.clone());
                    r
                }));
            }
            (rows, members)
        }
        None => (rows_of(source, sweep, &select(sweep, metric))?, Vec::new()),
    };
    let how = Grouping {
        methods: request.methods,
        abs,
        per_seed,
    };
    let lines = group_rows(&rows, &how);
    if lines.is_empty() {
        bail!("history: sweep {sweep} has no metric rows with {metric} (for the methods asked)");
    }
    let mut stem = if abs {
        format!("abs_{metric}")
    } else {
        metric.to_string()
    };
    if per_seed {
        stem.push_str("_per_seed");
    }
    Ok(Files {
        stem,
        csv: to_csv(&lines),
        svg: draw(request, kind, &members, &lines),
        lines: lines.len(),
    })
}

/// The lines as one SVG file: a panel per method (and width, for a kind), on the axis of the
/// metric or of its kind.
fn draw(
    request: &Request,
    kind: Option<DiagnosticKind>,
    members: &[String],
    lines: &Lines,
) -> String {
    let mut widths: Vec<u64> = lines.keys().map(|k| k.width).collect();
    widths.sort_unstable();
    widths.dedup();
    let drawn: Vec<ChartLine> = lines
        .iter()
        .map(|(key, points)| ChartLine {
            panel: key.panel(),
            name: key.name(),
            // Lines by width: the width's place; by member: the member's.
            style: match &key.member {
                Some(m) => members.iter().position(|x| x == m).unwrap_or(0),
                None => widths.binary_search(&key.width).unwrap_or(0),
            },
            points,
        })
        .collect();
    let base_label = match kind {
        // The job page draws counters in lanes (y: the layer); here too, a lane per member.
        Some(kind) => kind.y_label().to_string(),
        None => request.metric.to_string(),
    };
    let label = if request.abs {
        format!("|{base_label}|")
    } else {
        base_label
    };
    let style = match kind {
        Some(kind) => ChartStyle {
            y_label: &label,
            scale: kind.scale(),
            // |x| of a cosine lies in 0..1.
            y_range: match kind.y_range() {
                Some((lo, hi)) if request.abs => Some((lo.max(0.0), hi)),
                range => range,
            },
            counter: kind.is_counter(),
            // A method's panels in one row, a column per width; with one width, the methods
            // side by side.
            columns: (widths.len() > 1).then(|| widths.len().min(4)),
        },
        None => ChartStyle::metric(&label),
    };
    let title = match kind {
        Some(kind) => format!("{}: {}", request.sweep, kind.title()),
        None => format!("{}: {label}", request.sweep),
    };
    chart::svg(&title, &style, &drawn)
}

/// The median (mean of the middle two for an even count) and range of one iteration's values.
fn summarise(iter: u64, mut values: Vec<f64>) -> HistoryPoint {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    HistoryPoint {
        iter,
        n,
        median,
        min: values[0],
        max: values[n - 1],
    }
}

/// The lines as CSV: text through the shared [`csv_field`] (quoted where needed, never a
/// formula), numbers exact.
fn to_csv(lines: &Lines) -> String {
    // The seed column is empty where a line pools the seeds; a kind's lines name their member;
    // a series column only where the sweep has series, so a sweep without axes reads as before.
    let by_member = lines.keys().any(|k| k.member.is_some());
    let by_series = lines.keys().any(|k| !k.series.is_empty());
    let mut out = format!(
        "pde,method,{}seed,width,{}iter,n,median,min,max\n",
        if by_series { "series," } else { "" },
        if by_member { "member," } else { "" }
    );
    for (key, points) in lines {
        let seed = key.seed.map(|s| s.to_string()).unwrap_or_default();
        let series = match by_series {
            true => format!("{},", csv_field(&key.series)),
            false => String::new(),
        };
        let member = match &key.member {
            Some(m) => format!("{},", csv_field(m)),
            None => String::new(),
        };
        for p in points {
            out.push_str(&format!(
                "{},{},{series}{seed},{},{member}{},{},{},{},{}\n",
                csv_field(&key.pde),
                csv_field(&key.method),
                key.width,
                p.iter,
                p.n,
                csv_number(p.median),
                csv_number(p.min),
                csv_number(p.max)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges_over_seeds() {
        let p = summarise(100, vec![0.3, 0.1, 0.2]);
        assert_eq!((p.n, p.median, p.min, p.max), (3, 0.2, 0.1, 0.3));
        let p = summarise(100, vec![0.4, 0.1]);
        assert_eq!((p.n, p.median, p.min, p.max), (2, 0.25, 0.1, 0.4));
    }

    fn row(method: &str, width: u64, seed: u64, iter: u64, v: f64) -> Vec<String> {
        row_in("", method, width, seed, iter, v)
    }

    /// A row of a job in `series` (empty: a sweep without axes).
    fn row_in(series: &str, method: &str, width: u64, seed: u64, iter: u64, v: f64) -> Vec<String> {
        [
            "burgers",
            method,
            series,
            &width.to_string(),
            &seed.to_string(),
            &iter.to_string(),
            &v.to_string(),
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn lines_pool_seeds_or_keep_them_apart() {
        let rows = vec![
            row("dcgd", 512, 0, 100, -0.9),
            row("dcgd", 512, 1, 100, -0.5),
            row("dcgd", 512, 0, 200, -0.1),
            row("adam", 512, 0, 100, 0.3),
            vec![
                "burgers".into(),
                "dcgd".into(),
                "".into(),
                "512".into(),
                "0".into(),
                "300".into(),
                "NULL".into(),
            ],
        ];
        let dcgd = ["dcgd".to_string()];
        let pooled = group_rows(
            &rows,
            &Grouping {
                methods: &dcgd,
                abs: false,
                per_seed: false,
            },
        );
        assert_eq!(pooled.len(), 1, "adam filtered out, seeds pooled");
        let (key, points) = pooled.iter().next().unwrap();
        assert_eq!((key.panel(), key.seed), ("burgers, dcgd".to_string(), None));
        assert_eq!(points[0], summarise(100, vec![-0.9, -0.5]));
        assert_eq!(points.len(), 2, "a NULL value is no point");

        let apart = group_rows(
            &rows,
            &Grouping {
                methods: &dcgd,
                abs: true,
                per_seed: true,
            },
        );
        let panels: Vec<String> = apart.keys().map(LineKey::panel).collect();
        assert_eq!(panels, ["burgers, dcgd, seed 0", "burgers, dcgd, seed 1"]);
        let seed0: Vec<(u64, f64)> = apart
            .values()
            .next()
            .unwrap()
            .iter()
            .map(|p| (p.iter, p.median))
            .collect();
        assert_eq!(seed0, [(100, 0.9), (200, 0.1)]);
        let csv = to_csv(&apart);
        assert!(
            csv.starts_with(
                "pde,method,seed,width,iter,n,median,min,max\nburgers,dcgd,0,512,100,1,0.9,"
            ),
            "{csv}"
        );
    }

    #[test]
    fn csv_text_never_starts_a_formula_and_numbers_stay_numbers() {
        let rows = vec![
            ["=1+1", "@SUM(1+1)", "", "8", "0", "100", "-0.5"]
                .map(String::from)
                .to_vec(),
        ];
        let lines = group_rows(
            &rows,
            &Grouping {
                methods: &[],
                abs: false,
                per_seed: false,
            },
        );
        assert_eq!(
            to_csv(&lines),
            "pde,method,seed,width,iter,n,median,min,max\n'=1+1,'@SUM(1+1),,8,100,1,-0.5,-0.5,-0.5\n"
        );
    }

    /// A kind's rows carry their member: one line per member in a panel per method and width,
    /// named by the member in the legend and in the CSV's `member` column.
    #[test]
    fn a_kind_draws_one_line_per_member_in_a_panel_per_method_and_width() {
        let member = |mut r: Vec<String>, m: &str| {
            r.push(m.to_string());
            r
        };
        let rows = vec![
            member(row("modsync+dcgd", 8, 0, 100, 0.9), "kept_frac_l0"),
            member(row("modsync+dcgd", 8, 1, 100, 0.7), "kept_frac_l0"),
            member(row("modsync+dcgd", 8, 0, 100, 0.5), "kept_frac_l1"),
            member(row("modsync+dcgd", 16, 0, 100, 0.4), "kept_frac_l0"),
        ];
        let lines = group_rows(
            &rows,
            &Grouping {
                methods: &[],
                abs: false,
                per_seed: false,
            },
        );
        let drawn: Vec<(String, String)> = lines.keys().map(|k| (k.panel(), k.name())).collect();
        assert_eq!(
            drawn,
            [
                (
                    "burgers, modsync+dcgd, width 8".into(),
                    "kept_frac_l0".into()
                ),
                (
                    "burgers, modsync+dcgd, width 8".into(),
                    "kept_frac_l1".into()
                ),
                (
                    "burgers, modsync+dcgd, width 16".into(),
                    "kept_frac_l0".into()
                ),
            ]
        );
        let first = lines.values().next().unwrap();
        assert_eq!(first[0], summarise(100, vec![0.9, 0.7]), "seeds pooled");
        let csv = to_csv(&lines);
        assert!(
            csv.starts_with(
                "pde,method,seed,width,member,iter,n,median,min,max\n\
                 burgers,modsync+dcgd,,8,kept_frac_l0,100,2,0.8,0.7,0.9\n"
            ),
            "{csv}"
        );
        // Per seed: the seed in the panel too.
        let apart = group_rows(
            &rows,
            &Grouping {
                methods: &[],
                abs: false,
                per_seed: true,
            },
        );
        assert_eq!(
            apart.keys().next().unwrap().panel(),
            "burgers, modsync+dcgd, width 8, seed 0"
        );
    }

    /// A sweep with an axis: one panel per method and series, the seeds of a series pooled
    /// (never across series), and a `series` column in the CSV.
    #[test]
    fn a_sweep_with_series_has_a_panel_per_method_and_series() {
        let rows = vec![
            row_in("lr=0.001", "dcgd", 64, 0, 100, 0.2),
            row_in("lr=0.001", "dcgd", 64, 1, 100, 0.4),
            row_in("lr=0.003", "dcgd", 64, 0, 100, 0.9),
            row_in("lr=0.003", "dcgd", 64, 1, 100, 0.7),
        ];
        let lines = group_rows(
            &rows,
            &Grouping {
                methods: &[],
                abs: false,
                per_seed: false,
            },
        );
        let drawn: Vec<(String, Vec<HistoryPoint>)> = lines
            .iter()
            .map(|(k, points)| (k.panel(), points.clone()))
            .collect();
        assert_eq!(
            drawn,
            [
                (
                    "burgers, dcgd · lr=0.001".to_string(),
                    vec![summarise(100, vec![0.2, 0.4])]
                ),
                (
                    "burgers, dcgd · lr=0.003".to_string(),
                    vec![summarise(100, vec![0.9, 0.7])]
                ),
            ]
        );
        assert_eq!(
            to_csv(&lines),
            "pde,method,series,seed,width,iter,n,median,min,max\n\
             burgers,dcgd,lr=0.001,,64,100,2,0.30000000000000004,0.2,0.4\n\
             burgers,dcgd,lr=0.003,,64,100,2,0.8,0.7,0.9\n"
        );
    }

    #[test]
    fn metric_names_cannot_reach_the_sql_text() {
        assert!(check_metric("cos_rb").is_ok());
        for bad in ["", "cos') OR 1=1 --", "a.b", "x y"] {
            let e = check_metric(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid --metric"), "{e}");
        }
        // Columns are read directly, diagnostics through the JSON of the row.
        assert!(select("s", "loss_b").contains("m.loss_b AS v"));
        assert!(select("s", "cos_rb").contains("json_extract(m.extra, '$.cos_rb')"));
        assert!(select("it's", "rel_l2").contains("'it''s'"));
        // A kind's members come from the store: any text, always quoted as an SQL string.
        let q = select_member("s", "kept') OR 1=1 --");
        assert!(q.contains("e.key = 'kept'') OR 1=1 --'"), "{q}");
        assert!(select_names("it's").contains("'it''s'"));
    }
}
