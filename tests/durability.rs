//! Durability: a completion the coordinator acknowledged survives a SIGKILL of the coordinator
//! right after the acknowledgement. Each round leases a handful of jobs, sends their
//! completions at once, SIGKILLs the `modsync coordinator` process the moment the first OK
//! arrives (the others race the kill), restarts it on the same file and port, and checks that
//! every acknowledged result is there.

mod common;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use common::{Coordinator, serial, tiny_sweep, write};
use modsync_proto::sweeps_client::SweepsClient;
use modsync_proto::value::Kind;
use modsync_proto::*;
use tonic::transport::Channel;
use trainer_core::{RunResult, RunStatus, TrainConfig};

const ROUNDS: usize = 12;
/// Completions sent at once per round.
const RACING: usize = 6;

fn result_json(job: &Job) -> String {
    let config: TrainConfig = serde_json::from_str(&job.config_json).unwrap();
    let r = RunResult {
        status: RunStatus::Finished,
        rel_l2_best: 0.1 + job.job_id as f64 * 1e-3,
        rel_l2_min_loss: 0.2,
        rel_l2_last: 0.3,
        abs_err_best: 0.01,
        abs_err_max_best: 0.05,
        best_iter: 10,
        min_loss_iter: 10,
        iters_done: config.iters,
        diverged: false,
        skipped_steps: 0,
        wall_s: 0.5,
        iters_per_s: 20.0,
        num_params: 100,
        config,
    };
    serde_json::to_string(&r).unwrap()
}

async fn client(url: &str) -> SweepsClient<Channel> {
    for _ in 0..100 {
        if let Ok(c) = SweepsClient::connect(url.to_string()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {url}");
}

/// (state, has a result) of every job.
async fn jobs(c: &mut SweepsClient<Channel>) -> BTreeMap<i64, (String, bool)> {
    let r = c
        .query(QueryRequest {
            sql: "SELECT j.id, j.state, r.job_id IS NOT NULL FROM jobs j \
                  LEFT JOIN results r ON r.job_id = j.id"
                .into(),
            max_rows: 0,
        })
        .await
        .unwrap()
        .into_inner();
    r.rows
        .into_iter()
        .map(|row| {
            let v: Vec<Kind> = row.values.into_iter().map(|v| v.kind.unwrap()).collect();
            match &v[..] {
                [Kind::Integer(id), Kind::Text(state), Kind::Integer(has)] => {
                    (*id, (state.clone(), *has == 1))
                }
                other => panic!("unexpected row {other:?}"),
            }
        })
        .collect()
}

#[test]
fn acknowledged_completions_survive_a_coordinator_sigkill() {
    let _serial = serial();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("durable.db");
    // Default leases (30 s): nothing expires during the test, so only the kills matter.
    let mut coord = Coordinator::start(&db, None, &[]);
    let seeds: Vec<i32> = (0..(ROUNDS * RACING) as i32).collect();
    let file = write(
        dir.path(),
        "durable.toml",
        &tiny_sweep("durable", &[4], &seeds, 10, ""),
    );
    coord.cli(&["submit", &file]);

    let mut acked_total = Vec::new();
    let mut in_flight_committed = 0usize;
    let mut in_flight_lost = 0usize;
    for round in 0..ROUNDS {
        let url = coord.url.clone();
        let leased: Vec<Job> = rt.block_on(async {
            let mut c = client(&url).await;
            let mut out = Vec::new();
            for _ in 0..RACING {
                let job = c
                    .lease_job(LeaseJobRequest {
                        worker_id: format!("w{round}"),
                        host: "h".into(),
                        device: "cpu".into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .job
                    .expect("a queued job");
                out.push(job);
            }
            out
        });

        // All completions at once, each on its own connection; the main thread kills the
        // coordinator as soon as the first OK arrives.
        let (tx, rx) = mpsc::channel::<(i64, bool)>();
        let clients: Vec<SweepsClient<Channel>> =
            rt.block_on(async { futures_join(&url, RACING).await });
        for (job, mut c) in leased.iter().cloned().zip(clients) {
            let tx = tx.clone();
            rt.spawn(async move {
                let r = c
                    .complete_job(CompleteJobRequest {
                        job_id: job.job_id,
                        token: job.token,
                        worker_id: "w".into(),
                        result_json: result_json(&job),
                        device: "cpu".into(),
                    })
                    .await;
                let _ = tx.send((job.job_id, r.is_ok()));
            });
        }
        drop(tx);
        let mut outcome = BTreeMap::new();
        let (first, ok) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a completion answered");
        outcome.insert(first, ok);
        if ok {
            coord.proc.kill9();
        }
        while let Ok((id, ok)) = rx.recv_timeout(Duration::from_secs(60)) {
            outcome.insert(id, ok);
        }
        assert_eq!(outcome.len(), RACING, "every completion answered");
        assert!(
            ok,
            "round {round}: the first answer was an error before any kill"
        );

        coord.restart_killed();
        let url = coord.url.clone();
        let after = rt.block_on(async {
            let mut c = client(&url).await;
            jobs(&mut c).await
        });
        for (id, acked) in &outcome {
            let (state, has_result) = &after[id];
            if *acked {
                assert!(
                    *has_result && state == "done",
                    "round {round}: job {id} was acknowledged but is {state} with result {has_result}"
                );
                acked_total.push(*id);
            } else if *has_result {
                // Committed, but the answer died with the coordinator: also fine.
                assert_eq!(state, "done");
                in_flight_committed += 1;
            } else {
                assert_eq!(state, "running", "job {id}");
                in_flight_lost += 1;
            }
        }
    }

    // Every acknowledged result, once, at the end too; and the file is sound.
    let rows = coord.sql("SELECT job_id FROM results ORDER BY job_id");
    let stored: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    for id in &acked_total {
        assert!(stored.contains(id), "job {id} lost");
    }
    assert_eq!(
        coord.sql_int("SELECT COUNT(*) FROM results"),
        coord.sql_int("SELECT COUNT(*) FROM jobs WHERE state = 'done'")
    );
    assert_eq!(
        coord.sql("SELECT * FROM pragma_integrity_check"),
        vec![vec!["ok".to_string()]]
    );
    eprintln!(
        "durability: {ROUNDS} SIGKILLs; {} acknowledged completions all survived; of the \
         unacknowledged in flight at the kill, {in_flight_committed} had committed and \
         {in_flight_lost} had not",
        acked_total.len()
    );
    assert!(acked_total.len() >= ROUNDS);
}

/// `n` connected clients.
async fn futures_join(url: &str, n: usize) -> Vec<SweepsClient<Channel>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(client(url).await);
    }
    out
}
