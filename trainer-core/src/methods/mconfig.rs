//! `mconfig` — momentum ConFIG (Liu et al. 2025, `PseudoMomentumOperator` of the reference
//! code): one loss is back-propagated per step, alternating residual (even steps) and
//! boundary (odd steps). Each task keeps a first moment m_k (β₁) with its own step count;
//! the direction is ConFIG of the bias-corrected moments, normalised by an Adam-like second
//! moment (β₂) of the pseudo-gradient that direction implies; θ takes a plain SGD step.
//!
//! `variant = reference` (default): until both tasks have been seen once the parameters are
//! held (the reference returns a zero gradient then). `variant = literal`: SPEC's line read
//! literally — an unseen task's moment is zero, so ConFIG(m̂, 0) = m̂ moves θ from the first
//! step, and the second moment is of the direction itself.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::projection::config;
use super::stats::{PROBE_LEN, PairStats, probe};
use super::{GradientMethod, MethodEntry, MethodState, TaskGrads, Tasks, Update};
use crate::options::{Check, OptionSpec};
use crate::tensors::{Ctx, to_host};

pub const MCONFIG: MethodEntry = MethodEntry {
    name: "mconfig",
    summary: "momentum ConFIG: one loss per step (alternating), ConFIG of the momenta, SGD",
    options: &[
        OptionSpec::float(
            "mconfig.beta1",
            "per-task momentum decay",
            Check::Decay,
            |o| o.mconfig.beta1,
            |o, v| o.mconfig.beta1 = v,
        ),
        OptionSpec::float(
            "mconfig.beta2",
            "pseudo-gradient second-moment decay",
            Check::Decay,
            |o| o.mconfig.beta2,
            |o, v| o.mconfig.beta2 = v,
        ),
        OptionSpec::float(
            "mconfig.eps",
            "ε of the normalisation",
            Check::Positive,
            |o| o.mconfig.eps,
            |o, v| o.mconfig.eps = v,
        ),
        OptionSpec::choice(
            "mconfig.variant",
            "reference | literal (two readings of SPEC; README)",
            &MconfigVariant::NAMES,
            |o| o.mconfig.variant.name(),
            |o, s| {
                MconfigVariant::parse(s)
                    .map(|v| o.mconfig.variant = v)
                    .is_some()
            },
        ),
    ],
    uses_eps: false,
    build: |o, ctx, n| Box::new(Mconfig::new(ctx, n, o.mconfig.clone())),
};

/// Two readings of SPEC §3's `mconfig` line, which fixes neither the start nor what
/// "the pseudo-gradient" is. The differential test (bench/fidelity.sh) checks both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MconfigVariant {
    /// As the public ConFIG code (`PseudoMomentumOperator`) does: θ is held until both tasks have
    /// been seen once; the second moment is of the gradient that would have produced the
    /// bias-uncorrected direction as a momentum.
    #[default]
    Reference,
    /// SPEC's line read literally: a task not yet seen contributes a zero moment (no hold), and
    /// the second moment is of the ConFIG direction itself.
    Literal,
}

impl MconfigVariant {
    pub const NAMES: [&str; 2] = ["reference", "literal"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reference" => Some(Self::Reference),
            "literal" => Some(Self::Literal),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// `mconfig` (Liu et al. 2025, M-ConFIG): alternating single-task backward passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MconfigOptions {
    /// Per-task first-moment decay.
    pub beta1: f64,
    /// Second-moment decay of the pseudo-gradient.
    pub beta2: f64,
    pub eps: f64,
    pub variant: MconfigVariant,
}

impl Default for MconfigOptions {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            variant: MconfigVariant::Reference,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Mconfig {
    pub opts: MconfigOptions,
    pub m_r: Tensor<1>,
    pub m_b: Tensor<1>,
    /// Second moment of the pseudo-gradient.
    pub s: Tensor<1>,
    /// The previous bias-uncorrected direction (the reference's `fake_m`).
    pub fake_m: Tensor<1>,
    /// Moment updates per task.
    pub t_r: u64,
    pub t_b: u64,
    /// Steps since both tasks were first seen.
    pub t: u64,
    /// This step's new moment and both bias-corrected moments, between `probe` and `update`.
    pending: Option<Pending>,
}

#[derive(Clone, Debug)]
struct Pending {
    residual: bool,
    m_new: Tensor<1>,
    m_hat_r: Tensor<1>,
    m_hat_b: Tensor<1>,
}

impl Mconfig {
    pub fn new(ctx: &Ctx, n: usize, opts: MconfigOptions) -> Self {
        let z = ctx.vector(&vec![0.0; n]);
        Self {
            opts,
            m_r: z.clone(),
            m_b: z.clone(),
            s: z.clone(),
            fake_m: z,
            t_r: 0,
            t_b: 0,
            t: 0,
            pending: None,
        }
    }

    fn bias_corrected(&self, m: &Tensor<1>, count: u64) -> Tensor<1> {
        if count == 0 {
            m.clone()
        } else {
            m.clone()
                .div_scalar(1.0 - self.opts.beta1.powi(count as i32))
        }
    }
}

impl GradientMethod for Mconfig {
    fn name(&self) -> &'static str {
        MCONFIG.name
    }
    fn tasks(&self, iter: u64) -> Tasks {
        if iter.is_multiple_of(2) {
            Tasks::Residual
        } else {
            Tasks::Boundary
        }
    }
    /// Stats of the two bias-corrected moments after folding in this step's gradient, then
    /// max|g| (a zero gradient is skipped).
    fn probe(&mut self, grads: &TaskGrads) -> Tensor<1> {
        let b1 = self.opts.beta1;
        let (residual, g) = match (&grads.g_r, &grads.g_b) {
            (Some(g), _) => (true, g.clone()),
            (None, Some(g)) => (false, g.clone()),
            (None, None) => panic!("mconfig needs one task gradient per step"),
        };
        let old = if residual { &self.m_r } else { &self.m_b };
        let m_new = old
            .clone()
            .mul_scalar(b1)
            .add(g.clone().mul_scalar(1.0 - b1));
        let (m_hat_r, m_hat_b) = if residual {
            (
                self.bias_corrected(&m_new, self.t_r + 1),
                self.bias_corrected(&self.m_b, self.t_b),
            )
        } else {
            (
                self.bias_corrected(&self.m_r, self.t_r),
                self.bias_corrected(&m_new, self.t_b + 1),
            )
        };
        let out = Tensor::cat(vec![probe(&m_hat_r, &m_hat_b), g.abs().max()], 0);
        self.pending = Some(Pending {
            residual,
            m_new,
            m_hat_r,
            m_hat_b,
        });
        out
    }
    fn update(&mut self, _grads: TaskGrads, probe_values: &[f64], lr: f64) -> Update {
        let Some(p) = self.pending.take() else {
            return Update::Skip;
        };
        if probe_values[PROBE_LEN] == 0.0 {
            return Update::Skip;
        }
        let n = p.m_new.dims()[0];
        let stats = PairStats::from_probe(&probe_values[..PROBE_LEN], n);
        let c = config(&stats);
        let (t_r, t_b) = if p.residual {
            (self.t_r + 1, self.t_b)
        } else {
            (self.t_r, self.t_b + 1)
        };
        let ready = t_r > 0 && t_b > 0;
        if ready && !stats.combination_is_safe(c, p.m_new.dtype()) {
            return Update::Skip;
        }
        if p.residual {
            self.m_r = p.m_new;
        } else {
            self.m_b = p.m_new;
        }
        (self.t_r, self.t_b) = (t_r, t_b);
        let literal = self.opts.variant == MconfigVariant::Literal;
        if !ready && !literal {
            return Update::Hold;
        }
        let MconfigOptions {
            beta1, beta2, eps, ..
        } = self.opts;
        self.t += 1;
        let direction = match (ready, p.residual) {
            (true, _) => c.apply(p.m_hat_r, p.m_hat_b),
            // ConFIG(m̂, 0) = m̂: the unseen task contributes nothing.
            (false, true) => p.m_hat_r,
            (false, false) => p.m_hat_b,
        };
        let second_moment_input = if literal {
            direction.clone()
        } else {
            let fake_m = direction
                .clone()
                .mul_scalar(1.0 - beta1.powi(self.t as i32));
            let fake_grad = fake_m
                .clone()
                .sub(self.fake_m.clone().mul_scalar(beta1))
                .div_scalar(1.0 - beta1);
            self.fake_m = fake_m;
            fake_grad
        };
        self.s = self
            .s
            .clone()
            .mul_scalar(beta2)
            .add(second_moment_input.square().mul_scalar(1.0 - beta2));
        let s_hat = self.s.clone().div_scalar(1.0 - beta2.powi(self.t as i32));
        Update::Delta(direction.div(s_hat.sqrt().add_scalar(eps)).mul_scalar(lr))
    }
    fn save(&self) -> MethodState {
        MethodState {
            json: serde_json::json!({ "t": self.t, "t_r": self.t_r, "t_b": self.t_b }),
            vectors: vec![
                ("mconfig.m_r".into(), to_host(self.m_r.clone())),
                ("mconfig.m_b".into(), to_host(self.m_b.clone())),
                ("mconfig.s".into(), to_host(self.s.clone())),
                ("mconfig.fake_m".into(), to_host(self.fake_m.clone())),
            ],
        }
    }
    fn load(&mut self, ctx: &Ctx, state: &MethodState) -> Result<(), String> {
        let n = self.m_r.dims()[0];
        self.m_r = ctx.vector(state.vector("mconfig.m_r", n)?);
        self.m_b = ctx.vector(state.vector("mconfig.m_b", n)?);
        self.s = ctx.vector(state.vector("mconfig.s", n)?);
        self.fake_m = ctx.vector(state.vector("mconfig.fake_m", n)?);
        self.t = state.counter("t")?;
        self.t_r = state.counter("t_r")?;
        self.t_b = state.counter("t_b")?;
        self.pending = None;
        Ok(())
    }
}
