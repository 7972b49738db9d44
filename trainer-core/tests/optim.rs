//! The optimisers and the initialisation against hand-written f64 references: the outer Adam
//! (torch.optim.Adam semantics), ModSync's threshold Adam and its learning rate 1e-4, the StepLR
//! schedule (as a formula and as the step the trainer takes), and Xavier-normal statistics.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use trainer_core::adam::{Adam, AdamParams};
use trainer_core::mlp::Architecture;
use trainer_core::modsync::{ModSync, ModSyncOptions, ThresholdGrads, sparsity};
use trainer_core::tensors::to_host;
use trainer_core::{NoopObserver, Precision, TrainConfig, Trainer};

mod common;

use common::ctx64;

/// torch.optim.Adam (no weight decay, no amsgrad), written out in f64:
/// m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ),
/// θ ← θ − lr·m̂/(√v̂ + eps).
struct HostAdam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl HostAdam {
    fn new(n: usize, beta1: f64, beta2: f64, eps: f64) -> Self {
        Self {
            beta1,
            beta2,
            eps,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, theta: &mut [f64], g: &[f64], lr: f64) {
        self.t += 1;
        for k in 0..theta.len() {
            self.m[k] = self.beta1 * self.m[k] + (1.0 - self.beta1) * g[k];
            self.v[k] = self.beta2 * self.v[k] + (1.0 - self.beta2) * g[k] * g[k];
            let m_hat = self.m[k] / (1.0 - self.beta1.powi(self.t));
            let v_hat = self.v[k] / (1.0 - self.beta2.powi(self.t));
            theta[k] -= lr * m_hat / (v_hat.sqrt() + self.eps);
        }
    }
}

fn assert_close(got: &[f64], want: &[f64], rel: f64, what: &str) {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * w.abs().max(1e-300),
            "{what}[{k}]: {g:e} vs {w:e}"
        );
    }
}

/// Gradients per step: mixed signs and scales, a zero, and entries of size ~eps where the
/// placement of eps (after √v̂, not inside it, not before the bias correction) matters.
fn gradient_sequence() -> Vec<Vec<f64>> {
    vec![
        vec![0.5, -2.0, 1e-9, 0.0, 3e-8, -1e-3],
        vec![-0.25, -1.0, 2e-9, 0.0, -1e-8, 4e-3],
        vec![1.5, 0.5, -1e-9, 1e-6, 2e-8, -2e-3],
        vec![0.1, -3.0, 5e-9, 0.0, 1e-8, 1e-3],
        vec![-0.7, 2.5, 0.0, -1e-6, -3e-8, 5e-4],
    ]
}

#[test]
fn outer_adam_matches_torch_adam_step_by_step() {
    let ctx = ctx64();
    let theta0 = vec![0.3, -0.1, 0.0, 1.0, -2.0, 0.05];
    let params = AdamParams::default();
    assert_eq!(
        (params.beta1, params.beta2, params.eps),
        (0.9, 0.999, 1e-8),
        "SPEC §3 defaults"
    );
    let mut adam = Adam::new(&ctx, theta0.len(), params);
    let mut host = HostAdam::new(theta0.len(), 0.9, 0.999, 1e-8);
    let mut theta = ctx.vector(&theta0);
    let mut want = theta0.clone();
    // The learning rate changes between steps, as under StepLR.
    for (step, (g, lr)) in gradient_sequence()
        .iter()
        .zip([1e-3, 1e-3, 5e-4, 2e-3, 1e-3])
        .enumerate()
    {
        theta = adam.step(theta, ctx.vector(g), lr);
        host.step(&mut want, g, lr);
        assert_eq!(adam.t, step as u64 + 1);
        // Compare the updates, not θ (θ would hide an error far below its own size).
        let got_delta: Vec<f64> = to_host(theta.clone())
            .iter()
            .zip(&theta0)
            .map(|(a, b)| a - b)
            .collect();
        let want_delta: Vec<f64> = want.iter().zip(&theta0).map(|(a, b)| a - b).collect();
        assert_close(
            &got_delta,
            &want_delta,
            1e-9,
            &format!("θ − θ₀ after step {}", step + 1),
        );
        assert_close(&to_host(adam.m.clone()), &host.m, 1e-12, "m");
        assert_close(&to_host(adam.v.clone()), &host.v, 1e-12, "v");
    }
}

/// ModSync's thresholds [t_r; t_b] take Adam steps with η_t = 1e-4 (SPEC §4), bias-corrected
/// like the outer Adam.
#[test]
fn threshold_adam_matches_torch_adam_with_lr_1e4() {
    let ctx = ctx64();
    let opts = ModSyncOptions::default();
    assert_eq!(opts.lr_t, 1e-4, "SPEC §4 default η_t");
    // [1, 3, 1]: 3 + 1 masked units per task.
    let arch = Architecture::new(1, 3, 1);
    let mut m = ModSync::new(&ctx, &arch, opts.clone());
    assert_eq!(m.units(), 4);
    let mut host = HostAdam::new(8, 0.9, 0.999, 1e-8);
    let mut want = vec![0.0; 8];
    let steps: Vec<Vec<f64>> = vec![
        vec![0.2, -1.0, 1e-9, 0.0, -0.3, 0.5, 2.0, -1e-7],
        vec![0.1, -0.5, 3e-9, 1e-4, 0.3, 0.5, -1.0, 1e-7],
        vec![-0.4, 2.0, -1e-9, 0.0, 0.1, -0.5, 0.5, 0.0],
    ];
    for g in &steps {
        // Gradients as the trainer hands them over: t_r's then t_b's.
        let s = sparsity(&m.t_r, &m.t_b, &opts, &[0..3, 3..4]);
        let grads = ThresholdGrads {
            g_r: ctx.vector(&g[..4]),
            g_b: ctx.vector(&g[4..]),
            sparsity: s,
        };
        m.step_thresholds(grads, opts.lr_t);
        host.step(&mut want, g, 1e-4);
        let got: Vec<f64> = to_host(m.t_r.clone())
            .into_iter()
            .chain(to_host(m.t_b.clone()))
            .collect();
        assert_close(&got, &want, 1e-9, "[t_r; t_b]");
    }
}

#[test]
fn step_lr_schedule() {
    let c = TrainConfig {
        lr: 1e-3,
        lr_decay_every: 1000,
        lr_decay_gamma: 0.9,
        ..Default::default()
    };
    assert!(c.lr_decay, "StepLR is on by default (SPEC §2)");
    for (iter, want) in [
        (0, 1e-3),
        (999, 1e-3),
        (1000, 9e-4),
        (1999, 9e-4),
        (2000, 8.1e-4),
        (2500, 8.1e-4),
        (10_000, 1e-3 * 0.9f64.powi(10)),
        (49_999, 1e-3 * 0.9f64.powi(49)),
    ] {
        let got = c.lr_at(iter);
        // A few ulps: LLVM may evaluate powi(49) by another chain of products when it inlines.
        assert!(
            (got - want).abs() <= 1e-14 * want,
            "lr_at({iter}) = {got:e}, want {want:e}"
        );
    }
    let off = TrainConfig {
        lr_decay: false,
        ..c
    };
    assert_eq!(off.lr_at(5000), 1e-3);
}

/// The schedule is the one the trainer steps with: with γ = 0.5 every step, step 1 uses lr/2.
/// From θ₁ (one step), θ₂ and the Adam moments after two steps, the rate actually applied at
/// step 1 is (θ₁ − θ₂) / (m̂/(√v̂ + eps)) in every coordinate.
#[test]
fn trainer_steps_with_the_scheduled_learning_rate() {
    let config = |iters| {
        let mut c = TrainConfig {
            pde: "klein_gordon2d".into(),
            method: "adam".into(),
            width: 5,
            depth: 1,
            iters,
            lr: 1e-3,
            lr_decay_every: 1,
            lr_decay_gamma: 0.5,
            eval_every: 1000,
            precision: Precision::F64,
            ..Default::default()
        };
        c.pde_options.test_grid = Some(4);
        c.diagnostics.enabled = false;
        c
    };
    let device = trainer_core::default_device();
    let mut one = Trainer::new(config(1), &device).unwrap();
    one.run(&mut NoopObserver);
    let theta1 = one.parameters();
    let mut two = Trainer::new(config(2), &device).unwrap();
    two.run(&mut NoopObserver);
    let ckpt = two.checkpoint(0.0);
    assert_eq!(ckpt.adam_t, 2);
    let (m, v, theta2) = (
        ckpt.vector("adam_m").unwrap(),
        ckpt.vector("adam_v").unwrap(),
        ckpt.vector("theta").unwrap(),
    );
    let (bc1, bc2) = (1.0 - 0.9f64.powi(2), 1.0 - 0.999f64.powi(2));
    let mut checked = 0;
    for k in 0..theta2.len() {
        let unit_step = (m[k] / bc1) / ((v[k] / bc2).sqrt() + 1e-8);
        if unit_step.abs() < 1e-3 {
            continue; // a sign flip of the gradient: too little signal for a ratio
        }
        let lr = (theta1[k] - theta2[k]) / unit_step;
        assert!(
            (lr - 5e-4).abs() <= 1e-8 * 5e-4,
            "θ[{k}]: applied lr {lr:e}, scheduled 5e-4"
        );
        checked += 1;
    }
    assert!(
        checked > theta2.len() / 2,
        "only {checked} coordinates checked"
    );
}

/// Xavier (Glorot) normal, gain 1: weights ~ N(0, 2/(fan_in + fan_out)), biases 0.
#[test]
fn xavier_normal_statistics() {
    let arch = Architecture::new(512, 512, 1);
    let theta = arch.xavier_normal(&mut ChaCha8Rng::seed_from_u64(42));
    // θ layout: W₀ [512 × 512], b₀ [512], W₁ [512 × 1], b₁ [1].
    let w0 = &theta[..512 * 512];
    let b0 = &theta[512 * 512..512 * 513];
    let w1 = &theta[512 * 513..512 * 514];
    assert_eq!(theta.len(), 512 * 514 + 1);
    assert!(b0.iter().chain(&theta[512 * 514..]).all(|b| *b == 0.0));

    let std = (2.0f64 / 1024.0).sqrt();
    let n = w0.len() as f64;
    let mean = w0.iter().sum::<f64>() / n;
    let sample_std = (w0.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    // Standard errors: std/√n for the mean, std/√(2n) (0.14 %) for the std.
    assert!(mean.abs() < 5.0 * std / n.sqrt(), "mean {mean:e}");
    assert!(
        (sample_std / std - 1.0).abs() < 0.02,
        "sample std {sample_std} vs sqrt(2/(fan_in+fan_out)) = {std}"
    );
    // Normal, not uniform of the same variance: P(|w| < σ) = 0.6827 (uniform: 0.577).
    let within = w0.iter().filter(|w| w.abs() < std).count() as f64 / n;
    assert!((within - 0.6827).abs() < 0.01, "P(|w| < σ) = {within}");

    // The 512 → 1 layer has its own fan: std = sqrt(2/513) (±3 % standard error here).
    let std1 = (2.0f64 / 513.0).sqrt();
    let s1 = (w1.iter().map(|w| w * w).sum::<f64>() / w1.len() as f64).sqrt();
    assert!((s1 / std1 - 1.0).abs() < 0.15, "layer 1 std {s1} vs {std1}");
}
