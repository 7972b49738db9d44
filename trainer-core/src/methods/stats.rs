//! The few numbers every two-task method needs about (g_r, g_b): norms, cosine, max and mean
//! absolute entries. They are reduced on the device and read back in the step's single
//! host transfer; the methods then do their scalar algebra in f64 on the host and step with
//! `α g_r + β g_b`, so the vectors never leave the device.
//!
//! Robustness: each vector is divided by its largest absolute entry before squaring, so norms
//! and dot products neither overflow (‖g‖ > 1.8e19 in f32) nor underflow (entries < 1e-19);
//! the scale is put back in f64.

use burn::tensor::{DType, Tensor};

/// Divisor floor: a vector whose largest entry is below this is scaled by it instead (this
/// only matters for all-zero and denormal vectors).
const TINY: f64 = f32::MIN_POSITIVE as f64;

/// Number of values [`probe`] reads back per pair.
pub const PROBE_LEN: usize = 9;

/// Host summary of a pair of vectors (a, b) — for methods, (g_r, g_b) or their momenta.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairStats {
    /// Entries per vector.
    pub n: usize,
    pub norm_r: f64,
    pub norm_b: f64,
    /// Cosine of the angle, clamped to [−1, 1]; 0 when either vector is zero.
    pub cos: f64,
    pub max_abs_r: f64,
    pub max_abs_b: f64,
    pub mean_abs_r: f64,
    pub mean_abs_b: f64,
}

/// Device reductions for [`PairStats::from_probe`]: one 1-D tensor of [`PROBE_LEN`] values.
pub fn probe(a: &Tensor<1>, b: &Tensor<1>) -> Tensor<1> {
    let (ma, da, sa, aa) = scaled(a);
    let (mb, db, sb, ab) = scaled(b);
    let saa = sa.clone().square().sum();
    let sbb = sb.clone().square().sum();
    let sab = sa.mul(sb).sum();
    Tensor::cat(vec![ma, mb, da, db, saa, sbb, sab, aa, ab], 0)
}

/// (max |x|, divisor d = max(max |x|, TINY), x / d, Σ |x| / d).
fn scaled(x: &Tensor<1>) -> (Tensor<1>, Tensor<1>, Tensor<1>, Tensor<1>) {
    let abs = x.clone().abs();
    let m = abs.clone().max();
    let d = m.clone().clamp_min(TINY);
    let s = x.clone().div(d.clone());
    let sum_abs = abs.div(d.clone()).sum();
    (m, d, s, sum_abs)
}

impl PairStats {
    /// Decodes [`probe`]'s values (all finite) for vectors of `n` entries.
    pub fn from_probe(v: &[f64], n: usize) -> Self {
        assert_eq!(v.len(), PROBE_LEN, "pair probe has {PROBE_LEN} values");
        let [ma, mb, da, db, saa, sbb, sab, aa, ab] = v.try_into().expect("length checked");
        let norm_r = da * saa.sqrt();
        let norm_b = db * sbb.sqrt();
        let cos = if saa > 0.0 && sbb > 0.0 {
            (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        Self {
            n,
            norm_r,
            norm_b,
            cos,
            max_abs_r: ma,
            max_abs_b: mb,
            mean_abs_r: da * aa / n.max(1) as f64,
            mean_abs_b: db * ab / n.max(1) as f64,
        }
    }

    /// Exact statistics of two host vectors (tests and reference computations).
    pub fn from_host(a: &[f64], b: &[f64]) -> Self {
        assert_eq!(a.len(), b.len());
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
        let max = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let mean = |v: &[f64]| v.iter().map(|x| x.abs()).sum::<f64>() / v.len().max(1) as f64;
        Self {
            n: a.len(),
            norm_r: na,
            norm_b: nb,
            cos: if na > 0.0 && nb > 0.0 {
                (dot / (na * nb)).clamp(-1.0, 1.0)
            } else {
                0.0
            },
            max_abs_r: max(a),
            max_abs_b: max(b),
            mean_abs_r: mean(a),
            mean_abs_b: mean(b),
        }
    }

    /// g_r · g_b.
    pub fn dot(&self) -> f64 {
        self.norm_r * self.norm_b * self.cos
    }

    /// Both vectors are exactly zero.
    pub fn both_zero(&self) -> bool {
        self.max_abs_r == 0.0 && self.max_abs_b == 0.0
    }

    /// Whether `α a + β b` is safely finite, and so are the squares an Adam-like optimiser
    /// takes of it, in the precision `dtype`.
    pub fn combination_is_safe(&self, c: Coefficients, dtype: DType) -> bool {
        let limit = safe_limit(dtype);
        c.r.is_finite()
            && c.b.is_finite()
            && c.r.abs() <= limit
            && c.b.abs() <= limit
            && c.r.abs() * self.max_abs_r + c.b.abs() * self.max_abs_b <= limit
    }
}

/// The largest entry a direction may have: its square times a few hundred (the pseudo-gradient
/// of `mconfig` is up to 20× the direction) must stay finite.
pub fn safe_limit(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e150,
        _ => 1e16,
    }
}

/// g = r · g_r + b · g_b.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coefficients {
    pub r: f64,
    pub b: f64,
}

impl Coefficients {
    pub const SUM: Self = Self { r: 1.0, b: 1.0 };
    pub const ZERO: Self = Self { r: 0.0, b: 0.0 };

    /// The combination on the device (skips the multiply for a coefficient of 1).
    pub fn apply(self, a: Tensor<1>, b: Tensor<1>) -> Tensor<1> {
        let scale = |t: Tensor<1>, c: f64| if c == 1.0 { t } else { t.mul_scalar(c) };
        scale(a, self.r).add(scale(b, self.b))
    }

    /// The combination of host vectors (tests).
    pub fn apply_host(self, a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter()
            .zip(b)
            .map(|(x, y)| self.r * x + self.b * y)
            .collect()
    }
}
