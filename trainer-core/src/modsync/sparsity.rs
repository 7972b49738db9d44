//! The sparsity loss of paper Eq. 7–9 and its analytic gradients, on the flat threshold
//! vectors t_r, t_b (all masked layers' units, layer after layer).
//!
//! Full mode, per unit: L_s = Σ_units R_w (e^{−t_r} + e^{−t_b}), R_w = exp(min(q, q_max)),
//! q = (t_r − t_b)²/β. With d = t_r − t_b, E = e^{−t_r} + e^{−t_b} and ∂R/∂t_r = R·2d/β
//! (0 where the clamp is active, or when R_w is detached):
//! ∂L_s/∂t_r = −R e^{−t_r} + E ∂R/∂t_r, ∂L_s/∂t_b = −R e^{−t_b} − E ∂R/∂t_r.
//! Per layer, q_l = ‖t_r − t_b‖²_l/β is shared by the layer's units and E becomes Σ_l E.

use std::ops::Range;

use burn::tensor::Tensor;

use super::options::{Ablation, ModSyncOptions, RwMode};

/// L_s, its gradient w.r.t. t_r and t_b, and the R_w applied to each unit.
#[derive(Clone, Debug)]
pub struct Sparsity {
    pub loss: Tensor<1>,
    pub d_r: Tensor<1>,
    pub d_b: Tensor<1>,
    /// R_w per unit as used (1 in the ablation modes).
    pub rw: Tensor<1>,
}

/// `layers` are the unit ranges of each masked layer in the flat vectors.
pub fn sparsity(
    t_r: &Tensor<1>,
    t_b: &Tensor<1>,
    opts: &ModSyncOptions,
    layers: &[Range<usize>],
) -> Sparsity {
    let e_r = t_r.clone().neg().exp();
    match opts.mode {
        Ablation::SparsityOnly => {
            let d = e_r.clone().neg();
            return Sparsity {
                loss: e_r.clone().sum(),
                d_r: d.clone(),
                d_b: d,
                rw: e_r.ones_like(),
            };
        }
        Ablation::DualThresholds => {
            let e_b = t_b.clone().neg().exp();
            return Sparsity {
                loss: e_r.clone().add(e_b.clone()).sum(),
                d_r: e_r.clone().neg(),
                d_b: e_b.neg(),
                rw: e_r.ones_like(),
            };
        }
        Ablation::Full => {}
    }
    let e_b = t_b.clone().neg().exp();
    let diff = t_r.clone().sub(t_b.clone());
    let q_max = opts.rw_max_exponent;
    let two_over_beta = 2.0 / opts.beta;
    // Gradient of R_w w.r.t. t_r (−that for t_b), masked where the clamp is active.
    let r_slope = |rw: Tensor<1>, diff: Tensor<1>, q: Tensor<1>| {
        if opts.detach_rw {
            rw.zeros_like()
        } else {
            rw.mul(diff)
                .mul_scalar(two_over_beta)
                .mask_fill(q.greater_equal_elem(q_max), 0.0)
        }
    };
    match opts.rw {
        RwMode::PerUnit => {
            let q = diff.clone().square().div_scalar(opts.beta);
            let rw = q.clone().clamp_max(q_max).exp();
            let e = e_r.clone().add(e_b.clone());
            let slope = r_slope(rw.clone(), diff, q);
            let e_slope = e.clone().mul(slope);
            Sparsity {
                loss: rw.clone().mul(e).sum(),
                d_r: rw.clone().mul(e_r).neg().add(e_slope.clone()),
                d_b: rw.clone().mul(e_b).neg().sub(e_slope),
                rw,
            }
        }
        RwMode::PerLayer => {
            let mut losses = Vec::with_capacity(layers.len());
            let mut d_r = Vec::with_capacity(layers.len());
            let mut d_b = Vec::with_capacity(layers.len());
            let mut rws = Vec::with_capacity(layers.len());
            for units in layers {
                let n = units.len();
                let diff_l = diff.clone().slice(units.clone());
                let e_r_l = e_r.clone().slice(units.clone());
                let e_b_l = e_b.clone().slice(units.clone());
                let q = diff_l.clone().square().sum().div_scalar(opts.beta);
                let rw = q.clone().clamp_max(q_max).exp();
                let e_sum = e_r_l.clone().add(e_b_l.clone()).sum();
                let rw_units = rw.clone().expand([n]);
                let slope = r_slope(rw_units.clone(), diff_l, q.expand([n]));
                let e_slope = slope.mul(e_sum.clone().expand([n]));
                losses.push(rw.mul(e_sum));
                d_r.push(rw_units.clone().mul(e_r_l).neg().add(e_slope.clone()));
                d_b.push(rw_units.clone().mul(e_b_l).neg().sub(e_slope));
                rws.push(rw_units);
            }
            Sparsity {
                loss: Tensor::cat(losses, 0).sum(),
                d_r: Tensor::cat(d_r, 0),
                d_b: Tensor::cat(d_b, 0),
                rw: Tensor::cat(rws, 0),
            }
        }
    }
}
