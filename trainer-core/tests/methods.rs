//! The gradient methods of SPEC §3 on hand-made vectors, against the SPEC formulas computed
//! here independently (vector form, f64), plus their defining properties and the promise that
//! no gradient — zero, tiny, huge or non-finite — produces a non-finite parameter.

use trainer_core::TrainConfig;
use trainer_core::adam::{Adam, AdamParams};
use trainer_core::methods::DcgdVariant;
use trainer_core::methods::stats::probe;
use trainer_core::methods::{
    self, MethodOptions, PairStats, StepOutcome, Stepper, TaskGrads, Tasks, Update, cagrad,
    projection,
};
use trainer_core::tensors::{Ctx, to_host};

mod common;

use common::{ctx32, ctx64};

const EPS: f64 = 1e-8;

// ---- independent f64 vector algebra ----

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}
fn lin(ca: f64, a: &[f64], cb: f64, b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| ca * x + cb * y).collect()
}
fn unit(a: &[f64]) -> Vec<f64> {
    let n = norm(a);
    if n == 0.0 {
        vec![0.0; a.len()]
    } else {
        a.iter().map(|x| x / n).collect()
    }
}
fn cosine(a: &[f64], b: &[f64]) -> f64 {
    dot(a, b) / (norm(a) * norm(b))
}

/// SPEC §3 `pcgrad`.
fn pcgrad_ref(r: &[f64], b: &[f64]) -> Vec<f64> {
    let d = dot(r, b);
    if d < 0.0 {
        let (nr, nb) = (norm(r) + EPS, norm(b) + EPS);
        let pr = lin(1.0, r, -d / (nb * nb), b);
        let pb = lin(1.0, b, -d / (nr * nr), r);
        lin(1.0, &pr, 1.0, &pb)
    } else {
        lin(1.0, r, 1.0, b)
    }
}

/// SPEC §3 `dcgd` center (paper Eq. 5).
fn center_ref(r: &[f64], b: &[f64]) -> Vec<f64> {
    let c = lin(1.0 / (norm(r) + EPS), r, 1.0 / (norm(b) + EPS), b);
    let s = lin(1.0, r, 1.0, b);
    let k = dot(&c, &s) / dot(&c, &c);
    c.iter().map(|x| k * x).collect()
}

fn proj_ref(r: &[f64], b: &[f64]) -> Vec<f64> {
    let avg = lin(0.5, r, 0.5, b);
    let d = dot(r, b);
    let (nr, nb) = (norm(r) + EPS, norm(b) + EPS);
    if dot(&avg, b) < 0.0 {
        lin(1.0, r, -d / (nb * nb), b)
    } else if dot(&avg, r) < 0.0 {
        lin(1.0, b, -d / (nr * nr), r)
    } else {
        lin(1.0, r, 1.0, b)
    }
}

fn avg_ref(r: &[f64], b: &[f64]) -> Vec<f64> {
    let avg = lin(0.5, r, 0.5, b);
    let d = dot(r, b);
    let (nr, nb) = (norm(r) + EPS, norm(b) + EPS);
    if dot(&avg, b) < 0.0 || dot(&avg, r) < 0.0 {
        lin(
            (1.0 - d / (nr * nr)) / 2.0,
            r,
            (1.0 - d / (nb * nb)) / 2.0,
            b,
        )
    } else {
        lin(1.0, r, 1.0, b)
    }
}

/// ConFIG written literally (SPEC §3), U(0) = 0.
fn config_ref(r: &[f64], b: &[f64]) -> Vec<f64> {
    let ur = unit(r);
    let ub = unit(b);
    let o1 = lin(1.0, b, -dot(b, &ur), &ur);
    let o2 = lin(1.0, r, -dot(r, &ub), &ub);
    let d = unit(&lin(1.0, &unit(&o1), 1.0, &unit(&o2)));
    let len = dot(r, &d) + dot(b, &d);
    d.iter().map(|x| len * x).collect()
}

/// CAGrad's objective F(p) from the vectors.
fn cagrad_objective_ref(r: &[f64], b: &[f64], c: f64, p: f64) -> f64 {
    let g0 = lin(0.5, r, 0.5, b);
    let gw = lin(p, r, 1.0 - p, b);
    dot(&gw, &g0) + c * norm(&g0) * norm(&gw)
}

fn cagrad_ref(r: &[f64], b: &[f64], c: f64, p: f64) -> Vec<f64> {
    let g0 = lin(0.5, r, 0.5, b);
    let gw = lin(p, r, 1.0 - p, b);
    // SPEC §3: λ = c‖g₀‖/‖g_w‖, no ε; g_w = 0 (opposite gradients at p = ½) adds nothing.
    let lambda = if norm(&gw) > 0.0 {
        c * norm(&g0) / norm(&gw)
    } else {
        0.0
    };
    lin(1.0, &g0, lambda, &gw)
        .iter()
        .map(|x| x / (1.0 + c * c))
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], rel: f64, what: &str) {
    let scale = norm(want).max(1e-300);
    let err = norm(&lin(1.0, got, -1.0, want));
    assert!(
        err <= rel * scale,
        "{what}: |got − want| = {err:e} > {rel:e}·{scale:e}\n got  {got:?}\n want {want:?}"
    );
}

// ---- running the crate's methods ----

/// One `update` of method `name` on (g_r, g_b), returning the direction on the host.
fn direction(
    ctx: &Ctx,
    name: &str,
    opts: &MethodOptions,
    r: &[f64],
    b: &[f64],
) -> Option<Vec<f64>> {
    let mut m = methods::build(name, opts, ctx, r.len()).unwrap();
    let grads = TaskGrads {
        g_r: Some(ctx.vector(r)),
        g_b: Some(ctx.vector(b)),
    };
    let p = to_host(m.probe(&grads));
    match m.update(grads, &p, 1e-3) {
        Update::Direction(d) => Some(to_host(d)),
        Update::Skip => None,
        other => panic!("{name}: unexpected update {other:?}"),
    }
}

fn dcgd_opts(variant: DcgdVariant) -> MethodOptions {
    let mut o = MethodOptions::default();
    o.dcgd.variant = variant;
    o
}

/// The hand-made pairs every method is checked on.
fn cases() -> Vec<(&'static str, Vec<f64>, Vec<f64>)> {
    let r = vec![0.3, -1.2, 0.5, 2.0, -0.7, 0.1];
    let scale = |v: &[f64], k: f64| v.iter().map(|x| x * k).collect::<Vec<_>>();
    // Orthogonal to r by construction.
    let q = vec![1.0, 0.5, 0.0, 0.0, 0.0, 3.0];
    let q = lin(1.0, &q, -dot(&q, &r) / dot(&r, &r), &r);
    let conflict = vec![-0.9, 0.4, -0.8, -0.5, 0.6, 0.3];
    let agree = vec![0.5, -0.3, 1.0, 1.5, 0.2, -0.4];
    vec![
        ("aligned", r.clone(), scale(&r, 2.5)),
        ("orthogonal", r.clone(), q.clone()),
        ("opposite", r.clone(), scale(&r, -3.0)),
        ("conflicting", r.clone(), conflict.clone()),
        ("agreeing", r.clone(), agree.clone()),
        ("r zero", vec![0.0; 6], conflict.clone()),
        ("b zero", r.clone(), vec![0.0; 6]),
        ("huge", scale(&r, 1e60), scale(&conflict, 3e59)),
        ("tiny", scale(&r, 1e-60), scale(&conflict, 2e-61)),
        ("huge/tiny", scale(&r, 1e40), scale(&conflict, 1e-40)),
    ]
}

/// Exactly opposite gradients make every ε-regularised rule ill-conditioned: the result is
/// a difference of ~1/ε-sized terms (DCGD center: c = g_r/nr + g_b/nb ≈ 0), so our form and
/// the reference agree only to ~u/ε ≈ 1e-8 relative to the inputs.
fn assert_case(got: &[f64], want: &[f64], r: &[f64], b: &[f64], case: &str, what: &str) {
    if case == "opposite" {
        let err = norm(&lin(1.0, got, -1.0, want));
        let scale = norm(r) + norm(b);
        assert!(
            err <= 1e-6 * scale,
            "{what}: |got − want| = {err:e}, inputs {scale:e}"
        );
    } else {
        assert_close(got, want, 1e-9, what);
    }
}

fn check_rule(name: &str, opts: MethodOptions, reference: impl Fn(&[f64], &[f64]) -> Vec<f64>) {
    let ctx = ctx64();
    for (case, r, b) in cases() {
        let got = direction(&ctx, name, &opts, &r, &b)
            .unwrap_or_else(|| panic!("{name} {case}: skipped"));
        let want = reference(&r, &b);
        assert_case(&got, &want, &r, &b, case, &format!("{name} {case}"));
    }
    // Both zero: skipped, never NaN.
    assert!(
        direction(&ctx, name, &opts, &[0.0; 4], &[0.0; 4]).is_none(),
        "{name} both zero"
    );
}

#[test]
fn adam_is_the_weighted_sum() {
    let mut o = MethodOptions::default();
    check_rule("adam", o.clone(), |r, b| lin(1.0, r, 1.0, b));
    o.adam.lambda_r = 0.5;
    o.adam.lambda_b = 3.0;
    check_rule("adam", o, |r, b| lin(0.5, r, 3.0, b));
}

#[test]
fn pcgrad_matches_spec() {
    check_rule("pcgrad", MethodOptions::default(), pcgrad_ref);
}

#[test]
fn dcgd_variants_match_spec() {
    // The SPEC formula of `center` divides by ‖c‖² ≈ 0 for exactly opposite gradients; the
    // vector form in f64 is still accurate there (c ∝ g_r), and so must ours be.
    check_rule("dcgd", dcgd_opts(DcgdVariant::Center), center_ref);
    check_rule("dcgd", dcgd_opts(DcgdVariant::Proj), proj_ref);
    check_rule("dcgd", dcgd_opts(DcgdVariant::Avg), avg_ref);
}

#[test]
fn config_matches_literal_config_and_dcgd_center() {
    let ctx = ctx64();
    let opts = MethodOptions::default();
    for (case, r, b) in cases() {
        let got = direction(&ctx, "config", &opts, &r, &b).unwrap();
        match case {
            // Literal ConFIG is 0/0 for exactly (anti)parallel gradients; we use the limit.
            "aligned" => assert_close(&got, &lin(1.0, &r, 1.0, &b), 1e-12, case),
            "opposite" => assert!(got.iter().all(|x| *x == 0.0), "{case}: {got:?}"),
            _ => assert_close(&got, &config_ref(&r, &b), 1e-9, &format!("config {case}")),
        }
    }
    // Two tasks: ConFIG = DCGD center up to rounding (and ε), on many random pairs.
    let mut seed = 12345u64;
    let mut rand = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    for _ in 0..200 {
        let r: Vec<f64> = (0..9).map(|_| rand()).collect();
        let b: Vec<f64> = (0..9).map(|_| 3.0 * rand()).collect();
        let cfg = direction(&ctx, "config", &opts, &r, &b).unwrap();
        let center = direction(&ctx, "dcgd", &dcgd_opts(DcgdVariant::Center), &r, &b).unwrap();
        assert_close(&cfg, &config_ref(&r, &b), 1e-9, "config vs literal");
        assert_close(&cfg, &center, 1e-7, "config vs dcgd center");
    }
}

#[test]
fn dcgd_center_has_equal_cosines() {
    let ctx = ctx64();
    let opts = dcgd_opts(DcgdVariant::Center);
    for (case, r, b) in cases() {
        // The bisector property needs ‖g‖ ≫ ε: for tiny gradients nr = ‖g_r‖ + ε ≈ ε and the
        // SPEC formula tends to the plain sum.
        if case.contains("zero") || case == "opposite" || case.contains("tiny") {
            continue;
        }
        let g = direction(&ctx, "dcgd", &opts, &r, &b).unwrap();
        let (cr, cb) = (cosine(&g, &r), cosine(&g, &b));
        assert!(
            (cr - cb).abs() < 1e-7,
            "{case}: cos to g_r {cr}, to g_b {cb}"
        );
    }
}

#[test]
fn pcgrad_never_opposes_the_projected_tasks() {
    let ctx = ctx64();
    let opts = MethodOptions::default();
    let mut seed = 99u64;
    let mut rand = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let mut conflicts = 0;
    for _ in 0..300 {
        let r: Vec<f64> = (0..7).map(|_| rand()).collect();
        let b: Vec<f64> = (0..7).map(|_| rand() * 5.0).collect();
        let g = direction(&ctx, "pcgrad", &opts, &r, &b).unwrap();
        let d = dot(&r, &b);
        if d < 0.0 {
            conflicts += 1;
            let (nr, nb) = (norm(&r) + EPS, norm(&b) + EPS);
            let pr = lin(1.0, &r, -d / (nb * nb), &b);
            let pb = lin(1.0, &b, -d / (nr * nr), &r);
            let tol = 1e-12 * norm(&g) * (norm(&r) + norm(&b));
            assert!(dot(&g, &pr) >= -tol, "g·(projected g_r) = {}", dot(&g, &pr));
            assert!(dot(&g, &pb) >= -tol, "g·(projected g_b) = {}", dot(&g, &pb));
        }
    }
    assert!(conflicts > 50, "the random pairs must include conflicts");
}

#[test]
fn cagrad_search_finds_the_grid_minimiser() {
    let ctx = ctx64();
    let mut opts = MethodOptions::default();
    for c in [0.0, 0.2, 0.5, 1.0, 3.0] {
        opts.cagrad.c = c;
        for (case, r, b) in cases() {
            if case.contains("zero") {
                continue;
            }
            let s = PairStats::from_host(&r, &b);
            let p = cagrad::weight(&s, c);
            // A fine grid of the objective, computed from the vectors.
            let n = 100_000;
            let (p_grid, f_grid) = (0..=n)
                .map(|k| {
                    let p = k as f64 / n as f64;
                    (p, cagrad_objective_ref(&r, &b, c, p))
                })
                .fold((0.0, f64::INFINITY), |a, x| if x.1 < a.1 { x } else { a });
            let f_star = cagrad_objective_ref(&r, &b, c, p);
            let scale = dot(&r, &r).max(dot(&b, &b));
            assert!(
                f_star <= f_grid + 1e-12 * scale,
                "{case} c={c}: F(p*={p}) = {f_star} > grid min F({p_grid}) = {f_grid}"
            );
            let got = direction(&ctx, "cagrad", &opts, &r, &b).unwrap();
            let want = cagrad_ref(&r, &b, c, p);
            assert_case(&got, &want, &r, &b, case, &format!("cagrad {case} c={c}"));
        }
    }
    // The objective the search minimises is the one of the vectors (up to the scale).
    let (r, b) = (vec![1.0, 2.0, -3.0], vec![-2.0, 0.5, 1.0]);
    let s = PairStats::from_host(&r, &b);
    let scale = dot(&r, &r).max(dot(&b, &b));
    for p in [0.0, 0.3, 0.77, 1.0] {
        let want = cagrad_objective_ref(&r, &b, 0.5, p) / scale;
        assert!((cagrad::objective(&s, 0.5, p) - want).abs() < 1e-12);
    }
}

#[test]
fn lra_follows_the_moving_average() {
    let ctx = ctx64();
    let opts = MethodOptions::default();
    let mut m = methods::build("lra", &opts, &ctx, 4).unwrap();
    let steps = [
        (vec![1.0, -4.0, 2.0, 0.5], vec![0.1, 0.2, -0.3, 0.4]),
        (vec![0.2, 0.1, -0.1, 0.0], vec![2.0, -1.0, 0.5, 0.5]),
        (vec![3.0, 0.0, 0.0, 0.0], vec![0.0; 4]),
    ];
    let mut lambda = 1.0;
    for (r, b) in steps {
        let mean_b = b.iter().map(|x: &f64| x.abs()).sum::<f64>() / 4.0;
        if mean_b > 0.0 {
            let max_r = r.iter().fold(0.0f64, |a, x: &f64| a.max(x.abs()));
            lambda = 0.9 * lambda + 0.1 * max_r / mean_b;
        }
        let grads = TaskGrads {
            g_r: Some(ctx.vector(&r)),
            g_b: Some(ctx.vector(&b)),
        };
        let p = to_host(m.probe(&grads));
        let Update::Direction(d) = m.update(grads, &p, 1e-3) else {
            panic!("lra must give a direction")
        };
        assert_close(&to_host(d), &lin(1.0, &r, lambda, &b), 1e-12, "lra");
        let lb = m.diagnostics()[0].1;
        assert!((lb - lambda).abs() < 1e-12 * lambda, "λ_b {lb} vs {lambda}");
    }
}

#[test]
fn ntk_weights_follow_the_traces() {
    let ctx = ctx64();
    let mut opts = MethodOptions::default();
    opts.ntk.every = 7;
    let mut m = methods::build("ntk", &opts, &ctx, 3).unwrap();
    assert!(m.ntk_due(0) && m.ntk_due(14) && !m.ntk_due(3));
    let (r, b) = (vec![1.0, 2.0, 3.0], vec![-1.0, 0.5, 0.25]);
    let run = |m: &mut Box<dyn methods::GradientMethod>| {
        let grads = TaskGrads {
            g_r: Some(ctx.vector(&r)),
            g_b: Some(ctx.vector(&b)),
        };
        let p = to_host(m.probe(&grads));
        match m.update(grads, &p, 1e-3) {
            Update::Direction(d) => to_host(d),
            other => panic!("{other:?}"),
        }
    };
    // Before any measurement the weights are 1.
    assert_close(
        &run(&mut m),
        &lin(1.0, &r, 1.0, &b),
        1e-15,
        "ntk unmeasured",
    );
    let (tr, tb) = (40.0, 2.5);
    m.set_ntk_traces(tr, tb);
    let want = lin((tr + tb) / tr, &r, (tr + tb) / tb, &b);
    assert_close(&run(&mut m), &want, 1e-14, "ntk");
    // Degenerate traces keep the previous weights.
    m.set_ntk_traces(0.0, 3.0);
    m.set_ntk_traces(f64::NAN, 3.0);
    assert_close(&run(&mut m), &want, 1e-14, "ntk after bad traces");
}

/// Host simulation of `multiadam`: one Adam per task, summed with weights.
#[test]
fn multiadam_matches_per_task_adam() {
    let ctx = ctx64();
    let o = MethodOptions::default();
    let n = 3;
    let mut stepper = Stepper {
        method: methods::build("multiadam", &o, &ctx, n).unwrap(),
        adam: Adam::new(&ctx, n, AdamParams::default()),
    };
    let mut theta = ctx.vector(&[0.5, -0.5, 1.0]);
    let mut want = vec![0.5, -0.5, 1.0];
    let (b1, b2, eps) = (o.multiadam.beta1, o.multiadam.beta2, o.multiadam.eps);
    let mut m = [[0.0; 3]; 2];
    let mut v = [[0.0; 3]; 2];
    let grads = [
        ([1.0, -2.0, 0.5], [0.3, 0.3, -0.1]),
        ([0.5, 0.0, -1.0], [-0.2, 0.1, 0.4]),
        ([-0.1, 1.0, 0.2], [0.0, 0.0, 0.0]),
    ];
    for (t, (r, b)) in grads.iter().enumerate() {
        let t = t as i32 + 1;
        let lr = 1e-2;
        let mut delta = [0.0; 3];
        for (k, g) in [r, b].into_iter().enumerate() {
            let w = [o.multiadam.weight_r, o.multiadam.weight_b][k];
            for i in 0..3 {
                m[k][i] = b1 * m[k][i] + (1.0 - b1) * g[i];
                v[k][i] = b2 * v[k][i] + (1.0 - b2) * g[i] * g[i];
                let denom = v[k][i].sqrt() / (1.0 - b2.powi(t)).sqrt() + eps;
                delta[i] += w * m[k][i] / denom * lr / (1.0 - b1.powi(t));
            }
        }
        for i in 0..3 {
            want[i] -= delta[i];
        }
        let g = TaskGrads {
            g_r: Some(ctx.vector(r)),
            g_b: Some(ctx.vector(b)),
        };
        let (outcome, _) = stepper.step(&mut theta, g, vec![], lr);
        assert_eq!(outcome, StepOutcome::Applied);
        assert_close(&to_host(theta.clone()), &want, 1e-12, "multiadam θ");
    }
    // The outer Adam is not used.
    assert_eq!(stepper.adam.t, 0);
}

/// Host simulation of `mconfig` (the reference `PseudoMomentumOperator` with ConFIG and SGD).
#[test]
fn mconfig_matches_the_reference_algorithm() {
    let ctx = ctx64();
    let o = MethodOptions::default();
    let (b1, b2, eps) = (o.mconfig.beta1, o.mconfig.beta2, o.mconfig.eps);
    let n = 4;
    let mut stepper = Stepper {
        method: methods::build("mconfig", &o, &ctx, n).unwrap(),
        adam: Adam::new(&ctx, n, AdamParams::default()),
    };
    let init = vec![0.1, 0.2, -0.3, 0.4];
    let mut theta = ctx.vector(&init);
    let mut want = init.clone();
    let mut m = [vec![0.0; n], vec![0.0; n]];
    let mut counts = [0i32; 2];
    let mut t = 0i32;
    let mut s = vec![0.0; n];
    let mut fake_m = vec![0.0; n];
    let gs = [
        vec![1.0, -0.5, 0.2, 0.0],
        vec![-0.3, 0.8, 0.1, 0.5],
        vec![0.7, -0.2, -0.4, 0.1],
        vec![-0.6, 0.3, 0.9, -0.2],
        vec![0.2, 0.2, 0.2, 0.2],
        vec![0.0, -1.0, 0.5, 0.3],
    ];
    for (iter, g) in gs.iter().enumerate() {
        let k = iter % 2;
        assert_eq!(
            stepper.method.tasks(iter as u64),
            if k == 0 {
                Tasks::Residual
            } else {
                Tasks::Boundary
            }
        );
        let lr = 1e-2;
        counts[k] += 1;
        m[k] = lin(b1, &m[k], 1.0 - b1, g);
        let held = counts[0] == 0 || counts[1] == 0;
        if !held {
            t += 1;
            let hat = |j: usize| {
                m[j].iter()
                    .map(|x| x / (1.0 - b1.powi(counts[j])))
                    .collect::<Vec<_>>()
            };
            let dir = config_ref(&hat(0), &hat(1));
            let fm: Vec<f64> = dir.iter().map(|x| x * (1.0 - b1.powi(t))).collect();
            let fg: Vec<f64> = fm
                .iter()
                .zip(&fake_m)
                .map(|(a, p)| (a - b1 * p) / (1.0 - b1))
                .collect();
            fake_m = fm;
            for i in 0..n {
                s[i] = b2 * s[i] + (1.0 - b2) * fg[i] * fg[i];
                let s_hat = s[i] / (1.0 - b2.powi(t));
                want[i] -= lr * dir[i] / (s_hat.sqrt() + eps);
            }
        }
        let grads = if k == 0 {
            TaskGrads {
                g_r: Some(ctx.vector(g)),
                g_b: None,
            }
        } else {
            TaskGrads {
                g_r: None,
                g_b: Some(ctx.vector(g)),
            }
        };
        let (outcome, _) = stepper.step(&mut theta, grads, vec![], lr);
        let expected = if held {
            StepOutcome::Held
        } else {
            StepOutcome::Applied
        };
        assert_eq!(outcome, expected, "step {iter}");
        assert_close(
            &to_host(theta.clone()),
            &want,
            1e-12,
            &format!("mconfig θ at {iter}"),
        );
    }
}

/// Every method, through the `Stepper` the trainer uses, in f32 as in training: zero, tiny,
/// huge and non-finite task gradients never give a non-finite θ; unusable steps are skipped.
#[test]
fn no_method_makes_parameters_non_finite() {
    let ctx = ctx32();
    let n = 5;
    let fine_r = vec![0.5, -1.0, 0.25, 2.0, -0.3];
    let fine_b = vec![-0.4, 0.2, 1.0, -1.5, 0.1];
    let scale = |v: &[f64], k: f64| v.iter().map(|x| x * k).collect::<Vec<_>>();
    let mut nan = fine_r.clone();
    nan[2] = f64::NAN;
    let mut inf = fine_b.clone();
    inf[0] = f64::INFINITY;
    // (case, g_r, g_b, must be skipped)
    let cases: Vec<(&str, Vec<f64>, Vec<f64>, bool)> = vec![
        ("both zero", vec![0.0; n], vec![0.0; n], true),
        ("r zero", vec![0.0; n], fine_b.clone(), false),
        ("b zero", fine_r.clone(), vec![0.0; n], false),
        ("tiny", scale(&fine_r, 1e-30), scale(&fine_b, 1e-32), false),
        (
            "denormal",
            scale(&fine_r, 1e-42),
            scale(&fine_b, 1e-43),
            false,
        ),
        ("huge", scale(&fine_r, 1e12), scale(&fine_b, 1e13), false),
        (
            "overflowing",
            scale(&fine_r, 1e30),
            scale(&fine_b, 1e30),
            true,
        ),
        ("opposite", fine_r.clone(), scale(&fine_r, -1.0), false),
        ("nan", nan.clone(), fine_b.clone(), true),
        ("inf", fine_r.clone(), inf.clone(), true),
    ];
    let mut all = methods::NAMES.to_vec();
    all.push("dcgd");
    for (k, name) in all.iter().enumerate() {
        let mut opts = MethodOptions::default();
        if k == all.len() - 1 {
            opts.dcgd.variant = DcgdVariant::Avg;
        }
        for (case, r, b, skip) in &cases {
            let mut stepper = Stepper {
                method: methods::build(name, &opts, &ctx, n).unwrap(),
                adam: Adam::new(&ctx, n, AdamParams::default()),
            };
            let mut theta = ctx.vector(&[0.1, 0.2, 0.3, 0.4, 0.5]);
            let mut skipped = 0;
            // Two steps so `mconfig` sees both tasks.
            for iter in 0..2u64 {
                let tasks = stepper.method.tasks(iter);
                let g = TaskGrads {
                    g_r: tasks.residual().then(|| ctx.vector(r)),
                    g_b: tasks.boundary().then(|| ctx.vector(b)),
                };
                let loss = ctx.vector(&[1.0]);
                let (outcome, _) = stepper.step(&mut theta, g, vec![loss], 1e-3);
                skipped += (outcome == StepOutcome::Skipped) as u32;
                let host = to_host(theta.clone());
                assert!(
                    host.iter().all(|x| x.is_finite()),
                    "{name} {case}: θ = {host:?}"
                );
            }
            // `mconfig` back-propagates one task per step: a zero one is skipped.
            let expect_skip =
                *skip || (*name == "mconfig" && (*case == "r zero" || *case == "b zero"));
            if expect_skip {
                assert!(skipped >= 1, "{name} {case}: expected a skipped step");
            } else {
                assert_eq!(skipped, 0, "{name} {case}: unexpected skip");
            }
        }
    }
    // A non-finite loss skips the step even when the gradients are fine.
    let mut stepper = Stepper {
        method: methods::build("adam", &MethodOptions::default(), &ctx, n).unwrap(),
        adam: Adam::new(&ctx, n, AdamParams::default()),
    };
    let mut theta = ctx.vector(&[0.0; 5]);
    let g = TaskGrads {
        g_r: Some(ctx.vector(&fine_r)),
        g_b: Some(ctx.vector(&fine_b)),
    };
    let (outcome, checks) = stepper.step(&mut theta, g, vec![ctx.vector(&[f64::NAN])], 1e-3);
    assert_eq!(outcome, StepOutcome::Skipped);
    assert!(checks[0].is_nan());
    assert_eq!(to_host(theta), vec![0.0; 5]);
}

/// The f32 device statistics are robust where naive squares under- or overflow.
#[test]
fn pair_statistics_survive_extreme_scales_in_f32() {
    let ctx = ctx32();
    let r = [3.0f64, -4.0, 0.0, 12.0];
    let b = [1.0f64, 2.0, -2.0, 0.0];
    for k in [1e-30, 1e-20, 1.0, 1e15] {
        let rs: Vec<f64> = r.iter().map(|x| x * k).collect();
        let bs: Vec<f64> = b.iter().map(|x| x * k * 0.5).collect();
        // The f32 values the device holds.
        let rs32: Vec<f64> = rs.iter().map(|x| *x as f32 as f64).collect();
        let bs32: Vec<f64> = bs.iter().map(|x| *x as f32 as f64).collect();
        let got = PairStats::from_probe(&to_host(probe(&ctx.vector(&rs), &ctx.vector(&bs))), 4);
        let want = PairStats::from_host(&rs32, &bs32);
        for (g, w, what) in [
            (got.norm_r, want.norm_r, "‖r‖"),
            (got.norm_b, want.norm_b, "‖b‖"),
            (got.cos, want.cos, "cos"),
            (got.max_abs_r, want.max_abs_r, "max|r|"),
            (got.mean_abs_b, want.mean_abs_b, "mean|b|"),
        ] {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1e-300),
                "k={k} {what}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn method_keys_and_option_fields_are_validated() {
    for ok in [
        "adam",
        "mconfig",
        "modsync+dcgd",
        "modsync+config",
        "modsync+multiadam",
    ] {
        methods::validate_method(ok).unwrap();
    }
    for bad in [
        "sgd",
        "modsync+",
        "modsync+modsync+adam",
        "modsync+foo",
        "MODSYNC+dcgd",
    ] {
        let e = methods::validate_method(bad).unwrap_err();
        assert_eq!(e.field, "method", "{bad}");
    }
    let mut c = TrainConfig::default();
    c.method_options.cagrad.c = -1.0;
    assert_eq!(c.validate().unwrap_err().field, "method_options.cagrad.c");
    let mut c = TrainConfig::default();
    c.method_options.ntk.every = 0;
    assert_eq!(c.validate().unwrap_err().field, "method_options.ntk.every");
    let mut c = TrainConfig::default();
    c.method_options.lra.alpha = 1.5;
    assert_eq!(c.validate().unwrap_err().field, "method_options.lra.alpha");
    // Unknown option names are rejected when a config is read.
    let json = r#"{"method": "dcgd", "method_options": {"dcgd": {"variant": "proj", "typo": 1}}}"#;
    assert!(serde_json::from_str::<TrainConfig>(json).is_err());
    let json = r#"{"method": "dcgd", "method_options": {"dcgd": {"variant": "avg"}}}"#;
    let c: TrainConfig = serde_json::from_str(json).unwrap();
    assert_eq!(c.method_options.dcgd.variant, DcgdVariant::Avg);
}

/// The coefficient functions on exact host statistics (the device path's reductions left out)
/// give the SPEC §3 vectors computed above: the rules themselves, not only the device plumbing.
#[test]
fn coefficients_on_exact_statistics_match_spec_formulas() {
    type Rule = (
        &'static str,
        fn(&PairStats) -> methods::Coefficients,
        fn(&[f64], &[f64]) -> Vec<f64>,
    );
    let rules: [Rule; 5] = [
        ("pcgrad", |s| projection::pcgrad(s, EPS), pcgrad_ref),
        ("config", projection::config, config_ref),
        (
            "dcgd center",
            |s| projection::dcgd(s, EPS, DcgdVariant::Center),
            center_ref,
        ),
        (
            "dcgd proj",
            |s| projection::dcgd(s, EPS, DcgdVariant::Proj),
            proj_ref,
        ),
        (
            "dcgd avg",
            |s| projection::dcgd(s, EPS, DcgdVariant::Avg),
            avg_ref,
        ),
    ];
    for (case, r, b) in cases() {
        let s = PairStats::from_host(&r, &b);
        for (name, rule, reference) in rules {
            let got = rule(&s).apply_host(&r, &b);
            let want = match (name, case) {
                // Literal ConFIG is 0/0 for exactly (anti)parallel gradients; the limit is used.
                ("config", "aligned") => lin(1.0, &r, 1.0, &b),
                ("config", "opposite") => vec![0.0; r.len()],
                _ => reference(&r, &b),
            };
            assert_case(&got, &want, &r, &b, case, &format!("{name} {case}"));
        }
    }
}
