//! CAGrad (Liu et al. 2021) for two tasks. With G = [g_r, g_b], g₀ = (g_r + g_b)/2 and
//! w = (p, 1 − p), the dual weight minimises
//! F(p) = w·Gᵀg₀ + c ‖g₀‖ ‖G w‖ over p ∈ [0, 1]; F is convex (linear plus the norm of an
//! affine map), so a golden-section search finds the minimiser. Then
//! g = (g₀ + c‖g₀‖/(‖G w‖ + ε) · G w) / (1 + c²), as in the reference code.

use super::stats::{Coefficients, PairStats};

/// Golden-section steps: the bracket shrinks by 0.618 per step, to ~1e-17 after 80.
const GOLDEN_STEPS: usize = 80;

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
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    let mut x1 = hi - phi * (hi - lo);
    let mut x2 = lo + phi * (hi - lo);
    let mut f1 = sc.objective(c, x1);
    let mut f2 = sc.objective(c, x2);
    for _ in 0..GOLDEN_STEPS {
        if f1 <= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - phi * (hi - lo);
            f1 = sc.objective(c, x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + phi * (hi - lo);
            f2 = sc.objective(c, x2);
        }
    }
    // The ends are candidates too (the minimum of a linear-ish F sits on the boundary).
    let mid = (lo + hi) / 2.0;
    [
        (mid, sc.objective(c, mid)),
        (0.0, sc.objective(c, 0.0)),
        (1.0, sc.objective(c, 1.0)),
    ]
    .into_iter()
    .fold((mid, f64::INFINITY), |best, cand| {
        if cand.1 < best.1 { cand } else { best }
    })
    .0
}

/// The CAGrad direction's coefficients.
pub fn cagrad(s: &PairStats, c: f64, eps: f64) -> Coefficients {
    if s.both_zero() {
        return Coefficients::ZERO;
    }
    let p = weight(s, c);
    let sc = Scaled::new(s);
    let scale = s.norm_r.max(s.norm_b);
    let g0_norm = scale * sc.g0_norm();
    let gw_norm = scale * sc.combo_norm(p, 1.0 - p);
    let lambda = c * g0_norm / (gw_norm + eps);
    let denom = 1.0 + c * c;
    super::projection::drop_zero(
        Coefficients {
            r: (0.5 + lambda * p) / denom,
            b: (0.5 + lambda * (1.0 - p)) / denom,
        },
        s,
    )
}
