//! Evaluation: the network on the test grid against the PDE's reference solution (relative
//! L2, mean and max absolute error), recorded in the best/min-loss tracker, as a metrics row.

use burn::tensor::Tensor;

use super::Trainer;
use super::batch::Batch;
use super::losses::StepGradients;
use crate::checkpoint::Evaluation;
use crate::metrics_row::MetricsRow;
use crate::mlp::Layers;
use crate::pde::{self, Grid};
use crate::tensors::to_host;

/// Test-grid rows per evaluation forward, to bound memory on 10⁶-point 3-D grids.
const EVAL_CHUNK: usize = 32_768;

impl Trainer {
    /// Test errors at the current θ, recorded in the tracker unless non-finite.
    pub(super) fn evaluate(
        &mut self,
        batch: &Batch,
        grads: &StepGradients,
        elapsed_s: f64,
    ) -> MetricsRow {
        let losses = to_host(Tensor::cat(
            vec![
                grads
                    .loss_r
                    .clone()
                    .expect("evaluations compute both losses"),
                grads
                    .loss_b
                    .clone()
                    .expect("evaluations compute both losses"),
            ],
            0,
        ));
        let extra = self.diagnostics(batch, grads);
        let pred = self.predict_test_grid();
        let mut sq_err = 0.0;
        let mut abs_sum = 0.0;
        let mut abs_max: f64 = 0.0;
        for (p, r) in pred.iter().zip(&self.test_reference) {
            let e = p - r;
            sq_err += e * e;
            abs_sum += e.abs();
            abs_max = abs_max.max(e.abs());
        }
        let rel_l2 = sq_err.sqrt() / self.test_reference_norm;
        let abs_err = abs_sum / pred.len() as f64;
        let eval = Evaluation {
            iter: self.iter,
            rel_l2,
            abs_err,
            abs_err_max: abs_max,
            loss: losses[0] + losses[1],
        };
        if [rel_l2, abs_err, abs_max, eval.loss]
            .iter()
            .all(|v| v.is_finite())
        {
            self.tracker.record(eval);
        }
        MetricsRow {
            iter: self.iter,
            lr: self.config.lr_at(self.iter),
            loss_r: losses[0],
            loss_b: losses[1],
            rel_l2,
            abs_err,
            abs_err_max: abs_max,
            skipped_steps: self.skipped_steps,
            elapsed_s,
            extra,
        }
    }

    /// The network on every test point, in grid order.
    pub fn predict_test_grid(&self) -> Vec<f64> {
        let layers = Layers::from_flat(&self.effective_theta(), &self.arch);
        let mut out = Vec::with_capacity(self.test_reference.len());
        for chunk in &self.test_points {
            out.extend(to_host(layers.forward(chunk.clone())));
        }
        out
    }

    /// The network at arbitrary raw points (row-major), for tests and plots.
    pub fn predict(&self, points: &[f64]) -> Vec<f64> {
        let layers = Layers::from_flat(&self.effective_theta(), &self.arch);
        to_host(layers.forward(self.upload_points(points)))
    }

    /// The parameters the network computes with: θ, or ModSync's masked θ̃.
    pub(super) fn effective_theta(&self) -> Tensor<1> {
        match &self.modsync {
            Some(m) => m.masked(&self.theta).theta,
            None => self.theta.clone(),
        }
    }

    /// Normalises raw row-major points and uploads them as `[n, dim]`.
    pub(super) fn upload_points(&self, points: &[f64]) -> Tensor<2> {
        let dim = self.pde.dim();
        let normalised = pde::normalise(points, &self.input_shift, &self.input_scale);
        self.ctx.matrix(&normalised, points.len() / dim, dim)
    }

    pub(super) fn upload_grid(&self, grid: &Grid) -> Vec<Tensor<2>> {
        let dim = self.pde.dim();
        grid.points
            .chunks(EVAL_CHUNK * dim)
            .map(|c| self.upload_points(c))
            .collect()
    }
}
