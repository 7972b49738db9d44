//! One masked linear weight (SPEC §4, paper Eq. 6), in our `[d_in, d_out]` layout: one
//! threshold per output unit = per column.
//!
//! Forward: Z = |W| − t (t broadcast over rows), M = 1[Z > 0] (strict), W̃ = M ⊙ W.
//! Backward, given G = ∂L/∂W̃ from an ordinary backward pass with W̃ as the leaf:
//! ∂L/∂W = G ⊙ M + G ⊙ W ⊙ S'(Z) ⊙ sign(W) = G ⊙ (M + |W| ⊙ S'(Z)) and
//! ∂L/∂t = −Σ_rows G ⊙ W ⊙ S'(Z), with the long-tailed straight-through slope S' of DST
//! (Liu et al. 2020). Computing these two terms explicitly from G (instead of building a
//! surrogate graph) makes them exactly the formula, which the tests check by hand.

use burn::tensor::Tensor;

/// S'(z) = 2 − 4|z| for |z| ≤ 0.4; 0.4 for 0.4 < |z| ≤ 1; 0 for |z| > 1.
pub fn ste_slope<const D: usize>(z: Tensor<D>) -> Tensor<D> {
    let a = z.abs();
    a.clone()
        .mul_scalar(-4.0)
        .add_scalar(2.0)
        .mask_fill(a.clone().greater_elem(0.4), 0.4)
        .mask_fill(a.greater_elem(1.0), 0.0)
}

/// The scalar S'(z), for host-side checks.
pub fn ste_slope_scalar(z: f64) -> f64 {
    let a = z.abs();
    if a <= 0.4 {
        2.0 - 4.0 * a
    } else if a <= 1.0 {
        0.4
    } else {
        0.0
    }
}

/// A weight with its mask and the two factors of the straight-through pull-back.
#[derive(Clone, Debug)]
pub struct MaskedWeight {
    /// W̃ = M ⊙ W.
    pub masked: Tensor<2>,
    /// M as 0/1 floats.
    pub mask: Tensor<2>,
    /// M + |W| ⊙ S'(Z): ∂L/∂W = G ⊙ this.
    pub weight_factor: Tensor<2>,
    /// W ⊙ S'(Z): ∂L/∂t = −Σ_rows G ⊙ this.
    pub threshold_factor: Tensor<2>,
}

/// The masked layer for weight `w` `[d_in, d_out]` and mask thresholds `t` `[d_out]`.
pub fn mask_weight(w: Tensor<2>, t: Tensor<1>) -> MaskedWeight {
    let d_out = w.dims()[1];
    let z = w.clone().abs().sub(t.reshape([1, d_out]));
    let dropped = z.clone().lower_equal_elem(0.0);
    let mask = w.ones_like().mask_fill(dropped.clone(), 0.0);
    let slope = ste_slope(z);
    MaskedWeight {
        masked: w.clone().mask_fill(dropped, 0.0),
        weight_factor: mask.clone().add(w.clone().abs().mul(slope.clone())),
        threshold_factor: w.mul(slope),
        mask,
    }
}

/// Kept fraction mean(1[|W| − t > 0]) as a one-element tensor.
pub fn kept_fraction(w: Tensor<2>, t: Tensor<1>) -> Tensor<1> {
    let d_out = w.dims()[1];
    let z = w.clone().abs().sub(t.reshape([1, d_out]));
    w.ones_like().mask_fill(z.lower_equal_elem(0.0), 0.0).mean()
}

impl MaskedWeight {
    /// (∂L/∂W `[d_in, d_out]`, ∂L/∂t `[d_out]`) from G = ∂L/∂W̃.
    pub fn pull_back(&self, g: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
        let d_out = g.dims()[1];
        let g_t = g
            .clone()
            .mul(self.threshold_factor.clone())
            .sum_dim(0)
            .reshape([d_out])
            .neg();
        (g.mul(self.weight_factor.clone()), g_t)
    }
}
