//! `multiadam` (Yao et al. 2023): separate Adam moments per task and no outer Adam:
//! θ ← θ − lr/(1−β₁ᵗ) Σ_k w_k m_k / (√v_k/√(1−β₂ᵗ) + eps), k ∈ {r, b}.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::stats::{Coefficients, PairStats};
use super::{GradientMethod, MethodEntry, MethodState, TaskGrads, Update};
use crate::options::{Check, OptionSpec};
use crate::tensors::{Ctx, to_host};

pub const MULTIADAM: MethodEntry = MethodEntry {
    name: "multiadam",
    summary: "one Adam per task, weighted sum of their steps, no outer Adam",
    options: &[
        OptionSpec::float(
            "multiadam.beta1",
            "first-moment decay",
            Check::Decay,
            |o| o.multiadam.beta1,
            |o, v| o.multiadam.beta1 = v,
        ),
        OptionSpec::float(
            "multiadam.beta2",
            "second-moment decay",
            Check::Decay,
            |o| o.multiadam.beta2,
            |o, v| o.multiadam.beta2 = v,
        ),
        OptionSpec::float(
            "multiadam.eps",
            "Adam ε",
            Check::Positive,
            |o| o.multiadam.eps,
            |o, v| o.multiadam.eps = v,
        ),
        OptionSpec::float(
            "multiadam.weight_r",
            "weight of the residual step",
            Check::NonNegative,
            |o| o.multiadam.weight_r,
            |o, v| o.multiadam.weight_r = v,
        ),
        OptionSpec::float(
            "multiadam.weight_b",
            "weight of the boundary step",
            Check::NonNegative,
            |o| o.multiadam.weight_b,
            |o, v| o.multiadam.weight_b = v,
        ),
    ],
    uses_eps: false,
    build: |o, ctx, n| Box::new(MultiAdam::new(ctx, n, o.multiadam.clone())),
};

/// `multiadam` (Yao et al. 2023): one Adam per task, no outer Adam.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultiAdamOptions {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Weights w_r, w_b of the per-task Adam directions.
    pub weight_r: f64,
    pub weight_b: f64,
}

impl Default for MultiAdamOptions {
    fn default() -> Self {
        Self {
            beta1: 0.99,
            beta2: 0.99,
            eps: 1e-8,
            weight_r: 0.5,
            weight_b: 0.5,
        }
    }
}

#[derive(Clone, Debug)]
pub struct MultiAdam {
    pub opts: MultiAdamOptions,
    pub m_r: Tensor<1>,
    pub v_r: Tensor<1>,
    pub m_b: Tensor<1>,
    pub v_b: Tensor<1>,
    /// Steps taken (the bias-correction exponent, shared by both tasks).
    pub t: u64,
}

impl MultiAdam {
    pub fn new(ctx: &Ctx, n: usize, opts: MultiAdamOptions) -> Self {
        let z = ctx.vector(&vec![0.0; n]);
        Self {
            opts,
            m_r: z.clone(),
            v_r: z.clone(),
            m_b: z.clone(),
            v_b: z,
            t: 0,
        }
    }
}

impl GradientMethod for MultiAdam {
    fn name(&self) -> &'static str {
        MULTIADAM.name
    }
    fn update(&mut self, grads: TaskGrads, probe_values: &[f64], lr: f64) -> Update {
        let (g_r, g_b) = grads.both();
        let s = PairStats::from_probe(probe_values, g_r.dims()[0]);
        if s.both_zero() || !s.combination_is_safe(Coefficients::SUM, g_r.dtype()) {
            return Update::Skip;
        }
        let MultiAdamOptions {
            beta1,
            beta2,
            eps,
            weight_r,
            weight_b,
        } = self.opts;
        self.t += 1;
        let moments = |m: &Tensor<1>, v: &Tensor<1>, g: Tensor<1>| {
            let m = m
                .clone()
                .mul_scalar(beta1)
                .add(g.clone().mul_scalar(1.0 - beta1));
            let v = v
                .clone()
                .mul_scalar(beta2)
                .add(g.square().mul_scalar(1.0 - beta2));
            (m, v)
        };
        (self.m_r, self.v_r) = moments(&self.m_r, &self.v_r, g_r);
        (self.m_b, self.v_b) = moments(&self.m_b, &self.v_b, g_b);
        let bc1 = 1.0 - beta1.powi(self.t as i32);
        let bc2 = 1.0 - beta2.powi(self.t as i32);
        let dir = |m: &Tensor<1>, v: &Tensor<1>, w: f64| {
            m.clone()
                .div(v.clone().sqrt().div_scalar(bc2.sqrt()).add_scalar(eps))
                .mul_scalar(w)
        };
        let delta = dir(&self.m_r, &self.v_r, weight_r)
            .add(dir(&self.m_b, &self.v_b, weight_b))
            .mul_scalar(lr / bc1);
        Update::Delta(delta)
    }
    fn save(&self) -> MethodState {
        MethodState {
            json: serde_json::json!({ "t": self.t }),
            vectors: vec![
                ("multiadam.m_r".into(), to_host(self.m_r.clone())),
                ("multiadam.v_r".into(), to_host(self.v_r.clone())),
                ("multiadam.m_b".into(), to_host(self.m_b.clone())),
                ("multiadam.v_b".into(), to_host(self.v_b.clone())),
            ],
        }
    }
    fn load(&mut self, ctx: &Ctx, state: &MethodState) -> Result<(), String> {
        let n = self.m_r.dims()[0];
        self.m_r = ctx.vector(state.vector("multiadam.m_r", n)?);
        self.v_r = ctx.vector(state.vector("multiadam.v_r", n)?);
        self.m_b = ctx.vector(state.vector("multiadam.m_b", n)?);
        self.v_b = ctx.vector(state.vector("multiadam.v_b", n)?);
        self.t = state.counter("t")?;
        Ok(())
    }
}
