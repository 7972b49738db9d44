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

/// Nodes z_i and weights w_i of the n-point Gauss–Hermite rule (weight e^{−z²}), found by
/// Newton's method on the orthonormal Hermite recurrence from the classic asymptotic guesses.
/// Returned in ascending order of z.
pub fn gauss_hermite(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut z = vec![0.0; n];
    let mut w = vec![0.0; n];
    let half = n.div_ceil(2);
    let pi_quarter = PI.powf(-0.25);
    // p_n(x) and its derivative via the orthonormal recurrence.
    let eval = |x: f64| {
        let (mut p_prev, mut p) = (0.0, pi_quarter);
        for j in 1..=n {
            let jf = j as f64;
            let next = x * (2.0 / jf).sqrt() * p - ((jf - 1.0) / jf).sqrt() * p_prev;
            p_prev = p;
            p = next;
        }
        (p, (2.0 * n as f64).sqrt() * p_prev)
    };
    let nf = n as f64;
    let mut root = 0.0;
    for i in 0..half {
        // Initial guess for the i-th largest root.
        root = match i {
            0 => (2.0 * nf + 1.0).sqrt() - 1.85575 * (2.0 * nf + 1.0).powf(-1.0 / 6.0),
            1 => root - 1.14 * nf.powf(0.426) / root,
            2 => 1.86 * root - 0.86 * z[0],
            3 => 1.91 * root - 0.91 * z[1],
            _ => 2.0 * root - z[i - 2],
        };
        let mut dp = 1.0;
        for _ in 0..100 {
            let (p, d) = eval(root);
            dp = d;
            let step = p / d;
            root -= step;
            if step.abs() <= 1e-15 * root.abs().max(1.0) {
                break;
            }
        }
        z[i] = root;
        w[i] = 2.0 / (dp * dp);
    }
    // z[0..half] holds the largest roots in descending order; mirror them.
    let mut nodes = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for i in 0..half {
        nodes.push(-z[i]);
        weights.push(w[i]);
    }
    for i in (0..n - half).rev() {
        nodes.push(z[i]);
        weights.push(w[i]);
    }
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
