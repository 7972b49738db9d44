//! The PINN network (SPEC §1): `in → [width] × depth → 1`, tanh hidden layers, linear output,
//! Xavier-normal weights and zero biases, stored as one flat parameter vector θ.
//!
//! A flat θ suits everything around the network: gradient methods combine whole vectors, Adam
//! is one fused update, a checkpoint is a few vectors. For a forward pass θ is cut into
//! per-layer views ([`Layers`]); the gradient of each view is glued back into one vector.

use std::ops::Range;

use burn::tensor::{Gradients, Tensor};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::jet::{Jet, JetSpec, Second};

/// Layer sizes and where each layer's parameters live in θ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Architecture {
    /// `[in, width, …, width, 1]`, length depth + 2.
    pub dims: Vec<usize>,
}

/// Where one linear layer sits in θ. Weights are row-major `[d_in, d_out]` so that a layer is
/// `z = a · W + b` with points as rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSlot {
    pub d_in: usize,
    pub d_out: usize,
    pub weight: Range<usize>,
    pub bias: Range<usize>,
}

impl Architecture {
    pub fn new(input_dim: usize, width: usize, depth: usize) -> Self {
        let mut dims = vec![input_dim];
        dims.extend(std::iter::repeat_n(width, depth));
        dims.push(1);
        Self { dims }
    }

    pub fn slots(&self) -> Vec<LayerSlot> {
        let mut offset = 0;
        self.dims
            .windows(2)
            .map(|w| {
                let (d_in, d_out) = (w[0], w[1]);
                let weight = offset..offset + d_in * d_out;
                let bias = weight.end..weight.end + d_out;
                offset = bias.end;
                LayerSlot {
                    d_in,
                    d_out,
                    weight,
                    bias,
                }
            })
            .collect()
    }

    pub fn num_params(&self) -> usize {
        self.slots().last().map_or(0, |s| s.bias.end)
    }

    /// Xavier (Glorot) normal weights with gain 1, zero biases, drawn on the host so that the
    /// same seed gives the same network on every backend.
    pub fn xavier_normal(&self, rng: &mut impl Rng) -> Vec<f64> {
        let mut theta = vec![0.0; self.num_params()];
        for slot in self.slots() {
            let std = (2.0 / (slot.d_in + slot.d_out) as f64).sqrt();
            for w in &mut theta[slot.weight.clone()] {
                let z: f64 = rng.sample(StandardNormal);
                *w = std * z;
            }
        }
        theta
    }
}

/// Per-layer weight `[d_in, d_out]` and bias `[d_out]` tensors: views of θ, autodiff leaves,
/// or (under ModSync) masked weights.
#[derive(Clone, Debug)]
pub struct Layers {
    pub weights: Vec<Tensor<2>>,
    pub biases: Vec<Tensor<1>>,
}

impl Layers {
    /// Cuts a flat θ into layers.
    pub fn from_flat(theta: &Tensor<1>, arch: &Architecture) -> Self {
        let slots = arch.slots();
        let weights = slots
            .iter()
            .map(|s| {
                theta
                    .clone()
                    .slice(s.weight.clone())
                    .reshape([s.d_in, s.d_out])
            })
            .collect();
        let biases = slots
            .iter()
            .map(|s| theta.clone().slice(s.bias.clone()))
            .collect();
        Self { weights, biases }
    }

    /// Makes every tensor an autodiff leaf whose gradient is kept.
    pub fn into_leaves(self) -> Self {
        Self {
            weights: self
                .weights
                .into_iter()
                .map(|w| w.autodiff().require_grad())
                .collect(),
            biases: self
                .biases
                .into_iter()
                .map(|b| b.autodiff().require_grad())
                .collect(),
        }
    }

    /// The gradient of every leaf, glued into one vector in θ's layout. A leaf the loss does not
    /// depend on gets zeros.
    pub fn flat_grad(&self, grads: &Gradients) -> Tensor<1> {
        let mut parts = Vec::with_capacity(2 * self.weights.len());
        for (w, b) in self.weights.iter().zip(&self.biases) {
            let gw = w
                .grad(grads)
                .unwrap_or_else(|| w.clone().inner().zeros_like());
            parts.push(gw.reshape([-1]));
            parts.push(
                b.grad(grads)
                    .unwrap_or_else(|| b.clone().inner().zeros_like()),
            );
        }
        Tensor::cat(parts, 0)
    }

    /// Network output `[n, 1]` for inputs `[n, in]` (already normalised).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.weights.len() - 1;
        let mut a = x;
        for (l, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            let z = a.matmul(w.clone()).add(b.clone().unsqueeze());
            a = if l < last { crate::jet::tanh(z) } else { z };
        }
        a
    }

    /// Output with the derivative streams `spec` asks for. `input_scale[axis]` is the
    /// derivative of the normalised input w.r.t. the raw coordinate (1/σ, or 1 without
    /// normalisation), so the jet holds derivatives w.r.t. the raw coordinates.
    pub fn forward_jet(&self, x: Tensor<2>, spec: &JetSpec, input_scale: &[f64]) -> Jet {
        let last = self.weights.len() - 1;
        // First layer: the input's derivative along an axis is a constant unit vector, so
        // z' is that axis' weight row (one row, broadcast over points) and z'' = 0.
        let w0 = &self.weights[0];
        let d_out = w0.dims()[1];
        let mut jet = Jet {
            value: x.matmul(w0.clone()).add(self.biases[0].clone().unsqueeze()),
            d1: spec
                .order
                .iter()
                .enumerate()
                .map(|(axis, &o)| {
                    (o >= 1).then(|| {
                        w0.clone()
                            .slice(axis..axis + 1)
                            .mul_scalar(input_scale[axis])
                    })
                })
                .collect(),
            d2: spec
                .order
                .iter()
                .map(|&o| {
                    if o == 2 {
                        Second::Zero
                    } else {
                        Second::NotNeeded
                    }
                })
                .collect(),
        };
        debug_assert_eq!(jet.value.dims()[1], d_out);
        for l in 1..=last {
            jet = jet.tanh();
            let (w, b) = (&self.weights[l], &self.biases[l]);
            let value = jet.value.matmul(w.clone()).add(b.clone().unsqueeze());
            let d1 = jet
                .d1
                .into_iter()
                .map(|d| d.map(|d| d.matmul(w.clone())))
                .collect();
            let d2 = jet
                .d2
                .into_iter()
                .map(|d| match d {
                    Second::Tensor(t) => Second::Tensor(t.matmul(w.clone())),
                    other => other,
                })
                .collect();
            jet = Jet { value, d1, d2 };
        }
        jet
    }
}
