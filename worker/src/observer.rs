//! The bridge between a training thread and its slot's async reporting loop: the trainer's
//! observer hooks turn into channel messages, and the slot's stop decision into a flag the trainer
//! polls every step. Nothing here blocks, so the training hot path pays one atomic store per step.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use modsync_proto::MetricRow;
use tokio::sync::mpsc::UnboundedSender;
use trainer_core::{Checkpoint, MetricsRow, Observer, RunResult};

/// What the training thread tells its slot.
pub enum Event {
    Metrics(MetricRow),
    /// `Checkpoint::to_bytes` and the iteration it was taken at.
    Checkpoint(Vec<u8>, u64),
    /// The run ended: a result, or why there is none (config error, panic).
    Done(Result<Box<RunResult>, String>),
}

/// Shared between the slot and its training thread.
#[derive(Default)]
pub struct Control {
    /// Set by the slot (shutdown, cancel, lost lease); the trainer stops at its next step.
    pub stop: AtomicBool,
    /// Steps done, for heartbeats.
    pub iter: AtomicU64,
}

/// Forwards the run's events to the slot. An unbounded channel, because the trainer must never
/// wait on the network; the slot drains it at least every heartbeat.
pub struct ChannelObserver {
    pub events: UnboundedSender<Event>,
    pub control: Arc<Control>,
}

impl Observer for ChannelObserver {
    fn on_step(&mut self, iter: u64) {
        self.control.iter.store(iter, Ordering::Relaxed);
    }

    fn on_metrics(&mut self, row: &MetricsRow) {
        let row_json = serde_json::to_string(row).expect("metrics rows serialise");
        // A closed channel means the slot gave up on this job; the trainer is being stopped.
        let _ = self.events.send(Event::Metrics(MetricRow { row_json }));
    }

    fn on_checkpoint(&mut self, checkpoint: &Checkpoint) {
        let _ = self
            .events
            .send(Event::Checkpoint(checkpoint.to_bytes(), checkpoint.iter));
    }

    fn should_stop(&mut self) -> bool {
        self.control.stop.load(Ordering::Relaxed)
    }
}
