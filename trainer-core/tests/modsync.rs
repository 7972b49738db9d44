//! ModSync (SPEC §4): the masked layer and its straight-through gradients on a hand-computed
//! example, the ≤1 % reset, unmasked biases, task routing of the threshold gradients, the
//! sparsity loss against finite differences, and a short training run's diagnostics.

use std::collections::BTreeMap;

use burn::tensor::Device;
use trainer_core::mlp::Architecture;
use trainer_core::modsync::{
    Ablation, ModSync, ModSyncOptions, RwMode, mask_weight, masked::ste_slope_scalar, sparsity,
};
use trainer_core::tensors::{Ctx, to_host};
use trainer_core::{Precision, TrainConfig, Trainer};

mod common;

use common::{Recorder, ctx64};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

/// W `[d_in = 3, d_out = 3]` (one threshold per column) chosen so that Z = |W| − t hits every
/// piece of the long-tailed estimator, both sides of the strict mask, and W = 0.
#[test]
fn masked_layer_matches_the_hand_computed_example() {
    let ctx = ctx64();
    let t = [0.3, 0.2, 1.5];
    let w = [
        [0.5, -0.9, 0.9],  // Z = 0.2, 0.7, −0.6
        [-0.3, 2.0, -0.2], // Z = 0.0, 1.8, −1.3
        [0.25, 0.0, 2.5],  // Z = −0.05, −0.2, 1.0
    ];
    // By hand: M = 1[Z > 0] and S'(Z) (2 − 4|z| up to 0.4, 0.4 up to 1, then 0).
    let m = [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let s = [[1.2, 0.4, 0.4], [2.0, 0.0, 0.0], [1.8, 1.2, 0.4]];
    let g = [[0.7, -1.1, 0.3], [2.0, 0.5, -0.4], [-0.6, 0.9, 1.3]];

    let flat = |a: &[[f64; 3]; 3]| a.iter().flatten().copied().collect::<Vec<_>>();
    let layer = mask_weight(ctx.matrix(&flat(&w), 3, 3), ctx.vector(&t));
    let (g_w, g_t) = layer.pull_back(ctx.matrix(&flat(&g), 3, 3));
    let (masked, mask) = (to_host(layer.masked.clone()), to_host(layer.mask.clone()));
    let (g_w, g_t) = (to_host(g_w), to_host(g_t));

    let sign = |x: f64| {
        if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }
    };
    let mut want_t = [0.0; 3];
    for i in 0..3 {
        for j in 0..3 {
            let k = 3 * i + j;
            let z = w[i][j].abs() - t[j];
            assert!(close(ste_slope_scalar(z), s[i][j], 1e-12), "S'({z})");
            assert_eq!(mask[k], m[i][j], "M[{i}][{j}]");
            assert_eq!(masked[k], m[i][j] * w[i][j], "W̃[{i}][{j}]");
            // ∂L/∂W = G⊙M + G⊙W⊙S'(Z)⊙sign(W).
            let want = g[i][j] * m[i][j] + g[i][j] * w[i][j] * s[i][j] * sign(w[i][j]);
            assert!(
                close(g_w[k], want, 1e-12),
                "∂L/∂W[{i}][{j}] = {} vs {want}",
                g_w[k]
            );
            // ∂L/∂t = −Σ_rows G⊙W⊙S'(Z).
            want_t[j] -= g[i][j] * w[i][j] * s[i][j];
        }
    }
    for j in 0..3 {
        assert!(
            close(g_t[j], want_t[j], 1e-12),
            "∂L/∂t[{j}] = {} vs {}",
            g_t[j],
            want_t[j]
        );
    }
}

#[test]
fn ste_slope_pieces() {
    let ctx = ctx64();
    let z = [
        -1.5, -1.0, -0.7, -0.4, -0.1, 0.0, 0.25, 0.4, 0.41, 0.99, 1.0, 1.01,
    ];
    let want = [0.0, 0.4, 0.4, 0.4, 1.6, 2.0, 1.0, 0.4, 0.4, 0.4, 0.4, 0.0];
    let got = to_host(trainer_core::modsync::ste_slope(ctx.vector(&z)));
    for ((z, g), w) in z.iter().zip(&got).zip(want) {
        assert!(close(*g, w, 1e-12), "S'({z}) = {g}, want {w}");
        assert!(close(ste_slope_scalar(*z), w, 1e-12));
    }
}

/// `[1, 10, 10, 1]`: layer 1 has 100 weights 0.01, 0.02, …, 1.00.
fn reset_setup(t_layer1: f64) -> (Ctx, ModSync, Vec<f64>, Architecture) {
    let ctx = ctx64();
    let arch = Architecture::new(1, 10, 2);
    let slots = arch.slots();
    let mut theta = vec![0.0; arch.num_params()];
    for w in &mut theta[slots[0].weight.clone()] {
        *w = 0.5;
    }
    for (k, w) in theta[slots[1].weight.clone()].iter_mut().enumerate() {
        *w = 0.01 * (k + 1) as f64;
    }
    for (k, w) in theta[slots[2].weight.clone()].iter_mut().enumerate() {
        *w = 0.1 * (k + 1) as f64;
    }
    for b in slots.iter().flat_map(|s| s.bias.clone()) {
        theta[b] = 0.125;
    }
    let mut m = ModSync::new(&ctx, &arch, ModSyncOptions::default());
    assert_eq!(m.units(), 21);
    // Layer 0: t = 0.4 keeps all; layer 1: t_layer1 (t_r, t_b differ, same mean); layer 2:
    // t = 0.95 keeps 1 of 10 (10 %).
    let mut t_r = vec![0.4; 10];
    let mut t_b = vec![0.4; 10];
    t_r.extend(vec![t_layer1 - 0.005; 10]);
    t_b.extend(vec![t_layer1 + 0.005; 10]);
    t_r.push(0.95);
    t_b.push(0.95);
    m.t_r = ctx.vector(&t_r);
    m.t_b = ctx.vector(&t_b);
    (ctx, m, theta, arch)
}

#[test]
fn reset_fires_at_one_percent_kept() {
    // t = 0.995: only the weight 1.00 survives: 1 % kept → layer 1 reset, others untouched.
    let (ctx, mut m, theta, _) = reset_setup(0.995);
    let step = m.begin_step(&ctx.vector(&theta));
    let (t_r, t_b) = (to_host(m.t_r.clone()), to_host(m.t_b.clone()));
    assert!(t_r[..10].iter().all(|t| *t == 0.4));
    assert!(t_r[10..20].iter().all(|t| *t == 0.0), "{:?}", &t_r[10..20]);
    assert!(t_b[10..20].iter().all(|t| *t == 0.0));
    assert_eq!(t_r[20], 0.95);
    // After the reset every weight of layer 1 is kept (|W| > 0).
    let diag: BTreeMap<String, f64> = m.diagnostics(&ctx.vector(&theta)).into_iter().collect();
    assert_eq!(diag["kept_frac_l1"], 1.0);
    assert_eq!(diag["kept_frac_l2"], 0.1);
    assert_eq!(diag["resets_l1"], 1.0);
    assert_eq!(diag["resets_l0"], 0.0);
    drop(step);

    // t = 0.985: two weights (0.99, 1.00) survive: 2 % kept → no reset.
    let (ctx, mut m, theta, _) = reset_setup(0.985);
    m.begin_step(&ctx.vector(&theta));
    let t_r = to_host(m.t_r.clone());
    assert!(
        t_r[10..20].iter().all(|t| (*t - 0.98).abs() < 1e-12),
        "{:?}",
        &t_r[10..20]
    );
    let diag: BTreeMap<String, f64> = m.diagnostics(&ctx.vector(&theta)).into_iter().collect();
    assert!((diag["kept_frac_l1"] - 0.02).abs() < 1e-12);
    assert_eq!(diag["resets_l1"], 0.0);
}

#[test]
fn biases_are_never_masked() {
    // Thresholds far above every weight and bias (reset disabled so they stay).
    let (ctx, mut m, theta, arch) = reset_setup(0.5);
    m.opts.reset_below = 0.0;
    m.t_r = m.t_r.clone().mul_scalar(0.0).add_scalar(0.6);
    m.t_b = m.t_r.clone();
    let step = m.begin_step(&ctx.vector(&theta));
    let masked = to_host(step.theta.clone());
    let slots = arch.slots();
    for s in &slots {
        for b in s.bias.clone() {
            assert_eq!(masked[b], theta[b], "bias entry {b} changed");
        }
    }
    // Some weights are masked (so the test can fail).
    let w1 = &masked[slots[1].weight.clone()];
    assert!(w1.iter().filter(|w| **w == 0.0).count() > 50);
    // The bias gradients pass through the pull-back unchanged.
    let g_tilde: Vec<f64> = (0..theta.len()).map(|k| 0.001 * k as f64 - 0.2).collect();
    let (g, _) = m.pull_back(&step, ctx.vector(&g_tilde), 1.0);
    let g = to_host(g);
    for s in &slots {
        for b in s.bias.clone() {
            assert_eq!(g[b], g_tilde[b]);
        }
    }
}

#[test]
fn unmasked_first_and_last_layers() {
    let ctx = ctx64();
    let arch = Architecture::new(2, 5, 3);
    let opts = ModSyncOptions {
        mask_first: false,
        mask_last: false,
        ..Default::default()
    };
    let m = ModSync::new(&ctx, &arch, opts);
    let idx: Vec<usize> = m.layers().iter().map(|l| l.index).collect();
    assert_eq!(idx, vec![1, 2]);
    assert_eq!(m.units(), 10);
}

#[test]
fn threshold_gradients_are_routed_by_task() {
    let ctx = ctx64();
    let arch = Architecture::new(2, 4, 1);
    let n = arch.num_params();
    let theta: Vec<f64> = (0..n)
        .map(|k| ((k * 37 % 11) as f64 - 5.0) / 10.0)
        .collect();
    let g_r: Vec<f64> = (0..n).map(|k| ((k * 13 % 7) as f64 - 3.0) / 3.0).collect();
    for route in [true, false] {
        let opts = ModSyncOptions {
            route_thresholds: route,
            ..Default::default()
        };
        let mut m = ModSync::new(&ctx, &arch, opts);
        let step = m.begin_step(&ctx.vector(&theta));
        // Only L_r is non-zero: G_b = 0.
        let (_, dt_r) = m.pull_back(&step, ctx.vector(&g_r), 1.0);
        let (_, dt_b) = m.pull_back(&step, ctx.vector(&vec![0.0; n]), 1.0);
        let dt_r_host = to_host(dt_r.clone());
        assert!(
            dt_r_host.iter().any(|x| x.abs() > 1e-3),
            "the residual must reach t"
        );
        assert!(to_host(dt_b.clone()).iter().all(|x| *x == 0.0));
        let g = m.threshold_grads(Some(dt_r), Some(dt_b));
        let (gr, gb) = (to_host(g.g_r), to_host(g.g_b));
        if route {
            // t_r gets ½ ∂L_r/∂t, t_b nothing from the tasks (sparsity parts equal at t_r = t_b).
            for k in 0..gr.len() {
                assert!(close(gr[k] - gb[k], 0.5 * dt_r_host[k], 1e-12), "unit {k}");
            }
            assert!(gr.iter().zip(&gb).any(|(a, b)| a != b));
        } else {
            assert_eq!(gr, gb, "without routing both halves get the same gradient");
        }
    }
}

/// L_s and its gradient, independently: the formula of SPEC §4 and central differences.
fn ls_ref(tr: &[f64], tb: &[f64], o: &ModSyncOptions, layers: &[std::ops::Range<usize>]) -> f64 {
    let e = |x: f64| (-x).exp();
    match o.mode {
        Ablation::SparsityOnly => tr.iter().map(|t| e(*t)).sum(),
        Ablation::DualThresholds => tr.iter().zip(tb).map(|(a, b)| e(*a) + e(*b)).sum(),
        Ablation::Full => match o.rw {
            RwMode::PerUnit => tr
                .iter()
                .zip(tb)
                .map(|(a, b)| {
                    let q = ((a - b) * (a - b) / o.beta).min(o.rw_max_exponent);
                    q.exp() * (e(*a) + e(*b))
                })
                .sum(),
            RwMode::PerLayer => layers
                .iter()
                .map(|r| {
                    let d2: f64 = r.clone().map(|i| (tr[i] - tb[i]).powi(2)).sum();
                    let rw = (d2 / o.beta).min(o.rw_max_exponent).exp();
                    rw * r.clone().map(|i| e(tr[i]) + e(tb[i])).sum::<f64>()
                })
                .sum(),
        },
    }
}

#[test]
fn sparsity_loss_and_gradients_match_finite_differences() {
    let ctx = ctx64();
    let layers = vec![0..3, 3..7, 7..8];
    let tr = vec![0.1, -0.2, 0.3, 0.05, 0.4, -0.1, 0.0, 0.2];
    let tb = vec![0.0, 0.1, 0.35, -0.3, 0.4, 0.2, 0.15, -0.25];
    let variants = [
        ModSyncOptions::default(),
        ModSyncOptions {
            rw: RwMode::PerLayer,
            ..Default::default()
        },
        ModSyncOptions {
            mode: Ablation::DualThresholds,
            ..Default::default()
        },
        ModSyncOptions {
            mode: Ablation::SparsityOnly,
            ..Default::default()
        },
    ];
    for o in &variants {
        let s = sparsity(&ctx.vector(&tr), &ctx.vector(&tb), o, &layers);
        let loss = to_host(s.loss)[0];
        assert!(close(loss, ls_ref(&tr, &tb, o, &layers), 1e-12), "{o:?}");
        let (d_r, d_b) = (to_host(s.d_r), to_host(s.d_b));
        let h = 1e-6;
        for i in 0..tr.len() {
            let fd = |which: usize| {
                let (mut a, mut b) = (tr.clone(), tb.clone());
                let v = if which == 0 { &mut a } else { &mut b };
                v[i] += h;
                let plus = ls_ref(&a, &b, o, &layers);
                let v = if which == 0 { &mut a } else { &mut b };
                v[i] -= 2.0 * h;
                (plus - ls_ref(&a, &b, o, &layers)) / (2.0 * h)
            };
            if o.mode == Ablation::SparsityOnly {
                // One shared threshold: L_s = Σ e^{−t}, t = t_r; both halves get ∂L_s/∂t.
                assert!(
                    close(d_r[i], fd(0), 1e-7) && d_b[i] == d_r[i],
                    "{o:?} unit {i}"
                );
            } else {
                assert!(
                    close(d_r[i], fd(0), 1e-7),
                    "{:?} ∂/∂t_r[{i}]: {} vs {}",
                    o.mode,
                    d_r[i],
                    fd(0)
                );
                assert!(
                    close(d_b[i], fd(1), 1e-7),
                    "{:?} ∂/∂t_b[{i}]: {} vs {}",
                    o.mode,
                    d_b[i],
                    fd(1)
                );
            }
        }
    }
}

#[test]
fn rw_clamp_and_detach() {
    let ctx = ctx64();
    // (t_r − t_b)²/β = 16/0.3 > 30: the clamp holds R_w at e^30 and its gradient at 0.
    let (tr, tb) = (vec![4.0, 0.0], vec![0.0, 0.1]);
    let units = [std::ops::Range { start: 0, end: 2 }];
    let o = ModSyncOptions::default();
    let s = sparsity(&ctx.vector(&tr), &ctx.vector(&tb), &o, &units);
    let (d_r, rw) = (to_host(s.d_r), to_host(s.rw));
    assert!(close(rw[0], 30f64.exp(), 1e-12));
    assert!(close(d_r[0], -30f64.exp() * (-4f64).exp(), 1e-12));
    assert!(to_host(s.loss)[0].is_finite());
    // Detached: ∂L_s/∂t_r = −R_w e^{−t_r} even where R_w varies.
    let o = ModSyncOptions {
        detach_rw: true,
        ..Default::default()
    };
    let s = sparsity(&ctx.vector(&tr), &ctx.vector(&tb), &o, &units);
    let (d_r, d_b, rw) = (to_host(s.d_r), to_host(s.d_b), to_host(s.rw));
    assert!(close(d_r[1], -rw[1], 1e-12));
    assert!(close(d_b[1], -rw[1] * (-0.1f64).exp(), 1e-12));
}

#[test]
fn modsync_option_fields_are_validated() {
    let mut c = TrainConfig {
        method: "modsync+dcgd".into(),
        ..Default::default()
    };
    c.validate().unwrap();
    c.modsync.beta = 0.0;
    assert_eq!(c.validate().unwrap_err().field, "modsync.beta");
    let mut c = TrainConfig::default();
    c.modsync.rw_max_exponent = 1000.0;
    assert_eq!(c.validate().unwrap_err().field, "modsync.rw_max_exponent");
    let mut c = TrainConfig::default();
    c.diagnostics.orth_points = 0;
    assert_eq!(c.validate().unwrap_err().field, "diagnostics.orth_points");
    let json =
        r#"{"method": "modsync+config", "modsync": {"mode": "sparsity_only", "rw": "per_layer"}}"#;
    let c: TrainConfig = serde_json::from_str(json).unwrap();
    assert_eq!(c.modsync.mode, Ablation::SparsityOnly);
    assert!(serde_json::from_str::<TrainConfig>(r#"{"modsync": {"betta": 0.3}}"#).is_err());
}

/// [`common::tiny`], 6 steps, evaluated (with the orthogonality diagnostic) every 3.
fn tiny(method: &str) -> TrainConfig {
    let mut c = TrainConfig {
        iters: 6,
        eval_every: 3,
        ..common::tiny(method)
    };
    c.diagnostics.diag_every = 3;
    c
}

/// `spread(n, k)` of the diagnostics: k indices evenly over 0..n.
fn spread(n: usize, k: usize) -> Vec<usize> {
    (0..k).map(|j| j * n / k).collect()
}

/// The diagnostics of a short `modsync+dcgd` run against independent values: at iteration 0
/// (θ₀, batch 0, thresholds 0) cos(g_r, g_b) and the orthogonality fraction from the host
/// reference's finite-difference gradients pulled back through ModSync's factor 1 + |W|S'(|W|);
/// at the end, the mean R_w from the thresholds in the checkpoint, by SPEC §4's formula.
#[test]
fn training_run_reports_the_diagnostics() {
    use common::{
        dot, fd_gradient, grouped_boundary_loss, host_pde, modsync_factor_at_zero_thresholds, norm,
        point_jet, residual_loss, trainer_batches,
    };
    let mut config = tiny("modsync+dcgd");
    config.precision = Precision::F64;
    // Larger threshold steps than η_t = 1e-4, so that t_r and t_b drift visibly apart.
    config.modsync.lr_t = 1e-2;
    let h = host_pde("burgers");
    let dims = common::dims(2, config.width, config.depth);
    let theta0 = Trainer::new(config.clone(), &Device::flex())
        .unwrap()
        .parameters();
    let (res, conds) = &trainer_batches("burgers", config.seed, config.pde_options.nc, 1)[0];
    let factor = modsync_factor_at_zero_thresholds(&dims, &theta0);
    let pulled = |g: Vec<f64>| -> Vec<f64> { g.iter().zip(&factor).map(|(g, f)| g * f).collect() };
    let g_r = pulled(fd_gradient(&theta0, |t| {
        residual_loss(&h, &dims, t, &res.points)
    }));
    // The default reading's L_b: burgers' sides pooled into one mean.
    let g_b = pulled(fd_gradient(&theta0, |t| {
        grouped_boundary_loss(&h, &dims, t, conds)
    }));
    let want_cos = dot(&g_r, &g_b) / (norm(&g_r) * norm(&g_b));
    // Per-point ∇ℓ_r,i · ∇L_b on the subsample; eps_dot is put in the largest gap of their
    // sizes near the median, so the expected fraction is neither 0 nor 1.
    let points: Vec<&[f64]> = res.points.chunks_exact(2).collect();
    let orth_points = config.diagnostics.orth_points;
    let mut dots: Vec<f64> = spread(points.len(), orth_points)
        .into_iter()
        .map(|i| {
            let p = points[i];
            let g_i = pulled(fd_gradient(&theta0, |t| {
                h.residual(&point_jet(&h, &dims, t, p), p).powi(2)
            }));
            dot(&g_i, &g_b).abs()
        })
        .collect();
    dots.sort_by(f64::total_cmp);
    let k = (orth_points / 4..3 * orth_points / 4)
        .max_by(|&a, &b| (dots[a + 1] / dots[a]).total_cmp(&(dots[b + 1] / dots[b])))
        .unwrap();
    assert!(dots[k + 1] / dots[k] > 1.01, "no usable gap in {dots:?}");
    config.diagnostics.eps_dot = (dots[k] * dots[k + 1]).sqrt();
    let want_orth = (orth_points - k - 1) as f64 / orth_points as f64;

    let mut rec = Recorder::default();
    let mut t = Trainer::new(config.clone(), &Device::flex()).unwrap();
    let r = t.run(&mut rec);
    assert_eq!(r.skipped_steps, 0);
    let first = &rec.rows[0].extra;
    for key in [
        "cos_rb",
        "norm_g_r",
        "norm_g_b",
        "loss_s",
        "orth_frac",
        "kept_frac_l0",
        "kept_frac_l2",
        "exclusive_frac_l1",
        "rw_mean_l1",
        "resets_l0",
    ] {
        let v = first
            .get(key)
            .unwrap_or_else(|| panic!("missing {key} in {first:?}"));
        assert!(v.is_finite(), "{key} = {v}");
    }
    assert!(
        (first["cos_rb"] - want_cos).abs() < 1e-9,
        "cos_rb {} vs host {want_cos}",
        first["cos_rb"]
    );
    for (key, want) in [("norm_g_r", norm(&g_r)), ("norm_g_b", norm(&g_b))] {
        assert!(
            (first[key] - want).abs() < 1e-9 * want,
            "{key} {} vs host {want}",
            first[key]
        );
    }
    assert_eq!(first["orth_frac"], want_orth, "host dots {dots:?}");
    // Initially t = 0: every (non-zero) weight is kept, t_r = t_b, R_w = 1, L_s = 2·units.
    assert_eq!(first["kept_frac_l1"], 1.0);
    assert_eq!(first["exclusive_frac_l1"], 0.0);
    assert_eq!(first["rw_mean_l1"], 1.0);
    assert_eq!(first["loss_s"], 2.0 * (8 + 8 + 1) as f64);
    // orth_frac at iterations 0, 3, 6 (diag_every = 3).
    assert!(rec.rows.iter().all(|r| r.extra.contains_key("orth_frac")));

    // After training, t_r ≠ t_b (routing at work): the last row's mean R_w of layer 1 (units
    // 8..16 of the flat thresholds: layer 0 has 8 units) is mean exp((t_r − t_b)²/β).
    let ckpt = t.checkpoint(0.0);
    let (t_r, t_b) = (
        ckpt.vector("modsync.t_r").unwrap(),
        ckpt.vector("modsync.t_b").unwrap(),
    );
    assert_eq!(t_r.len(), 17);
    let beta = config.modsync.beta;
    let want_rw = (8..16)
        .map(|u| ((t_r[u] - t_b[u]).powi(2) / beta).exp())
        .sum::<f64>()
        / 8.0;
    let last = &rec.rows.last().unwrap().extra;
    assert!(
        want_rw > 1.0 + 1e-6,
        "thresholds have not moved apart: {want_rw}"
    );
    assert!(
        (last["rw_mean_l1"] - want_rw).abs() < 1e-12,
        "rw_mean_l1 {} vs host {want_rw}",
        last["rw_mean_l1"]
    );

    // Plain methods report the gradient diagnostics but no mask statistics.
    let mut rec = Recorder::default();
    let mut c = tiny("lra");
    c.diagnostics.diag_every = 0;
    Trainer::new(c, &Device::flex()).unwrap().run(&mut rec);
    let first = &rec.rows[0].extra;
    assert!(first.contains_key("cos_rb") && first.contains_key("lambda_b"));
    assert!(!first.contains_key("loss_s") && !first.contains_key("orth_frac"));
}

/// With only L_b in the loss (λ_r = 0, λ_s = 0) only t_b moves, t_r stays exactly 0, and the
/// other way round; one step moves a threshold by η_t = 1e-4 (Adam's first step is
/// lr·g/(|g| + eps)), not by the network's learning rate.
#[test]
fn only_the_thresholds_of_the_active_task_move() {
    for (residual_only, iters) in [(false, 1), (false, 3), (true, 1), (true, 3)] {
        let mut c = tiny("modsync+adam");
        c.iters = iters;
        c.diagnostics.enabled = false;
        c.modsync.lambda_s = 0.0;
        if residual_only {
            c.modsync.lambda_b = 0.0;
        } else {
            c.modsync.lambda_r = 0.0;
        }
        let mut t = Trainer::new(c, &Device::flex()).unwrap();
        assert_eq!(t.run(&mut trainer_core::NoopObserver).skipped_steps, 0);
        let ckpt = t.checkpoint(0.0);
        let (t_r, t_b) = (
            ckpt.vector("modsync.t_r").unwrap(),
            ckpt.vector("modsync.t_b").unwrap(),
        );
        let (still, moved) = if residual_only {
            (t_b, t_r)
        } else {
            (t_r, t_b)
        };
        let what = if residual_only {
            "L_r only"
        } else {
            "L_b only"
        };
        assert!(
            still.iter().all(|t| *t == 0.0),
            "{what}, {iters} steps: the other task's thresholds moved: {still:?}"
        );
        let max = moved.iter().fold(0.0f64, |m, t| m.max(t.abs()));
        assert!(
            moved.iter().filter(|t| **t != 0.0).count() > moved.len() / 2,
            "{what}: {moved:?}"
        );
        if iters == 1 {
            // f32 run: lr·g/(|g| + 1e-8) is 1e-4 to a few f32 ulps where |g| ≫ 1e-8.
            assert!(
                (1e-4 * (1.0 - 1e-3)..=1e-4 * (1.0 + 1e-6)).contains(&max),
                "{what}: one threshold step of size {max:e}, want η_t = 1e-4"
            );
        }
    }
}

/// Where ModSync's per-weight factors land in θ: a hand-made `[2, 3, 3, 1]` network whose flat
/// layout is written out here (layer l: W row-major [d_in, d_out], then b; one threshold per
/// output unit = per column), with thresholds that mask known weights. θ̃, the pulled-back
/// ∂L/∂θ = ∂L/∂θ̃ ⊙ (M + |W| S'(|W| − t)) and ∂L/∂t = −Σ_rows ∂L/∂θ̃ ⊙ W ⊙ S' are checked at
/// every flat index against values computed from that layout.
#[test]
fn pulled_back_gradients_land_at_their_flat_indices() {
    let ctx = ctx64();
    let arch = Architecture::new(2, 3, 2);
    // (offset of W, d_in, d_out, offset of b) per layer, by hand.
    let layout = [(0, 2, 3, 6), (9, 3, 3, 18), (21, 3, 1, 24)];
    assert_eq!(arch.num_params(), 25);
    // Weights 0.1·(k+1) with alternating signs, so |W| grows along the flat vector and a
    // per-column threshold masks different entries than a per-row one would.
    let theta: Vec<f64> = (0..25)
        .map(|k| 0.1 * (k + 1) as f64 * if k % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    // Thresholds per unit: layer 0 units 0..3, layer 1 units 3..6, layer 2 unit 6.
    let t_unit = [0.25, 0.0, 0.45, 1.5, 1.05, 2.2, 2.25];
    let mut m = ModSync::new(&ctx, &arch, ModSyncOptions::default());
    m.t_r = ctx.vector(&t_unit);
    m.t_b = ctx.vector(&t_unit);
    let step = m.begin_step(&ctx.vector(&theta));
    let g_tilde: Vec<f64> = (0..25).map(|k| 1.0 + 0.5 * k as f64).collect();
    let (g, g_t) = m.pull_back(&step, ctx.vector(&g_tilde), 1.0);
    let (masked, g, g_t) = (to_host(step.theta.clone()), to_host(g), to_host(g_t));

    let mut want_masked = theta.clone();
    let mut want_g = g_tilde.clone();
    let mut want_t = [0.0; 7];
    let mut unit0 = 0;
    let mut n_masked = 0;
    for (w_off, d_in, d_out, _) in layout {
        for i in 0..d_in {
            for j in 0..d_out {
                let k = w_off + i * d_out + j;
                let (w, t) = (theta[k], t_unit[unit0 + j]);
                let z = w.abs() - t;
                let keep = if z > 0.0 { 1.0 } else { 0.0 };
                let s = ste_slope_scalar(z);
                want_masked[k] = keep * w;
                want_g[k] = g_tilde[k] * (keep + w.abs() * s);
                want_t[unit0 + j] -= g_tilde[k] * w * s;
                n_masked += (keep == 0.0) as usize;
            }
        }
        unit0 += d_out;
    }
    // The thresholds were chosen to mask some weights in every layer, not all of them.
    assert_eq!(n_masked, 8);
    assert_eq!(masked, want_masked, "θ̃");
    for k in 0..25 {
        assert!(
            close(g[k], want_g[k], 1e-12),
            "∂L/∂θ[{k}] = {} vs {}",
            g[k],
            want_g[k]
        );
    }
    for u in 0..7 {
        assert!(
            close(g_t[u], want_t[u], 1e-12),
            "∂L/∂t[{u}] = {} vs {}",
            g_t[u],
            want_t[u]
        );
    }
}

/// Every ablation mode and the per-layer R_w train without skipped steps.
#[test]
fn ablation_modes_train() {
    for (mode, rw) in [
        (Ablation::SparsityOnly, RwMode::PerUnit),
        (Ablation::DualThresholds, RwMode::PerUnit),
        (Ablation::Full, RwMode::PerLayer),
    ] {
        let mut c = tiny("modsync+config");
        c.modsync.mode = mode;
        c.modsync.rw = rw;
        c.diagnostics.diag_every = 0;
        let mut rec = Recorder::default();
        let mut t = Trainer::new(c, &Device::flex()).unwrap();
        let r = t.run(&mut rec);
        assert_eq!(r.skipped_steps, 0, "{mode:?}");
        let last = &rec.rows.last().unwrap().extra;
        if mode == Ablation::SparsityOnly {
            assert_eq!(last["exclusive_frac_l1"], 0.0, "one shared threshold");
        }
        assert!(last["loss_s"].is_finite());
    }
}

/// Every diagnostic a run emits has a kind of its own (`diagnostic_kind`), none falls to
/// `Other`: every base method, plain and under ModSync, at depth 3 (four masked layers), with
/// the orthogonality fraction and the NTK weights measured. A name added to a method's or
/// ModSync's `diagnostics` without a kind fails here, and the dashboard's job page would put
/// it in its "other" panel.
#[test]
fn every_diagnostic_a_run_emits_has_its_kind() {
    use trainer_core::DiagnosticKind;
    use trainer_core::methods::METHODS;
    let mut seen: BTreeMap<String, DiagnosticKind> = BTreeMap::new();
    for base in METHODS {
        for method in [base.name.to_string(), format!("modsync+{}", base.name)] {
            let mut c = tiny(&method);
            c.depth = 3;
            c.method_options.ntk.every = 3;
            let mut rec = Recorder::default();
            Trainer::new(c, &Device::flex()).unwrap().run(&mut rec);
            let names: Vec<&String> = rec.rows.iter().flat_map(|r| r.extra.keys()).collect();
            assert!(!names.is_empty(), "{method}: no diagnostics");
            for name in names {
                let kind = DiagnosticKind::of(name);
                assert_ne!(kind, DiagnosticKind::Other, "{method} emits {name}");
                seen.insert(name.clone(), kind);
            }
        }
    }
    // modsync+dcgd's, by kind (the job page's panels); four masked layers l0..l3.
    let of = |kind: DiagnosticKind| -> Vec<&str> {
        seen.iter()
            .filter(|(_, k)| **k == kind)
            .map(|(n, _)| n.as_str())
            .collect()
    };
    let layers =
        |prefix: &str| -> Vec<String> { (0..4).map(|l| format!("{prefix}_l{l}")).collect() };
    assert_eq!(of(DiagnosticKind::Cosines), ["cos_rb"]);
    assert_eq!(of(DiagnosticKind::Norms), ["norm_g_b", "norm_g_r"]);
    assert_eq!(of(DiagnosticKind::Orthogonality), ["orth_frac"]);
    assert_eq!(of(DiagnosticKind::LossS), ["loss_s"]);
    assert_eq!(of(DiagnosticKind::Kept), layers("kept_frac"));
    assert_eq!(of(DiagnosticKind::Exclusive), layers("exclusive_frac"));
    assert_eq!(of(DiagnosticKind::Reweighting), layers("rw_mean"));
    assert_eq!(of(DiagnosticKind::Resets), layers("resets"));
    assert_eq!(of(DiagnosticKind::Weights), ["lambda_b", "lambda_r"]);
}
