//! Loss-weighting methods: `adam` (fixed λ), `lra` (learning-rate annealing, Wang et al. 2021)
//! and `ntk` (NTK-trace weights, Wang et al. 2022). Each steps the outer Adam with
//! g = λ_r g_r + λ_b g_b; they differ only in where λ comes from.

use serde::{Deserialize, Serialize};

use super::stats::{Coefficients, PairStats};
use super::{GradientMethod, MethodEntry, MethodState, TaskGrads, Update, pair_direction};
use crate::options::{Check, OptionSpec};
use crate::tensors::Ctx;

pub const ADAM: MethodEntry = MethodEntry {
    name: "adam",
    summary: "g = λ_r g_r + λ_b g_b, outer Adam (plain PINN)",
    options: &[
        OptionSpec::float(
            "adam.lambda_r",
            "weight of the residual loss",
            Check::NonNegative,
            |o| o.adam.lambda_r,
            |o, v| o.adam.lambda_r = v,
        ),
        OptionSpec::float(
            "adam.lambda_b",
            "weight of the boundary loss",
            Check::NonNegative,
            |o| o.adam.lambda_b,
            |o, v| o.adam.lambda_b = v,
        ),
    ],
    uses_eps: false,
    build: |o, _, _| {
        Box::new(Weighted {
            opts: o.adam.clone(),
        })
    },
};

pub const LRA: MethodEntry = MethodEntry {
    name: "lra",
    summary: "learning-rate annealing: λ_b ← (1−α)λ_b + α max|g_r|/mean|g_b| every step",
    options: &[OptionSpec::float(
        "lra.alpha",
        "moving-average weight α",
        Check::UpTo(1.0),
        |o| o.lra.alpha,
        |o, v| o.lra.alpha = v,
    )],
    uses_eps: false,
    build: |o, _, _| Box::new(Lra::new(o.lra.clone())),
};

pub const NTK: MethodEntry = MethodEntry {
    name: "ntk",
    summary: "λ_k = (T_r + T_b)/T_k from NTK-block traces on a subsample",
    options: &[
        OptionSpec::count(
            "ntk.every",
            "recompute the weights every N steps",
            Check::AtLeastOne,
            |o| o.ntk.every,
            |o, v| o.ntk.every = v,
        ),
        OptionSpec::count(
            "ntk.points",
            "points per task in the trace subsample",
            Check::AtLeastOne,
            |o| o.ntk.points as u64,
            |o, v| o.ntk.points = v as usize,
        ),
    ],
    uses_eps: false,
    build: |o, _, _| Box::new(Ntk::new(o.ntk.clone())),
};

/// `adam`: fixed loss weights, g = λ_r g_r + λ_b g_b.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeightedOptions {
    pub lambda_r: f64,
    pub lambda_b: f64,
}

impl Default for WeightedOptions {
    fn default() -> Self {
        Self {
            lambda_r: 1.0,
            lambda_b: 1.0,
        }
    }
}

/// `lra` (Wang et al. 2021): λ_b ← (1 − alpha) λ_b + alpha λ̂ every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LraOptions {
    /// Moving-average weight of the new estimate λ̂ (SPEC: 0.1).
    pub alpha: f64,
}

impl Default for LraOptions {
    fn default() -> Self {
        Self { alpha: 0.1 }
    }
}

/// `ntk` (Wang et al. 2022): weights from the traces of the NTK blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NtkOptions {
    /// Recompute the weights every this many steps (at step 0 first).
    pub every: u64,
    /// Points per task in the trace subsample (fewer if the batch has fewer).
    pub points: usize,
}

impl Default for NtkOptions {
    fn default() -> Self {
        Self {
            every: 100,
            points: 64,
        }
    }
}

/// `adam`: g = λ_r g_r + λ_b g_b with fixed λ (plain PINN training).
#[derive(Clone, Debug)]
pub struct Weighted {
    pub opts: WeightedOptions,
}

impl GradientMethod for Weighted {
    fn name(&self) -> &'static str {
        ADAM.name
    }
    fn update(&mut self, grads: TaskGrads, probe: &[f64], _lr: f64) -> Update {
        let c = Coefficients {
            r: self.opts.lambda_r,
            b: self.opts.lambda_b,
        };
        pair_direction(grads, probe, |_| Some(c))
    }
}

/// `lra`: every step λ̂ = max|g_r| / mean|g_b|, λ_b ← (1 − α) λ_b + α λ̂, g = g_r + λ_b g_b.
///
/// A step with mean|g_b| = 0 carries no information about the ratio: λ_b is kept.
#[derive(Clone, Debug)]
pub struct Lra {
    pub opts: LraOptions,
    /// Current boundary weight (starts at 1). Host f64, so it round-trips exactly.
    pub lambda_b: f64,
}

impl Lra {
    pub fn new(opts: LraOptions) -> Self {
        Self {
            opts,
            lambda_b: 1.0,
        }
    }

    /// The weight after folding in a step with statistics `s`.
    pub fn next_lambda(&self, s: &PairStats) -> f64 {
        if s.mean_abs_b > 0.0 {
            let hat = s.max_abs_r / s.mean_abs_b;
            (1.0 - self.opts.alpha) * self.lambda_b + self.opts.alpha * hat
        } else {
            self.lambda_b
        }
    }
}

impl GradientMethod for Lra {
    fn name(&self) -> &'static str {
        LRA.name
    }
    fn update(&mut self, grads: TaskGrads, probe: &[f64], _lr: f64) -> Update {
        let mut next = self.lambda_b;
        let update = pair_direction(grads, probe, |s| {
            next = self.next_lambda(s);
            Some(Coefficients { r: 1.0, b: next })
        });
        if !matches!(update, Update::Skip) {
            self.lambda_b = next;
        }
        update
    }
    fn diagnostics(&self) -> Vec<(String, f64)> {
        vec![("lambda_b".into(), self.lambda_b)]
    }
    fn save(&self) -> MethodState {
        MethodState::with_vectors(vec![("lra.lambda_b".into(), vec![self.lambda_b])])
    }
    fn load(&mut self, _ctx: &Ctx, state: &MethodState) -> Result<(), String> {
        self.lambda_b = state.vector("lra.lambda_b", 1)?[0];
        Ok(())
    }
}

/// `ntk`: λ_r = (T_r + T_b)/T_r, λ_b = (T_r + T_b)/T_b with T the NTK-block traces, which the
/// trainer measures every `every` steps (per-point gradients on a subsample) and hands over
/// through [`GradientMethod::set_ntk_traces`]. Until the first measurement λ = 1.
#[derive(Clone, Debug)]
pub struct Ntk {
    pub opts: NtkOptions,
    pub lambda_r: f64,
    pub lambda_b: f64,
}

impl Ntk {
    pub fn new(opts: NtkOptions) -> Self {
        Self {
            opts,
            lambda_r: 1.0,
            lambda_b: 1.0,
        }
    }
}

impl GradientMethod for Ntk {
    fn name(&self) -> &'static str {
        NTK.name
    }
    fn ntk_due(&self, iter: u64) -> bool {
        iter.is_multiple_of(self.opts.every)
    }
    fn ntk_points(&self) -> usize {
        self.opts.points
    }
    /// Traces that are zero or non-finite leave the weights as they are.
    fn set_ntk_traces(&mut self, t_r: f64, t_b: f64) {
        let total = t_r + t_b;
        if t_r > 0.0 && t_b > 0.0 && total.is_finite() {
            self.lambda_r = total / t_r;
            self.lambda_b = total / t_b;
        }
    }
    fn update(&mut self, grads: TaskGrads, probe: &[f64], _lr: f64) -> Update {
        let c = Coefficients {
            r: self.lambda_r,
            b: self.lambda_b,
        };
        pair_direction(grads, probe, |_| Some(c))
    }
    fn diagnostics(&self) -> Vec<(String, f64)> {
        vec![
            ("lambda_r".into(), self.lambda_r),
            ("lambda_b".into(), self.lambda_b),
        ]
    }
    fn save(&self) -> MethodState {
        MethodState::with_vectors(vec![(
            "ntk.lambdas".into(),
            vec![self.lambda_r, self.lambda_b],
        )])
    }
    fn load(&mut self, _ctx: &Ctx, state: &MethodState) -> Result<(), String> {
        let v = state.vector("ntk.lambdas", 2)?;
        self.lambda_r = v[0];
        self.lambda_b = v[1];
        Ok(())
    }
}
