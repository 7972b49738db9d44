//! The per-evaluation diagnostics of SPEC §5 (`diagnostics.enabled`): the task gradients'
//! cosine and norms, the method's own values, ModSync's mask statistics, and the
//! sample-orthogonality fraction every `diag_every` steps.

use std::collections::BTreeMap;

use burn::tensor::Tensor;

use super::Trainer;
use super::batch::Batch;
use super::losses::StepGradients;
use crate::methods::{self, PairStats};
use crate::modsync::diagnostics::spread;
use crate::tensors::to_host;

impl Trainer {
    /// Fraction of `orth_points` residual points i with |∇θ ℓ_r,i · ∇θ L_b| > eps_dot.
    pub(super) fn orth_frac(&self, batch: &Batch, grads: &StepGradients) -> Option<f64> {
        let g_b = grads.g_b.as_ref()?;
        let masked = grads.masked.as_ref();
        let theta = masked.map_or(&self.theta, |m| &m.theta).clone();
        let opts = &self.config.diagnostics;
        let dots: Vec<Tensor<1>> = spread(batch.residual_x.dims()[0], opts.orth_points)
            .into_iter()
            .map(|i| {
                self.residual_point_grad(batch, i, &theta, masked, true)
                    .mul(g_b.clone())
                    .sum()
            })
            .collect();
        let dots = to_host(Tensor::cat(dots, 0));
        let above = dots.iter().filter(|d| d.abs() > opts.eps_dot).count();
        Some(above as f64 / dots.len() as f64)
    }

    /// The diagnostics of SPEC §5 for this step's gradients (see `modsync::diagnostics`).
    pub(super) fn diagnostics(
        &self,
        batch: &Batch,
        grads: &StepGradients,
    ) -> BTreeMap<String, f64> {
        let mut extra = BTreeMap::new();
        if !self.config.diagnostics.enabled {
            return extra;
        }
        if let (Some(g_r), Some(g_b)) = (&grads.g_r, &grads.g_b) {
            let n = g_r.dims()[0];
            let s = PairStats::from_probe(&to_host(methods::stats::probe(g_r, g_b)), n);
            extra.insert("cos_rb".into(), s.cos);
            extra.insert("norm_g_r".into(), s.norm_r);
            extra.insert("norm_g_b".into(), s.norm_b);
        }
        extra.extend(self.stepper.method.diagnostics());
        if let Some(m) = &self.modsync {
            extra.extend(m.diagnostics(&self.theta));
        }
        let orth_due = self
            .config
            .diagnostics
            .orth_due(self.iter, self.config.eval_every);
        if let Some(f) = orth_due.then(|| self.orth_frac(batch, grads)).flatten() {
            extra.insert("orth_frac".into(), f);
        }
        extra
    }
}
