//! Fencing while nobody holds the lease. The token changes only when a job is leased, so a
//! worker whose lease expired still holds the job's current token until someone leases the job
//! again — and for good once the job has `failed`. Its writes must be refused all the same: the
//! `state = 'running'` condition of every fenced write is what refuses them (the stale-token
//! test in `lease.rs` covers the other case, a job re-leased under a new token).

use std::time::Duration;

use coordinator::ServeConfig;
use modsync_proto::*;

use crate::common::*;

/// Leases that expire (and are reaped) within a fraction of a second.
fn short_leases(c: &mut ServeConfig) {
    c.lease_ms = 200;
    c.heartbeat_ms = 50;
    c.reap_every_ms = 20;
}

/// Generous: the reaper needs one pass after the lease ran out.
const REAPED: Duration = Duration::from_secs(20);

/// Leases the one job of a `max_attempts` sweep, lets the lease expire until the reaper moved
/// the job to `state`, and checks that the expired worker still holds the current token.
async fn expired_lease(c: &mut Client, max_attempts: u32, state: &str) -> Job {
    submit(
        c,
        SweepSpec {
            max_attempts,
            ..one_job(state)
        },
    )
    .await;
    let gone = lease(c, "gone").await.unwrap();
    wait_for_state(c, gone.job_id, state, REAPED).await;
    let token = sql_i64(
        c,
        &format!("SELECT token FROM jobs WHERE id = {}", gone.job_id),
    )
    .await;
    assert_eq!(
        token, gone.token,
        "reaping must not be what fences the worker off here"
    );
    gone
}

/// Every write of the worker that held `gone` is refused, and the store is as it was.
async fn assert_every_write_refused_and_nothing_written(c: &mut Client, gone: &Job) {
    let before = snapshot(c).await;
    assert_every_write_refused(c, gone, "gone").await;
    assert_eq!(
        snapshot(c).await,
        before,
        "a refused write changed the store"
    );
}

#[tokio::test]
async fn writes_after_the_lease_expired_are_refused_while_the_job_waits_in_the_queue() {
    let (_server, mut c) = start_with_client(short_leases).await;
    let gone = expired_lease(&mut c, 3, "queued").await;

    assert_every_write_refused_and_nothing_written(&mut c, &gone).await;

    // The job is leased as if the refused writes had never been sent: no checkpoint, the
    // reaped attempt counted once, a new token.
    let next = lease(&mut c, "next").await.unwrap();
    assert_eq!(
        (next.job_id, next.token, next.attempt),
        (gone.job_id, gone.token + 1, 2)
    );
    assert!(
        next.checkpoint.is_empty(),
        "a refused checkpoint was stored"
    );
}

#[tokio::test]
async fn writes_after_the_lease_expired_are_refused_once_the_job_failed() {
    let (_server, mut c) = start_with_client(short_leases).await;
    let gone = expired_lease(&mut c, 1, "failed").await;

    assert_every_write_refused_and_nothing_written(&mut c, &gone).await;
    assert!(
        lease(&mut c, "next").await.is_none(),
        "a refused release or failure re-queued the failed job"
    );
}
