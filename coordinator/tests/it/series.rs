//! Sweeps over any setting (extra axes and variants): what a resubmission adds, the series of
//! each job in `jobs` and `job_axes`, and one curve per series.

use modsync_proto::value::Kind;
use modsync_proto::*;

use crate::common::*;

fn axis(path: &str, values: &str) -> GridAxis {
    GridAxis {
        path: path.into(),
        values_json: values.into(),
    }
}

/// burgers, adam, widths 8 and 16, seeds 0-2, with an `lr` axis and two variants.
fn axes_spec(name: &str, lrs: &str) -> SweepSpec {
    SweepSpec {
        pdes: vec!["burgers".into()],
        axes: vec![axis("lr", lrs)],
        variants: vec![
            GridVariant {
                name: "plain".into(),
                settings_json: "{}".into(),
            },
            GridVariant {
                name: "no_decay".into(),
                settings_json: r#"{"lr_decay": false}"#.into(),
            },
        ],
        ..spec(name)
    }
}

#[tokio::test]
async fn resubmitting_adds_nothing_and_a_new_axis_value_adds_only_its_jobs() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    // 2 variants × 2 lrs × 2 widths × 3 seeds.
    let r = submit(&mut c, axes_spec("ax", "[0.001, 0.003]")).await;
    assert_eq!((r.jobs_total, r.jobs_created), (24, 24));
    let job = lease(&mut c, "w").await.unwrap();
    complete(&mut c, &job, "w", 0.5).await;
    let r = submit(&mut c, axes_spec("ax", "[0.001, 0.003]")).await;
    assert_eq!((r.jobs_total, r.jobs_created), (24, 0));
    // One more value: 2 variants × 2 widths × 3 seeds new jobs; the old ones untouched.
    let r = submit(&mut c, axes_spec("ax", "[0.001, 0.003, 0.01]")).await;
    assert_eq!((r.jobs_total, r.jobs_created), (36, 12));
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM results").await, 1);
    assert_eq!(
        sql_i64(
            &mut c,
            "SELECT COUNT(*) FROM jobs WHERE series LIKE '% lr=0.01' AND state = 'queued'"
        )
        .await,
        12
    );
    // The values in another order are the same jobs.
    let r = submit(&mut c, axes_spec("ax", "[0.01, 0.001, 0.003]")).await;
    assert_eq!(r.jobs_created, 0);
}

#[tokio::test]
async fn each_job_carries_its_series_and_its_settings_one_per_row() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    submit(&mut c, axes_spec("ax", "[0.001, 0.003]")).await;
    // Every job's series names its settings, and its config has them.
    let rows = sql(
        &mut c,
        "SELECT series, json_extract(config_json, '$.lr'), json_extract(config_json, '$.lr_decay')
         FROM jobs WHERE sweep_id = 'ax'",
    )
    .await;
    assert_eq!(rows.len(), 24);
    for r in &rows {
        let series = text(&r[0]);
        let Kind::Real(lr) = r[1] else {
            panic!("{r:?}")
        };
        let Kind::Integer(decay) = r[2] else {
            panic!("{r:?}")
        };
        assert_eq!(
            series,
            format!("{} lr={lr}", if decay == 1 { "plain" } else { "no_decay" })
        );
    }
    // job_axes: GROUP BY a setting without parsing JSON.
    let per_lr = sql(
        &mut c,
        "SELECT a.value, COUNT(*) FROM job_axes a JOIN jobs j ON j.id = a.job_id
         WHERE j.sweep_id = 'ax' AND a.axis = 'lr' GROUP BY a.value ORDER BY a.value",
    )
    .await;
    let per_lr: Vec<(String, i64)> = per_lr
        .iter()
        .map(|r| match r[1] {
            Kind::Integer(n) => (text(&r[0]).to_string(), n),
            _ => panic!("{r:?}"),
        })
        .collect();
    assert_eq!(per_lr, [("0.001".into(), 12), ("0.003".into(), 12)]);
    assert_eq!(
        sql_i64(
            &mut c,
            "SELECT COUNT(*) FROM job_axes WHERE axis = 'variant' AND value = 'no_decay'"
        )
        .await,
        12
    );
}

/// A sweep that gains an axis whose value is its old setting: the old jobs are those of that
/// value (no new job) and take its label, so no curve is left without a series.
#[tokio::test]
async fn old_jobs_take_the_series_of_an_axis_added_later() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    let plain = SweepSpec {
        pdes: vec!["burgers".into()],
        ..spec("grow")
    };
    assert_eq!(submit(&mut c, plain.clone()).await.jobs_created, 6);
    assert_eq!(
        sql_i64(&mut c, "SELECT COUNT(*) FROM jobs WHERE series = ''").await,
        6
    );
    // lr 1e-3 is the default, so those 6 configs are the old jobs.
    let with_lr = SweepSpec {
        axes: vec![axis("lr", "[0.001, 0.01]")],
        ..plain
    };
    let r = submit(&mut c, with_lr).await;
    assert_eq!((r.jobs_total, r.jobs_created), (12, 6));
    assert_eq!(
        sql_i64(
            &mut c,
            "SELECT COUNT(*) FROM jobs WHERE series = 'lr=0.001'"
        )
        .await,
        6
    );
    assert_eq!(
        sql_i64(&mut c, "SELECT COUNT(*) FROM job_axes WHERE axis = 'lr'").await,
        12
    );
}

#[tokio::test]
async fn curves_have_one_line_per_series() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    submit(&mut c, axes_spec("ax", "[0.001, 0.003]")).await;
    // Every job's value encodes its series, so a curve that mixed two series would show it.
    while let Some(job) = lease(&mut c, "w").await {
        let config: trainer_core::TrainConfig = serde_json::from_str(&job.config_json).unwrap();
        let value = config.lr * if config.lr_decay { 1.0 } else { 10.0 } + config.seed as f64;
        complete(&mut c, &job, "w", value).await;
    }
    let points = c
        .get_curves(GetCurvesRequest {
            sweep_id: "ax".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .points;
    let got: Vec<(String, u64, u64, f64, f64)> = points
        .iter()
        .map(|p| (p.series.clone(), p.width, p.n, p.median, p.min))
        .collect();
    let cell = |series: &str, width, base: f64| (series.to_string(), width, 3, base + 1.0, base);
    assert_eq!(
        got,
        [
            cell("no_decay lr=0.001", 8, 0.001 * 10.0),
            cell("no_decay lr=0.001", 16, 0.001 * 10.0),
            cell("no_decay lr=0.003", 8, 0.003 * 10.0),
            cell("no_decay lr=0.003", 16, 0.003 * 10.0),
            cell("plain lr=0.001", 8, 0.001 * 1.0),
            cell("plain lr=0.001", 16, 0.001 * 1.0),
            cell("plain lr=0.003", 8, 0.003 * 1.0),
            cell("plain lr=0.003", 16, 0.003 * 1.0),
        ]
    );
}
