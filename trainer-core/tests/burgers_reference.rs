//! The Cole–Hopf Burgers reference against its known properties and Basdevant et al. (1986).

use std::f64::consts::PI;

use trainer_core::pde::burgers_reference::{gauss_hermite, solution, solution_with_dx};

const NU: f64 = 0.01 / PI;

#[test]
fn gauss_hermite_integrates_polynomials_exactly() {
    // ∫ e^{−z²} z^{2k} dz = Γ(k + ½) = (2k−1)!! √π / 2^k.
    let (z, w) = gauss_hermite(200);
    assert!(z.windows(2).all(|p| p[0] < p[1]), "nodes ascending");
    let mut expected = PI.sqrt();
    for k in 0..6 {
        let got: f64 = z.iter().zip(&w).map(|(z, w)| w * z.powi(2 * k)).sum();
        assert!(
            (got - expected).abs() <= 1e-12 * expected,
            "moment {}: {got} vs {expected}",
            2 * k
        );
        expected *= (2 * k + 1) as f64 / 2.0;
        let odd: f64 = z.iter().zip(&w).map(|(z, w)| w * z.powi(2 * k + 1)).sum();
        assert!(odd.abs() < 1e-12, "odd moment {odd}");
    }
}

#[test]
fn initial_condition_is_minus_sin() {
    for x in [-0.9, -0.3, 0.0, 0.2, 0.77] {
        assert!((solution(x, 0.0, NU) + (PI * x).sin()).abs() < 1e-15);
        // Just after t = 0 the quadrature must agree with the initial condition.
        assert!(
            (solution(x, 1e-6, NU) + (PI * x).sin()).abs() < 1e-3,
            "x = {x}"
        );
    }
}

#[test]
fn odd_in_x_and_zero_at_the_walls() {
    for t in [0.1, 0.3, 0.5, 0.8, 0.99] {
        for x in [0.05, 0.2, 0.5, 0.9] {
            let (a, b) = (solution(x, t, NU), solution(-x, t, NU));
            assert!((a + b).abs() < 1e-10, "u({x},{t}) = {a}, u(-x) = {b}");
        }
        assert!(solution(1.0, t, NU).abs() < 1e-10, "u(1,{t})");
        assert!(solution(-1.0, t, NU).abs() < 1e-10, "u(-1,{t})");
        assert!(solution(0.0, t, NU).abs() < 1e-12);
    }
}

#[test]
fn steepest_gradient_matches_basdevant() {
    // Basdevant et al. (1986): min over t of u_x(0, t) is −152.00516 at t = 1.6037/π.
    let (_, ux) = solution_with_dx(0.0, 1.6037 / PI, NU);
    assert!((ux + 152.00516).abs() / 152.00516 < 5e-5, "u_x = {ux}");
    // and it is a minimum in t.
    for dt in [-0.01, 0.01] {
        let (_, nearby) = solution_with_dx(0.0, 1.6037 / PI + dt, NU);
        assert!(nearby > ux, "u_x at t*{dt:+} = {nearby} is below {ux}");
    }
}

#[test]
fn analytic_u_x_matches_finite_differences() {
    for (x, t) in [(0.3, 0.2), (-0.5, 0.7), (0.05, 0.4)] {
        let h = 1e-6;
        let fd = (solution(x + h, t, NU) - solution(x - h, t, NU)) / (2.0 * h);
        let (_, ux) = solution_with_dx(x, t, NU);
        assert!(
            (fd - ux).abs() < 1e-5 * ux.abs().max(1.0),
            "({x},{t}): {fd} vs {ux}"
        );
    }
}

#[test]
fn satisfies_burgers_away_from_t0() {
    // u_t + u u_x − ν u_xx ≈ 0 by central differences of the quadrature itself.
    for (x, t) in [(0.3, 0.2), (-0.5, 0.7), (0.6, 0.5)] {
        let h = 1e-4;
        let u = solution(x, t, NU);
        let u_t = (solution(x, t + h, NU) - solution(x, t - h, NU)) / (2.0 * h);
        let (_, u_x) = solution_with_dx(x, t, NU);
        let u_xx = (solution(x + h, t, NU) - 2.0 * u + solution(x - h, t, NU)) / (h * h);
        let r = u_t + u * u_x - NU * u_xx;
        assert!(
            r.abs() < 1e-4 * (u_t.abs() + (u * u_x).abs()).max(1.0),
            "residual {r} at ({x},{t})"
        );
    }
}
