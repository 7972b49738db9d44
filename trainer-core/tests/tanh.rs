//! The network's tanh (`jet::tanh`, evaluated on plain tensors for speed) against the f64
//! library tanh, in both precisions, on [−10, 10] with tiny and huge arguments.

use burn::tensor::Device;
use trainer_core::Precision;
use trainer_core::jet::tanh;
use trainer_core::tensors::{Ctx, to_host};

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
    let ctx = Ctx::new(Device::flex(), precision);
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
