//! The lease reaper: returns jobs whose lease expired (their worker died, hung or lost the
//! network) to the queue, or fails them once they used up their attempts.
//!
//! Attempts are counted when a job is leased, so an expired lease has already cost its attempt:
//! the reaper only decides where the job goes. A job whose sweep was cancelled while it ran ends
//! as `cancelled`. The next lease bumps the fencing token, which is what locks the vanished
//! worker out should it come back.
//!
//! Shape (after mini-redis's key-expiry task): one background task owned by a [`Reaper`] value;
//! dropping it (or calling [`Reaper::stop`]) stops the task, so the task can never outlive the
//! server that started it.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::Result;
use crate::store::{Store, now_ms};

impl Store {
    /// Reaps every running job whose lease expired before `now_ms`; returns how many.
    pub async fn reap_expired(&self, now_ms: i64) -> Result<u64> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let reaped: Vec<(i64, String, i64)> = sqlx::query_as(
            "UPDATE jobs SET
                 state = CASE WHEN cancel_requested = 1 THEN 'cancelled'
                              WHEN attempts >= max_attempts THEN 'failed'
                              ELSE 'queued' END,
                 last_error = CASE WHEN cancel_requested = 1 THEN last_error
                     WHEN attempts >= max_attempts
                         THEN 'lease expired after ' || attempts || ' attempts'
                     ELSE 'lease of ' || COALESCE(lease_owner, '?') || ' expired (attempt '
                          || attempts || ' of ' || max_attempts || ')' END,
                 lease_expires_at_ms = NULL, cancel_requested = 0, updated_at_ms = ?
             WHERE state = 'running' AND lease_expires_at_ms < ?
             RETURNING id, state, attempts",
        )
        .bind(now_ms)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        for (job, state, attempts) in &reaped {
            tracing::warn!(job, now = %state, attempts, "lease expired");
        }
        Ok(reaped.len() as u64)
    }
}

/// Owner of the reaper task. Dropping it stops the task (the stop channel closes).
#[derive(Debug)]
pub struct Reaper {
    /// Closing this (sending or dropping) tells the task to finish its current pass and exit.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Starts reaping `store` every `every`, beginning at once (a restarted coordinator frees
    /// the leases that expired while it was down before the first worker asks).
    pub fn spawn(store: Store, every: Duration) -> Reaper {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        if let Err(e) = store.reap_expired(now_ms()).await {
                            // Transient (busy, disk full): try again next tick.
                            tracing::warn!(error = %e, "reaper pass failed");
                        }
                    }
                }
            }
            tracing::debug!("reaper stopped");
        });
        Reaper {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the task and waits for it to finish its current pass.
    pub async fn stop(mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // Dropping the sender wakes the task's `stopped` branch.
        self.stop.take();
    }
}
