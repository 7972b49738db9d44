//! The forward pass of a pack through its layers with the streams stacked ([`Tape::forward`]),
//! kept as a [`Tape`], and its reverse pass to ∇θ rows ([`Tape::backward`]).

use burn::tensor::{Tensor, TensorData};

use super::blocks::{rows, split, stack, transpose};
use super::layers::{PackLayers, Streams};
use super::tanh::{HiddenTape, tanh_jet, tanh_jet_adjoint};
use crate::jet::{Jet, JetSpec, Second};

/// A forward pass kept for its reverse pass.
pub struct Tape<'a> {
    layers: &'a PackLayers,
    streams: Streams,
    n: usize,
    hidden: Vec<HiddenTape>,
    /// The output layer's input (stacked activations of the last hidden layer).
    last_input: Tensor<3>,
    /// E `[1, dim, k1]` with E[axis, i] = input_scale[axis] for `first[i]` = axis: layer 0's
    /// derivative pre-activations are Eᵀ·W₀ and their weight gradient flows back through E.
    input_axes: Option<Tensor<3>>,
}

/// The network outputs of a [`Tape`], stacked `[K, m·n, 1]` in [`Streams`] block order.
pub struct Outputs {
    pub stacked: Tensor<3>,
    pub streams: Streams,
    pub n: usize,
}

impl Outputs {
    /// Block `b` of every network, `[K, n, 1]`.
    pub fn block(&self, b: usize) -> Tensor<3> {
        self.stacked.clone().narrow(1, b * self.n, self.n)
    }

    /// The outputs as a [`Jet`] for a PDE (derivatives w.r.t. raw coordinates) with the K
    /// networks' points one after another (`[K·n, 1]` per stream), over `stacked` (which may be
    /// an autodiff leaf of the same values).
    pub fn jet_of(&self, stacked: &Tensor<3>, dim: usize) -> Jet {
        let k = stacked.dims()[0];
        let block = |b: usize| {
            stacked
                .clone()
                .narrow(1, b * self.n, self.n)
                .reshape([k * self.n, 1])
        };
        let mut d1 = vec![None; dim];
        let mut d2 = vec![Second::NotNeeded; dim];
        for (i, &axis) in self.streams.first.iter().enumerate() {
            d1[axis] = Some(block(1 + i));
        }
        for (i, &axis) in self.streams.second.iter().enumerate() {
            d2[axis] = Second::Tensor(block(1 + self.streams.k1() + i));
        }
        Jet {
            value: block(0),
            d1,
            d2,
        }
    }
}

impl<'a> Tape<'a> {
    /// Forward through `layers` at normalised points `x` `[K, n, dim]`, with the streams `spec`
    /// asks for; `input_scale[axis]` = ∂x̂/∂x as in `Layers::forward_jet`.
    pub fn forward(
        layers: &'a PackLayers,
        x: Tensor<3>,
        spec: &JetSpec,
        input_scale: &[f64],
    ) -> (Self, Outputs) {
        let streams = Streams::from_spec(spec);
        let (k1, k2) = (streams.k1(), streams.k2());
        let [k, n, dim] = x.dims();
        let input_axes = (k1 > 0).then(|| {
            let mut e = vec![0.0; dim * k1];
            for (i, &axis) in streams.first.iter().enumerate() {
                e[axis * k1 + i] = input_scale[axis];
            }
            Tensor::from_data(TensorData::new(e, [1, dim, k1]), (&x.device(), x.dtype()))
        });
        let last = layers.weights.len() - 1;
        let mut hidden = Vec::with_capacity(last);
        // Layer 0: the derivative streams of the input are constant unit vectors.
        let w0 = &layers.weights[0];
        let width = w0.dims()[2];
        let z = x.clone().matmul(w0.clone()).add(layers.biases[0].clone());
        let z1 = input_axes.as_ref().map(|e| {
            transpose(e.clone())
                .matmul(w0.clone())
                .reshape([k, k1, 1, width])
        });
        let (a_stacked, tape) = tanh_jet(x, z.reshape([k, 1, n, width]), z1, None, k2);
        hidden.push(tape);
        let mut h = stack(a_stacked);
        for l in 1..last {
            let w = &layers.weights[l];
            let width = w.dims()[2];
            let zs = h
                .clone()
                .matmul(w.clone())
                .reshape([k, streams.count(), n, width]);
            let (z, z1, z2) = split(zs, k1, k2);
            let z = z.add(layers.biases[l].clone().reshape([k, 1, 1, width]));
            let (a_stacked, tape) = tanh_jet(h, z, z1, z2, k2);
            hidden.push(tape);
            h = stack(a_stacked);
        }
        let out = h.clone().matmul(layers.weights[last].clone());
        let value = out.clone().narrow(1, 0, n).add(layers.biases[last].clone());
        let stacked = if streams.count() == 1 {
            value
        } else {
            Tensor::cat(vec![value, out.narrow(1, n, (streams.count() - 1) * n)], 1)
        };
        let outputs = Outputs {
            stacked,
            streams: streams.clone(),
            n,
        };
        let tape = Tape {
            layers,
            streams,
            n,
            hidden,
            last_input: h,
            input_axes,
        };
        (tape, outputs)
    }

    /// ∇θ of each network, as rows `[K, P]` in θ's layout, of a loss whose cotangent w.r.t.
    /// the stacked outputs is `grad_out` `[K, m·n, 1]`.
    pub fn backward(self, grad_out: Tensor<3>) -> Tensor<2> {
        let Tape {
            layers,
            streams,
            n,
            hidden,
            last_input,
            input_axes,
        } = self;
        let (k1, k2) = (streams.k1(), streams.k2());
        let k = layers.count();
        let last = layers.weights.len() - 1;
        let mut grads_w = vec![None; last + 1];
        let mut grads_b = vec![None; last + 1];
        grads_w[last] = Some(transpose(last_input).matmul(grad_out.clone()));
        grads_b[last] = Some(grad_out.clone().narrow(1, 0, n).sum_dim(1));
        let mut dh = grad_out.matmul(transpose(layers.weights[last].clone()));
        let mut tapes = hidden.into_iter();
        let first = tapes.next().expect("depth >= 1");
        for (l, tape) in (1..last).zip(tapes).rev() {
            let width = layers.weights[l].dims()[2];
            let dz = tanh_jet_adjoint(&tape, dh.reshape([k, streams.count(), n, width]), k1, k2);
            grads_b[l] = Some(dz[0].clone().reshape([k, n, width]).sum_dim(1));
            let dz = stack(dz);
            grads_w[l] = Some(transpose(tape.input).matmul(dz.clone()));
            dh = dz.matmul(transpose(layers.weights[l].clone()));
        }
        // Layer 0: z = x·W₀ + b₀ and z' = Eᵀ·W₀ (the same for every point); z'' = 0 carries
        // nothing back.
        let width = layers.weights[0].dims()[2];
        let dz = tanh_jet_adjoint(&first, dh.reshape([k, streams.count(), n, width]), k1, k2);
        let dz_value = dz[0].clone().reshape([k, n, width]);
        grads_b[0] = Some(dz_value.clone().sum_dim(1));
        let mut gw = transpose(first.input).matmul(dz_value);
        if let (Some(e), Some(dz1)) = (&input_axes, dz.get(1)) {
            let per_axis = dz1.clone().sum_dim(2).reshape([k, k1, width]);
            gw = gw.add(e.clone().matmul(per_axis));
        }
        grads_w[0] = Some(gw);
        let mut parts = Vec::with_capacity(2 * (last + 1));
        for (w, b) in grads_w.into_iter().zip(grads_b) {
            parts.push(rows(w.expect("every layer visited")));
            parts.push(rows(b.expect("every layer visited")));
        }
        Tensor::cat(parts, 1)
    }
}
