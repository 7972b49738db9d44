//! The training step's reverse pass, written out by hand (SPEC §1 jets, first order in θ).
//!
//! The jet streams of a layer (value, first derivatives, second derivatives) are stacked as row
//! blocks of one `[m·n, width]` matrix, so each layer is one matrix product forward, one for the
//! data gradient and one for the weight gradient, whatever the number of streams; the bias only
//! touches the value block. The tanh jet and its adjoint are a handful of elementwise passes over
//! `[streams, n, width]` views. Compared with Burn's autodiff over separate streams this has
//! ~3× fewer, larger matrix products (the same FLOPs) and no graph bookkeeping, and a loss's rows
//! can be cut into chunks that run on separate threads ([`RowChunks`]).
//!
//! The cotangents of the losses with respect to the network outputs come from the PDE's own
//! residual through Burn autodiff over that last, `[n, 1]`-sized stage, so a PDE stays one file.
//! The autodiff path (`mlp::Layers::forward_jet` + `backward`) is kept as the oracle: the tests
//! compare both on every PDE (`tests/backprop.rs`).

use std::ops::Range;

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use crate::jet::{Jet, JetSpec, Second};
use crate::mlp::Layers;

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

/// What the reverse pass needs from one hidden layer's forward.
struct HiddenTape {
    /// The layer's input: the stacked activations of the layer below (the points for layer 0).
    input: Tensor<2>,
    /// tanh of the value pre-activation, and s = 1 − a², both `[1, n, w]`.
    a: Tensor<3>,
    s: Tensor<3>,
    /// First- and second-derivative pre-activations `[k1, n, w]` / `[k2, n, w]`; layer 0's
    /// first derivatives are `[k1, 1, w]` (the same for every point) and it has no second.
    z1: Option<Tensor<3>>,
    z2: Option<Tensor<3>>,
}

/// A forward pass kept for its reverse pass.
pub struct Tape<'a> {
    layers: &'a Layers,
    streams: Streams,
    n: usize,
    hidden: Vec<HiddenTape>,
    /// The output layer's input (stacked activations of the last hidden layer).
    last_input: Tensor<2>,
    /// E `[dim, k1]` with E[axis, i] = input_scale[axis] for `first[i]` = axis: layer 0's
    /// derivative pre-activations are Eᵀ·W₀ and their weight gradient flows back through E.
    input_axes: Option<Tensor<2>>,
}

/// The network outputs of a [`Tape`], stacked `[m·n, 1]` in [`Streams`] block order.
pub struct Outputs {
    pub stacked: Tensor<2>,
    pub streams: Streams,
    pub n: usize,
}

impl Outputs {
    /// Block `b` (`[n, 1]`).
    pub fn block(&self, b: usize) -> Tensor<2> {
        self.stacked.clone().slice(b * self.n..(b + 1) * self.n)
    }

    /// The outputs as a [`Jet`] for a PDE (derivatives w.r.t. raw coordinates), over `stacked`
    /// (which may be an autodiff leaf of the same values).
    pub fn jet_of(&self, stacked: &Tensor<2>, dim: usize) -> Jet {
        let block = |b: usize| stacked.clone().slice(b * self.n..(b + 1) * self.n);
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

/// Splits `[m, n, w]` into its value block and the first/second derivative blocks.
fn split(t: Tensor<3>, k1: usize, k2: usize) -> (Tensor<3>, Option<Tensor<3>>, Option<Tensor<3>>) {
    let z1 = (k1 > 0).then(|| t.clone().slice(1..1 + k1));
    let z2 = (k2 > 0).then(|| t.clone().slice(1 + k1..1 + k1 + k2));
    (t.slice(0..1), z1, z2)
}

/// Stacks blocks `[*, n, w]` into one `[m·n, w]` matrix.
fn stack(blocks: Vec<Tensor<3>>, n: usize, w: usize) -> Tensor<2> {
    let t = if blocks.len() == 1 {
        blocks.into_iter().next().expect("one block")
    } else {
        Tensor::cat(blocks, 0)
    };
    let m = t.dims()[0];
    t.reshape([m * n, w])
}

/// The first `k` blocks of `t`, or all of it.
fn head(t: &Tensor<3>, k: usize) -> Tensor<3> {
    if t.dims()[0] == k {
        t.clone()
    } else {
        t.clone().slice(0..k)
    }
}

impl<'a> Tape<'a> {
    /// Forward through `layers` at normalised points `x` `[n, dim]`, with the streams `spec`
    /// asks for; `input_scale[axis]` = ∂x̂/∂x as in [`Layers::forward_jet`].
    pub fn forward(
        layers: &'a Layers,
        x: Tensor<2>,
        spec: &JetSpec,
        input_scale: &[f64],
    ) -> (Self, Outputs) {
        let streams = Streams::from_spec(spec);
        let (k1, k2) = (streams.k1(), streams.k2());
        let n = x.dims()[0];
        let dim = x.dims()[1];
        let input_axes = (k1 > 0).then(|| {
            let mut e = vec![0.0; dim * k1];
            for (i, &axis) in streams.first.iter().enumerate() {
                e[axis * k1 + i] = input_scale[axis];
            }
            Tensor::from_data(TensorData::new(e, [dim, k1]), (&x.device(), x.dtype()))
        });
        let last = layers.weights.len() - 1;
        let mut hidden = Vec::with_capacity(last);
        // Layer 0: the derivative streams of the input are constant unit vectors.
        let w0 = &layers.weights[0];
        let width = w0.dims()[1];
        let z = x
            .clone()
            .matmul(w0.clone())
            .add(layers.biases[0].clone().unsqueeze());
        let z1 = input_axes.as_ref().map(|e| {
            e.clone()
                .transpose()
                .matmul(w0.clone())
                .reshape([k1, 1, width])
        });
        let (a_stacked, tape) = tanh_jet(x, z.reshape([1, n, width]), z1, None, k2);
        hidden.push(tape);
        let mut h = stack(a_stacked, n, width);
        for l in 1..last {
            let w = &layers.weights[l];
            let width = w.dims()[1];
            let zs = h
                .clone()
                .matmul(w.clone())
                .reshape([streams.count(), n, width]);
            let (z, z1, z2) = split(zs, k1, k2);
            let z = z.add(layers.biases[l].clone().reshape([1, 1, width]));
            let (a_stacked, tape) = tanh_jet(h, z, z1, z2, k2);
            hidden.push(tape);
            h = stack(a_stacked, n, width);
        }
        let out = h.clone().matmul(layers.weights[last].clone());
        let value = out
            .clone()
            .slice(0..n)
            .add(layers.biases[last].clone().unsqueeze());
        let stacked = if streams.count() == 1 {
            value
        } else {
            Tensor::cat(vec![value, out.slice(n..streams.count() * n)], 0)
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

    /// ∇θ, in θ's layout, of a loss whose cotangent w.r.t. the stacked outputs is `grad_out`
    /// `[m·n, 1]`.
    pub fn backward(self, grad_out: Tensor<2>) -> Tensor<1> {
        let Tape {
            layers,
            streams,
            n,
            hidden,
            last_input,
            input_axes,
        } = self;
        let (k1, k2) = (streams.k1(), streams.k2());
        let last = layers.weights.len() - 1;
        let mut grads_w = vec![None; last + 1];
        let mut grads_b = vec![None; last + 1];
        grads_w[last] = Some(last_input.transpose().matmul(grad_out.clone()));
        grads_b[last] = Some(grad_out.clone().slice(0..n).sum_dim(0).reshape([1]));
        let mut dh = grad_out.matmul(layers.weights[last].clone().transpose());
        let mut tapes = hidden.into_iter();
        let first = tapes.next().expect("depth >= 1");
        for (l, tape) in (1..last).zip(tapes).rev() {
            let width = layers.weights[l].dims()[1];
            let dz = tanh_jet_adjoint(&tape, dh.reshape([streams.count(), n, width]), k1, k2);
            grads_b[l] = Some(
                dz[0]
                    .clone()
                    .reshape([n, width])
                    .sum_dim(0)
                    .reshape([width]),
            );
            let dz = stack(dz, n, width);
            grads_w[l] = Some(tape.input.transpose().matmul(dz.clone()));
            dh = dz.matmul(layers.weights[l].clone().transpose());
        }
        // Layer 0: z = x·W₀ + b₀ and z' = Eᵀ·W₀ (the same for every point); z'' = 0 carries
        // nothing back.
        let width = layers.weights[0].dims()[1];
        let dz = tanh_jet_adjoint(&first, dh.reshape([streams.count(), n, width]), k1, k2);
        let dz_value = dz[0].clone().reshape([n, width]);
        grads_b[0] = Some(dz_value.clone().sum_dim(0).reshape([width]));
        let mut gw = first.input.transpose().matmul(dz_value);
        if let (Some(e), Some(dz1)) = (&input_axes, dz.get(1)) {
            let per_axis = dz1.clone().sum_dim(1).reshape([k1, width]);
            gw = gw.add(e.clone().matmul(per_axis));
        }
        grads_w[0] = Some(gw);
        let mut parts = Vec::with_capacity(2 * (last + 1));
        for (w, b) in grads_w.into_iter().zip(grads_b) {
            parts.push(w.expect("every layer visited").reshape([-1]));
            parts.push(b.expect("every layer visited"));
        }
        Tensor::cat(parts, 0)
    }
}

/// The tanh jet of SPEC §1 on stacked blocks: a = tanh(z), a' = s z', a'' = s z'' − 2 a s (z')²
/// with s = 1 − a². Returns the activation blocks and what the adjoint needs.
fn tanh_jet(
    input: Tensor<2>,
    z: Tensor<3>,
    z1: Option<Tensor<3>>,
    z2: Option<Tensor<3>>,
    k2: usize,
) -> (Vec<Tensor<3>>, HiddenTape) {
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

/// The adjoint of [`tanh_jet`]: from the activation cotangents `[m, n, w]` to the
/// pre-activation cotangents, as blocks `[1, n, w]`, `[k1, n, w]`, `[k2, n, w]`:
///   z̄'' = s ā'',  z̄' = s ā' − 4 a s z' ā'' (second-order axes),
///   z̄ = s ā − 2 a s Σ ā' z' − 2 Σ ā'' (a s z'' + s (1 − 3a²) (z')²).
fn tanh_jet_adjoint(tape: &HiddenTape, da: Tensor<3>, k1: usize, k2: usize) -> Vec<Tensor<3>> {
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
            .mul(da1.clone().mul(z1.clone()).sum_dim(0)),
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
            let tail = dz1.clone().slice(k2..k1);
            Tensor::cat(vec![head(&dz1, k2).add(cross), tail], 0)
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
        dz = dz.add(through_z.mul(da2.clone()).sum_dim(0));
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

/// How the rows of a loss are split into independent chunks, run in parallel and summed in a
/// fixed order. Burn's CPU backend runs every elementwise op below ~4M elements and every
/// matrix product below 192³ multiply-adds on one thread, so one forward/backward over all
/// rows leaves the other cores idle; chunks of rows keep them busy. The chunk count depends on
/// the number of rows only, never on the number of threads, so results do not depend on the
/// machine's core count. On LibTorch (GPU or CPU) one chunk: it has its own parallelism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowChunks {
    pub max_chunks: usize,
    pub min_rows: usize,
}

impl RowChunks {
    /// Up to 4 chunks of at least 256 rows (a 1,280-point batch: 4 × 320).
    pub const CPU: RowChunks = RowChunks {
        max_chunks: 4,
        min_rows: 256,
    };
    pub const ONE: RowChunks = RowChunks {
        max_chunks: 1,
        min_rows: usize::MAX,
    };

    /// The row ranges of `n` rows, as equal as possible.
    pub fn ranges(&self, n: usize) -> Vec<Range<usize>> {
        let chunks = (n / self.min_rows.max(1)).clamp(1, self.max_chunks.max(1));
        (0..chunks)
            .map(|c| c * n / chunks..(c + 1) * n / chunks)
            .collect()
    }

    /// Σ over chunks of `f(rows)` = (loss part, gradient part), computed in parallel, added in
    /// chunk order.
    fn sum(
        &self,
        n: usize,
        f: impl Fn(Range<usize>) -> (Tensor<1>, Tensor<1>) + Sync,
    ) -> (Tensor<1>, Tensor<1>) {
        let ranges = self.ranges(n);
        let parts: Vec<(Tensor<1>, Tensor<1>)> = if ranges.len() == 1 {
            ranges.into_iter().map(&f).collect()
        } else {
            ranges.into_par_iter().map(&f).collect()
        };
        parts
            .into_iter()
            .reduce(|(l1, g1), (l2, g2)| (l1.add(l2), g1.add(g2)))
            .expect("at least one chunk")
    }
}

fn rows(t: &Tensor<2>, r: &Range<usize>) -> Tensor<2> {
    t.clone().slice(r.clone())
}

/// L_r = mean(r²) of the PDE residual at normalised points `x`, and its ∇θ.
#[allow(clippy::too_many_arguments)]
pub fn residual_loss_and_grad(
    layers: &Layers,
    pde: &dyn crate::pde::Pde,
    x: Tensor<2>,
    forcing: Tensor<2>,
    spec: &JetSpec,
    input_scale: &[f64],
    chunks: RowChunks,
) -> (Tensor<1>, Tensor<1>) {
    let n = x.dims()[0];
    chunks.sum(n, |r| {
        let (tape, outputs) = Tape::forward(layers, rows(&x, &r), spec, input_scale);
        // The PDE's own residual, differentiated by Burn over the [m·n, 1] outputs only.
        let leaf = outputs.stacked.clone().autodiff().require_grad();
        let loss = pde
            .residual(&outputs.jet_of(&leaf, spec.dim()), rows(&forcing, &r))
            .square()
            .sum()
            .mul_scalar(1.0 / n as f64);
        let grad_out = leaf
            .grad(&loss.backward())
            .unwrap_or_else(|| outputs.stacked.zeros_like());
        (loss.inner(), tape.backward(grad_out))
    })
}

/// Σ_i weight_i (u_i − target_i)² over value-condition points `x`, and its ∇θ.
pub fn value_loss_and_grad(
    layers: &Layers,
    x: Tensor<2>,
    target: Tensor<2>,
    weight: Tensor<2>,
    chunks: RowChunks,
) -> (Tensor<1>, Tensor<1>) {
    let (n, dim) = (x.dims()[0], x.dims()[1]);
    chunks.sum(n, |r| {
        let spec = JetSpec::value(dim);
        let (tape, outputs) = Tape::forward(layers, rows(&x, &r), &spec, &vec![1.0; dim]);
        let err = outputs.stacked.sub(rows(&target, &r));
        let weight = rows(&weight, &r);
        let loss = err.clone().square().mul(weight.clone()).sum();
        (loss, tape.backward(err.mul(weight).mul_scalar(2.0)))
    })
}

/// mean((∂u/∂x_axis − target)²) over derivative-condition points `x`, and its ∇θ.
pub fn derivative_loss_and_grad(
    layers: &Layers,
    x: Tensor<2>,
    target: Tensor<2>,
    axis: usize,
    input_scale: &[f64],
    chunks: RowChunks,
) -> (Tensor<1>, Tensor<1>) {
    let (n, dim) = (x.dims()[0], x.dims()[1]);
    let spec = JetSpec::new(dim, &[axis], &[]);
    chunks.sum(n, |r| {
        let (tape, outputs) = Tape::forward(layers, rows(&x, &r), &spec, input_scale);
        let err = outputs.block(1).sub(rows(&target, &r));
        let loss = err.clone().square().sum().mul_scalar(1.0 / n as f64);
        let grad_out = Tensor::cat(vec![err.zeros_like(), err.mul_scalar(2.0 / n as f64)], 0);
        (loss, tape.backward(grad_out))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_chunks_cover_the_rows_in_order_and_depend_on_the_row_count_only() {
        let lens = |c: RowChunks, n| c.ranges(n).iter().map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(lens(RowChunks::CPU, 1280), [320; 4]);
        assert_eq!(lens(RowChunks::CPU, 126), [126]);
        assert_eq!(lens(RowChunks::CPU, 600), [300, 300]);
        assert_eq!(lens(RowChunks::CPU, 1000), [333, 333, 334]);
        assert_eq!(lens(RowChunks::CPU, 4096), [1024; 4]);
        assert_eq!(lens(RowChunks::ONE, 4096), [4096]);
        for n in [1, 255, 256, 513, 1281, 5000] {
            let r = RowChunks::CPU.ranges(n);
            assert_eq!(r[0].start, 0);
            assert_eq!(r.last().unwrap().end, n);
            assert!(r.windows(2).all(|w| w[0].end == w[1].start), "{n}: {r:?}");
        }
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
