//! The trainer against the independent host reference of tests/common (network, derivatives,
//! residuals, conditions and targets from SPEC, gradients by finite differences):
//!
//! - the task losses and gradients for every PDE — in particular the boundary gradients,
//!   Klein–Gordon's u_t(0, x) = 0 condition included. The trainer's g_r and g_b are read from
//!   `mconfig`'s state: it back-propagates the residual at step 0 and the boundary at step 1,
//!   holds θ until it has seen both, and keeps per-task first moments m = (1 − β₁) g after one
//!   update each; a checkpoint after two steps carries m_r = 0.1 g_r(θ₀, batch 0) and
//!   m_b = 0.1 g_b(θ₀, batch 1);
//! - what a run reports (SPEC §2): the test relative L2 ‖u_ref − u_pred‖/‖u_ref‖, the mean and
//!   max absolute error, and the best / lowest-training-loss / last evaluation bookkeeping.

mod common;

use common::{
    Recorder, boundary_loss, dims, fd_gradient, grouped_boundary_loss, host_pde,
    pooled_boundary_loss, rel_diff, residual_loss, trainer_batches,
};
use trainer_core::checkpoint::{Evaluation, Tracker};
use trainer_core::pde::BoundaryLoss;
use trainer_core::pde::linspace;
use trainer_core::{Precision, TrainConfig, Trainer};

const WIDTH: usize = 6;
const DEPTH: usize = 2;
const NC: usize = 3;
const SEED: u64 = 4;

/// The default reading's L_b: the sources' groups.
fn check_task_gradients(name: &str) {
    check_task_gradients_with(name, BoundaryLoss::Grouped);
}

fn check_task_gradients_with(name: &str, reading: BoundaryLoss) {
    let h = host_pde(name);
    let host_boundary_loss = match reading {
        BoundaryLoss::SumOfMeans => boundary_loss,
        BoundaryLoss::PooledMean => pooled_boundary_loss,
        BoundaryLoss::Grouped => grouped_boundary_loss,
    };
    let mut config = TrainConfig {
        pde: name.into(),
        method: "mconfig".into(),
        width: WIDTH,
        depth: DEPTH,
        iters: 2,
        seed: SEED,
        eval_every: 1000,
        precision: Precision::F64,
        ..Default::default()
    };
    config.pde_options.nc = NC;
    config.pde_options.test_grid = Some(4);
    config.pde_options.boundary_loss = Some(reading);
    config.diagnostics.enabled = false;
    let mut trainer = Trainer::new(config, &trainer_core::default_device()).unwrap();
    let theta0 = trainer.parameters();
    let mut rec = Recorder::default();
    let result = trainer.run(&mut rec);
    assert_eq!(result.skipped_steps, 0, "{name}");
    let ckpt = trainer.checkpoint(0.0);
    let beta1 = 0.9;
    let from_moment = |v: &str| -> Vec<f64> {
        ckpt.vector(v)
            .unwrap_or_else(|| panic!("{name}: checkpoint lacks {v}"))
            .iter()
            .map(|m| m / (1.0 - beta1))
            .collect()
    };
    let (g_r, g_b) = (
        from_moment("method.mconfig.m_r"),
        from_moment("method.mconfig.m_b"),
    );

    let dims = dims(h.dim(), WIDTH, DEPTH);
    let batches = trainer_batches(name, SEED, NC, 2);
    let (res0, cond0) = &batches[0];
    let (_, cond1) = &batches[1];

    // The losses at iteration 0 (same θ₀, same batch 0).
    let first = &rec.rows[0];
    assert_eq!(first.iter, 0);
    let want_r = residual_loss(&h, &dims, &theta0, &res0.points);
    let want_b = host_boundary_loss(&h, &dims, &theta0, cond0);
    assert!(
        (first.loss_r - want_r).abs() <= 1e-10 * want_r,
        "{name}: L_r {} vs host {want_r}",
        first.loss_r
    );
    assert!(
        (first.loss_b - want_b).abs() <= 1e-10 * want_b,
        "{name}: L_b {} vs host {want_b}",
        first.loss_b
    );

    // The gradients against central differences of the host losses.
    let fd_r = fd_gradient(&theta0, |t| residual_loss(&h, &dims, t, &res0.points));
    let fd_b = fd_gradient(&theta0, |t| host_boundary_loss(&h, &dims, t, cond1));
    let (e_r, e_b) = (rel_diff(&g_r, &fd_r), rel_diff(&g_b, &fd_b));
    assert!(e_r <= 1e-7, "{name}: ‖g_r − fd‖/‖fd‖ = {e_r:e}");
    assert!(e_b <= 1e-7, "{name}: ‖g_b − fd‖/‖fd‖ = {e_b:e}");
}

#[test]
fn task_gradients_match_host_finite_differences_helmholtz2d() {
    check_task_gradients("helmholtz2d");
}
#[test]
fn task_gradients_match_host_finite_differences_klein_gordon2d() {
    check_task_gradients("klein_gordon2d");
}
#[test]
fn task_gradients_match_host_finite_differences_burgers() {
    check_task_gradients("burgers");
}
#[test]
fn task_gradients_match_host_finite_differences_helmholtz3d() {
    check_task_gradients("helmholtz3d");
}
#[test]
fn task_gradients_match_host_finite_differences_klein_gordon3d() {
    check_task_gradients("klein_gordon3d");
}

// The pooled reading of L_b (eq. (2) literally): burgers has three value conditions,
// klein_gordon2d a derivative condition (u_t(0, x) = 0) among its four.
#[test]
fn pooled_boundary_loss_matches_host_finite_differences_burgers() {
    check_task_gradients_with("burgers", BoundaryLoss::PooledMean);
}
#[test]
fn pooled_boundary_loss_matches_host_finite_differences_klein_gordon2d() {
    check_task_gradients_with("klein_gordon2d", BoundaryLoss::PooledMean);
}
// The first reading (spec_v1): one mean per condition.
#[test]
fn sum_of_means_matches_host_finite_differences_burgers() {
    check_task_gradients_with("burgers", BoundaryLoss::SumOfMeans);
}
#[test]
fn sum_of_means_matches_host_finite_differences_klein_gordon2d() {
    check_task_gradients_with("klein_gordon2d", BoundaryLoss::SumOfMeans);
}

// ---- reported errors and the tracker ----

fn eval(iter: u64, rel_l2: f64, loss: f64) -> Evaluation {
    Evaluation {
        iter,
        rel_l2,
        abs_err: rel_l2 / 10.0,
        abs_err_max: rel_l2 / 2.0,
        loss,
    }
}

#[test]
fn tracker_keeps_best_lowest_loss_and_last() {
    let mut t = Tracker::default();
    assert_eq!(t, Tracker::default());
    let seq = [
        eval(0, 1.0, 10.0),
        eval(100, 0.5, 12.0), // best so far
        eval(200, 0.7, 3.0),  // lowest loss so far
        eval(300, 0.5, 3.0),  // ties: the earlier evaluation stays
        eval(400, 0.9, 5.0),
    ];
    let mut want = Vec::new();
    for e in seq {
        t.record(e);
        want.push((
            t.best.unwrap().iter,
            t.min_loss.unwrap().iter,
            t.last.unwrap().iter,
        ));
    }
    assert_eq!(
        want,
        vec![
            (0, 0, 0),
            (100, 0, 100),
            (100, 200, 200),
            (100, 200, 300),
            (100, 200, 400)
        ]
    );
    // The whole evaluation is kept, not only its iteration.
    assert_eq!(t.best, Some(seq[1]));
    assert_eq!(t.min_loss, Some(seq[2]));
    assert_eq!(t.last, Some(seq[4]));
}

/// A short Klein–Gordon run: the last row's errors equal the formulas applied to the trained
/// network's predictions on the test grid (built here; the sums do not depend on its order) and
/// the exact solution; the result's best / min-loss / last numbers are the rows a host scan of
/// all evaluations picks.
#[test]
fn reported_errors_follow_the_spec_formulas() {
    let n = 20;
    let mut config = TrainConfig {
        pde: "klein_gordon2d".into(),
        method: "adam".into(),
        width: 8,
        depth: 2,
        iters: 40,
        lr: 1e-2,
        eval_every: 2,
        precision: Precision::F64,
        ..Default::default()
    };
    config.pde_options.test_grid = Some(n);
    config.diagnostics.enabled = false;
    let mut trainer = Trainer::new(config, &trainer_core::default_device()).unwrap();
    let mut rec = Recorder::default();
    let result = trainer.run(&mut rec);
    let rows = rec.rows;
    assert_eq!(rows.len(), 21, "iterations 0, 2, …, 40");

    let h = common::host_pde("klein_gordon2d");
    let axis = linspace(0.0, 1.0, n);
    let points: Vec<f64> = axis
        .iter()
        .flat_map(|t| axis.iter().flat_map(move |x| [*t, *x]))
        .collect();
    let pred = trainer.predict(&points);
    let exact: Vec<f64> = points.chunks_exact(2).map(|p| h.exact(p)).collect();
    let err: Vec<f64> = pred.iter().zip(&exact).map(|(p, e)| e - p).collect();
    let rel_l2 = common::norm(&err) / common::norm(&exact);
    let abs_mean = err.iter().map(|e| e.abs()).sum::<f64>() / err.len() as f64;
    let abs_max = err.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    let last = rows.last().unwrap();
    assert_eq!(last.iter, 40);
    for (what, got, want) in [
        ("rel_l2", last.rel_l2, rel_l2),
        ("abs_err", last.abs_err, abs_mean),
        ("abs_err_max", last.abs_err_max, abs_max),
    ] {
        assert!(
            (got - want).abs() <= 1e-12 * want,
            "{what}: reported {got} vs host {want}"
        );
    }

    // Best and lowest-loss evaluations, by a scan of the rows.
    let best = rows
        .iter()
        .min_by(|a, b| a.rel_l2.total_cmp(&b.rel_l2))
        .unwrap();
    let min_loss = rows
        .iter()
        .min_by(|a, b| (a.loss_r + a.loss_b).total_cmp(&(b.loss_r + b.loss_b)))
        .unwrap();
    // This run tells the three apart (best at 16, lowest loss at 32, last at 40).
    assert!(
        best.iter != min_loss.iter && best.iter != last.iter && min_loss.iter != last.iter,
        "best {}, min loss {}, last {}",
        best.iter,
        min_loss.iter,
        last.iter
    );
    assert_eq!(
        (result.best_iter, result.rel_l2_best),
        (best.iter, best.rel_l2)
    );
    assert_eq!(
        (result.abs_err_best, result.abs_err_max_best),
        (best.abs_err, best.abs_err_max)
    );
    assert_eq!(
        (result.min_loss_iter, result.rel_l2_min_loss),
        (min_loss.iter, min_loss.rel_l2)
    );
    assert_eq!(result.rel_l2_last, last.rel_l2);
}
