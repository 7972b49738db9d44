//! Adam on the flat parameter vector, with PyTorch's formula (bias-corrected step size,
//! ε added after the bias-corrected square root) so runs compare to reference code.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::tensors::{Ctx, to_host};

/// Adam hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamParams {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Adam moments of one parameter vector.
#[derive(Clone, Debug)]
pub struct Adam {
    pub params: AdamParams,
    pub m: Tensor<1>,
    pub v: Tensor<1>,
    /// Steps taken so far (the bias-correction exponent).
    pub t: u64,
}

/// Host copy of [`Adam`]'s state, for checkpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState {
    pub m: Vec<f64>,
    pub v: Vec<f64>,
    pub t: u64,
}

impl Adam {
    pub fn new(ctx: &Ctx, len: usize, params: AdamParams) -> Self {
        let zeros = ctx.vector(&vec![0.0; len]);
        Self {
            params,
            m: zeros.clone(),
            v: zeros,
            t: 0,
        }
    }

    /// Returns θ − lr · m̂ / (√v̂ + ε) after folding `grad` into the moments.
    pub fn step(&mut self, theta: Tensor<1>, grad: Tensor<1>, lr: f64) -> Tensor<1> {
        let AdamParams { beta1, beta2, eps } = self.params;
        self.t += 1;
        self.m = self
            .m
            .clone()
            .mul_scalar(beta1)
            .add(grad.clone().mul_scalar(1.0 - beta1));
        self.v = self
            .v
            .clone()
            .mul_scalar(beta2)
            .add(grad.square().mul_scalar(1.0 - beta2));
        let bc1 = 1.0 - beta1.powi(self.t as i32);
        let bc2 = 1.0 - beta2.powi(self.t as i32);
        let denom = self.v.clone().sqrt().div_scalar(bc2.sqrt()).add_scalar(eps);
        theta.sub(self.m.clone().div(denom).mul_scalar(lr / bc1))
    }

    pub fn state(&self) -> AdamState {
        AdamState {
            m: to_host(self.m.clone()),
            v: to_host(self.v.clone()),
            t: self.t,
        }
    }

    pub fn restore(ctx: &Ctx, params: AdamParams, state: &AdamState) -> Self {
        Self {
            params,
            m: ctx.vector(&state.m),
            v: ctx.vector(&state.v),
            t: state.t,
        }
    }
}
