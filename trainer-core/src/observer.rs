//! How a run talks to whoever runs it (the CLI's progress bar, the worker's gRPC reporting):
//! metrics rows ([`MetricsRow`]), checkpoints, and cancellation. Every hook has a no-op default.

use crate::checkpoint::Checkpoint;
use crate::metrics_row::MetricsRow;

/// Receives a run's events. Called from the training thread; keep each call short.
pub trait Observer {
    /// After each optimisation step (for progress bars).
    fn on_step(&mut self, _iter: u64) {}
    /// After each evaluation.
    fn on_metrics(&mut self, _row: &MetricsRow) {}
    /// Every `checkpoint_every` iterations, and when the run is cancelled.
    fn on_checkpoint(&mut self, _checkpoint: &Checkpoint) {}
    /// Polled once per step; `true` stops the run after a final checkpoint.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// An observer that ignores everything.
pub struct NoopObserver;

impl Observer for NoopObserver {}
