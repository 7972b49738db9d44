//! The conflict-averse rules that are a pure function of (g_r, g_b): PCGrad, DCGD's three
//! variants and ConFIG. Each returns the coefficients (α, β) of g = α g_r + β g_b, computed
//! in f64 from [`PairStats`] (SPEC §3 notation: nr = ‖g_r‖ + ε, dot = g_r·g_b).
//!
//! Near-(anti)parallel gradients make the textbook formulas cancel catastrophically
//! (‖c‖² = a² + b² + 2ab cos → 0); the forms below are algebraically identical but written
//! with δ = 1 + cos and ε(Nr − Nb)/(nr nb), which stay accurate there.

use serde::{Deserialize, Serialize};

use super::stats::{Coefficients, PairStats};
use super::{MethodEntry, PairRule};
use crate::options::OptionSpec;

pub const PCGRAD: MethodEntry = MethodEntry {
    name: "pcgrad",
    summary: "project each gradient off the other when they conflict, then sum",
    options: &[],
    uses_eps: true,
    build: |o, _, _| {
        let eps = o.eps;
        PairRule::boxed(PCGRAD.name, move |s| pcgrad(s, eps))
    },
};

pub const DCGD: MethodEntry = MethodEntry {
    name: "dcgd",
    summary: "dual cone gradient descent (center: projection on the unit-gradient bisector)",
    options: &[OptionSpec::choice(
        "dcgd.variant",
        "center | proj | avg",
        &DcgdVariant::NAMES,
        |o| o.dcgd.variant.name(),
        |o, s| DcgdVariant::parse(s).map(|v| o.dcgd.variant = v).is_some(),
    )],
    uses_eps: true,
    build: |o, _, _| {
        let (eps, variant) = (o.eps, o.dcgd.variant);
        PairRule::boxed(DCGD.name, move |s| dcgd(s, eps, variant))
    },
};

pub const CONFIG: MethodEntry = MethodEntry {
    name: "config",
    summary: "ConFIG: conflict-free direction with projection length (= dcgd center for 2 tasks)",
    options: &[],
    uses_eps: false,
    build: |_, _, _| PairRule::boxed(CONFIG.name, config),
};

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

/// Sets the coefficient of an all-zero vector to 0: it contributes nothing, and a large
/// coefficient (ε-divided) must not trip the overflow guard.
pub fn drop_zero(c: Coefficients, s: &PairStats) -> Coefficients {
    Coefficients {
        r: if s.max_abs_r == 0.0 { 0.0 } else { c.r },
        b: if s.max_abs_b == 0.0 { 0.0 } else { c.b },
    }
}

/// `pcgrad`: if dot < 0, g = (g_r − dot/nb² g_b) + (g_b − dot/nr² g_r); else g_r + g_b.
pub fn pcgrad(s: &PairStats, eps: f64) -> Coefficients {
    let dot = s.dot();
    if dot < 0.0 {
        let nr = s.norm_r + eps;
        let nb = s.norm_b + eps;
        drop_zero(
            Coefficients {
                r: 1.0 - dot / (nr * nr),
                b: 1.0 - dot / (nb * nb),
            },
            s,
        )
    } else {
        Coefficients::SUM
    }
}

/// `dcgd` in the chosen variant.
pub fn dcgd(s: &PairStats, eps: f64, variant: DcgdVariant) -> Coefficients {
    match variant {
        DcgdVariant::Center => dcgd_center(s, eps),
        DcgdVariant::Proj => dcgd_proj(s, eps),
        DcgdVariant::Avg => dcgd_avg(s, eps),
    }
}

/// DCGD center (paper Eq. 5): c = g_r/nr + g_b/nb, g = (c·(g_r + g_b) / ‖c‖²) c.
///
/// With a = Nr/nr, b = Nb/nb (N = exact norms) and δ = 1 + cos:
/// c·(g_r + g_b) = (a − b)(Nr − Nb) + (a Nb + b Nr) δ and ‖c‖² = (a − b)² + 2ab δ, where
/// a − b = ε (Nr − Nb) / (nr nb). ‖c‖ = 0 (both zero, or exactly opposite with equal norms)
/// gives g = 0.
pub fn dcgd_center(s: &PairStats, eps: f64) -> Coefficients {
    let (big_r, big_b) = (s.norm_r, s.norm_b);
    let (nr, nb) = (big_r + eps, big_b + eps);
    let (a, b) = (big_r / nr, big_b / nb);
    let a_minus_b = eps * (big_r - big_b) / (nr * nb);
    let delta = 1.0 + s.cos;
    let num = a_minus_b * (big_r - big_b) + (a * big_b + b * big_r) * delta;
    let den = a_minus_b * a_minus_b + 2.0 * a * b * delta;
    if den <= 0.0 {
        return Coefficients::ZERO;
    }
    let k = num / den;
    drop_zero(
        Coefficients {
            r: k / nr,
            b: k / nb,
        },
        s,
    )
}

/// DCGD proj: with g_avg = (g_r + g_b)/2, if g_avg·g_b < 0: g = g_r − dot/nb² g_b; elif
/// g_avg·g_r < 0: g = g_b − dot/nr² g_r; else g_r + g_b.
pub fn dcgd_proj(s: &PairStats, eps: f64) -> Coefficients {
    let dot = s.dot();
    let (nr, nb) = (s.norm_r + eps, s.norm_b + eps);
    // 2 g_avg·g_b = Nb (Nr cos + Nb), 2 g_avg·g_r = Nr (Nr + Nb cos): signs without cancellation.
    let avg_dot_b = s.norm_b * (s.norm_r * s.cos + s.norm_b);
    let avg_dot_r = s.norm_r * (s.norm_r + s.norm_b * s.cos);
    let c = if avg_dot_b < 0.0 {
        Coefficients {
            r: 1.0,
            b: -dot / (nb * nb),
        }
    } else if avg_dot_r < 0.0 {
        Coefficients {
            r: -dot / (nr * nr),
            b: 1.0,
        }
    } else {
        Coefficients::SUM
    };
    drop_zero(c, s)
}

/// DCGD avg: if g_avg conflicts with either task: g = ((1 − dot/nb²) g_b + (1 − dot/nr²) g_r)/2;
/// else g_r + g_b.
pub fn dcgd_avg(s: &PairStats, eps: f64) -> Coefficients {
    let dot = s.dot();
    let (nr, nb) = (s.norm_r + eps, s.norm_b + eps);
    let avg_dot_b = s.norm_b * (s.norm_r * s.cos + s.norm_b);
    let avg_dot_r = s.norm_r * (s.norm_r + s.norm_b * s.cos);
    let c = if avg_dot_b < 0.0 || avg_dot_r < 0.0 {
        Coefficients {
            r: (1.0 - dot / (nr * nr)) / 2.0,
            b: (1.0 - dot / (nb * nb)) / 2.0,
        }
    } else {
        Coefficients::SUM
    };
    drop_zero(c, s)
}

/// ConFIG for two tasks: d = U(U(o₁) + U(o₂)) with o₁ = g_b − (g_b·U(g_r)) U(g_r),
/// o₂ = g_r − (g_r·U(g_b)) U(g_b); g = (g_r·d + g_b·d) d; U(0) = 0.
///
/// In the plane of (g_r, g_b), with s = |sin| and δ = 1 + cos: ‖o₁‖ = Nb s, ‖o₂‖ = Nr s,
/// U(o₁) + U(o₂) = ((1 − cos)/s)(g_r/Nr + g_b/Nb), hence d = (g_r/Nr + g_b/Nb)/√(2δ) and
/// g_r·d + g_b·d = (Nr + Nb) δ/√(2δ). The d formula is also the limit for aligned gradients
/// (s → 0, where the literal o's vanish): there g = g_r + g_b, as for `dcgd` center. Exactly
/// opposite gradients (δ = 0) give g = 0, the limit from both sides. A zero task gradient
/// leaves the other one unchanged (U(0) = 0 makes d its unit vector).
pub fn config(s: &PairStats) -> Coefficients {
    let (big_r, big_b) = (s.norm_r, s.norm_b);
    if big_r == 0.0 || big_b == 0.0 {
        return drop_zero(Coefficients::SUM, s);
    }
    let delta = 1.0 + s.cos;
    if delta <= 0.0 {
        return Coefficients::ZERO;
    }
    let root = (2.0 * delta).sqrt();
    let d = Coefficients {
        r: 1.0 / (big_r * root),
        b: 1.0 / (big_b * root),
    };
    let length = (big_r + big_b) * delta / root;
    Coefficients {
        r: length * d.r,
        b: length * d.b,
    }
}
