//! CAGrad (Liu et al. 2021) for two tasks. With G = [g_r, g_b], g₀ = (g_r + g_b)/2 and
//! w = (p, 1 − p), the dual weight minimises
//! F(p) = w·Gᵀg₀ + c ‖g₀‖ ‖G w‖ over p ∈ [0, 1]. F is convex (linear plus the norm of an
//! affine map), so its minimiser is where F′ changes sign: found by bisection on the sign of
//! F′ down to adjacent doubles. (A golden-section search on F itself only resolves p to
//! ~√ε ≈ 1e-8, F being flat at its minimum; the differential test against PyTorch saw that
//! as 7e-6 relative drift in 50 steps.) Then g = (g₀ + c‖g₀‖/‖G w‖ · G w) / (1 + c²)
//! (SPEC §3; ‖G w‖ = 0 only when both gradients vanish, which is skipped earlier).

use serde::{Deserialize, Serialize};

use super::stats::{Coefficients, PairStats};
use super::{MethodEntry, PairRule};
use crate::options::{Check, OptionSpec};

pub const CAGRAD: MethodEntry = MethodEntry {
    name: "cagrad",
    summary: "conflict-averse direction in a ball of radius c‖g₀‖ (dual weight by bisection on F′)",
    options: &[OptionSpec::float(
        "cagrad.c",
        "ball radius relative to ‖g₀‖",
        Check::NonNegative,
        |o| o.cagrad.c,
        |o, v| o.cagrad.c = v,
    )],
    uses_eps: true,
    build: |o, _, _| {
        let c = o.cagrad.c;
        PairRule::boxed(CAGRAD.name, move |s| cagrad(s, c))
    },
};

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

/// Norms and cosine rescaled by the larger norm, so the search is scale-free.
struct Scaled {
    nr: f64,
    nb: f64,
    cos: f64,
}

impl Scaled {
    fn new(s: &PairStats) -> Self {
        let scale = s.norm_r.max(s.norm_b);
        Self {
            nr: s.norm_r / scale,
            nb: s.norm_b / scale,
            cos: s.cos,
        }
    }

    /// ‖p g_r + q g_b‖ written as (p Nr − q Nb)² + 2 p q Nr Nb δ, accurate near cos = −1.
    fn combo_norm(&self, p: f64, q: f64) -> f64 {
        let diff = p * self.nr - q * self.nb;
        (diff * diff + 2.0 * p * q * self.nr * self.nb * (1.0 + self.cos))
            .max(0.0)
            .sqrt()
    }

    fn g0_norm(&self) -> f64 {
        self.combo_norm(0.5, 0.5)
    }

    fn objective(&self, c: f64, p: f64) -> f64 {
        let dot = self.nr * self.nb * self.cos;
        // g_r·g₀ and g_b·g₀.
        let a_r = (self.nr * self.nr + dot) / 2.0;
        let a_b = (dot + self.nb * self.nb) / 2.0;
        p * a_r + (1.0 - p) * a_b + c * self.g0_norm() * self.combo_norm(p, 1.0 - p)
    }
}

impl Scaled {
    /// F′(p) = (g_r − g_b)·g₀ + c‖g₀‖ (g_r − g_b)·v / ‖v‖ with v = p g_r + (1 − p) g_b.
    fn slope(&self, c: f64, p: f64) -> f64 {
        let dot = self.nr * self.nb * self.cos;
        let linear = (self.nr * self.nr - self.nb * self.nb) / 2.0;
        let d_dot_v = p * self.nr * self.nr + (1.0 - 2.0 * p) * dot - (1.0 - p) * self.nb * self.nb;
        let v = self.combo_norm(p, 1.0 - p);
        if v == 0.0 {
            linear
        } else {
            linear + c * self.g0_norm() * d_dot_v / v
        }
    }
}

/// F(p) in units of max(‖g_r‖, ‖g_b‖)² (for tests comparing minimisers).
pub fn objective(s: &PairStats, c: f64, p: f64) -> f64 {
    Scaled::new(s).objective(c, p)
}

/// The dual weight p* ∈ [0, 1] on g_r (g_b gets 1 − p*).
pub fn weight(s: &PairStats, c: f64) -> f64 {
    if s.norm_r == 0.0 && s.norm_b == 0.0 {
        return 0.5;
    }
    let sc = Scaled::new(s);
    if sc.slope(c, 0.0) >= 0.0 {
        return 0.0;
    }
    if sc.slope(c, 1.0) <= 0.0 {
        return 1.0;
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    loop {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            return lo;
        }
        if sc.slope(c, mid) > 0.0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
}

/// The CAGrad direction's coefficients.
pub fn cagrad(s: &PairStats, c: f64) -> Coefficients {
    if s.both_zero() {
        return Coefficients::ZERO;
    }
    let p = weight(s, c);
    let sc = Scaled::new(s);
    let scale = s.norm_r.max(s.norm_b);
    let g0_norm = scale * sc.g0_norm();
    let gw_norm = scale * sc.combo_norm(p, 1.0 - p);
    let lambda = if gw_norm > 0.0 {
        c * g0_norm / gw_norm
    } else {
        0.0
    };
    let denom = 1.0 + c * c;
    super::projection::drop_zero(
        Coefficients {
            r: (0.5 + lambda * p) / denom,
            b: (0.5 + lambda * (1.0 - p)) / denom,
        },
        s,
    )
}
