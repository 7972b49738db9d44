//! The explicit reverse pass (`trainer_core::backprop`) against the autodiff step it replaced,
//! kept as the oracle: on every PDE, unmasked and under ModSync's masks, the losses and both task
//! gradients (and ModSync's threshold gradients) agree to 1e-10 relative in f64, at a network
//! trained for a few steps (non-zero biases, masked weights) and at fresh points.

use trainer_core::backprop::Backward;
use trainer_core::pde::NAMES;
use trainer_core::trainer::PeekedGradients;
use trainer_core::{Precision, TrainConfig, Trainer};

const TOL: f64 = 1e-10;

/// max |a − b| / max |b|, the relative distance of two vectors.
fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    if scale == 0.0 { diff } else { diff / scale }
}

fn trainer(pde: &str, method: &str) -> Trainer {
    let mut config = TrainConfig {
        pde: pde.into(),
        method: method.into(),
        width: 16,
        depth: 3,
        precision: Precision::F64,
        ..TrainConfig::default()
    };
    config.pde_options.nc = 5;
    config.pde_options.test_grid = Some(3);
    // Thresholds that move fast, so a few steps mask weights.
    config.modsync.lr_t = 0.05;
    Trainer::new(config, &trainer_core::default_device()).expect("valid config")
}

fn peek(t: &mut Trainer, backward: Backward) -> PeekedGradients {
    t.set_backward(backward);
    t.peek_gradients()
}

fn compare(label: &str, explicit: &PeekedGradients, autodiff: &PeekedGradients) {
    let pairs = [
        ("L_r, L_b", &explicit.losses[..], &autodiff.losses[..]),
        ("g_r", &explicit.g_r, &autodiff.g_r),
        ("g_b", &explicit.g_b, &autodiff.g_b),
        ("dL_r/dt", &explicit.dt_r, &autodiff.dt_r),
        ("dL_b/dt", &explicit.dt_b, &autodiff.dt_b),
    ];
    for (what, e, a) in pairs {
        let d = rel_diff(e, a);
        assert!(
            d <= TOL,
            "{label}: {what} differ by {d:e} relative (tolerance {TOL:e})"
        );
    }
    eprintln!(
        "{label}: g_r {:.1e}, g_b {:.1e} relative",
        rel_diff(&explicit.g_r, &autodiff.g_r),
        rel_diff(&explicit.g_b, &autodiff.g_b)
    );
}

fn check(pde: &str, method: &str, steps: usize) {
    let mut t = trainer(pde, method);
    for _ in 0..steps {
        t.train_step();
    }
    let explicit = peek(&mut t, Backward::Explicit);
    let autodiff = peek(&mut t, Backward::Autodiff);
    assert_eq!(explicit.theta_used, autodiff.theta_used, "same network");
    assert!(explicit.g_r.iter().any(|g| *g != 0.0), "{pde}: g_r is zero");
    compare(&format!("{pde} {method}"), &explicit, &autodiff);
}

#[test]
fn explicit_gradients_match_autodiff_on_every_pde() {
    for pde in NAMES {
        check(pde, "adam", 3);
    }
}

#[test]
fn explicit_gradients_match_autodiff_under_modsync_masks() {
    for pde in NAMES {
        let mut t = trainer(pde, "modsync+adam");
        for _ in 0..25 {
            t.train_step();
        }
        let explicit = peek(&mut t, Backward::Explicit);
        let dropped = explicit.theta_used.iter().filter(|v| **v == 0.0).count();
        assert!(dropped > 0, "{pde}: no weight is masked after 25 steps");
        let autodiff = peek(&mut t, Backward::Autodiff);
        assert_eq!(
            explicit.theta_used, autodiff.theta_used,
            "same masked network"
        );
        assert!(!explicit.dt_r.is_empty(), "threshold gradients computed");
        compare(
            &format!("{pde} modsync+adam ({dropped} masked)"),
            &explicit,
            &autodiff,
        );
    }
}

/// The same run, stepped with either path, stays together: 30 steps of a method whose update
/// depends on both gradients' directions (DCGD), in f64.
#[test]
fn a_short_run_follows_the_same_trajectory_on_both_paths() {
    let run = |backward| {
        let mut t = trainer("burgers", "dcgd");
        t.set_backward(backward);
        for _ in 0..30 {
            t.train_step();
        }
        t.parameters()
    };
    let d = rel_diff(&run(Backward::Explicit), &run(Backward::Autodiff));
    assert!(d <= 1e-9, "θ after 30 steps differs by {d:e} relative");
}
