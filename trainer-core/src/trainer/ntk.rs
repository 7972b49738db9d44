//! Per-point gradients (Burn autodiff, one backward per point) and the NTK-block traces the
//! `ntk` method weights its tasks with; the orthogonality diagnostic uses them too.

use burn::tensor::Tensor;

use super::Trainer;
use super::batch::Batch;
use crate::jet::JetSpec;
use crate::mlp::Layers;
use crate::modsync::MaskedStep;
use crate::modsync::diagnostics::spread;
use crate::tensors::to_host;

impl Trainer {
    /// ∇θ of the scalar `f(layers)` at the network `theta` (θ̃ under ModSync, pulled back).
    pub(super) fn point_grad(
        &self,
        theta: &Tensor<1>,
        masked: Option<&MaskedStep>,
        f: impl FnOnce(&Layers) -> Tensor<1>,
    ) -> Tensor<1> {
        let layers = Layers::from_flat(theta, &self.arch).into_leaves();
        let g = layers.flat_grad(&f(&layers).backward());
        match (&self.modsync, masked) {
            (Some(m), Some(step)) => m.pull_back_theta(step, g),
            _ => g,
        }
    }

    /// ∇θ of the residual r_i (or of ℓ_r,i = r_i² if `squared`) at batch row `i`.
    pub(super) fn residual_point_grad(
        &self,
        batch: &Batch,
        i: usize,
        theta: &Tensor<1>,
        masked: Option<&MaskedStep>,
        squared: bool,
    ) -> Tensor<1> {
        self.point_grad(theta, masked, |layers| {
            let x = batch.residual_x.clone().slice(i..i + 1);
            let jet = layers.forward_jet(x, &self.residual_spec, &self.input_scale);
            let r = self
                .pde
                .residual(&jet, batch.forcing.clone().slice(i..i + 1));
            if squared { r.square().sum() } else { r.sum() }
        })
    }

    /// NTK-block traces Σ_i ‖∂r_i/∂θ‖² and Σ_j ‖∂b_j/∂θ‖² (b_j = the conditioned quantity, u or
    /// u_t, at boundary point j) on `ntk_points` evenly spaced points of each task's batch:
    /// one backward per point, one host read.
    pub(super) fn ntk_traces(
        &self,
        batch: &Batch,
        theta: &Tensor<1>,
        masked: Option<&MaskedStep>,
    ) -> (f64, f64) {
        let blocks = batch.boundary_blocks();
        let sizes: Vec<usize> = blocks.iter().map(|(x, _)| x.dims()[0]).collect();
        let (rows_r, rows_b) = self.ntk_rows(batch.residual_x.dims()[0], &sizes);
        let sq_r: Vec<Tensor<1>> = rows_r
            .into_iter()
            .map(|i| {
                self.residual_point_grad(batch, i, theta, masked, false)
                    .square()
                    .sum()
            })
            .collect();
        let dim = self.pde.dim();
        let sq_b: Vec<Tensor<1>> = rows_b
            .into_iter()
            .map(|(block, j)| {
                let (x, axis) = &blocks[block];
                let row = x.clone().slice(j..j + 1);
                self.point_grad(theta, masked, |layers| match axis {
                    None => layers.forward(row).sum(),
                    Some(a) => layers
                        .forward_jet(row, &JetSpec::new(dim, &[*a], &[]), &self.input_scale)
                        .d1(*a)
                        .sum(),
                })
                .square()
                .sum()
            })
            .collect();
        let t = to_host(Tensor::cat(
            vec![Tensor::cat(sq_r, 0).sum(), Tensor::cat(sq_b, 0).sum()],
            0,
        ));
        (t[0], t[1])
    }

    /// The NTK trace subsample: `ntk_points` evenly spaced residual rows, and as many evenly
    /// spaced boundary rows over the boundary blocks laid end to end, as (block, row).
    pub(super) fn ntk_rows(
        &self,
        n_r: usize,
        block_sizes: &[usize],
    ) -> (Vec<usize>, Vec<(usize, usize)>) {
        let k = self.stepper.method.ntk_points();
        let n_b: usize = block_sizes.iter().sum();
        let boundary = spread(n_b, k)
            .into_iter()
            .map(|mut j| {
                let mut block = 0;
                while j >= block_sizes[block] {
                    j -= block_sizes[block];
                    block += 1;
                }
                (block, j)
            })
            .collect();
        (spread(n_r, k), boundary)
    }
}
