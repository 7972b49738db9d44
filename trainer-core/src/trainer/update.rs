//! Applying a step: the gradients the method asked for go to the method and the outer Adam
//! (ModSync's thresholds to theirs), in two halves around the pack's one host read; a
//! non-finite or unusable step is skipped and counted.

use burn::tensor::Tensor;

use super::Trainer;
use super::losses::StepGradients;
use crate::methods::{self, StepOutcome, TaskGrads};
use crate::modsync::ThresholdGrads;

impl Trainer {
    /// The first half of a step of θ (and ModSync's thresholds) with this step's gradients:
    /// the device values to read back (see `apply` in `pack.rs`). The gradients the method did not
    /// ask for (computed only for an evaluation or for a partner in the pack) are dropped, so
    /// a run depends neither on `eval_every` nor on its pack.
    pub(super) fn prepare_apply(&mut self, grads: StepGradients) -> (Tensor<1>, PendingApply) {
        let tasks = self.stepper.method.tasks(self.iter);
        let keep = |on: bool, t: Option<Tensor<1>>| if on { t } else { None };
        let mut checks: Vec<Tensor<1>> = keep(tasks.residual(), grads.loss_r)
            .into_iter()
            .chain(keep(tasks.boundary(), grads.loss_b))
            .collect();
        let thresholds = self.modsync.as_ref().map(|m| {
            m.threshold_grads(
                keep(tasks.residual(), grads.dt_r),
                keep(tasks.boundary(), grads.dt_b),
            )
        });
        if let Some(t) = &thresholds {
            checks.push(t.check());
        }
        let task_grads = TaskGrads {
            g_r: keep(tasks.residual(), grads.g_r),
            g_b: keep(tasks.boundary(), grads.g_b),
        };
        let (read, step) = self.stepper.prepare(task_grads, checks);
        (read, PendingApply { step, thresholds })
    }

    /// The second half: steps θ, or skips the step if anything read back is non-finite or
    /// the method finds no usable direction.
    pub(super) fn finish_apply(&mut self, pending: PendingApply, host: &[f64]) {
        let lr = self.config.lr_at(self.iter);
        let (outcome, _) = self.stepper.finish(&mut self.theta, pending.step, host, lr);
        if outcome == StepOutcome::Skipped {
            self.skipped_steps += 1;
            self.consecutive_skips += 1;
            return;
        }
        self.consecutive_skips = 0;
        if let (Some(m), Some(g)) = (&mut self.modsync, pending.thresholds) {
            let lr_t = if m.opts.lr_t_decay {
                m.opts.lr_t * lr / self.config.lr
            } else {
                m.opts.lr_t
            };
            m.step_thresholds(g, lr_t);
        }
    }
}

/// A step that waits for its host values (see [`Trainer::prepare_apply`]).
pub(super) struct PendingApply {
    step: methods::PendingStep,
    thresholds: Option<ThresholdGrads>,
}
