//! Options of the gradient methods (`TrainConfig::method_options`), one small struct per method
//! so a config names them as `method_options.cagrad.c` and the CLI as `--cagrad.c`.
//!
//! Every default is the number SPEC §3 gives; [`MethodOptions::validate`] names the offending
//! field with its full dotted path.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// All method options. Only the ones of the chosen method are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MethodOptions {
    /// ε of SPEC §3: added to gradient norms (nr = ‖g_r‖ + ε) and to the denominators that
    /// could otherwise be zero.
    pub eps: f64,
    pub adam: WeightedOptions,
    pub lra: LraOptions,
    pub ntk: NtkOptions,
    pub multiadam: MultiAdamOptions,
    pub cagrad: CagradOptions,
    pub dcgd: DcgdOptions,
    pub mconfig: MconfigOptions,
}

impl Default for MethodOptions {
    fn default() -> Self {
        Self {
            eps: 1e-8,
            adam: WeightedOptions::default(),
            lra: LraOptions::default(),
            ntk: NtkOptions::default(),
            multiadam: MultiAdamOptions::default(),
            cagrad: CagradOptions::default(),
            dcgd: DcgdOptions::default(),
            mconfig: MconfigOptions::default(),
        }
    }
}

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

/// `cagrad` (Liu et al. 2021).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CagradOptions {
    /// Radius of the conflict-averse ball, relative to ‖g₀‖.
    pub c: f64,
}

impl Default for CagradOptions {
    fn default() -> Self {
        Self { c: 0.5 }
    }
}

/// The three DCGD update rules (Hwang et al. 2024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DcgdVariant {
    /// Projection of g_r + g_b on the bisector of the unit gradients (paper Eq. 5).
    #[default]
    Center,
    /// Project away the conflicting component of the task the average conflicts with.
    Proj,
    /// Average of both one-sided projections when the average conflicts with a task.
    Avg,
}

impl DcgdVariant {
    pub const NAMES: [&str; 3] = ["center", "proj", "avg"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "center" => Some(Self::Center),
            "proj" => Some(Self::Proj),
            "avg" => Some(Self::Avg),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Center => "center",
            Self::Proj => "proj",
            Self::Avg => "avg",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DcgdOptions {
    pub variant: DcgdVariant,
}

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

fn check(ok: bool, field: &str, problem: impl FnOnce() -> String) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(field, problem()))
    }
}

fn finite_nonneg(v: f64, field: &str) -> Result<(), ConfigError> {
    check(v.is_finite() && v >= 0.0, field, || {
        format!("must be a finite number >= 0, got {v}")
    })
}

fn positive(v: f64, field: &str) -> Result<(), ConfigError> {
    check(v.is_finite() && v > 0.0, field, || {
        format!("must be a finite number > 0, got {v}")
    })
}

fn beta(v: f64, field: &str) -> Result<(), ConfigError> {
    check((0.0..1.0).contains(&v), field, || {
        format!("must be in [0, 1), got {v}")
    })
}

impl MethodOptions {
    /// Checks every option; `prefix` is the path of this struct in the config.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let f = |name: &str| format!("{prefix}.{name}");
        positive(self.eps, &f("eps"))?;
        finite_nonneg(self.adam.lambda_r, &f("adam.lambda_r"))?;
        finite_nonneg(self.adam.lambda_b, &f("adam.lambda_b"))?;
        let a = self.lra.alpha;
        check(a > 0.0 && a <= 1.0, &f("lra.alpha"), || {
            format!("must be in (0, 1], got {a}")
        })?;
        check(self.ntk.every >= 1, &f("ntk.every"), || {
            "must be >= 1".into()
        })?;
        check(self.ntk.points >= 1, &f("ntk.points"), || {
            "must be >= 1".into()
        })?;
        beta(self.multiadam.beta1, &f("multiadam.beta1"))?;
        beta(self.multiadam.beta2, &f("multiadam.beta2"))?;
        positive(self.multiadam.eps, &f("multiadam.eps"))?;
        finite_nonneg(self.multiadam.weight_r, &f("multiadam.weight_r"))?;
        finite_nonneg(self.multiadam.weight_b, &f("multiadam.weight_b"))?;
        finite_nonneg(self.cagrad.c, &f("cagrad.c"))?;
        beta(self.mconfig.beta1, &f("mconfig.beta1"))?;
        beta(self.mconfig.beta2, &f("mconfig.beta2"))?;
        positive(self.mconfig.eps, &f("mconfig.eps"))?;
        Ok(())
    }
}
