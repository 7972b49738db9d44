//! Gradient methods (SPEC §3): how the two task gradients g_r (residual) and g_b (boundary)
//! become the one direction the parameter optimiser steps with.
//!
//! Each method is a small unit with its own state, chosen by name in `TrainConfig::method`.

use burn::tensor::Tensor;

use crate::error::ConfigError;

/// Every method key.
pub const NAMES: [&str; 1] = ["adam"];

/// Checks that `method` names a known method.
pub fn validate_method(method: &str) -> Result<(), ConfigError> {
    if NAMES.contains(&method) {
        Ok(())
    } else {
        Err(ConfigError::new(
            "method",
            format!("unknown method {method:?} (known: {})", NAMES.join(", ")),
        ))
    }
}

/// A rule that turns (g_r, g_b) into an update direction.
pub trait GradientMethod: Send {
    /// The direction the outer Adam steps with.
    fn combine(&mut self, g_r: Tensor<1>, g_b: Tensor<1>) -> Tensor<1>;
    /// Scalar state for checkpoints (vectors go through [`GradientMethod::vectors`]).
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn restore_state(&mut self, _state: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// `adam`: g = λ_r g_r + λ_b g_b with λ = 1 (plain PINN training).
#[derive(Clone, Debug)]
pub struct WeightedSum {
    pub lambda_r: f64,
    pub lambda_b: f64,
}

impl GradientMethod for WeightedSum {
    fn combine(&mut self, g_r: Tensor<1>, g_b: Tensor<1>) -> Tensor<1> {
        g_r.mul_scalar(self.lambda_r)
            .add(g_b.mul_scalar(self.lambda_b))
    }
}

/// Builds the method called `name` (already validated).
pub fn build(name: &str) -> Result<Box<dyn GradientMethod>, ConfigError> {
    validate_method(name)?;
    Ok(match name {
        _ => Box::new(WeightedSum {
            lambda_r: 1.0,
            lambda_b: 1.0,
        }),
    })
}
