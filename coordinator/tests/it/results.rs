//! The stored result row: every column of `results` holds the field of the RunResult it is
//! named for. `insert_results` binds 21 values by position; a result whose fields are all
//! different shows any two of them swapped (the dashboard plots `rel_l2_min_loss` and
//! `rel_l2_last` and shows `best_iter` straight from these columns).

use modsync_proto::value::Kind;
use modsync_proto::*;
use trainer_core::{RunResult, RunStatus, TrainConfig};

use crate::common::*;

/// A result for `job` with a value in every field that no other field has.
fn distinct_result(job: &Job) -> RunResult {
    let config: TrainConfig = serde_json::from_str(&job.config_json).unwrap();
    RunResult {
        status: RunStatus::Diverged,
        rel_l2_best: 0.125,
        rel_l2_min_loss: 0.25,
        rel_l2_last: 0.375,
        abs_err_best: 0.0625,
        abs_err_max_best: 0.5,
        best_iter: 11,
        min_loss_iter: 13,
        iters_done: 17,
        diverged: true,
        skipped_steps: 3,
        wall_s: 2.75,
        iters_per_s: 6.5,
        num_params: 321,
        config,
    }
}

/// Every column of the `results` row of `job_id`, by name, as the Query RPC returns it.
async fn result_row(c: &mut Client, job_id: i64) -> Vec<(String, Kind)> {
    let r = c
        .query(QueryRequest {
            sql: format!("SELECT * FROM results WHERE job_id = {job_id}"),
            max_rows: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.rows.len(), 1, "the result row of job {job_id}");
    r.columns
        .into_iter()
        .zip(r.rows[0].values.iter().map(|v| v.kind.clone().unwrap()))
        .collect()
}

#[tokio::test]
async fn every_result_column_holds_its_own_field() {
    let (_server, mut c) = start_with_sweep(
        |_| {},
        SweepSpec {
            seeds: vec![0, 1],
            ..one_job("res")
        },
    )
    .await;
    // The worker registers a device of its own; the first completion sends none (the stored
    // device is the worker's), the second its own.
    let lease_on = |worker: &str| LeaseJobRequest {
        worker_id: worker.into(),
        host: "node-r".into(),
        device: "cuda:7".into(),
        ..Default::default()
    };
    for (worker, sent_device, stored_device) in [("wa", "", "cuda:7"), ("wb", "cpu-tch", "cpu-tch")]
    {
        let job = c
            .lease_job(lease_on(worker))
            .await
            .unwrap()
            .into_inner()
            .job
            .expect("a queued job");
        let result = distinct_result(&job);
        let result_json = serde_json::to_string(&result).unwrap();
        let before = now_ms();
        c.complete_job(CompleteJobRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: worker.into(),
            result_json: result_json.clone(),
            device: sent_device.into(),
        })
        .await
        .unwrap();
        let after = now_ms();
        let row = result_row(&mut c, job.job_id).await;
        let expected: Vec<(&str, Kind)> = vec![
            ("job_id", Kind::Integer(job.job_id)),
            ("rel_l2_best", Kind::Real(result.rel_l2_best)),
            ("rel_l2_min_loss", Kind::Real(result.rel_l2_min_loss)),
            ("rel_l2_last", Kind::Real(result.rel_l2_last)),
            ("abs_err_best", Kind::Real(result.abs_err_best)),
            ("abs_err_max_best", Kind::Real(result.abs_err_max_best)),
            ("best_iter", Kind::Integer(11)),
            ("min_loss_iter", Kind::Integer(13)),
            ("iters_done", Kind::Integer(17)),
            ("wall_s", Kind::Real(result.wall_s)),
            ("iters_per_s", Kind::Real(result.iters_per_s)),
            ("num_params", Kind::Integer(321)),
            ("diverged", Kind::Integer(1)),
            ("skipped_steps", Kind::Integer(3)),
            ("status", Kind::Text("diverged".into())),
            ("device", Kind::Text(stored_device.into())),
            ("worker_id", Kind::Text(worker.into())),
        ];
        let (finished_at, row) = row.split_last().unwrap();
        let (result_text, row) = row.split_last().unwrap();
        assert_eq!(result_text.0, "result");
        assert_eq!(
            result_text.1,
            Kind::Text(result_json),
            "results.result is the JSON the worker sent"
        );
        assert_eq!(
            row.iter()
                .map(|(name, kind)| (name.as_str(), kind.clone()))
                .collect::<Vec<_>>(),
            expected,
            "the result row of job {} (device sent: {sent_device:?})",
            job.job_id
        );
        assert_eq!(finished_at.0, "finished_at_ms");
        match finished_at.1 {
            Kind::Integer(t) => assert!(
                (before..=after).contains(&t),
                "{t} not in {before}..={after}"
            ),
            ref k => panic!("finished_at_ms: {k:?}"),
        }
    }
}
