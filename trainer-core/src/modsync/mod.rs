//! ModSync (paper §3, SPEC §4): masked linear layers with per-task thresholds, wrapped around
//! any gradient method (`modsync+X`).
//!
//! Each masked layer's weight W `[d_in, d_out]` gets threshold vectors t_r, t_b `[d_out]`
//! (init 0); the network uses W̃ = M ⊙ W with M = 1[|W| − (t_r + t_b)/2 > 0] for the value and
//! every jet stream. The trainer back-propagates each task loss to G = ∂L/∂θ̃ with θ̃ as the
//! leaf; [`ModSync::pull_back`] turns that into the straight-through gradients w.r.t. θ (which
//! go to the method, thresholds excluded) and w.r.t. t (routed to t_r / t_b, plus λ_s ∂L_s/∂t).
//! Thresholds have their own Adam (lr η_t). A layer whose kept fraction is ≤ `reset_below`
//! has t_r = t_b = 0 set before the step uses it.

pub mod diagnostics;
pub mod masked;
pub mod options;
pub mod sparsity;

use std::ops::Range;

use burn::tensor::Tensor;

use crate::adam::{Adam, AdamParams, AdamState};
use crate::mlp::{Architecture, LayerSlot};
use crate::tensors::{Ctx, to_host};

pub use diagnostics::DiagnosticsOptions;
pub use masked::{MaskedWeight, mask_weight, ste_slope};
pub use options::{Ablation, ModSyncOptions, RwMode};
pub use sparsity::{Sparsity, sparsity};

/// Where one masked layer's weights and thresholds live.
#[derive(Clone, Debug)]
pub struct MaskedLayer {
    /// Position of the layer in the network (0 = input layer).
    pub index: usize,
    pub slot: LayerSlot,
    /// Its units in the flat threshold vectors.
    pub units: Range<usize>,
}

/// The masked network of one step: θ̃ and what the pull-back needs.
#[derive(Clone, Debug)]
pub struct MaskedStep {
    /// θ̃ in θ's layout (biases and unmasked layers unchanged).
    pub theta: Tensor<1>,
    /// M + |W| S'(Z) on masked weights, 1 elsewhere: ∂L/∂θ = ∂L/∂θ̃ ⊙ this.
    weight_factor: Tensor<1>,
    /// Per masked layer.
    layers: Vec<MaskedWeight>,
}

impl MaskedStep {
    /// Each masked layer's mask M on the host, row-major `[d_in, d_out]`, 0/1.
    pub fn masks(&self) -> Vec<Vec<f64>> {
        self.layers
            .iter()
            .map(|m| to_host(m.mask.clone()))
            .collect()
    }
}

/// The thresholds' gradients of one step.
#[derive(Clone, Debug)]
pub struct ThresholdGrads {
    pub g_r: Tensor<1>,
    pub g_b: Tensor<1>,
    pub sparsity: Sparsity,
}

impl ThresholdGrads {
    /// One value that is finite iff every gradient and L_s is.
    pub fn check(&self) -> Tensor<1> {
        self.g_r
            .clone()
            .sum()
            .add(self.g_b.clone().sum())
            .add(self.sparsity.loss.clone())
    }
}

/// ModSync's state: thresholds, their Adam, reset counters.
pub struct ModSync {
    pub opts: ModSyncOptions,
    /// Every layer of the network, masked or not.
    slots: Vec<LayerSlot>,
    layers: Vec<MaskedLayer>,
    /// Flat thresholds of all masked layers' units.
    pub t_r: Tensor<1>,
    pub t_b: Tensor<1>,
    /// Adam over [t_r; t_b].
    pub adam: Adam,
    /// Resets per masked layer so far (device counters, read at evaluations).
    resets: Tensor<1>,
}

impl ModSync {
    pub fn new(ctx: &Ctx, arch: &Architecture, opts: ModSyncOptions) -> Self {
        let slots = arch.slots();
        let last = slots.len() - 1;
        let mut units = 0;
        let layers: Vec<MaskedLayer> = slots
            .iter()
            .cloned()
            .enumerate()
            .filter(|(i, _)| (*i != 0 || opts.mask_first) && (*i != last || opts.mask_last))
            .map(|(index, slot)| {
                let range = units..units + slot.d_out;
                units = range.end;
                MaskedLayer {
                    index,
                    slot,
                    units: range,
                }
            })
            .collect();
        let zeros = ctx.vector(&vec![0.0; units]);
        Self {
            adam: Adam::new(ctx, 2 * units, AdamParams::default()),
            resets: ctx.vector(&vec![0.0; layers.len()]),
            layers,
            slots,
            t_r: zeros.clone(),
            t_b: zeros,
            opts,
        }
    }

    pub fn layers(&self) -> &[MaskedLayer] {
        &self.layers
    }

    /// Total thresholds per task.
    pub fn units(&self) -> usize {
        self.layers.last().map_or(0, |l| l.units.end)
    }

    /// Unit ranges of the masked layers.
    fn unit_ranges(&self) -> Vec<Range<usize>> {
        self.layers.iter().map(|l| l.units.clone()).collect()
    }

    /// The thresholds after the reset rule for weights `theta`, and which layers it reset
    /// (1/0 per masked layer).
    fn reset_thresholds(&self, theta: &Tensor<1>) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        if self.layers.is_empty() {
            return (self.t_r.clone(), self.t_b.clone(), self.resets.zeros_like());
        }
        let mut t_r = Vec::with_capacity(self.layers.len());
        let mut t_b = Vec::with_capacity(self.layers.len());
        let mut fired = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let w = weight(theta, &l.slot);
            let tr = self.t_r.clone().slice(l.units.clone());
            let tb = self.t_b.clone().slice(l.units.clone());
            let t = tr.clone().add(tb.clone()).mul_scalar(0.5);
            let low = masked::kept_fraction(w, t).lower_equal_elem(self.opts.reset_below);
            let n = l.units.len();
            fired.push(low.clone());
            t_r.push(tr.mask_fill(low.clone().expand([n]), 0.0));
            t_b.push(tb.mask_fill(low.expand([n]), 0.0));
        }
        let ones = self.resets.ones_like();
        let fired = Tensor::cat(fired, 0);
        (
            Tensor::cat(t_r, 0),
            Tensor::cat(t_b, 0),
            ones.zeros_like().mask_where(fired, ones),
        )
    }

    /// The masked network for `theta` with thresholds `t_r`, `t_b`.
    fn build(&self, theta: &Tensor<1>, t_r: &Tensor<1>, t_b: &Tensor<1>) -> MaskedStep {
        let mut theta_parts = Vec::new();
        let mut factor_parts = Vec::new();
        let mut masked_layers = Vec::with_capacity(self.layers.len());
        let mut next = self.layers.iter().peekable();
        for (index, slot) in self.slots.iter().enumerate() {
            let bias = theta.clone().slice(slot.bias.clone());
            match next.peek() {
                Some(l) if l.index == index => {
                    let t = t_r
                        .clone()
                        .slice(l.units.clone())
                        .add(t_b.clone().slice(l.units.clone()))
                        .mul_scalar(0.5);
                    let m = mask_weight(weight(theta, slot), t);
                    theta_parts.push(m.masked.clone().reshape([-1]));
                    factor_parts.push(m.weight_factor.clone().reshape([-1]));
                    masked_layers.push(m);
                    next.next();
                }
                _ => {
                    let w = theta.clone().slice(slot.weight.clone());
                    factor_parts.push(w.ones_like());
                    theta_parts.push(w);
                }
            }
            factor_parts.push(bias.ones_like());
            theta_parts.push(bias);
        }
        MaskedStep {
            theta: Tensor::cat(theta_parts, 0),
            weight_factor: Tensor::cat(factor_parts, 0),
            layers: masked_layers,
        }
    }

    /// Applies the reset rule (storing the thresholds) and builds this step's masked network.
    pub fn begin_step(&mut self, theta: &Tensor<1>) -> MaskedStep {
        let (t_r, t_b, fired) = self.reset_thresholds(theta);
        self.t_r = t_r;
        self.t_b = t_b;
        self.resets = self.resets.clone().add(fired);
        self.build(theta, &self.t_r.clone(), &self.t_b.clone())
    }

    /// The masked network as the next step would see it, without changing any state.
    pub fn masked(&self, theta: &Tensor<1>) -> MaskedStep {
        let (t_r, t_b, _) = self.reset_thresholds(theta);
        self.build(theta, &t_r, &t_b)
    }

    /// (∂L/∂θ, ∂L/∂t) from ∂L/∂θ̃ for a task loss of weight `weight`.
    pub fn pull_back(
        &self,
        step: &MaskedStep,
        g_tilde: Tensor<1>,
        weight: f64,
    ) -> (Tensor<1>, Tensor<1>) {
        let g_tilde = if weight == 1.0 {
            g_tilde
        } else {
            g_tilde.mul_scalar(weight)
        };
        let g_t: Vec<Tensor<1>> = self
            .layers
            .iter()
            .zip(&step.layers)
            .map(|(l, m)| {
                let g = g_tilde
                    .clone()
                    .slice(l.slot.weight.clone())
                    .reshape([l.slot.d_in, l.slot.d_out]);
                m.pull_back(g).1
            })
            .collect();
        let g_t = if g_t.is_empty() {
            self.t_r.zeros_like()
        } else {
            Tensor::cat(g_t, 0)
        };
        (g_tilde.mul(step.weight_factor.clone()), g_t)
    }

    /// ∂L/∂θ only (per-point gradients of the diagnostics and NTK traces).
    pub fn pull_back_theta(&self, step: &MaskedStep, g_tilde: Tensor<1>) -> Tensor<1> {
        g_tilde.mul(step.weight_factor.clone())
    }

    /// The thresholds' gradients from the task parts ∂L_r/∂t, ∂L_b/∂t (None = not
    /// back-propagated this step, i.e. zero) and the sparsity loss.
    pub fn threshold_grads(
        &self,
        dt_r: Option<Tensor<1>>,
        dt_b: Option<Tensor<1>>,
    ) -> ThresholdGrads {
        let zeros = || self.t_r.zeros_like();
        let dt_r = dt_r.unwrap_or_else(zeros);
        let dt_b = dt_b.unwrap_or_else(zeros);
        let s = sparsity(&self.t_r, &self.t_b, &self.opts, &self.unit_ranges());
        let ls = self.opts.lambda_s;
        let (g_r, g_b) = match self.opts.mode {
            Ablation::SparsityOnly => {
                let g = dt_r.add(dt_b).add(s.d_r.clone().mul_scalar(ls));
                (g.clone(), g)
            }
            _ if self.opts.route_thresholds => (
                dt_r.mul_scalar(0.5).add(s.d_r.clone().mul_scalar(ls)),
                dt_b.mul_scalar(0.5).add(s.d_b.clone().mul_scalar(ls)),
            ),
            _ => {
                let half = dt_r.add(dt_b).mul_scalar(0.5);
                (
                    half.clone().add(s.d_r.clone().mul_scalar(ls)),
                    half.add(s.d_b.clone().mul_scalar(ls)),
                )
            }
        };
        ThresholdGrads {
            g_r,
            g_b,
            sparsity: s,
        }
    }

    /// One Adam step of the thresholds.
    pub fn step_thresholds(&mut self, g: ThresholdGrads, lr: f64) {
        let u = self.units();
        if u == 0 {
            return;
        }
        let t = Tensor::cat(vec![self.t_r.clone(), self.t_b.clone()], 0);
        let grad = Tensor::cat(vec![g.g_r, g.g_b], 0);
        let t = self.adam.step(t, grad, lr);
        self.t_r = t.clone().slice(0..u);
        self.t_b = t.slice(u..2 * u);
    }

    /// Diagnostics for the metrics row at weights `theta`: `loss_s` and per masked layer
    /// `kept_frac_l{i}`, `exclusive_frac_l{i}`, `rw_mean_l{i}`, `resets_l{i}`.
    pub fn diagnostics(&self, theta: &Tensor<1>) -> Vec<(String, f64)> {
        let (t_r, t_b, _) = self.reset_thresholds(theta);
        let s = sparsity(&t_r, &t_b, &self.opts, &self.unit_ranges());
        let mut parts = vec![s.loss.clone(), self.resets.clone()];
        for l in &self.layers {
            let w = weight(theta, &l.slot);
            let tr = t_r.clone().slice(l.units.clone());
            let tb = t_b.clone().slice(l.units.clone());
            let t = tr.clone().add(tb.clone()).mul_scalar(0.5);
            parts.push(masked::kept_fraction(w.clone(), t));
            let d_out = l.slot.d_out;
            let abs = w.clone().abs();
            let above_r = abs
                .clone()
                .greater(tr.reshape([1, d_out]).expand(abs.dims()));
            let above_b = abs
                .clone()
                .greater(tb.reshape([1, d_out]).expand(abs.dims()));
            let exclusive = abs
                .ones_like()
                .mask_fill(above_r.bool_xor(above_b).bool_not(), 0.0);
            parts.push(exclusive.mean());
            parts.push(s.rw.clone().slice(l.units.clone()).mean());
        }
        let host = to_host(Tensor::cat(parts, 0));
        let n = self.layers.len();
        let mut out = vec![("loss_s".to_string(), host[0])];
        for (k, l) in self.layers.iter().enumerate() {
            let base = 1 + n + 3 * k;
            let i = l.index;
            out.push((format!("kept_frac_l{i}"), host[base]));
            out.push((format!("exclusive_frac_l{i}"), host[base + 1]));
            out.push((format!("rw_mean_l{i}"), host[base + 2]));
            out.push((format!("resets_l{i}"), host[1 + k]));
        }
        out
    }

    /// Resets per masked layer so far.
    pub fn reset_counts(&self) -> Vec<f64> {
        to_host(self.resets.clone())
    }

    /// Vectors and counters for checkpoints.
    pub fn save(&self) -> (serde_json::Value, Vec<(String, Vec<f64>)>) {
        let adam = self.adam.state();
        (
            serde_json::json!({ "adam_t": adam.t }),
            vec![
                ("modsync.t_r".into(), to_host(self.t_r.clone())),
                ("modsync.t_b".into(), to_host(self.t_b.clone())),
                ("modsync.adam_m".into(), adam.m),
                ("modsync.adam_v".into(), adam.v),
                ("modsync.resets".into(), to_host(self.resets.clone())),
            ],
        )
    }

    /// Restores [`ModSync::save`]'s output; `vector(name)` looks a vector up.
    pub fn load<'a>(
        &mut self,
        ctx: &Ctx,
        json: &serde_json::Value,
        vector: impl Fn(&str) -> Option<&'a [f64]>,
    ) -> Result<(), String> {
        let u = self.units();
        let get = |name: &str, len: usize| -> Result<&'a [f64], String> {
            let v = vector(name).ok_or_else(|| format!("missing vector {name}"))?;
            if v.len() == len {
                Ok(v)
            } else {
                Err(format!("{name} has {} values, expected {len}", v.len()))
            }
        };
        self.t_r = ctx.vector(get("modsync.t_r", u)?);
        self.t_b = ctx.vector(get("modsync.t_b", u)?);
        self.resets = ctx.vector(get("modsync.resets", self.layers.len())?);
        let state = AdamState {
            m: get("modsync.adam_m", 2 * u)?.to_vec(),
            v: get("modsync.adam_v", 2 * u)?.to_vec(),
            t: json
                .get("adam_t")
                .and_then(serde_json::Value::as_u64)
                .ok_or("missing modsync adam_t")?,
        };
        self.adam = Adam::restore(ctx, AdamParams::default(), &state);
        Ok(())
    }
}

/// Layer `slot`'s weight as `[d_in, d_out]`.
fn weight(theta: &Tensor<1>, slot: &LayerSlot) -> Tensor<2> {
    theta
        .clone()
        .slice(slot.weight.clone())
        .reshape([slot.d_in, slot.d_out])
}
