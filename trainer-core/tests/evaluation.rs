//! What a run reports (SPEC §2): the test relative L2 ‖u_ref − u_pred‖/‖u_ref‖, the mean and
//! max absolute error, and the best / lowest-training-loss / last evaluation bookkeeping, against
//! values computed here from the network's predictions and the exact solution.

mod common;

use trainer_core::checkpoint::{Evaluation, Tracker};
use trainer_core::pde::linspace;
use trainer_core::{MetricsRow, Observer, Precision, TrainConfig, Trainer};

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

#[derive(Default)]
struct Rows(Vec<MetricsRow>);

impl Observer for Rows {
    fn on_metrics(&mut self, row: &MetricsRow) {
        self.0.push(row.clone());
    }
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
    let mut rows = Rows::default();
    let result = trainer.run(&mut rows);
    let rows = rows.0;
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
