//! How a run talks to whoever runs it (the CLI's progress bar, the worker's gRPC reporting):
//! metrics rows, checkpoints, and cancellation. Every hook has a no-op default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;

/// One evaluation: what `metrics.csv` and the coordinator's `metrics` table hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// Optimisation steps completed when this row was taken.
    pub iter: u64,
    pub lr: f64,
    /// Training losses at the parameters of this row (the batch of step `iter`).
    pub loss_r: f64,
    pub loss_b: f64,
    /// Relative L2 error on the test grid.
    pub rel_l2: f64,
    /// Mean and max absolute error on the test grid.
    pub abs_err: f64,
    pub abs_err_max: f64,
    /// Steps skipped as non-finite so far.
    pub skipped_steps: u64,
    /// Seconds of training so far (across resumes).
    pub elapsed_s: f64,
    /// Method diagnostics (cosine, norms, mask statistics), by name.
    #[serde(default)]
    pub extra: BTreeMap<String, f64>,
}

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
