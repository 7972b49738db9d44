//! Options of the gradient diagnostics (SPEC §5) written into `MetricsRow::extra`.
//!
//! Every evaluation (`eval_every`): `cos_rb`, `norm_g_r`, `norm_g_b`, the method's own values
//! (`lambda_b` …) and, under ModSync, `loss_s` and per masked layer `kept_frac_l{i}`,
//! `exclusive_frac_l{i}`, `rw_mean_l{i}`, `resets_l{i}`. At the first evaluation at or after
//! each multiple of `diag_every`: `orth_frac`, the fraction of `orth_points` residual points
//! (evenly spaced in the batch) whose per-sample gradient ∇θ ℓ_r,i (ℓ_r,i = r_i², the point's
//! squared residual) has |∇θ ℓ_r,i · ∇θ L_b| > `eps_dot`; it costs one backward per point.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::options::{Check, OptionSpec, validate_all};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiagnosticsOptions {
    /// Gradient and mask statistics at every evaluation (off: only losses and errors).
    pub enabled: bool,
    /// Sample-orthogonality fraction every this many iterations (0 = never).
    pub diag_every: u64,
    /// Residual points in its subsample.
    pub orth_points: usize,
    /// |∇ℓ_r,i · ∇L_b| above this counts as not orthogonal.
    pub eps_dot: f64,
}

impl Default for DiagnosticsOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            diag_every: 1000,
            orth_points: 32,
            eps_dot: 1e-12,
        }
    }
}

impl DiagnosticsOptions {
    /// What `modsync methods` says of the diagnostics.
    pub const SUMMARY: &str = "metrics-row diagnostics (all methods)";

    /// Every option, in field order: help, range and access.
    pub const OPTIONS: &[OptionSpec<DiagnosticsOptions>] = &[
        OptionSpec::flag(
            "enabled",
            "cosine, norms, mask statistics each evaluation",
            |o| o.enabled,
            |o, v| o.enabled = v,
        ),
        OptionSpec::count(
            "diag_every",
            "sample-orthogonality fraction every N steps (0 = off)",
            Check::Any,
            |o| o.diag_every,
            |o, v| o.diag_every = v,
        ),
        OptionSpec::count(
            "orth_points",
            "residual points in its subsample",
            Check::AtLeastOne,
            |o| o.orth_points as u64,
            |o, v| o.orth_points = v as usize,
        ),
        OptionSpec::float(
            "eps_dot",
            "|∇ℓ_r,i·∇L_b| threshold",
            Check::NonNegative,
            |o| o.eps_dot,
            |o, v| o.eps_dot = v,
        ),
    ];

    /// Checks every option; `prefix` is this struct's path in the config (`diagnostics`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        validate_all(self, Self::OPTIONS, prefix)
    }

    /// Whether the evaluation at `iter` (evaluations every `eval_every`, plus the final one)
    /// is the first at or after a multiple of `diag_every`.
    pub fn orth_due(&self, iter: u64, eval_every: u64) -> bool {
        if !self.enabled || self.diag_every == 0 {
            return false;
        }
        if iter == 0 {
            return true;
        }
        let previous_eval = (iter - 1) / eval_every * eval_every;
        iter / self.diag_every > previous_eval / self.diag_every
    }
}

/// `k` indices spread evenly over `0..n` (all of them if k ≥ n).
pub fn spread(n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    (0..k).map(|j| j * n / k).collect()
}
