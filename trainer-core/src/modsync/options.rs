//! ModSync options (`TrainConfig::modsync`, CLI `--modsync.X`, described by
//! [`ModSyncOptions::OPTIONS`]). Defaults are SPEC §4's; the
//! choices SPEC marks as ours (threshold routing, R_w per unit or per layer, differentiated
//! R_w, exponent clamp, which layers are masked) are switches here.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::options::{Check, OptionSpec, validate_all};

/// Ablation modes of paper Table 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Ablation {
    /// Dual thresholds, R_s and the reweighting R_w.
    #[default]
    Full,
    /// Dual thresholds and R_s, R_w ≡ 1.
    DualThresholds,
    /// Plain DST: one shared threshold t (t_r = t_b = t, both stepped with the same gradient
    /// ∂(L_r + L_b)/∂t + λ_s ∂L_s/∂t), L_s = Σ e^{−t}, R_w ≡ 1.
    SparsityOnly,
}

impl Ablation {
    pub const NAMES: [&str; 3] = ["full", "dual_thresholds", "sparsity_only"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Self::Full),
            "dual_thresholds" => Some(Self::DualThresholds),
            "sparsity_only" => Some(Self::SparsityOnly),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// How R_w measures the disagreement of t_r and t_b.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RwMode {
    /// R_w = exp((t_r − t_b)²/β) for each output unit.
    #[default]
    PerUnit,
    /// R_w = exp(‖t_r − t_b‖²/β) for each layer, shared by its units.
    PerLayer,
}

impl RwMode {
    pub const NAMES: [&str; 2] = ["per_unit", "per_layer"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "per_unit" => Some(Self::PerUnit),
            "per_layer" => Some(Self::PerLayer),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModSyncOptions {
    /// Weights of L_r and L_b in Eq. 10 (scale both the weight and the threshold gradients).
    pub lambda_r: f64,
    pub lambda_b: f64,
    /// Weight λ_s of the sparsity loss L_s.
    pub lambda_s: f64,
    /// Sharpness β of R_w.
    pub beta: f64,
    /// Adam learning rate η_t of the thresholds.
    pub lr_t: f64,
    /// Apply the run's StepLR schedule to η_t too (off: η_t is constant).
    pub lr_t_decay: bool,
    pub mode: Ablation,
    pub rw: RwMode,
    /// Treat R_w as a constant in ∂L_s/∂t (off: R_w is differentiated, SPEC default).
    pub detach_rw: bool,
    /// Clamp of R_w's exponent, so exp cannot overflow (gradient 0 beyond it).
    pub rw_max_exponent: f64,
    /// t_r gets ½∂L_r/∂t and t_b gets ½∂L_b/∂t (on); off: both get ½∂(L_r + L_b)/∂t, the
    /// true gradient of the task losses w.r.t. each half of t = (t_r + t_b)/2. Either way both
    /// add λ_s ∂L_s/∂t_{r,b}.
    pub route_thresholds: bool,
    /// Mask the first (input) and last (output) layers; hidden layers are always masked.
    pub mask_first: bool,
    pub mask_last: bool,
    /// Reset a layer's thresholds to 0 when its kept fraction mean(M) is at most this.
    pub reset_below: f64,
}

impl Default for ModSyncOptions {
    fn default() -> Self {
        Self {
            lambda_r: 1.0,
            lambda_b: 1.0,
            lambda_s: 1e-4,
            beta: 0.3,
            lr_t: 1e-4,
            lr_t_decay: false,
            mode: Ablation::Full,
            rw: RwMode::PerUnit,
            detach_rw: false,
            rw_max_exponent: 30.0,
            route_thresholds: true,
            mask_first: true,
            mask_last: true,
            reset_below: 0.01,
        }
    }
}

impl ModSyncOptions {
    /// What `modsync methods` says of `modsync+X`.
    pub const SUMMARY: &str =
        "ModSync around any method X: masked layers, task-routed thresholds, sparsity loss";

    /// Every option, in field order: help, range and access.
    pub const OPTIONS: &[OptionSpec<ModSyncOptions>] = &[
        OptionSpec::float(
            "lambda_r",
            "weight of L_r",
            Check::NonNegative,
            |o| o.lambda_r,
            |o, v| o.lambda_r = v,
        ),
        OptionSpec::float(
            "lambda_b",
            "weight of L_b",
            Check::NonNegative,
            |o| o.lambda_b,
            |o, v| o.lambda_b = v,
        ),
        OptionSpec::float(
            "lambda_s",
            "weight of the sparsity loss L_s",
            Check::NonNegative,
            |o| o.lambda_s,
            |o, v| o.lambda_s = v,
        ),
        OptionSpec::float(
            "beta",
            "sharpness β of R_w",
            Check::Positive,
            |o| o.beta,
            |o, v| o.beta = v,
        ),
        OptionSpec::float(
            "lr_t",
            "Adam learning rate of the thresholds",
            Check::Positive,
            |o| o.lr_t,
            |o, v| o.lr_t = v,
        ),
        OptionSpec::flag(
            "lr_t_decay",
            "apply StepLR to the threshold lr",
            |o| o.lr_t_decay,
            |o, v| o.lr_t_decay = v,
        ),
        OptionSpec::choice(
            "mode",
            "full | dual_thresholds | sparsity_only (ablations)",
            &Ablation::NAMES,
            |o| o.mode.name(),
            |o, s| Ablation::parse(s).map(|m| o.mode = m).is_some(),
        ),
        OptionSpec::choice(
            "rw",
            "per_unit | per_layer",
            &RwMode::NAMES,
            |o| o.rw.name(),
            |o, s| RwMode::parse(s).map(|m| o.rw = m).is_some(),
        ),
        OptionSpec::flag(
            "detach_rw",
            "treat R_w as a constant in ∂L_s/∂t",
            |o| o.detach_rw,
            |o, v| o.detach_rw = v,
        ),
        // exp(80) ≈ 5.5e34 still fits f32 with room for the products L_s takes.
        OptionSpec::float(
            "rw_max_exponent",
            "clamp of R_w's exponent",
            Check::UpTo(80.0),
            |o| o.rw_max_exponent,
            |o, v| o.rw_max_exponent = v,
        ),
        OptionSpec::flag(
            "route_thresholds",
            "t_r gets ∂L_r/∂t, t_b gets ∂L_b/∂t (off: both get the sum's)",
            |o| o.route_thresholds,
            |o, v| o.route_thresholds = v,
        ),
        OptionSpec::flag(
            "mask_first",
            "mask the input layer",
            |o| o.mask_first,
            |o, v| o.mask_first = v,
        ),
        OptionSpec::flag(
            "mask_last",
            "mask the output layer",
            |o| o.mask_last,
            |o, v| o.mask_last = v,
        ),
        OptionSpec::float(
            "reset_below",
            "reset a layer's thresholds when its kept fraction is at most this",
            Check::Decay,
            |o| o.reset_below,
            |o, v| o.reset_below = v,
        ),
    ];

    /// Checks every option; `prefix` is this struct's path in the config (`modsync`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        validate_all(self, Self::OPTIONS, prefix)
    }
}
