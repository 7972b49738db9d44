//! `multiadam` (Yao et al. 2023): separate Adam moments per task and no outer Adam:
//! θ ← θ − lr/(1−β₁ᵗ) Σ_k w_k m_k / (√v_k/√(1−β₂ᵗ) + eps), k ∈ {r, b}.

use burn::tensor::Tensor;

use super::options::MultiAdamOptions;
use super::stats::{Coefficients, PairStats};
use super::{GradientMethod, MethodState, TaskGrads, Update};
use crate::tensors::{Ctx, to_host};

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
        "multiadam"
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
