//! A coordinator stopped (gracefully or not) and started again on the same file carries on.

use std::time::Duration;

use crate::common::*;

#[tokio::test]
async fn restarted_coordinator_continues_and_reaps_old_leases() {
    let tweak = |c: &mut coordinator::ServeConfig| {
        c.lease_ms = 600;
        c.heartbeat_ms = 100;
        c.reap_every_ms = 25;
    };
    let first = Server::start(tweak).await;
    let db = first.db.clone();
    let mut c = first.client().await;
    submit(&mut c, spec("r")).await;
    let done = lease(&mut c, "w").await.unwrap();
    complete(&mut c, &done, "w", 0.5).await;
    let orphan = lease(&mut c, "w").await.unwrap();
    let (served, dir) = first.stop().await;
    served.expect("graceful shutdown returns Ok");

    // Let the orphan's lease run out while no coordinator is up.
    tokio::time::sleep(Duration::from_millis(650)).await;
    // The second coordinator's own leases are long, so none of them expires during the test;
    // the orphan's expiry was stored by the first one.
    let second = Server::start_on(db, |c| c.reap_every_ms = 25).await;
    let mut c = second.client().await;
    let s = summary(&mut c, "r").await;
    assert_eq!((s.total, s.done), (12, 1), "nothing lost");
    assert!(
        eventually(Duration::from_secs(5), || {
            let mut c = c.clone();
            async move { summary(&mut c, "r").await.queued == 11 }
        })
        .await,
        "the orphaned lease was reaped after the restart"
    );
    // Resubmitting after the restart creates nothing; the orphan is leased with a new token.
    assert_eq!(submit(&mut c, spec("r")).await.jobs_created, 0);
    let mut seen = false;
    while let Some(job) = lease(&mut c, "w2").await {
        if job.job_id == orphan.job_id {
            assert_eq!((job.token, job.attempt), (orphan.token + 1, 2));
            seen = true;
        }
    }
    assert!(seen);
    assert_eq!(sql_i64(&mut c, "SELECT COUNT(*) FROM results").await, 1);
    second.stop().await.0.unwrap();
    drop(dir);
}

#[tokio::test]
async fn shutdown_waits_for_the_server_and_the_reaper() {
    let (server, _c) = start_with_sweep(|_| {}, spec("s")).await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), server.stop()).await;
    stopped
        .expect("serve_with_listener returned after shutdown")
        .0
        .unwrap();
}

#[tokio::test]
async fn serve_refuses_a_config_that_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let config = coordinator::ServeConfig {
        db: dir.path().join("x.db"),
        listen: "127.0.0.1:0".parse().unwrap(),
        lease_ms: 1000,
        heartbeat_ms: 1000,
        ..Default::default()
    };
    let e = coordinator::serve(config, async {}).await.unwrap_err();
    assert!(e.to_string().contains("heartbeat_ms"), "{e}");
    assert!(
        !dir.path().join("x.db").exists(),
        "nothing opened before validation"
    );
}
