//! Training actually learns. Short CPU runs, so the thresholds are loose but meaningful:
//! a broken gradient, sign, schedule or jet makes them fail.
//!
//! Helmholtz (a₂ = 4) and Klein–Gordon are hard for plain Adam: a short run may not lower their
//! test error (that is the paper's point), so for them we check the losses, each trained on its
//! own (λ of the other task = 0) and together (the sum falls).

use serde_json::json;
use trainer_core::{MetricsRow, TrainConfig, Trainer};

mod common;

use common::Recorder;

fn run(config: serde_json::Value) -> (Vec<MetricsRow>, trainer_core::RunResult) {
    let config: TrainConfig = serde_json::from_value(config).expect("valid config JSON");
    let mut trainer = Trainer::new(config, &trainer_core::default_device()).unwrap();
    let mut rec = Recorder::default();
    let result = trainer.run(&mut rec);
    (rec.rows, result)
}

#[test]
fn burgers_adam_lowers_the_test_error() {
    // The reference point: PyTorch goes from ≈ 1.0 to ≈ 0.5 in this setup.
    let (rows, result) = run(json!({
        "pde": "burgers", "method": "adam", "width": 50, "depth": 3, "iters": 1500, "seed": 0,
        "eval_every": 100
    }));
    let initial = rows[0].rel_l2;
    assert_eq!(rows[0].iter, 0);
    assert!(
        result.rel_l2_best < 0.75 * initial,
        "best rel L2 {} is not below 0.75 × initial {initial}",
        result.rel_l2_best
    );
    assert!(result.rel_l2_best.is_finite() && result.skipped_steps == 0 && !result.diverged);
}

/// L_r and L_b of parameters `theta` on fixed batches (the training batches are resampled every
/// step, too noisy to compare two points of a short run).
fn fixed_batch_losses(config: &TrainConfig, theta: &[f64]) -> (f64, f64) {
    use rand::SeedableRng;
    use trainer_core::jet::JetSpec;
    use trainer_core::mlp::{Architecture, Layers};
    use trainer_core::pde::{self, Quantity};
    use trainer_core::tensors::to_host;

    let ctx = common::ctx64();
    let pde = pde::by_name(&config.pde, &config.pde_options).unwrap();
    let dim = pde.dim();
    let layers = Layers::from_flat(
        &ctx.vector(theta),
        &Architecture::new(dim, config.width, config.depth),
    );
    let (shift, scale) = pde.input_map();
    let upload = |points: &[f64]| {
        let x = pde::normalise(points, &shift, &scale);
        ctx.matrix(&x, points.len() / dim, dim)
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12345);
    // Several batches pooled: the estimate must be far less noisy than the change we look for.
    let (mut loss_r, mut loss_b) = (0.0, 0.0);
    let batches = 8;
    for _ in 0..batches {
        let batch = pde.sample_residual(&mut rng);
        let jet = layers.forward_jet(upload(&batch.points), &pde.residual_spec(), &scale);
        loss_r += to_host(
            pde.residual(&jet, ctx.column(&batch.forcing))
                .square()
                .mean(),
        )[0];
        for c in pde.sample_conditions(&mut rng) {
            let (x, target) = (upload(&c.points), ctx.column(&c.target));
            let q = match c.quantity {
                Quantity::Value => layers.forward(x),
                Quantity::FirstDerivative(a) => layers
                    .forward_jet(x, &JetSpec::new(dim, &[a], &[]), &scale)
                    .d1(a),
            };
            loss_b += to_host(q.sub(target).square().mean())[0];
        }
    }
    (loss_r / batches as f64, loss_b / batches as f64)
}

#[test]
fn every_benchmark_lowers_each_loss_and_their_sum() {
    for pde in trainer_core::pde::NAMES {
        // Bars: L_r −5 %, L_b −20 %, sum −5 % (klein_gordon3d measured −9.5 % on L_r, −30 % on L_b,
        // −6.3 % on the sum).
        // helmholtz3d's forcing (≈ 400 · sin 4πx · sin 4πy · sin 3πz, 384 half-periods in the box)
        // is nearly orthogonal to everything a small tanh net can express early on: measured on
        // fixed batches, residual-only training left L_r unchanged to 1e-4 (19,901 → 19,903 at
        // width 32, lr 1e-2, 600 steps; 20,504 → 20,505 at width 20, lr 1e-3). Spectral bias, the
        // benchmark's difficulty — so for it we only require that L_b falls (the sum is ≈ L_r); its
        // residual gradient is checked against finite differences in tests/jets.rs.
        let (width, iters, nc, lr) = (20, 200, 6, 1e-3);
        let residual_must_fall = pde != "helmholtz3d";
        let config = |lambda_r: f64, lambda_b: f64| -> TrainConfig {
            serde_json::from_value(json!({
                "pde": pde, "method": "adam", "width": width, "depth": 3, "iters": iters, "seed": 1,
                "lr": lr, "eval_every": iters, "pde_options": {"nc": nc, "test_grid": 4},
                "method_options": {"adam": {"lambda_r": lambda_r, "lambda_b": lambda_b}}
            }))
            .unwrap()
        };
        let train = |config: TrainConfig| {
            let mut t = Trainer::new(config.clone(), &trainer_core::default_device()).unwrap();
            let before = fixed_batch_losses(&config, &t.parameters());
            t.run(&mut trainer_core::NoopObserver);
            (before, fixed_batch_losses(&config, &t.parameters()))
        };
        let ((r0, _), (r1, _)) = train(config(1.0, 0.0));
        assert!(
            !residual_must_fall || r1 < 0.95 * r0,
            "{pde}: residual-only training: L_r {r0} -> {r1}"
        );
        let ((_, b0), (_, b1)) = train(config(0.0, 1.0));
        assert!(
            b1 < 0.8 * b0,
            "{pde}: boundary-only training: L_b {b0} -> {b1}"
        );
        let ((r0, b0), (r1, b1)) = train(config(1.0, 1.0));
        assert!(
            !residual_must_fall || r1 + b1 < 0.95 * (r0 + b0),
            "{pde}: L_r + L_b {} -> {}",
            r0 + b0,
            r1 + b1
        );
    }
}
