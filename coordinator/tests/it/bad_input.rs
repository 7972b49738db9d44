//! Bad input over gRPC, against a running coordinator: out-of-range and oversized values,
//! empty and huge strings, NaN/inf in metrics and results. Every call must come back (bounded
//! wait) with a clear status naming the field — INVALID_ARGUMENT, RESOURCE_EXHAUSTED, or tonic's
//! OUT_OF_RANGE for a message over `max_message_bytes` — and the server must keep serving.
//! Nothing non-finite may reach the store.

use std::sync::Mutex;
use std::time::Duration;

use modsync_proto::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tonic::{Code, Status};
use trainer_core::TrainConfig;

use crate::common::*;

/// Hang guard for one call.
const CALL: Duration = Duration::from_secs(20);

async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout(CALL, call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {CALL:?} (hang)"))
        .map(tonic::Response::into_inner)
}

/// Asserts a refusal with `code` whose message names `field`, and a short message.
fn refused<T: std::fmt::Debug>(r: Result<T, Status>, code: Code, field: &str) {
    let status = match r {
        Ok(v) => panic!("expected {code:?} naming {field}, got Ok({v:?})"),
        Err(s) => s,
    };
    assert_eq!(
        status.code(),
        code,
        "naming {field}: {}",
        status.message().chars().take(300).collect::<String>()
    );
    assert!(
        status.message().contains(field),
        "{code:?} does not name {field}: {}",
        status.message().chars().take(300).collect::<String>()
    );
    assert!(
        status.message().len() <= 2_048,
        "status message of {} bytes",
        status.message().len()
    );
}

/// A server that still answers, and whose store holds nothing non-finite.
async fn healthy_and_finite(c: &mut Client) {
    bounded("ListSweeps", c.list_sweeps(ListSweepsRequest {}))
        .await
        .expect("the server still answers");
    let inf = "1.7976931348623157e308";
    let non_finite: Vec<String> = real_columns()
        .iter()
        .map(|c| format!("abs({c}) > {inf}"))
        .collect();
    let bad_metrics = sql_i64(
        c,
        &format!(
            "SELECT COUNT(*) FROM metrics WHERE {} OR NOT json_valid(extra)",
            non_finite.join(" OR ")
        ),
    )
    .await;
    assert_eq!(bad_metrics, 0, "a non-finite metric was stored");
    let bad_results = sql_i64(
        c,
        &format!(
            "SELECT COUNT(*) FROM results WHERE rel_l2_best IS NULL OR abs(rel_l2_best) > {inf} \
             OR abs(rel_l2_min_loss) > {inf} OR abs(rel_l2_last) > {inf} \
             OR abs(abs_err_best) > {inf} OR abs(abs_err_max_best) > {inf} \
             OR abs(wall_s) > {inf} OR abs(iters_per_s) > {inf} OR NOT json_valid(result)"
        ),
    )
    .await;
    assert_eq!(bad_results, 0, "a non-finite result was stored");
}

fn progress(job: &Job, metrics: Vec<MetricRow>, checkpoint: Vec<u8>) -> ReportProgressRequest {
    ReportProgressRequest {
        job_id: job.job_id,
        token: job.token,
        worker_id: "w".into(),
        metrics,
        checkpoint,
    }
}

fn row(iter: u64) -> MetricRow {
    let r = trainer_core::MetricsRow {
        iter,
        lr: 1e-3,
        loss_r: 0.5,
        loss_b: 0.25,
        rel_l2: 0.1,
        abs_err: 0.01,
        abs_err_max: 0.2,
        skipped_steps: 0,
        elapsed_s: 1.0,
        extra: Default::default(),
    };
    MetricRow {
        row_json: serde_json::to_string(&r).unwrap(),
    }
}

#[tokio::test]
async fn oversized_reports_are_resource_exhausted_and_store_nothing() {
    let server = Server::start(|c| {
        c.max_message_bytes = 4 << 20;
        c.max_checkpoint_bytes = 64 * 1024;
        c.max_metric_rows = 1_000;
    })
    .await;
    let mut c = server.client().await;
    submit(&mut c, spec("big")).await;
    let job = lease(&mut c, "w").await.unwrap();

    // A checkpoint over --max-checkpoint-bytes: refused before it is even decoded.
    let r = bounded(
        "ReportProgress",
        c.report_progress(progress(&job, vec![row(0)], vec![0u8; 64 * 1024 + 1])),
    )
    .await;
    refused(r, Code::ResourceExhausted, "checkpoint");
    // More metric rows than --max-metric-rows.
    let rows: Vec<MetricRow> = (0..1_001).map(row).collect();
    let r = bounded(
        "ReportProgress",
        c.report_progress(progress(&job, rows.clone(), Vec::new())),
    )
    .await;
    refused(r, Code::ResourceExhausted, "metrics");
    // One row's JSON over its cap.
    let mut fat = row(5);
    fat.row_json = format!("{} {}", fat.row_json, " ".repeat(70_000));
    let r = bounded(
        "ReportProgress",
        c.report_progress(progress(&job, vec![fat], Vec::new())),
    )
    .await;
    refused(r, Code::InvalidArgument, "metrics[0].row_json");
    // A whole message over --max-message-bytes: tonic refuses it while decoding.
    let r = bounded(
        "ReportProgress",
        c.report_progress(progress(&job, Vec::new(), vec![7u8; 5 << 20])),
    )
    .await;
    let s = r.unwrap_err();
    assert_eq!(s.code(), Code::OutOfRange, "{}", s.message());
    assert!(s.message().contains("too large"), "{}", s.message());
    // Iterations no run can reach: in a row's JSON (the only copy of a row's iteration on the
    // wire) or in the checkpoint's header (the only copy of its iteration).
    let mut far = row(0);
    far.row_json = far
        .row_json
        .replacen("\"iter\":0", &format!("\"iter\":{}", u64::MAX), 1);
    let r = bounded(
        "ReportProgress",
        c.report_progress(progress(&job, vec![row(1), far], Vec::new())),
    )
    .await;
    refused(r, Code::InvalidArgument, "metrics[1].row_json.iter");
    let beyond = trainer_core::config::MAX_ITERS + 1;
    let r = bounded(
        "ReportProgress",
        c.report_progress(progress(&job, vec![row(1)], checkpoint_bytes(&job, beyond))),
    )
    .await;
    refused(r, Code::InvalidArgument, "checkpoint.iter");
    // A result JSON over its cap.
    let r = bounded(
        "CompleteJob",
        c.complete_job(CompleteJobRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: "w".into(),
            result_json: " ".repeat(2 << 20),
            device: "cpu".into(),
        }),
    )
    .await;
    refused(r, Code::InvalidArgument, "result_json");

    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM metrics").await, 0);
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM checkpoints").await, 0);
    // Exactly at the limits is fine, and the lease is still ours.
    let rows: Vec<MetricRow> = (0..1_000).map(row).collect();
    bounded(
        "ReportProgress",
        c.report_progress(progress(&job, rows, Vec::new())),
    )
    .await
    .unwrap();
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM metrics").await, 1_000);
    healthy_and_finite(&mut c).await;
}

#[tokio::test]
async fn out_of_range_sweeps_and_empty_or_huge_strings_are_invalid_argument() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    let huge = "p".repeat(8 << 20);
    let cases: Vec<(SweepSpec, &str)> = vec![
        (
            SweepSpec {
                widths: vec![8, u64::MAX],
                ..spec("a")
            },
            "widths[1]",
        ),
        (
            SweepSpec {
                widths: vec![16_385],
                ..spec("a")
            },
            "widths[0]",
        ),
        (
            SweepSpec {
                widths: vec![16_384],
                base_config_json: r#"{"depth": 64}"#.into(),
                ..spec("a")
            },
            "widths[0]",
        ),
        (
            SweepSpec {
                base_config_json: r#"{"iters": 1000000000000}"#.into(),
                ..spec("a")
            },
            "base_config.iters",
        ),
        (
            SweepSpec {
                base_config_json: r#"{"iters": 1e30}"#.into(),
                ..spec("a")
            },
            "base_config.iters",
        ),
        (
            SweepSpec {
                base_config_json: r#"{"lr": null}"#.into(),
                ..spec("a")
            },
            "base_config.lr",
        ),
        (
            SweepSpec {
                base_config_json: r#"{"lr": 1e999}"#.into(),
                ..spec("a")
            },
            "base_config_json",
        ),
        (
            SweepSpec {
                base_config_json: r#"{"lr": NaN}"#.into(),
                ..spec("a")
            },
            "base_config_json",
        ),
        (
            SweepSpec {
                seeds: (0..400).collect(),
                widths: (1..=300).collect(),
                ..spec("a")
            },
            "grid",
        ),
        (spec(""), "name"),
        (
            SweepSpec {
                pdes: vec![String::new()],
                ..spec("a")
            },
            "pdes[0]",
        ),
        (
            SweepSpec {
                methods: vec![],
                ..spec("a")
            },
            "methods",
        ),
        (
            SweepSpec {
                pdes: vec![huge.clone()],
                ..spec("a")
            },
            "pdes[0]",
        ),
        (
            SweepSpec {
                methods: vec!["adam".into(), huge.clone()],
                ..spec("a")
            },
            "methods[1]",
        ),
        (spec(&huge), "name"),
        (
            SweepSpec {
                base_config_json: format!(r#"{{"{huge}": 1}}"#),
                ..spec("a")
            },
            "base_config.",
        ),
        (
            SweepSpec {
                base_config_json: format!(r#"{{"precision": "{huge}"}}"#),
                ..spec("a")
            },
            "base_config.precision",
        ),
        (
            SweepSpec {
                max_attempts: u32::MAX,
                ..spec("a")
            },
            "max_attempts",
        ),
    ];
    for (spec, field) in cases {
        let r = bounded(
            "SubmitSweep",
            c.submit_sweep(SubmitSweepRequest { spec: Some(spec) }),
        )
        .await;
        refused(r, Code::InvalidArgument, field);
    }
    refused(
        bounded(
            "SubmitSweep",
            c.submit_sweep(SubmitSweepRequest { spec: None }),
        )
        .await,
        Code::InvalidArgument,
        "spec",
    );
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM sweeps").await, 0);

    // Empty and huge names on the worker side.
    for (worker_id, host, field) in [
        ("", "h", "worker_id"),
        ("   ", "h", "worker_id"),
        (huge.as_str(), "h", "worker_id"),
        ("w", huge.as_str(), "host"),
    ] {
        let r = bounded(
            "LeaseJob",
            c.lease_job(LeaseJobRequest {
                worker_id: worker_id.into(),
                host: host.into(),
                device: "cpu".into(),
                ..Default::default()
            }),
        )
        .await;
        refused(r, Code::InvalidArgument, field);
    }
    for id in ["", huge.as_str()] {
        let r = bounded(
            "GetSweep",
            c.get_sweep(GetSweepRequest {
                sweep_id: id.into(),
            }),
        )
        .await;
        let s = r.unwrap_err();
        assert!(
            matches!(s.code(), Code::InvalidArgument | Code::NotFound),
            "{s:?}"
        );
        assert!(s.message().len() <= 2_048, "{} bytes", s.message().len());
    }
    refused(
        bounded(
            "Query",
            c.query(QueryRequest {
                sql: String::new(),
                max_rows: 0,
            }),
        )
        .await,
        Code::InvalidArgument,
        "sql",
    );

    // A leased job: empty result, huge error message.
    submit(&mut c, spec("ok")).await;
    let job = lease(&mut c, "w").await.unwrap();
    let r = bounded(
        "CompleteJob",
        c.complete_job(CompleteJobRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: "w".into(),
            result_json: String::new(),
            device: "cpu".into(),
        }),
    )
    .await;
    refused(r, Code::InvalidArgument, "result_json");
    bounded(
        "FailJob",
        c.fail_job(FailJobRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: "w".into(),
            error: "e".repeat(8 << 20),
        }),
    )
    .await
    .expect("a long error is kept, cut");
    let kept = sql_i64(
        &mut c,
        &format!(
            "SELECT length(last_error) FROM jobs WHERE id = {}",
            job.job_id
        ),
    )
    .await;
    assert!((1..=16 * 1024).contains(&kept), "{kept}");
    healthy_and_finite(&mut c).await;
}

/// The accepted metrics row `json` of `job` at `iter` is stored, each column exactly as sent:
/// SQL NULL exactly where the JSON has `null` (a NaN or ±inf on the wire), the number
/// elsewhere; `extra` the same per name; the report's token.
async fn stored_as_sent(
    c: &mut Client,
    job: &Job,
    iter: u64,
    json: &str,
) -> Result<(), TestCaseError> {
    use modsync_proto::value::Kind;
    let sent: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        TestCaseError::fail(format!("accepted a row that is not JSON: {e}: {json}"))
    })?;
    let reals = real_columns();
    let stored_iter = i64::try_from(iter).unwrap_or(i64::MAX);
    let rows = sql(
        c,
        &format!(
            "SELECT {}, skipped_steps, extra, token FROM metrics WHERE job_id = {} AND iter = {}",
            reals.join(", "),
            job.job_id,
            stored_iter
        ),
    )
    .await;
    prop_assert_eq!(
        rows.len(),
        1,
        "the accepted row of iter {} is not stored: {}",
        iter,
        json
    );
    let row = &rows[0];
    for (column, stored) in reals.iter().zip(row) {
        match (&sent[*column], stored) {
            (serde_json::Value::Null, Kind::Null(_)) => {}
            (serde_json::Value::Number(n), Kind::Real(x)) if n.as_f64() == Some(*x) => {}
            (v, k) => prop_assert!(
                false,
                "{} sent as {} is stored as {:?}: {}",
                column,
                v,
                k,
                json
            ),
        }
    }
    prop_assert_eq!(
        &row[reals.len()],
        &Kind::Integer(0),
        "skipped_steps: {}",
        json
    );
    let extra: serde_json::Value = serde_json::from_str(text(&row[reals.len() + 1])).unwrap();
    let expected: serde_json::Map<String, serde_json::Value> = sent["extra"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_f64().map_or(serde_json::Value::Null, |x| x.into()),
            )
        })
        .collect();
    prop_assert_eq!(
        extra,
        serde_json::Value::Object(expected),
        "extra: {}",
        json
    );
    prop_assert_eq!(
        &row[reals.len() + 2],
        &Kind::Integer(job.token),
        "token: {}",
        json
    );
    Ok(())
}

/// A number as it may appear in a hand-written (or hostile) JSON document: finite values, the
/// non-JSON spellings of NaN and infinity, numbers no f64 can hold, and wrong types.
fn number_token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| format!("{x:e}")),
        1 => prop::sample::select(vec![
            "NaN", "nan", "-NaN", "Infinity", "-Infinity", "inf", "1e999", "-1e999", "1e308",
            "-0.0", "null", "\"1.0\"", "true", "[]", "{}", "1e-400", "18446744073709551616",
            "-1", "0",
        ])
        .prop_map(String::from),
    ]
}

/// The metrics row's real-valued columns: the ones that may arrive non-finite.
fn real_columns() -> Vec<&'static str> {
    trainer_core::real_metrics_columns().collect()
}

const RESULT_FIELDS: [&str; 7] = [
    "rel_l2_best",
    "rel_l2_min_loss",
    "rel_l2_last",
    "abs_err_best",
    "abs_err_max_best",
    "wall_s",
    "iters_per_s",
];

/// `json` with the values of `edits` keys replaced by raw text (which need not be JSON).
fn set_fields(json: &str, edits: &[(&str, &str)]) -> String {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    for (i, (key, _)) in edits.iter().enumerate() {
        v[*key] = serde_json::Value::String(format!("\u{0}MARK{i}\u{0}"));
    }
    let mut out = serde_json::to_string(&v).unwrap();
    for (i, (_, token)) in edits.iter().enumerate() {
        out = out.replace(&format!("\"\\u0000MARK{i}\\u0000\""), token);
    }
    out
}

fn set_field(json: &str, key: &str, token: &str) -> String {
    set_fields(json, &[(key, token)])
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    _server: Server,
    client: Client,
    job: Mutex<Option<Job>>,
}

impl Fixture {
    fn new(jobs: usize) -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (server, client) = rt.block_on(async {
            let (server, mut c) = start_with_client(|_| {}).await;
            let mut s = spec("p");
            s.pdes = vec!["burgers".into()];
            s.widths = vec![8];
            s.seeds = (0..jobs as i64).collect();
            submit(&mut c, s).await;
            (server, c)
        });
        Fixture {
            rt,
            _server: server,
            client,
            job: Mutex::new(None),
        }
    }

    /// The job currently held (a new one once the last was completed).
    fn job(&self) -> Job {
        let mut held = self.job.lock().unwrap();
        if held.is_none() {
            let mut c = self.client.clone();
            *held = self.rt.block_on(lease(&mut c, "w"));
        }
        held.clone().expect("enough jobs for every case")
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Metric rows with arbitrary numbers: stored (non-finite as NULL) or refused naming the
    /// row; never a panic, hang or stored NaN/inf.
    #[test]
    fn metric_rows_with_any_numbers(
        edits in prop::collection::vec(
            (prop::sample::select(real_columns()), number_token()), 1..4),
        extra in prop::collection::btree_map("[a-z]{1,6}", number_token(), 0..3),
        iter in prop_oneof![3 => 0u64..10_000, 1 => any::<u64>()],
    ) {
        static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        let f = F.get_or_init(|| Fixture::new(1));
        let job = f.job();
        let extra_json = format!(
            "{{{}}}",
            extra.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(",")
        );
        let iter_text = iter.to_string();
        let mut all: Vec<(&str, &str)> = vec![("iter", &iter_text), ("extra", &extra_json)];
        all.extend(edits.iter().map(|(k, t)| (*k, t.as_str())));
        // A later edit of the same key wins (as the last key would in JSON).
        let mut seen = std::collections::BTreeMap::new();
        for (k, t) in all {
            seen.insert(k, t);
        }
        let all: Vec<(&str, &str)> = seen.into_iter().collect();
        let json = set_fields(&row(iter).row_json, &all);
        let req = progress(&job, vec![MetricRow { row_json: json.clone() }], Vec::new());
        let mut c = f.client.clone();
        let r = f.rt.block_on(bounded("ReportProgress", c.report_progress(req)));
        match r {
            Ok(_) => f.rt.block_on(stored_as_sent(&mut c, &job, iter, &json))?,
            Err(s) => {
                prop_assert_eq!(s.code(), Code::InvalidArgument, "{}: {}", json, s.message());
                prop_assert!(s.message().contains("metrics[0]"), "{}", s.message());
            }
        }
        f.rt.block_on(healthy_and_finite(&mut c));
    }

    /// Results with an arbitrary number in one of the errors: stored only when finite,
    /// otherwise refused naming `result_json` (and the field, where serde got that far).
    #[test]
    fn results_with_any_numbers(
        field in prop::sample::select(RESULT_FIELDS.to_vec()),
        token in number_token(),
    ) {
        static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        let f = F.get_or_init(|| Fixture::new(130));
        let job = f.job();
        let json = set_field(&result_json(&job, 0.25), field, &token);
        let mut c = f.client.clone();
        let r = f.rt.block_on(bounded(
            "CompleteJob",
            c.complete_job(CompleteJobRequest {
                job_id: job.job_id,
                token: job.token,
                worker_id: "w".into(),
                result_json: json.clone(),
                device: "cpu".into(),
            }),
        ));
        match r {
            Ok(_) => {
                // Completed: the next case needs a new job.
                *f.job.lock().unwrap() = None;
                let v: f64 = token.trim_matches('"').parse().map_err(|_| {
                    TestCaseError::fail(format!("accepted a non-number: {json}"))
                })?;
                prop_assert!(v.is_finite(), "accepted {}", token);
            }
            Err(s) => {
                prop_assert_eq!(s.code(), Code::InvalidArgument, "{}", s.message());
                prop_assert!(s.message().contains("result_json"), "{}", s.message());
            }
        }
        f.rt.block_on(healthy_and_finite(&mut c));
    }
}

#[test]
fn a_config_json_round_trips_through_set_field() {
    let j = serde_json::to_string(&TrainConfig::default()).unwrap();
    let k = set_field(&j, "lr", "NaN");
    assert!(k.contains("\"lr\":NaN"), "{k}");
}
