//! Leases: atomicity, priority, fencing tokens, attempts, checkpoints, cancel, retry.

use std::collections::HashSet;
use std::time::Duration;

use modsync_proto::value::Kind;
use modsync_proto::*;
use tonic::Code;
use trainer_core::Checkpoint;

use crate::common::*;

#[tokio::test]
async fn concurrent_leasers_get_every_job_exactly_once() {
    let (server, mut c) = start_with_client(|_| {}).await;
    let mut big = spec("many");
    big.seeds = (0..10).collect(); // 2 × 1 × 2 × 10 = 40 jobs
    assert_eq!(submit(&mut c, big).await.jobs_created, 40);

    let mut tasks = Vec::new();
    for w in 0..8 {
        let mut c = server.client().await;
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(job) = lease(&mut c, &format!("w{w}")).await {
                got.push((job.job_id, job.token, job.attempt));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let ids: HashSet<i64> = all.iter().map(|j| j.0).collect();
    assert_eq!(all.len(), 40, "leases handed out: {}", all.len());
    assert_eq!(ids.len(), 40, "a job was leased twice");
    assert!(
        all.iter()
            .all(|&(_, token, attempt)| token == 1 && attempt == 1)
    );
    assert_eq!(summary(&mut c, "many").await.running, 40);
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM workers").await, 8);
}

#[tokio::test]
async fn higher_priority_sweeps_are_leased_first() {
    let (_server, mut c) = start_with_sweep(|_| {}, spec("low")).await;
    submit(
        &mut c,
        SweepSpec {
            priority: 5,
            ..spec("high")
        },
    )
    .await;
    for _ in 0..12 {
        assert_eq!(lease(&mut c, "w").await.unwrap().sweep_id, "high");
    }
    let job = lease(&mut c, "w").await.unwrap();
    assert_eq!(job.sweep_id, "low");
    // Oldest first within a priority: the first job of the grid.
    let first = sql_i64(&mut c, "SELECT MIN(id) FROM jobs WHERE sweep_id = 'low'").await;
    assert_eq!(job.job_id, first);
    let config: trainer_core::TrainConfig = serde_json::from_str(&job.config_json).unwrap();
    assert_eq!(
        (config.pde.as_str(), config.width, config.seed),
        ("burgers", 8, 0)
    );
    assert_eq!((job.lease_ms, job.heartbeat_ms), (30_000, 5_000));
}

#[tokio::test]
async fn stale_token_writes_are_refused_and_change_nothing() {
    // Default (30 s) leases: B's must outlast every RPC below, also on a loaded machine. A's
    // is made to expire by hand instead, and the coordinator's reaper re-queues it.
    let (server, mut c) = start_with_sweep(|c| c.reap_every_ms = 20, one_job("s")).await;

    let a = lease(&mut c, "worker-a").await.unwrap();
    // A goes silent; the reaper returns the job to the queue.
    expire_lease(&server.db, a.job_id).await;
    wait_for_state(&c, a.job_id, "queued", Duration::from_secs(20)).await;
    let b = lease(&mut c, "worker-b").await.unwrap();
    assert_eq!(b.job_id, a.job_id);
    assert_eq!((b.token, b.attempt), (a.token + 1, 2));

    // While B holds the lease the job is `running`: only the token tells A's writes apart.
    assert_every_write_refused(&mut c, &a, "worker-a").await;
    // The refused ReleaseJob/FailJob changed nothing: B's lease stands.
    assert_eq!(summary(&mut c, "s").await.running, 1);

    c.report_progress(ReportProgressRequest {
        job_id: b.job_id,
        token: b.token,
        worker_id: "worker-b".into(),
        metrics: vec![metrics_row(10, 0.5)],
        checkpoint: checkpoint_bytes(&b, 10),
    })
    .await
    .unwrap();
    complete(&mut c, &b, "worker-b", 0.125).await;

    // After B finished: A is still refused, and so is B's own token (the job is done).
    assert_every_write_refused(&mut c, &a, "worker-a").await;
    assert_every_write_refused(&mut c, &b, "worker-b").await;

    // The store holds exactly what B wrote.
    let rows = sql(
        &mut c,
        "SELECT rel_l2_best, worker_id, (SELECT state FROM jobs) FROM results",
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], Kind::Real(0.125));
    assert_eq!(text(&rows[0][1]), "worker-b");
    assert_eq!(text(&rows[0][2]), "done");
    let m = sql(&mut c, "SELECT iter, rel_l2, token FROM metrics").await;
    assert_eq!(
        m,
        vec![vec![
            Kind::Integer(10),
            Kind::Real(0.5),
            Kind::Integer(b.token)
        ]]
    );
    let ck = sql(&mut c, "SELECT iter, token FROM checkpoints").await;
    assert_eq!(ck, vec![vec![Kind::Integer(10), Kind::Integer(b.token)]]);
    let attempts = sql_i64(&mut c, "SELECT attempts FROM jobs").await;
    assert_eq!(
        attempts, 2,
        "A's refused FailJob/ReleaseJob did not touch attempts"
    );
}

#[tokio::test]
async fn max_attempts_fails_the_job_with_its_last_error_and_retry_requeues() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    let one = SweepSpec {
        seeds: vec![0],
        pdes: vec!["burgers".into()],
        widths: vec![8],
        max_attempts: 2,
        ..spec("f")
    };
    submit(&mut c, one).await;

    for (n, err) in [(1, "boom 1"), (2, "boom 2")] {
        let job = lease(&mut c, "w").await.expect("job is queued again");
        assert_eq!(job.attempt, n);
        c.fail_job(FailJobRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: "w".into(),
            error: err.into(),
        })
        .await
        .unwrap();
    }
    assert!(
        lease(&mut c, "w").await.is_none(),
        "a failed job must not be leased"
    );
    let row = &sql(&mut c, "SELECT state, attempts, last_error FROM jobs").await[0];
    assert_eq!(
        (text(&row[0]), &row[1], text(&row[2])),
        ("failed", &Kind::Integer(2), "boom 2")
    );
    let s = summary(&mut c, "f").await;
    assert_eq!((s.failed, s.queued), (1, 0));

    let s = c
        .retry_failed(RetryFailedRequest {
            sweep_id: "f".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.failed, s.queued), (0, 1));
    let job = lease(&mut c, "w").await.unwrap();
    assert_eq!((job.attempt, job.token), (1, 3));
}

#[tokio::test]
async fn expired_leases_fail_the_job_after_max_attempts() {
    let server = Server::start(|c| {
        c.lease_ms = 150;
        c.heartbeat_ms = 50;
        c.reap_every_ms = 20;
    })
    .await;
    let mut c = server.client().await;
    let one = SweepSpec {
        seeds: vec![0],
        pdes: vec!["burgers".into()],
        widths: vec![8],
        max_attempts: 1,
        ..spec("x")
    };
    submit(&mut c, one).await;
    lease(&mut c, "dies").await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || {
            let mut c = c.clone();
            async move { summary(&mut c, "x").await.failed == 1 }
        })
        .await
    );
    let row = &sql(&mut c, "SELECT last_error, lease_expires_at_ms FROM jobs").await[0];
    assert_eq!(text(&row[0]), "lease expired after 1 attempts");
    assert_eq!(row[1], Kind::Null(true));
}

#[tokio::test]
async fn heartbeats_keep_the_lease() {
    const LEASE_MS: i64 = 2_000;
    let server = Server::start(|c| {
        c.lease_ms = LEASE_MS as u64;
        c.heartbeat_ms = 100;
        c.reap_every_ms = 20;
    })
    .await;
    let mut c = server.client().await;
    submit(&mut c, one_job("hb")).await;
    let job = lease(&mut c, "w").await.unwrap();
    let expiry = "SELECT lease_expires_at_ms FROM jobs";
    let first_expiry = sql_i64(&mut c, expiry).await;
    // Heartbeat until the first lease is long over and the reaper has made dozens of passes
    // since. Each heartbeat moves the expiry to its own time + lease_ms, which is checked
    // exactly, so the test does not depend on how fast the loop runs: only a stall of a whole
    // lease between two heartbeats could lose the lease.
    while now_ms() < first_expiry + LEASE_MS / 4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = now_ms();
        let r = c
            .heartbeat(HeartbeatRequest {
                job_id: job.job_id,
                token: job.token,
                worker_id: "w".into(),
                iter: 1,
            })
            .await
            .expect("a heartbeat of the live lease")
            .into_inner();
        let answered = now_ms();
        assert!(!r.cancel);
        let e = sql_i64(&mut c, expiry).await;
        assert!(
            (sent + LEASE_MS..=answered + LEASE_MS).contains(&e),
            "a heartbeat between {sent} and {answered} set the expiry to {e}"
        );
    }
    let row = &sql(&mut c, "SELECT state, token, attempts FROM jobs").await[0];
    assert_eq!(
        (text(&row[0]), &row[1], &row[2]),
        ("running", &Kind::Integer(job.token), &Kind::Integer(1))
    );
}

#[tokio::test]
async fn checkpoint_round_trip_and_metrics_upsert() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    submit(
        &mut c,
        SweepSpec {
            seeds: vec![0],
            pdes: vec!["burgers".into()],
            widths: vec![8],
            ..spec("ck")
        },
    )
    .await;
    let job = lease(&mut c, "w").await.unwrap();
    assert!(job.checkpoint.is_empty());

    let progress = |metrics, checkpoint: Vec<u8>| ReportProgressRequest {
        job_id: job.job_id,
        token: job.token,
        worker_id: "w".into(),
        metrics,
        checkpoint,
    };
    c.report_progress(progress(
        vec![metrics_row(10, 0.5), metrics_row(20, 0.4)],
        checkpoint_bytes(&job, 20),
    ))
    .await
    .unwrap();
    // A resumed job re-reports iteration 20: replaced, not duplicated.
    c.report_progress(progress(vec![metrics_row(20, 0.3)], vec![]))
        .await
        .unwrap();
    let m = sql(&mut c, "SELECT iter, rel_l2 FROM metrics ORDER BY iter").await;
    assert_eq!(
        m,
        vec![
            vec![Kind::Integer(10), Kind::Real(0.5)],
            vec![Kind::Integer(20), Kind::Real(0.3)]
        ]
    );

    // The rows and the checkpoint are stored at the iterations they carry inside: the rows'
    // JSON and the checkpoint's header (the only copies on the wire).
    assert_eq!(
        sql(&mut c, "SELECT iter FROM checkpoints").await,
        vec![vec![Kind::Integer(20)]]
    );

    // Corrupt bytes, or an iteration no run reaches, never replace the good checkpoint.
    let e = c
        .report_progress(progress(vec![], b"garbage".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("checkpoint"), "{e:?}");
    let beyond = trainer_core::config::MAX_ITERS + 1;
    let e = c
        .report_progress(progress(vec![], checkpoint_bytes(&job, beyond)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("checkpoint.iter"), "{e:?}");
    // A row whose iteration no run reaches, or that is not a MetricsRow, is refused whole.
    let mut bad = metrics_row(40, 0.2);
    bad.row_json = bad
        .row_json
        .replacen("\"iter\":40", &format!("\"iter\":{beyond}"), 1);
    let e = c
        .report_progress(progress(vec![metrics_row(30, 0.2), bad], vec![]))
        .await
        .unwrap_err();
    assert!(e.message().contains("metrics[1].row_json.iter"), "{e:?}");
    let e = c
        .report_progress(progress(
            vec![MetricRow {
                row_json: "{}".into(),
            }],
            vec![],
        ))
        .await
        .unwrap_err();
    assert!(e.message().contains("metrics[0].row_json"), "{e:?}");
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM metrics").await, 2);

    // Released (not an attempt), leased again: the checkpoint comes back byte for byte.
    c.release_job(ReleaseJobRequest {
        job_id: job.job_id,
        token: job.token,
        worker_id: "w".into(),
    })
    .await
    .unwrap();
    let again = lease(&mut c, "w2").await.unwrap();
    assert_eq!(again.job_id, job.job_id);
    assert_eq!(again.attempt, 1, "a release must not count as an attempt");
    assert_eq!(again.token, job.token + 1);
    assert_eq!(again.checkpoint, checkpoint_bytes(&job, 20));
    assert_eq!(Checkpoint::from_bytes(&again.checkpoint).unwrap().iter, 20);
}

#[tokio::test]
async fn non_finite_metrics_are_stored_as_null() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    submit(
        &mut c,
        SweepSpec {
            seeds: vec![0],
            pdes: vec!["burgers".into()],
            widths: vec![8],
            ..spec("nan")
        },
    )
    .await;
    let job = lease(&mut c, "w").await.unwrap();
    let mut row = metrics_row(10, 0.5);
    row.row_json = row.row_json.replace("\"loss_r\":0.5", "\"loss_r\":null");
    assert!(row.row_json.contains("null"));
    c.report_progress(ReportProgressRequest {
        job_id: job.job_id,
        token: job.token,
        worker_id: "w".into(),
        metrics: vec![row],
        ..Default::default()
    })
    .await
    .unwrap();
    let m = sql(&mut c, "SELECT loss_r, loss_b FROM metrics").await;
    assert_eq!(m, vec![vec![Kind::Null(true), Kind::Real(0.25)]]);
}

#[tokio::test]
async fn bad_results_are_refused_and_the_job_stays_running() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    submit(
        &mut c,
        SweepSpec {
            seeds: vec![0, 1],
            pdes: vec!["burgers".into()],
            widths: vec![8],
            ..spec("r")
        },
    )
    .await;
    let job = lease(&mut c, "w").await.unwrap();
    let other = lease(&mut c, "w").await.unwrap();
    let req = |result_json: String| CompleteJobRequest {
        job_id: job.job_id,
        token: job.token,
        worker_id: "w".into(),
        result_json,
        device: "cpu".into(),
    };
    let good = result_json(&job, 0.25);
    let cases = [
        good.replace("\"rel_l2_best\":0.25", "\"rel_l2_best\":null"),
        good.replace("\"status\":\"finished\"", "\"status\":\"cancelled\""),
        "not json".to_string(),
        String::new(),
        result_json(&other, 0.25), // the other job's config (seed 1)
    ];
    for bad in cases {
        let e = c.complete_job(req(bad.clone())).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}: {e:?}");
    }
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM results").await, 0);
    assert_eq!(summary(&mut c, "r").await.running, 2);
    c.complete_job(req(good)).await.unwrap();
    assert_eq!(summary(&mut c, "r").await.done, 1);
    assert_eq!(
        sql_i64(&mut c, "SELECT jobs_done FROM workers WHERE id = 'w'").await,
        1
    );
}

#[tokio::test]
async fn cancel_stops_queued_jobs_now_and_running_jobs_at_their_heartbeat() {
    let (_server, mut c) = start_with_sweep(|_| {}, spec("c")).await;
    let running = lease(&mut c, "w").await.unwrap();
    let finishing = lease(&mut c, "w").await.unwrap();

    let s = c
        .cancel_sweep(CancelSweepRequest {
            sweep_id: "c".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.cancelled, s.running, s.queued), (10, 2, 0));
    assert!(lease(&mut c, "w").await.is_none());

    let hb = c
        .heartbeat(HeartbeatRequest {
            job_id: running.job_id,
            token: running.token,
            worker_id: "w".into(),
            iter: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(hb.cancel, "the running job must be told to stop");
    c.release_job(ReleaseJobRequest {
        job_id: running.job_id,
        token: running.token,
        worker_id: "w".into(),
    })
    .await
    .unwrap();
    // A job that finishes despite the cancel keeps its result.
    complete(&mut c, &finishing, "w", 0.5).await;
    let s = summary(&mut c, "c").await;
    assert_eq!((s.cancelled, s.done, s.running), (11, 1, 0));

    let s = c
        .retry_failed(RetryFailedRequest {
            sweep_id: "c".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.queued, s.done, s.cancelled), (11, 1, 0));
}

#[tokio::test]
async fn lease_input_is_validated() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    for (worker_id, host) in [("", "h"), ("w", &*"h".repeat(10_000))] {
        let e = c
            .lease_job(LeaseJobRequest {
                worker_id: worker_id.into(),
                host: host.into(),
                device: "cpu".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }
    // Nothing queued: an empty answer, not an error.
    assert!(lease(&mut c, "w").await.is_none());
}

/// A pack lease (`max_jobs` > 1) of worker `worker`: every job it got.
async fn lease_pack(c: &mut Client, worker: &str, max_jobs: u32, pack_key: &str) -> Vec<Job> {
    let answer = c
        .lease_job(LeaseJobRequest {
            worker_id: worker.into(),
            host: "testhost".into(),
            device: "cpu".into(),
            max_jobs,
            pack_key: pack_key.into(),
        })
        .await
        .unwrap()
        .into_inner();
    answer.job.into_iter().chain(answer.more).collect()
}

#[tokio::test]
async fn a_stale_token_of_a_pack_job_is_refused_exactly_as_for_a_single_job() {
    let (server, mut c) = start_with_client(|c| c.reap_every_ms = 20).await;
    // 12 jobs, 4 pack keys (2 pdes × 2 widths) of 3 seeds each.
    submit(&mut c, spec("pk")).await;

    let a = lease_pack(&mut c, "worker-a", 4, "").await;
    // The oldest job and the rest of its key: one key, 3 jobs, each with a lease of its own.
    assert_eq!(a.len(), 3, "{a:?}");
    assert!(
        a.iter()
            .all(|j| j.pack_key == a[0].pack_key && j.token == 1)
    );
    // The default reading (paper) reads burgers' L_b as grouped means.
    assert_eq!(a[0].pack_key, "burgers:w8:d5:f32:nc16:grouped");
    let ids: HashSet<i64> = a.iter().map(|j| j.job_id).collect();
    assert_eq!(ids.len(), 3);

    // One job of the pack goes silent; the reaper re-queues it and worker B leases it.
    expire_lease(&server.db, a[1].job_id).await;
    wait_for_state(&c, a[1].job_id, "queued", Duration::from_secs(20)).await;
    let b = lease_pack(&mut c, "worker-b", 2, &a[0].pack_key).await;
    assert_eq!(b.len(), 1, "only the re-queued job has that key");
    assert_eq!((b[0].job_id, b[0].token), (a[1].job_id, a[1].token + 1));

    // A's stale token for that job: every write refused, nothing written.
    let before = snapshot(&mut c).await;
    assert_every_write_refused(&mut c, &a[1], "worker-a").await;
    // (Every refused write left the store as it was, except the workers' bookkeeping, which
    // refused writes never touch either.)
    assert_eq!(snapshot(&mut c).await, before);

    // The fence is per job, not per pack: A's other two leases still hold.
    for job in [&a[0], &a[2]] {
        let answer = c
            .heartbeat(HeartbeatRequest {
                job_id: job.job_id,
                token: job.token,
                worker_id: "worker-a".into(),
                iter: 1,
            })
            .await;
        assert!(answer.is_ok(), "job {}: {answer:?}", job.job_id);
        complete(&mut c, job, "worker-a", 0.25).await;
    }
    complete(&mut c, &b[0], "worker-b", 0.5).await;
    let done = sql(
        &mut c,
        "SELECT r.job_id, r.worker_id FROM results r ORDER BY r.job_id",
    )
    .await;
    let mut expected: Vec<(i64, &str)> = vec![
        (a[0].job_id, "worker-a"),
        (a[1].job_id, "worker-b"),
        (a[2].job_id, "worker-a"),
    ];
    expected.sort();
    let got: Vec<(i64, String)> = done
        .iter()
        .map(|r| (sql_int_of(&r[0]), text(&r[1]).to_string()))
        .collect();
    assert_eq!(
        got,
        expected
            .iter()
            .map(|(i, w)| (*i, w.to_string()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_pack_lease_asking_for_too_many_jobs_is_refused_naming_the_field() {
    let (_server, mut c) = start_with_sweep(|_| {}, spec("big")).await;
    let err = c
        .lease_job(LeaseJobRequest {
            worker_id: "w".into(),
            max_jobs: MAX_LEASE_JOBS + 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("max_jobs"), "{}", err.message());
    assert_eq!(summary(&mut c, "big").await.running, 0, "nothing leased");
}

fn sql_int_of(k: &Kind) -> i64 {
    match k {
        Kind::Integer(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}
