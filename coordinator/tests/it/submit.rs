//! SubmitSweep: counts, idempotent resubmission, grid changes, validation, NOT_FOUND.

use modsync_proto::*;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn submit_counts_and_resubmission_creates_nothing() {
    let (_server, mut c) = start_with_client(|_| {}).await;

    let r = submit(&mut c, spec("grid")).await;
    assert_eq!(
        (r.sweep_id.as_str(), r.jobs_total, r.jobs_created),
        ("grid", 12, 12)
    );
    let s = summary(&mut c, "grid").await;
    assert_eq!((s.queued, s.total, s.name.as_str()), (12, 12, "grid"));

    // Finish one job, then resubmit the very same sweep.
    let job = lease(&mut c, "w1").await.unwrap();
    complete(&mut c, &job, "w1", 0.25).await;
    let r = submit(&mut c, spec("grid")).await;
    assert_eq!((r.jobs_total, r.jobs_created), (12, 0));
    let s = summary(&mut c, "grid").await;
    assert_eq!((s.queued, s.done, s.total), (11, 1, 12));
    // The finished result survived the resubmission.
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM results").await, 1);
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM jobs").await, 12);

    let list = c
        .list_sweeps(ListSweepsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.sweeps.len(), 1);
    assert_eq!(list.sweeps[0], s);
}

#[tokio::test]
async fn changed_grid_adds_only_the_new_jobs() {
    let (_server, mut c) = start_with_sweep(|_| {}, spec("grow")).await;

    // One more seed: 2 pdes × 2 widths new jobs; the 12 old ones are untouched.
    let mut bigger = spec("grow");
    bigger.seeds.push(3);
    let r = submit(&mut c, bigger.clone()).await;
    assert_eq!((r.jobs_total, r.jobs_created), (16, 4));
    let r = submit(&mut c, bigger).await;
    assert_eq!((r.jobs_total, r.jobs_created), (16, 0));

    // A changed training setting is a different config hash: all-new jobs, old ones kept.
    let mut longer = spec("grow");
    longer.base_config_json = r#"{"iters": 40, "eval_every": 10}"#.into();
    let r = submit(&mut c, longer).await;
    assert_eq!((r.jobs_total, r.jobs_created), (28, 12));

    // Reordered keys and an explicit default are the same config: nothing new.
    let mut same = spec("grow");
    same.base_config_json = r#"{"eval_every": 10, "iters": 20, "depth": 5}"#.into();
    assert_eq!(submit(&mut c, same).await.jobs_created, 0);

    // Another sweep with the same grid is separate.
    let r = submit(&mut c, spec("other")).await;
    assert_eq!((r.jobs_total, r.jobs_created), (12, 12));
}

#[tokio::test]
async fn invalid_specs_name_the_field_and_write_nothing() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    let cases: Vec<(SweepSpec, &str)> = vec![
        (
            SweepSpec {
                pdes: vec!["burgers".into(), "nope".into()],
                ..spec("bad")
            },
            "pdes[1]",
        ),
        (
            SweepSpec {
                methods: vec!["nope".into()],
                ..spec("bad")
            },
            "methods[0]",
        ),
        (
            SweepSpec {
                widths: vec![8, 0],
                ..spec("bad")
            },
            "widths[1]",
        ),
        (
            SweepSpec {
                seeds: vec![-1],
                ..spec("bad")
            },
            "seeds[0]",
        ),
        (
            SweepSpec {
                seeds: vec![],
                ..spec("bad")
            },
            "seeds",
        ),
        (
            SweepSpec {
                base_config_json: r#"{"lr": null}"#.into(),
                ..spec("bad")
            },
            "base_config.lr",
        ),
        (
            SweepSpec {
                base_config_json: r#"{"width": 8}"#.into(),
                ..spec("bad")
            },
            "base_config.width",
        ),
        (
            SweepSpec {
                base_config_json: r#"{"bogus": 1}"#.into(),
                ..spec("bad")
            },
            "base_config.bogus",
        ),
        (
            SweepSpec {
                max_attempts: 1_000_000,
                ..spec("bad")
            },
            "max_attempts",
        ),
        (
            SweepSpec {
                name: "".into(),
                ..spec("bad")
            },
            "name",
        ),
        (
            SweepSpec {
                name: "x".repeat(10_000),
                ..spec("bad")
            },
            "name",
        ),
    ];
    for (spec, field) in cases {
        let e = c
            .submit_sweep(SubmitSweepRequest { spec: Some(spec) })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
    let e = c
        .submit_sweep(SubmitSweepRequest { spec: None })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let list = c
        .list_sweeps(ListSweepsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(list.sweeps.is_empty(), "nothing written: {list:?}");
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM jobs").await, 0);
}

#[tokio::test]
async fn unknown_sweeps_and_jobs_are_not_found() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    let id = || "missing".to_string();
    let codes = [
        c.get_sweep(GetSweepRequest { sweep_id: id() })
            .await
            .unwrap_err()
            .code(),
        c.cancel_sweep(CancelSweepRequest { sweep_id: id() })
            .await
            .unwrap_err()
            .code(),
        c.retry_failed(RetryFailedRequest { sweep_id: id() })
            .await
            .unwrap_err()
            .code(),
        c.get_curves(GetCurvesRequest { sweep_id: id() })
            .await
            .unwrap_err()
            .code(),
        c.heartbeat(HeartbeatRequest {
            job_id: 99,
            token: 1,
            ..Default::default()
        })
        .await
        .unwrap_err()
        .code(),
        c.fail_job(FailJobRequest {
            job_id: i64::MAX,
            ..Default::default()
        })
        .await
        .unwrap_err()
        .code(),
        c.release_job(ReleaseJobRequest {
            job_id: -1,
            ..Default::default()
        })
        .await
        .unwrap_err()
        .code(),
    ];
    assert!(codes.iter().all(|&k| k == Code::NotFound), "{codes:?}");
    // An empty id is a client bug, not a missing sweep.
    let e = c
        .get_sweep(GetSweepRequest {
            sweep_id: "".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}
