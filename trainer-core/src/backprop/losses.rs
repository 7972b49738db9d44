//! The step's task losses of a pack and their ∇θ rows through the explicit reverse pass:
//! the PDE residual, value conditions and derivative conditions, each summed over [`Chunks`].

use std::ops::Range;

use burn::tensor::Tensor;

use super::chunks::Chunks;
use super::layers::PackLayers;
use super::tape::Tape;
use crate::jet::JetSpec;

/// Rows `r` of networks `g` of a `[K, n, c]` tensor.
fn part(t: &Tensor<3>, g: &Range<usize>, r: &Range<usize>) -> Tensor<3> {
    t.clone().slice([g.clone(), r.clone()])
}

/// `[G, n, 1]` → Σ over rows, `[G]`.
fn per_network(t: Tensor<3>) -> Tensor<1> {
    let g = t.dims()[0];
    t.sum_dim(1).reshape([g])
}

/// L_r = mean(r²) of the PDE residual at normalised points `x` `[K, n, dim]` (forcing
/// `[K, n, 1]`), per network `[K]`, and its ∇θ rows `[K, P]`.
#[allow(clippy::too_many_arguments)]
pub fn residual_loss_and_grad(
    layers: &PackLayers,
    pde: &dyn crate::pde::Pde,
    x: Tensor<3>,
    forcing: Tensor<3>,
    spec: &JetSpec,
    input_scale: &[f64],
    chunks: Chunks,
) -> (Tensor<1>, Tensor<2>) {
    let [k, n, _] = x.dims();
    chunks.sum(k, n, |g, r| {
        let layers = layers.members(g);
        let (tape, outputs) = Tape::forward(&layers, part(&x, g, r), spec, input_scale);
        // The PDE's own residual, differentiated by Burn over the [G·rows, 1] outputs only.
        let leaf = outputs.stacked.clone().autodiff().require_grad();
        let f = part(&forcing, g, r);
        let [gk, rows, _] = f.dims();
        let residual = pde.residual(
            &outputs.jet_of(&leaf, spec.dim()),
            f.reshape([gk * rows, 1]),
        );
        let losses =
            per_network(residual.square().reshape([gk, rows, 1])).mul_scalar(1.0 / n as f64);
        let grad_out = leaf
            .grad(&losses.clone().sum().backward())
            .unwrap_or_else(|| outputs.stacked.zeros_like());
        (losses.inner(), tape.backward(grad_out))
    })
}

/// Σ_i weight_i (u_i − target_i)² over value-condition points `x` `[K, n, dim]` (targets and
/// weights `[K, n, 1]`), per network, and its ∇θ rows.
pub fn value_loss_and_grad(
    layers: &PackLayers,
    x: Tensor<3>,
    target: Tensor<3>,
    weight: Tensor<3>,
    chunks: Chunks,
) -> (Tensor<1>, Tensor<2>) {
    let [k, n, dim] = x.dims();
    let spec = JetSpec::value(dim);
    let unit = vec![1.0; dim];
    chunks.sum(k, n, |g, r| {
        let layers = layers.members(g);
        let (tape, outputs) = Tape::forward(&layers, part(&x, g, r), &spec, &unit);
        let err = outputs.stacked.sub(part(&target, g, r));
        let weight = part(&weight, g, r);
        let losses = per_network(err.clone().square().mul(weight.clone()));
        (losses, tape.backward(err.mul(weight).mul_scalar(2.0)))
    })
}

/// scale · mean((∂u/∂x_axis − target)²) over derivative-condition points `x` `[K, n, dim]`, per
/// network, and its ∇θ rows.
pub fn derivative_loss_and_grad(
    layers: &PackLayers,
    x: Tensor<3>,
    target: Tensor<3>,
    axis: usize,
    scale: f64,
    input_scale: &[f64],
    chunks: Chunks,
) -> (Tensor<1>, Tensor<2>) {
    let [k, n, dim] = x.dims();
    let spec = JetSpec::new(dim, &[axis], &[]);
    chunks.sum(k, n, |g, r| {
        let layers = layers.members(g);
        let (tape, outputs) = Tape::forward(&layers, part(&x, g, r), &spec, input_scale);
        let err = outputs.block(1).sub(part(&target, g, r));
        // scale / n and 2·scale / n are exactly 1/n and 2/n at the default scale of 1.
        let losses = per_network(err.clone().square()).mul_scalar(scale / n as f64);
        let grad_out = Tensor::cat(
            vec![err.zeros_like(), err.mul_scalar(2.0 * scale / n as f64)],
            1,
        );
        (losses, tape.backward(grad_out))
    })
}
