//! Taylor jets against central finite differences of the network itself, in f64, for every
//! derivative each PDE's losses use; ∇θ of the residual loss (one backward through the jet)
//! against a finite difference along a random direction; and the network's tanh
//! (`jet::tanh`, evaluated on plain tensors for speed) against the f64 library tanh.

use burn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer_core::config::Precision;
use trainer_core::jet::{JetSpec, tanh};
use trainer_core::mlp::{Architecture, Layers};
use trainer_core::pde::{self, Pde};
use trainer_core::tensors::{Ctx, to_host};

mod common;

use common::{benchmark, ctx64};

/// A random network for `pde` and a few random points inside its domain.
fn setup(pde: &dyn Pde, seed: u64) -> (Architecture, Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let arch = Architecture::new(pde.dim(), 12, 3);
    let mut theta = arch.xavier_normal(&mut rng);
    // Non-zero biases so that every code path (bias rows excluded from jets) is exercised.
    for v in theta.iter_mut() {
        if *v == 0.0 {
            *v = rng.random_range(-0.5..0.5);
        }
    }
    let points: Vec<f64> = (0..7)
        .flat_map(|_| {
            pde.domain()
                .into_iter()
                .map(|(lo, hi)| lo + (hi - lo) * rng.random::<f64>())
                .collect::<Vec<_>>()
        })
        .collect();
    (arch, theta, points)
}

/// The network at raw points, through the PDE's input normalisation.
fn net(ctx: &Ctx, layers: &Layers, pde: &dyn Pde, raw: &[f64]) -> Vec<f64> {
    let (shift, scale) = pde.input_map();
    let dim = pde.dim();
    let x = pde::normalise(raw, &shift, &scale);
    to_host(layers.forward(ctx.matrix(&x, raw.len() / dim, dim)))
}

fn shifted(points: &[f64], dim: usize, axis: usize, h: f64) -> Vec<f64> {
    let mut p = points.to_vec();
    for row in p.chunks_mut(dim) {
        row[axis] += h;
    }
    p
}

fn check_jets(name: &str) {
    let ctx = ctx64();
    let pde = benchmark(name, 4);
    let dim = pde.dim();
    let (arch, theta, points) = setup(pde.as_ref(), 7);
    let layers = Layers::from_flat(&ctx.vector(&theta), &arch);
    let (shift, scale) = pde.input_map();
    // Every derivative the residual or a condition uses: the residual spec plus all firsts.
    let spec = pde
        .residual_spec()
        .union(&JetSpec::new(dim, &(0..dim).collect::<Vec<_>>(), &[]));
    let x = pde::normalise(&points, &shift, &scale);
    let jet = layers.forward_jet(ctx.matrix(&x, points.len() / dim, dim), &spec, &scale);
    let value = to_host(jet.value.clone());
    let direct = net(&ctx, &layers, pde.as_ref(), &points);
    for (a, b) in value.iter().zip(&direct) {
        assert!(
            (a - b).abs() < 1e-13,
            "{name}: jet value {a} vs forward {b}"
        );
    }
    for axis in 0..dim {
        // Step sizes relative to the axis' extent (Klein–Gordon 3-D spans 10 in t).
        let extent = pde.domain()[axis].1 - pde.domain()[axis].0;
        let h1 = 1e-5 * extent;
        let plus = net(
            &ctx,
            &layers,
            pde.as_ref(),
            &shifted(&points, dim, axis, h1),
        );
        let minus = net(
            &ctx,
            &layers,
            pde.as_ref(),
            &shifted(&points, dim, axis, -h1),
        );
        let d1 = to_host(jet.d1(axis).expand([points.len() / dim, 1]));
        for i in 0..d1.len() {
            let fd = (plus[i] - minus[i]) / (2.0 * h1);
            assert!(
                (d1[i] - fd).abs() <= 1e-6 * fd.abs().max(1.0 / extent),
                "{name} d/d{axis} point {i}: jet {} fd {fd}",
                d1[i]
            );
        }
        if spec.order[axis] == 2 {
            let h2 = 1e-3 * extent;
            let plus = net(
                &ctx,
                &layers,
                pde.as_ref(),
                &shifted(&points, dim, axis, h2),
            );
            let minus = net(
                &ctx,
                &layers,
                pde.as_ref(),
                &shifted(&points, dim, axis, -h2),
            );
            let d2 = to_host(jet.d2(axis));
            for i in 0..d2.len() {
                let fd = (plus[i] - 2.0 * direct[i] + minus[i]) / (h2 * h2);
                let tol = 1e-4 * fd.abs().max(1.0 / (extent * extent));
                assert!(
                    (d2[i] - fd).abs() <= tol,
                    "{name} d²/d{axis}² point {i}: jet {} fd {fd}",
                    d2[i]
                );
            }
        }
    }
}

#[test]
fn jets_match_finite_differences_helmholtz2d() {
    check_jets("helmholtz2d");
}
#[test]
fn jets_match_finite_differences_klein_gordon2d() {
    check_jets("klein_gordon2d");
}
#[test]
fn jets_match_finite_differences_burgers() {
    check_jets("burgers");
}
#[test]
fn jets_match_finite_differences_helmholtz3d() {
    check_jets("helmholtz3d");
}
#[test]
fn jets_match_finite_differences_klein_gordon3d() {
    check_jets("klein_gordon3d");
}

/// L_r(θ) through the jet, on fixed points, and its gradient by one backward.
fn residual_loss(
    ctx: &Ctx,
    pde: &dyn Pde,
    arch: &Architecture,
    theta: &[f64],
    batch: &pde::ResidualBatch,
) -> (f64, Vec<f64>) {
    let dim = pde.dim();
    let (shift, scale) = pde.input_map();
    let x = pde::normalise(&batch.points, &shift, &scale);
    let layers = Layers::from_flat(&ctx.vector(theta), arch).into_leaves();
    let jet = layers.forward_jet(
        ctx.matrix(&x, batch.forcing.len(), dim),
        &pde.residual_spec(),
        &scale,
    );
    let loss: Tensor<1> = pde
        .residual(&jet, ctx.column(&batch.forcing))
        .square()
        .mean();
    let grad = layers.flat_grad(&loss.backward());
    (to_host(loss.inner())[0], to_host(grad))
}

#[test]
fn residual_loss_gradient_matches_directional_finite_difference() {
    let ctx = ctx64();
    for name in pde::NAMES {
        let pde = benchmark(name, 3);
        let (arch, theta, _) = setup(pde.as_ref(), 11);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let batch = pde.sample_residual(&mut rng);
        let direction: Vec<f64> = (0..theta.len())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let (_, grad) = residual_loss(&ctx, pde.as_ref(), &arch, &theta, &batch);
        let analytic: f64 = grad.iter().zip(&direction).map(|(g, d)| g * d).sum();
        let h = 1e-6;
        let at = |s: f64| {
            let t: Vec<f64> = theta
                .iter()
                .zip(&direction)
                .map(|(t, d)| t + s * d)
                .collect();
            residual_loss(&ctx, pde.as_ref(), &arch, &t, &batch).0
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        assert!(
            (analytic - fd).abs() <= 1e-6 * fd.abs().max(1e-3),
            "{name}: backward {analytic} vs fd {fd}"
        );
    }
}

// ---- tanh accuracy ----

/// A dense grid on [−10, 10] (step 1e-4), tiny arguments of both signs down to the smallest
/// f32 subnormal, and arguments far past saturation.
fn arguments() -> Vec<f64> {
    let mut z: Vec<f64> = (-100_000..=100_000).map(|i| i as f64 * 1e-4).collect();
    for e in -45..0 {
        for m in [1.0, 2.5, 5.0, 7.5] {
            z.push(m * 10f64.powi(e));
            z.push(-m * 10f64.powi(e));
        }
    }
    z.extend([0.0, -0.0, 30.0, -30.0, 100.0, -100.0, 1e30, -1e30]);
    z
}

/// max |tanh(z) − reference| over `arguments()` in `precision`; the reference is the f64
/// tanh of the argument as the device holds it, rounded to the device precision.
fn max_abs_error(precision: Precision) -> (f64, f64) {
    let ctx = Ctx::new(trainer_core::default_device(), precision);
    let z = arguments();
    let n = z.len();
    let held = to_host(ctx.matrix(&z, n, 1)); // the arguments as f32 or f64
    let got = to_host(tanh(ctx.matrix(&z, n, 1)));
    let mut worst = (0.0f64, 0.0f64);
    for (x, g) in held.iter().zip(&got) {
        let reference = match precision {
            Precision::F32 => x.tanh() as f32 as f64,
            Precision::F64 => x.tanh(),
        };
        let e = (g - reference).abs();
        assert!(g.is_finite(), "tanh({x}) = {g}");
        if e > worst.0 {
            worst = (e, *x);
        }
    }
    worst
}

#[test]
fn f32_tanh_is_within_two_ulp_of_one() {
    let (err, at) = max_abs_error(Precision::F32);
    let bound = 2.0 * f32::EPSILON as f64;
    assert!(
        err <= bound,
        "max |error| {err:e} at z = {at:e} > 2 ulp(1) = {bound:e}"
    );
}

#[test]
fn f64_tanh_is_within_two_ulp_of_one() {
    let (err, at) = max_abs_error(Precision::F64);
    let bound = 2.0 * f64::EPSILON;
    assert!(
        err <= bound,
        "max |error| {err:e} at z = {at:e} > 2 ulp(1) = {bound:e}"
    );
}
