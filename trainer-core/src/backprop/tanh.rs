//! The tanh activation on stacked jet blocks (SPEC §1), forward and adjoint, and what a hidden
//! layer keeps from its forward for the reverse pass ([`HiddenTape`]).

use burn::tensor::Tensor;

use super::blocks::{head, split};

/// What the reverse pass needs from one hidden layer's forward.
pub(super) struct HiddenTape {
    /// The layer's input: the stacked activations of the layer below (the points for layer 0).
    pub(super) input: Tensor<3>,
    /// tanh of the value pre-activation, and s = 1 − a², both `[K, 1, n, w]`.
    pub(super) a: Tensor<4>,
    pub(super) s: Tensor<4>,
    /// First- and second-derivative pre-activations `[K, k1, n, w]` / `[K, k2, n, w]`; layer
    /// 0's first derivatives are `[K, k1, 1, w]` (the same for every point) and it has no
    /// second.
    pub(super) z1: Option<Tensor<4>>,
    pub(super) z2: Option<Tensor<4>>,
}

/// The tanh jet of SPEC §1 on stacked blocks: a = tanh(z), a' = s z', a'' = s z'' − 2 a s (z')²
/// with s = 1 − a². Returns the activation blocks and what the adjoint needs.
pub(super) fn tanh_jet(
    input: Tensor<3>,
    z: Tensor<4>,
    z1: Option<Tensor<4>>,
    z2: Option<Tensor<4>>,
    k2: usize,
) -> (Vec<Tensor<4>>, HiddenTape) {
    let a = crate::jet::tanh_plain(z);
    let s = a.clone().square().neg().add_scalar(1.0);
    let mut blocks = vec![a.clone()];
    if let Some(z1) = &z1 {
        blocks.push(s.clone().mul(z1.clone()));
        if k2 > 0 {
            let curvature = a
                .clone()
                .mul(s.clone())
                .mul_scalar(-2.0)
                .mul(head(z1, k2).square());
            blocks.push(match &z2 {
                Some(z2) => s.clone().mul(z2.clone()).add(curvature),
                None => curvature,
            });
        }
    }
    (
        blocks,
        HiddenTape {
            input,
            a,
            s,
            z1,
            z2,
        },
    )
}

/// The adjoint of [`tanh_jet`]: from the activation cotangents `[K, m, n, w]` to the
/// pre-activation cotangents, as blocks `[K, 1, n, w]`, `[K, k1, n, w]`, `[K, k2, n, w]`:
///   z̄'' = s ā'',  z̄' = s ā' − 4 a s z' ā'' (second-order axes),
///   z̄ = s ā − 2 a s Σ ā' z' − 2 Σ ā'' (a s z'' + s (1 − 3a²) (z')²).
pub(super) fn tanh_jet_adjoint(
    tape: &HiddenTape,
    da: Tensor<4>,
    k1: usize,
    k2: usize,
) -> Vec<Tensor<4>> {
    let HiddenTape { a, s, z1, z2, .. } = tape;
    let (da, da1, da2) = split(da, k1, k2);
    let mut dz = s.clone().mul(da);
    let mut out = Vec::with_capacity(3);
    let Some(z1) = z1 else {
        return vec![dz];
    };
    let da1 = da1.expect("k1 > 0 with first-derivative streams");
    let neg_two_as = a.clone().mul(s.clone()).mul_scalar(-2.0);
    dz = dz.add(
        neg_two_as
            .clone()
            .mul(da1.clone().mul(z1.clone()).sum_dim(1)),
    );
    let mut dz1 = s.clone().mul(da1);
    let mut dz2 = None;
    if let Some(da2) = da2 {
        let z1h = head(z1, k2);
        // ∂a''/∂z' on the second-order axes.
        let cross = neg_two_as
            .clone()
            .mul_scalar(2.0)
            .mul(z1h.clone())
            .mul(da2.clone());
        dz1 = if k2 == k1 {
            dz1.add(cross)
        } else {
            let tail = dz1.clone().narrow(1, k2, k1 - k2);
            Tensor::cat(vec![head(&dz1, k2).add(cross), tail], 1)
        };
        // ∂a''/∂z through a and s: −2 a s z'' − 2 s (1 − 3a²) (z')².
        let bend = s
            .clone()
            .mul(a.clone().square().mul_scalar(-3.0).add_scalar(1.0))
            .mul_scalar(-2.0);
        let mut through_z = bend.mul(z1h.square());
        if let Some(z2) = z2 {
            through_z = through_z.add(neg_two_as.mul(z2.clone()));
        }
        dz = dz.add(through_z.mul(da2.clone()).sum_dim(1));
        dz2 = Some(s.clone().mul(da2));
    }
    out.push(dz);
    out.push(dz1);
    out.extend(dz2);
    out
}
