//! The Burgers reference solution by the Cole–Hopf transform, computed in-process (no data
//! file): u(x,t) = ∫ −sin(πη) K dη / ∫ K dη with log K = −(x−η)²/(4νt) − cos(πη)/(2πν).
//!
//! Substituting η = x − √(4νt)·z turns both integrals into Gauss–Hermite form ∫ e^{−z²} g(z) dz,
//! evaluated with [`NODES`] nodes. The largest exponent is subtracted before `exp`, since
//! cos(πη)/(2πν) reaches 50 for ν = 0.01/π.

use std::f64::consts::PI;
use std::sync::OnceLock;

/// Gauss–Hermite nodes used for the reference.
pub const NODES: usize = 200;

/// Nodes z_i and weights w_i of the n-point Gauss–Hermite rule (weight e^{−z²}), ascending in z.
///
/// The roots of the orthonormal Hermite polynomial h_n are bracketed by a fine scan for sign
/// changes (all roots lie in |z| < √(2n+1), at least π/√(2n+1) apart) and refined by
/// bisection; w_i = 2 / h_n'(z_i)² with h_n' = √(2n) h_{n−1}. Slower than Newton from asymptotic
/// guesses but cannot converge to the wrong root; it runs once per process.
pub fn gauss_hermite(n: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(n >= 1, "a quadrature rule needs at least one node");
    // (h_n(x), h_n'(x)) via the three-term recurrence.
    let eval = |x: f64| {
        let (mut p_prev, mut p) = (0.0, PI.powf(-0.25));
        for j in 1..=n {
            let jf = j as f64;
            let next = x * (2.0 / jf).sqrt() * p - ((jf - 1.0) / jf).sqrt() * p_prev;
            p_prev = p;
            p = next;
        }
        (p, (2.0 * n as f64).sqrt() * p_prev)
    };
    let limit = (2.0 * n as f64 + 1.0).sqrt() + 1.0;
    let step = PI / (2.0 * n as f64 + 1.0).sqrt() / 16.0;
    let mut nodes = Vec::with_capacity(n);
    let mut lo = -limit;
    let mut f_lo = eval(lo).0;
    while lo < limit && nodes.len() < n {
        let hi = lo + step;
        let f_hi = eval(hi).0;
        if f_hi == 0.0 || f_lo.signum() != f_hi.signum() {
            let (mut a, mut b, mut fa) = (lo, hi, f_lo);
            for _ in 0..200 {
                let mid = 0.5 * (a + b);
                if mid <= a || mid >= b {
                    break;
                }
                let fm = eval(mid).0;
                if fm.signum() == fa.signum() {
                    a = mid;
                    fa = fm;
                } else {
                    b = mid;
                }
            }
            nodes.push(0.5 * (a + b));
        }
        lo = hi;
        f_lo = f_hi;
    }
    assert_eq!(
        nodes.len(),
        n,
        "Gauss–Hermite root scan found {} of {n} roots",
        nodes.len()
    );
    let weights = nodes
        .iter()
        .map(|&z| {
            let d = eval(z).1;
            2.0 / (d * d)
        })
        .collect();
    (nodes, weights)
}

fn rule() -> &'static (Vec<f64>, Vec<f64>) {
    static RULE: OnceLock<(Vec<f64>, Vec<f64>)> = OnceLock::new();
    RULE.get_or_init(|| gauss_hermite(NODES))
}

/// u(x, t) and u_x(x, t) of viscous Burgers with u(x, 0) = −sin πx and viscosity `nu`.
pub fn solution_with_dx(x: f64, t: f64, nu: f64) -> (f64, f64) {
    if t <= 0.0 {
        return (-(PI * x).sin(), -PI * (PI * x).cos());
    }
    let (nodes, weights) = rule();
    let scale = (4.0 * nu * t).sqrt();
    let inv_two_pi_nu = 1.0 / (2.0 * PI * nu);
    // g(η) = −cos(πη)/(2πν): the exponent of K beyond the Gaussian factor.
    let exponent = |eta: f64| -(PI * eta).cos() * inv_two_pi_nu;
    let max_exp = nodes
        .iter()
        .map(|&z| exponent(x - scale * z))
        .fold(f64::NEG_INFINITY, f64::max);
    let (mut num, mut den, mut dnum, mut dden) = (0.0, 0.0, 0.0, 0.0);
    for (&z, &w) in nodes.iter().zip(weights) {
        let eta = x - scale * z;
        let k = w * (exponent(eta) - max_exp).exp();
        let f = -(PI * eta).sin();
        let df = -PI * (PI * eta).cos();
        let dg = (PI * eta).sin() * PI * inv_two_pi_nu;
        num += f * k;
        den += k;
        // dη/dx = 1, so d/dx of each term is (f' + f g') K and g' K.
        dnum += (df + f * dg) * k;
        dden += dg * k;
    }
    let u = num / den;
    (u, (dnum * den - num * dden) / (den * den))
}

/// u(x, t) only.
pub fn solution(x: f64, t: f64, nu: f64) -> f64 {
    solution_with_dx(x, t, nu).0
}
