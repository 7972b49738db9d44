//! The two task losses of a step, L_r and L_b, and their gradients w.r.t. θ: by the explicit
//! reverse pass for a whole pack (`backprop`), or by Burn autodiff for one network (the
//! oracle); ModSync's masked network before and its pull-back to θ and t after.

use burn::tensor::Tensor;

use super::Trainer;
use super::batch::{Batch, PackBatch};
use crate::backprop::{self, PackLayers};
use crate::jet::JetSpec;
use crate::mlp::Layers;
use crate::modsync::MaskedStep;

/// Losses and gradients of one step; `None` where a task was not back-propagated.
pub(super) struct StepGradients {
    pub(super) loss_r: Option<Tensor<1>>,
    pub(super) loss_b: Option<Tensor<1>>,
    /// ∇θ of each task loss (under ModSync: pulled back through the masks).
    pub(super) g_r: Option<Tensor<1>>,
    pub(super) g_b: Option<Tensor<1>>,
    /// ModSync: ∂L_r/∂t and ∂L_b/∂t of the mask thresholds t = (t_r + t_b)/2.
    pub(super) dt_r: Option<Tensor<1>>,
    pub(super) dt_b: Option<Tensor<1>>,
    /// ModSync: the masked network the gradients were taken at.
    pub(super) masked: Option<MaskedStep>,
}

impl Trainer {
    /// L_r (autodiff scalar) of the network `layers` on `batch`.
    pub(super) fn residual_loss(&self, layers: &Layers, batch: &Batch) -> Tensor<1> {
        let jet = layers.forward_jet(
            batch.residual_x.clone(),
            &self.residual_spec,
            &self.input_scale,
        );
        self.pde
            .residual(&jet, batch.forcing.clone())
            .square()
            .mean()
    }

    /// L_b (autodiff scalar) of the network `layers` on `batch`.
    pub(super) fn boundary_loss(&self, layers: &Layers, batch: &Batch) -> Tensor<1> {
        let dim = self.pde.dim();
        let mut loss_b: Option<Tensor<1>> = None;
        let mut add =
            |term: Tensor<1>| loss_b = Some(loss_b.take().map_or(term.clone(), |l| l.add(term)));
        if let Some((x, target, weight)) = &batch.values {
            let u = layers.forward(x.clone());
            add(u.sub(target.clone()).square().mul(weight.clone()).sum());
        }
        for (x, target, axis, scale) in &batch.derivatives {
            let jet = layers.forward_jet(
                x.clone(),
                &JetSpec::new(dim, &[*axis], &[]),
                &self.input_scale,
            );
            add(jet
                .d1(*axis)
                .sub(target.clone())
                .square()
                .mean()
                .mul_scalar(*scale));
        }
        loss_b.expect("every PDE has at least one condition")
    }

    /// L_r and ∇θ L_r of each network of a pack by the explicit reverse pass: `[K]`, `[K, P]`.
    pub(super) fn residual_explicit(
        &self,
        layers: &PackLayers,
        batch: &PackBatch,
    ) -> (Tensor<1>, Tensor<2>) {
        backprop::residual_loss_and_grad(
            layers,
            self.pde.as_ref(),
            batch.residual_x.clone(),
            batch.forcing.clone(),
            &self.residual_spec,
            &self.input_scale,
            self.chunks,
        )
    }

    /// L_b and ∇θ L_b of each network of a pack by the explicit reverse pass: one pass per
    /// block of conditions.
    pub(super) fn boundary_explicit(
        &self,
        layers: &PackLayers,
        batch: &PackBatch,
    ) -> (Tensor<1>, Tensor<2>) {
        let values = batch.values.iter().map(|(x, target, weight)| {
            backprop::value_loss_and_grad(
                layers,
                x.clone(),
                target.clone(),
                weight.clone(),
                self.chunks,
            )
        });
        let derivatives = batch.derivatives.iter().map(|(x, target, axis, scale)| {
            backprop::derivative_loss_and_grad(
                layers,
                x.clone(),
                target.clone(),
                *axis,
                *scale,
                &self.input_scale,
                self.chunks,
            )
        });
        values
            .chain(derivatives)
            .reduce(|(l1, g1), (l2, g2)| (l1.add(l2), g1.add(g2)))
            .expect("every PDE has at least one condition")
    }

    /// ModSync's masked network for this step (resetting thresholds when `training`), and the
    /// NTK traces the method wants before step `iter`: the part of a step's gradients that
    /// each network of a pack does on its own, before the pack's batched pass.
    pub(super) fn begin_gradients(&mut self, batch: &Batch, training: bool) -> Option<MaskedStep> {
        let masked = match &mut self.modsync {
            Some(m) if training => Some(m.begin_step(&self.theta)),
            Some(m) => Some(m.masked(&self.theta)),
            None => None,
        };
        if training && self.stepper.method.ntk_due(self.iter) {
            let theta = masked.as_ref().map_or(&self.theta, |m| &m.theta).clone();
            let (t_r, t_b) = self.ntk_traces(batch, &theta, masked.as_ref());
            self.stepper.method.set_ntk_traces(t_r, t_b);
        }
        masked
    }

    /// A task loss and its ∇θ̃ for this network alone, by Burn autodiff (the oracle path).
    pub(super) fn task_autodiff(
        &self,
        theta: &Tensor<1>,
        batch: &Batch,
        residual: bool,
    ) -> (Tensor<1>, Tensor<1>) {
        let leaves = Layers::from_flat(theta, &self.arch).into_leaves();
        let loss = if residual {
            self.residual_loss(&leaves, batch)
        } else {
            self.boundary_loss(&leaves, batch)
        };
        let g = leaves.flat_grad(&loss.backward());
        (loss.inner(), g)
    }

    /// The per-network end of a step's gradients: ModSync's pull-back of ∇θ̃ to θ and t.
    pub(super) fn finish_gradients(
        &self,
        masked: Option<MaskedStep>,
        residual: Option<(Tensor<1>, Tensor<1>)>,
        boundary: Option<(Tensor<1>, Tensor<1>)>,
    ) -> StepGradients {
        let (weight_r, weight_b) = self
            .modsync
            .as_ref()
            .map_or((1.0, 1.0), |m| (m.opts.lambda_r, m.opts.lambda_b));
        let pull = |task: Option<(Tensor<1>, Tensor<1>)>, weight: f64| {
            task.map(|(loss, g_tilde)| match (&self.modsync, &masked) {
                (Some(m), Some(step)) => {
                    let (g, dt) = m.pull_back(step, g_tilde, weight);
                    (loss, g, Some(dt))
                }
                _ => (loss, g_tilde, None),
            })
        };
        let (loss_r, g_r, dt_r) = split3(pull(residual, weight_r));
        let (loss_b, g_b, dt_b) = split3(pull(boundary, weight_b));
        StepGradients {
            loss_r,
            loss_b,
            g_r,
            g_b,
            dt_r,
            dt_b,
            masked,
        }
    }
}

fn split3<A, B, C>(t: Option<(A, B, Option<C>)>) -> (Option<A>, Option<B>, Option<C>) {
    match t {
        Some((a, b, c)) => (Some(a), Some(b), c),
        None => (None, None, None),
    }
}
