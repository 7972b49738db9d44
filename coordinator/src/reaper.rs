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
use crate::fence::now_ms;
use crate::jobs::queue;
use crate::store::Store;

impl Store {
    /// Reaps every running job whose lease expired before `now_ms` (the statement is
    /// `jobs::queue::reap_expired`); returns how many.
    pub async fn reap_expired(&self, now_ms: i64) -> Result<u64> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let reaped = queue::reap_expired(&mut tx, now_ms).await?;
        tx.commit().await?;
        for job in &reaped {
            tracing::warn!(job = job.id, now = %job.state, attempts = job.attempts, "lease expired");
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
