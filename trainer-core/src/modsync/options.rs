//! ModSync options (`TrainConfig::modsync`, CLI `--modsync.X`). Defaults are SPEC §4's; the
//! choices SPEC marks as ours (threshold routing, R_w per unit or per layer, differentiated
//! R_w, exponent clamp, which layers are masked) are switches here.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

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
    /// Checks every option; `prefix` is this struct's path in the config (`modsync`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let bad = |name: &str, problem: String| {
            Err(ConfigError::new(format!("{prefix}.{name}"), problem))
        };
        for (name, v) in [
            ("lambda_r", self.lambda_r),
            ("lambda_b", self.lambda_b),
            ("lambda_s", self.lambda_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, format!("must be a finite number >= 0, got {v}"));
            }
        }
        for (name, v) in [("beta", self.beta), ("lr_t", self.lr_t)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(name, format!("must be a finite number > 0, got {v}"));
            }
        }
        // exp(80) ≈ 5.5e34 still fits f32 with room for the products L_s takes.
        let e = self.rw_max_exponent;
        if !(e > 0.0 && e <= 80.0) {
            return bad("rw_max_exponent", format!("must be in (0, 80], got {e}"));
        }
        let r = self.reset_below;
        if !(0.0..1.0).contains(&r) {
            return bad("reset_below", format!("must be in [0, 1), got {r}"));
        }
        Ok(())
    }
}
