//! The trainer's task losses and gradients against the independent host reference of
//! tests/common (network, derivatives, residuals, conditions and targets from SPEC, gradients by
//! finite differences), for every PDE — in particular the boundary gradients, Klein–Gordon's
//! u_t(0, x) = 0 condition included.
//!
//! The trainer's g_r and g_b are read from `mconfig`'s state: it back-propagates the residual
//! at step 0 and the boundary at step 1, holds θ until it has seen both, and keeps per-task
//! first moments m = (1 − β₁) g after one update each; a checkpoint after two steps carries
//! m_r = 0.1 g_r(θ₀, batch 0) and m_b = 0.1 g_b(θ₀, batch 1).

mod common;

use common::{
    boundary_loss, dims, fd_gradient, host_pde, rel_diff, residual_loss, trainer_batches,
};
use trainer_core::{MetricsRow, Observer, Precision, TrainConfig, Trainer};

#[derive(Default)]
struct Rows(Vec<MetricsRow>);

impl Observer for Rows {
    fn on_metrics(&mut self, row: &MetricsRow) {
        self.0.push(row.clone());
    }
}

const WIDTH: usize = 6;
const DEPTH: usize = 2;
const NC: usize = 3;
const SEED: u64 = 4;

fn check(name: &str) {
    let h = host_pde(name);
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
    config.diagnostics.enabled = false;
    let mut trainer = Trainer::new(config, &trainer_core::default_device()).unwrap();
    let theta0 = trainer.parameters();
    let mut rows = Rows::default();
    let result = trainer.run(&mut rows);
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
    let first = &rows.0[0];
    assert_eq!(first.iter, 0);
    let want_r = residual_loss(&h, &dims, &theta0, &res0.points);
    let want_b = boundary_loss(&h, &dims, &theta0, cond0);
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
    let fd_b = fd_gradient(&theta0, |t| boundary_loss(&h, &dims, t, cond1));
    let (e_r, e_b) = (rel_diff(&g_r, &fd_r), rel_diff(&g_b, &fd_b));
    assert!(e_r <= 1e-7, "{name}: ‖g_r − fd‖/‖fd‖ = {e_r:e}");
    assert!(e_b <= 1e-7, "{name}: ‖g_b − fd‖/‖fd‖ = {e_b:e}");
}

#[test]
fn task_gradients_match_host_finite_differences_helmholtz2d() {
    check("helmholtz2d");
}
#[test]
fn task_gradients_match_host_finite_differences_klein_gordon2d() {
    check("klein_gordon2d");
}
#[test]
fn task_gradients_match_host_finite_differences_burgers() {
    check("burgers");
}
#[test]
fn task_gradients_match_host_finite_differences_helmholtz3d() {
    check("helmholtz3d");
}
#[test]
fn task_gradients_match_host_finite_differences_klein_gordon3d() {
    check("klein_gordon3d");
}
