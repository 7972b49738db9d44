//! The training step's reverse pass, written out by hand (SPEC §1 jets, first order in θ), for a
//! pack of K networks of the same shape at once.
//!
//! Every tensor carries the pack as its leading dimension: weights `[K, in, out]`, points
//! `[K, n, dim]`. The jet streams of a layer (value, first derivatives, second derivatives) are
//! stacked as row blocks of one `[K, m·n, width]` tensor, so each layer is one batched matrix
//! product forward, one for the data gradient and one for the weight gradient, whatever the
//! number of streams or networks; the bias only touches the value block. The tanh jet and its
//! adjoint are a handful of elementwise passes over `[K, streams, n, width]` views. A single run
//! is a pack of one: there is one step code path.
//!
//! The work is cut into [`Chunks`] — groups of networks × ranges of rows — that run on separate
//! threads on the CPU and are summed in a fixed order, so a network's result does not depend on
//! its partners, on K, or on the core count.
//!
//! The cotangents of the losses with respect to the network outputs come from the PDE's own
//! residual through Burn autodiff over that last, `[K·n, 1]`-sized stage, so a PDE stays one
//! file. The autodiff path (`mlp::Layers::forward_jet` + `backward`) is kept as the oracle: the
//! tests compare both on every PDE (`tests/backprop.rs`).

use std::ops::Range;

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use crate::jet::{Jet, JetSpec, Second};
use crate::mlp::Architecture;

/// Which streams are stacked, in block order: the value, then the first derivatives along
/// `first` (the axes that also have a second derivative come first), then the second
/// derivatives along `second` (a prefix of `first`), so block `1 + i` pairs with
/// `1 + first.len() + i` in the tanh jet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streams {
    pub first: Vec<usize>,
    pub second: Vec<usize>,
}

impl Streams {
    pub fn from_spec(spec: &JetSpec) -> Self {
        let axes = |o: u8| (0..spec.dim()).filter(move |&a| spec.order[a] == o);
        let second: Vec<usize> = axes(2).collect();
        let first = second.iter().copied().chain(axes(1)).collect();
        Self { first, second }
    }

    /// Number of row blocks.
    pub fn count(&self) -> usize {
        1 + self.first.len() + self.second.len()
    }

    fn k1(&self) -> usize {
        self.first.len()
    }

    fn k2(&self) -> usize {
        self.second.len()
    }
}

/// The layers of K networks: weights `[K, d_in, d_out]` and biases `[K, 1, d_out]`, views of
/// the parameter rows `[K, P]` (θ, or ModSync's θ̃).
#[derive(Clone, Debug)]
pub struct PackLayers {
    pub weights: Vec<Tensor<3>>,
    pub biases: Vec<Tensor<3>>,
}

impl PackLayers {
    /// Cuts parameter rows `[K, P]` into layers.
    pub fn from_rows(theta: &Tensor<2>, arch: &Architecture) -> Self {
        let k = theta.dims()[0];
        let (weights, biases) = arch
            .slots()
            .iter()
            .map(|s| {
                let w = theta
                    .clone()
                    .slice([0..k, s.weight.clone()])
                    .reshape([k, s.d_in, s.d_out]);
                let b = theta
                    .clone()
                    .slice([0..k, s.bias.clone()])
                    .reshape([k, 1, s.d_out]);
                (w, b)
            })
            .unzip();
        Self { weights, biases }
    }

    /// Networks in the pack.
    pub fn count(&self) -> usize {
        self.weights[0].dims()[0]
    }

    /// The networks `members` of the pack.
    fn members(&self, members: &Range<usize>) -> Self {
        if members.len() == self.count() {
            return self.clone();
        }
        let pick = |t: &Tensor<3>| t.clone().narrow(0, members.start, members.len());
        Self {
            weights: self.weights.iter().map(pick).collect(),
            biases: self.biases.iter().map(pick).collect(),
        }
    }
}

/// What the reverse pass needs from one hidden layer's forward.
struct HiddenTape {
    /// The layer's input: the stacked activations of the layer below (the points for layer 0).
    input: Tensor<3>,
    /// tanh of the value pre-activation, and s = 1 − a², both `[K, 1, n, w]`.
    a: Tensor<4>,
    s: Tensor<4>,
    /// First- and second-derivative pre-activations `[K, k1, n, w]` / `[K, k2, n, w]`; layer
    /// 0's first derivatives are `[K, k1, 1, w]` (the same for every point) and it has no
    /// second.
    z1: Option<Tensor<4>>,
    z2: Option<Tensor<4>>,
}

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

/// Splits `[K, m, n, w]` into its value block and the first/second derivative blocks.
fn split(t: Tensor<4>, k1: usize, k2: usize) -> (Tensor<4>, Option<Tensor<4>>, Option<Tensor<4>>) {
    let z1 = (k1 > 0).then(|| t.clone().narrow(1, 1, k1));
    let z2 = (k2 > 0).then(|| t.clone().narrow(1, 1 + k1, k2));
    (t.narrow(1, 0, 1), z1, z2)
}

/// Stacks blocks `[K, *, n, w]` into one `[K, m·n, w]` tensor.
fn stack(blocks: Vec<Tensor<4>>) -> Tensor<3> {
    let t = if blocks.len() == 1 {
        blocks.into_iter().next().expect("one block")
    } else {
        Tensor::cat(blocks, 1)
    };
    let [k, m, n, w] = t.dims();
    t.reshape([k, m * n, w])
}

/// The first `count` stream blocks of `t`, or all of it.
fn head(t: &Tensor<4>, count: usize) -> Tensor<4> {
    if t.dims()[1] == count {
        t.clone()
    } else {
        t.clone().narrow(1, 0, count)
    }
}

/// `[K, a, b]` → `[K, a·b]`.
fn rows(t: Tensor<3>) -> Tensor<2> {
    let [k, a, b] = t.dims();
    t.reshape([k, a * b])
}

/// `[K, a, b]` → `[K, b, a]`.
fn transpose(t: Tensor<3>) -> Tensor<3> {
    t.swap_dims(1, 2)
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

/// The tanh jet of SPEC §1 on stacked blocks: a = tanh(z), a' = s z', a'' = s z'' − 2 a s (z')²
/// with s = 1 − a². Returns the activation blocks and what the adjoint needs.
fn tanh_jet(
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
fn tanh_jet_adjoint(tape: &HiddenTape, da: Tensor<4>, k1: usize, k2: usize) -> Vec<Tensor<4>> {
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

/// How a training step computes ∇θ of its task losses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backward {
    /// The reverse pass of this module.
    #[default]
    Explicit,
    /// Burn autodiff through separate jet streams: the oracle, and the baseline of
    /// `bench/step-time.sh`.
    Autodiff,
}

impl std::str::FromStr for Backward {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "explicit" => Ok(Self::Explicit),
            "autodiff" => Ok(Self::Autodiff),
            _ => Err(format!("{s:?}: expected explicit or autodiff")),
        }
    }
}

/// How a pack's work is cut into independent chunks — groups of networks × ranges of rows —
/// run in parallel and summed in a fixed order. Burn's CPU backend runs every elementwise op
/// below ~4M elements and every matrix product below 192³ multiply-adds on one thread, so one
/// pass over all rows leaves the other cores idle; chunks keep them busy. The row cut depends
/// on the number of rows only and a network's rows never meet another network's in a sum, so
/// results depend neither on the core count nor on the pack. On LibTorch (GPU or CPU) one
/// chunk: it has its own parallelism, and a GPU wants the whole pack in each kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunks {
    pub max_row_chunks: usize,
    pub min_rows: usize,
    /// Networks per chunk.
    pub networks: usize,
}

impl Chunks {
    /// Up to 4 row chunks of at least 256 rows (a 1,280-point batch: 4 × 320), each network
    /// on its own.
    pub const CPU: Chunks = Chunks {
        max_row_chunks: 4,
        min_rows: 256,
        networks: 1,
    };
    pub const ONE: Chunks = Chunks {
        max_row_chunks: 1,
        min_rows: usize::MAX,
        networks: usize::MAX,
    };

    /// The row ranges of `n` rows, as equal as possible.
    pub fn row_ranges(&self, n: usize) -> Vec<Range<usize>> {
        let chunks = (n / self.min_rows.max(1)).clamp(1, self.max_row_chunks.max(1));
        (0..chunks)
            .map(|c| c * n / chunks..(c + 1) * n / chunks)
            .collect()
    }

    /// The network groups of a pack of `k`.
    pub fn network_ranges(&self, k: usize) -> Vec<Range<usize>> {
        let per = self.networks.clamp(1, k.max(1));
        (0..k.div_ceil(per))
            .map(|g| g * per..((g + 1) * per).min(k))
            .collect()
    }

    /// Per network, Σ over row chunks of `f(networks, rows)` = (losses `[G]`, gradient rows
    /// `[G, P]`), computed in parallel, rows added in chunk order; the groups stacked in order.
    fn sum(
        &self,
        k: usize,
        n: usize,
        f: impl Fn(&Range<usize>, &Range<usize>) -> (Tensor<1>, Tensor<2>) + Sync,
    ) -> (Tensor<1>, Tensor<2>) {
        let rows = self.row_ranges(n);
        let tasks: Vec<(Range<usize>, Range<usize>)> = self
            .network_ranges(k)
            .into_iter()
            .flat_map(|g| rows.iter().map(move |r| (g.clone(), r.clone())))
            .collect();
        let parts: Vec<(Tensor<1>, Tensor<2>)> = if tasks.len() == 1 {
            tasks.iter().map(|(g, r)| f(g, r)).collect()
        } else {
            tasks.par_iter().map(|(g, r)| f(g, r)).collect()
        };
        let groups: Vec<(Tensor<1>, Tensor<2>)> = parts
            .chunks(rows.len())
            .map(|group| {
                group
                    .iter()
                    .cloned()
                    .reduce(|(l1, g1), (l2, g2)| (l1.add(l2), g1.add(g2)))
                    .expect("at least one row chunk")
            })
            .collect();
        if groups.len() == 1 {
            return groups.into_iter().next().expect("one group");
        }
        let (losses, grads): (Vec<_>, Vec<_>) = groups.into_iter().unzip();
        (Tensor::cat(losses, 0), Tensor::cat(grads, 0))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_chunks_cover_the_rows_in_order_and_depend_on_the_row_count_only() {
        let lens = |c: Chunks, n| c.row_ranges(n).iter().map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(lens(Chunks::CPU, 1280), [320; 4]);
        assert_eq!(lens(Chunks::CPU, 126), [126]);
        assert_eq!(lens(Chunks::CPU, 600), [300, 300]);
        assert_eq!(lens(Chunks::CPU, 1000), [333, 333, 334]);
        assert_eq!(lens(Chunks::CPU, 4096), [1024; 4]);
        assert_eq!(lens(Chunks::ONE, 4096), [4096]);
        for n in [1, 255, 256, 513, 1281, 5000] {
            let r = Chunks::CPU.row_ranges(n);
            assert_eq!(r[0].start, 0);
            assert_eq!(r.last().unwrap().end, n);
            assert!(r.windows(2).all(|w| w[0].end == w[1].start), "{n}: {r:?}");
        }
    }

    #[test]
    fn network_groups_cover_the_pack_in_order() {
        let groups = |per, k| {
            Chunks {
                networks: per,
                ..Chunks::CPU
            }
            .network_ranges(k)
        };
        assert_eq!(groups(1, 3), [0..1, 1..2, 2..3]);
        assert_eq!(groups(2, 5), [0..2, 2..4, 4..5]);
        assert_eq!(groups(usize::MAX, 7), [0..7]);
        assert_eq!(Chunks::ONE.network_ranges(1), [0..1]);
    }

    #[test]
    fn streams_put_second_order_axes_first() {
        // burgers: u_xx and u_t → first = [x, t], second = [x].
        let s = Streams::from_spec(&JetSpec::new(2, &[1], &[0]));
        assert_eq!(
            (s.first.as_slice(), s.second.as_slice()),
            (&[0, 1][..], &[0][..])
        );
        let s = Streams::from_spec(&JetSpec::new(3, &[0], &[2]));
        assert_eq!(
            (s.first.as_slice(), s.second.as_slice()),
            (&[2, 0][..], &[2][..])
        );
        assert_eq!(s.count(), 4);
        assert_eq!(Streams::from_spec(&JetSpec::value(3)).count(), 1);
    }
}
