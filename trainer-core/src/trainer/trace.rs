//! Step traces for differential testing (`bench/fidelity.sh`, `tests/fidelity_golden.rs`).
//!
//! [`Trainer::trace_step`] runs one ordinary training step and also returns what an
//! independent implementation needs to repeat it (the step's raw points, the NTK subsample)
//! and what the two are compared on (losses, gradient norms and cosine, the applied update,
//! ModSync's masks). It costs extra host reads, so the training loop never calls it.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::Trainer;
use super::batch::RawBatch;
use crate::config::{Precision, TrainConfig};
use crate::pde::Quantity;
use crate::tensors::to_host;

/// One boundary or initial condition's point set, raw coordinates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConditionPoints {
    /// `value` (u) or `d1` (∂u/∂ input `axis`).
    pub quantity: String,
    pub axis: Option<usize>,
    /// One row of raw coordinates per point.
    pub points: Vec<Vec<f64>>,
}

/// One boundary point of the NTK subsample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NtkBoundaryPoint {
    pub quantity: String,
    pub axis: Option<usize>,
    pub point: Vec<f64>,
}

/// The points the NTK traces of a step are taken on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NtkPoints {
    pub residual: Vec<Vec<f64>>,
    pub boundary: Vec<NtkBoundaryPoint>,
}

/// A step's inputs: everything sampled, as raw coordinates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepInputs {
    pub residual: Vec<Vec<f64>>,
    pub conditions: Vec<ConditionPoints>,
    /// Present on steps where the `ntk` method recomputes its weights.
    pub ntk: Option<NtkPoints>,
}

/// What one step computed, in the harness's terms (`/bench/fidelity_torch.py`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepOutputs {
    /// L_r and L_b at θ_k on this step's points.
    pub loss_r: f64,
    pub loss_b: f64,
    /// ‖g_r‖, ‖g_b‖ and g_r·g_b / (‖g_r‖ ‖g_b‖) at θ_k (under ModSync: pulled back to θ).
    pub norm_g_r: f64,
    pub norm_g_b: f64,
    pub cos: f64,
    /// θ_{k+1} − θ_k.
    pub update: Vec<f64>,
    pub skipped: bool,
    /// ModSync: per masked layer, (kept weights, Σ over kept weights of flat index + 1).
    pub masks: Option<Vec<[u64; 2]>>,
    /// ModSync: per masked layer, 1 if the reset rule fired at this step.
    pub resets: Option<Vec<u8>>,
}

/// One traced step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepTrace {
    pub inputs: StepInputs,
    pub outputs: StepOutputs,
}

impl Trainer {
    /// One training step, exactly as [`Trainer::run`] takes it (without evaluation), traced.
    pub fn trace_step(&mut self) -> StepTrace {
        let raw = self.sample_raw();
        let ntk = self
            .stepper
            .method
            .ntk_due(self.iter)
            .then(|| self.ntk_points(&raw));
        let theta_before = self.parameters();
        let resets_before = self.modsync_resets();
        let skipped_before = self.skipped_steps;
        // Both tasks, as an evaluation step computes them: `apply` drops what the method
        // did not ask for, so the step is the one an untraced run takes.
        let (grads, _) = self.own_gradients(&raw, true, true);
        let host = |t: &Option<Tensor<1>>| to_host(t.clone().expect("both tasks computed"));
        let (loss_r, loss_b) = (host(&grads.loss_r)[0], host(&grads.loss_b)[0]);
        let (g_r, g_b) = (host(&grads.g_r), host(&grads.g_b));
        let masks = grads.masked.as_ref().map(|m| {
            m.masks()
                .into_iter()
                .map(|mask| {
                    let kept: Vec<usize> = (0..mask.len()).filter(|&i| mask[i] != 0.0).collect();
                    [kept.len() as u64, kept.iter().map(|&i| i as u64 + 1).sum()]
                })
                .collect()
        });
        self.apply_own(grads);
        self.iter += 1;
        let resets = resets_before.map(|before| {
            let after = self.modsync_resets().expect("same run");
            after
                .iter()
                .zip(before)
                .map(|(a, b)| (a - b) as u8)
                .collect()
        });
        let dot: f64 = g_r.iter().zip(&g_b).map(|(a, b)| a * b).sum();
        let (norm_g_r, norm_g_b) = (norm(&g_r), norm(&g_b));
        let update = self
            .parameters()
            .iter()
            .zip(&theta_before)
            .map(|(a, b)| a - b)
            .collect();
        StepTrace {
            inputs: StepInputs {
                residual: rows(&raw.residual.points, self.pde.dim()),
                conditions: raw
                    .conditions
                    .iter()
                    .map(|c| {
                        let (quantity, axis) = quantity_name(c.quantity);
                        ConditionPoints {
                            quantity,
                            axis,
                            points: rows(&c.points, self.pde.dim()),
                        }
                    })
                    .collect(),
                ntk,
            },
            outputs: StepOutputs {
                loss_r,
                loss_b,
                norm_g_r,
                norm_g_b,
                cos: dot / (norm_g_r * norm_g_b),
                update,
                skipped: self.skipped_steps > skipped_before,
                masks,
                resets,
            },
        }
    }

    /// ModSync's thresholds (t_r, t_b), concatenated over the masked layers.
    pub fn thresholds(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        self.modsync
            .as_ref()
            .map(|m| (to_host(m.t_r.clone()), to_host(m.t_b.clone())))
    }

    /// The network positions (0 = input layer) of ModSync's masked layers.
    pub fn masked_layers(&self) -> Option<Vec<usize>> {
        self.modsync
            .as_ref()
            .map(|m| m.layers().iter().map(|l| l.index).collect())
    }

    /// Layer widths: input, hidden…, output.
    pub fn dims(&self) -> &[usize] {
        &self.arch.dims
    }

    fn modsync_resets(&self) -> Option<Vec<f64>> {
        self.modsync.as_ref().map(|m| m.reset_counts())
    }

    /// The raw coordinates of the NTK subsample `ntk_traces` uses for `raw`'s batch.
    fn ntk_points(&self, raw: &RawBatch) -> NtkPoints {
        let dim = self.pde.dim();
        let blocks = raw.boundary_blocks();
        let sizes: Vec<usize> = blocks.iter().map(|(p, _)| p.len() / dim).collect();
        let (rows_r, rows_b) = self.ntk_rows(raw.residual.points.len() / dim, &sizes);
        let row = |points: &[f64], i: usize| points[i * dim..(i + 1) * dim].to_vec();
        NtkPoints {
            residual: rows_r
                .into_iter()
                .map(|i| row(&raw.residual.points, i))
                .collect(),
            boundary: rows_b
                .into_iter()
                .map(|(block, j)| {
                    let (points, axis) = &blocks[block];
                    let quantity = axis.map_or(Quantity::Value, Quantity::FirstDerivative);
                    let (quantity, axis) = quantity_name(quantity);
                    NtkBoundaryPoint {
                        quantity,
                        axis,
                        point: row(points, j),
                    }
                })
                .collect(),
        }
    }
}

/// The settings every differential-testing case uses: small enough for CI, and reaching every
/// code path within `steps` steps (StepLR every 20, NTK every 10, ModSync thresholds fast
/// enough for masks to flip and a reset to fire), in f64.
pub fn fidelity_config(pde: &str, method: &str, steps: u64) -> TrainConfig {
    let mut c = TrainConfig {
        pde: pde.into(),
        method: method.into(),
        width: 32,
        depth: 3,
        iters: steps,
        seed: 7,
        lr_decay_every: 20,
        eval_every: steps,
        precision: Precision::F64,
        ..TrainConfig::default()
    };
    c.pde_options.nc = 8;
    c.pde_options.test_grid = Some(8);
    c.method_options.ntk.every = 10;
    c.modsync.lr_t = 1e-2;
    c.modsync.reset_below = 0.75;
    c.diagnostics.enabled = false;
    c
}

fn quantity_name(q: Quantity) -> (String, Option<usize>) {
    match q {
        Quantity::Value => ("value".into(), None),
        Quantity::FirstDerivative(a) => ("d1".into(), Some(a)),
    }
}

fn rows(points: &[f64], dim: usize) -> Vec<Vec<f64>> {
    points.chunks_exact(dim).map(<[f64]>::to_vec).collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}
