//! Viscous Burgers u_t + u u_x − ν u_xx = 0, ν = 0.01/π, on x ∈ [−1,1], t ∈ [0,1], with
//! u(0,x) = −sin πx and u(t,±1) = 0. Inputs are fed raw (no normalisation), as in the paper.

use std::f64::consts::PI;

use burn::tensor::Tensor;

use super::burgers_reference;
use super::{
    Condition, ConditionPoints, Grid, Pde, PdeEntry, Quantity, ResidualBatch, latin_hypercube,
    linspace, map_rows, pick_without_replacement, uniform_face,
};
use crate::jet::{Jet, JetSpec};

pub const BURGERS: PdeEntry = PdeEntry {
    name: "burgers",
    build: |o| {
        Box::new(Burgers {
            condition_points: if o.reading.follows_sources() {
                ConditionPoints::ReferenceGrid
            } else {
                ConditionPoints::Continuous
            },
            ..Burgers::default()
        })
    },
    // DCGD's Burgers.py steps its StepLR in Adam's runs only (no scheduler.step() in the
    // DCGD branch).
    sources_decay_lr: |method| method == "adam",
};

#[derive(Clone, Debug)]
pub struct Burgers {
    pub nu: f64,
    pub interior_points: usize,
    pub initial_points: usize,
    pub points_per_side: usize,
    /// DCGD's sampler draws the initial and side points from the reference grid's x values at
    /// t = 0 and t values at x = ±1, without replacement (docs/readings.md).
    pub condition_points: ConditionPoints,
}

impl Default for Burgers {
    fn default() -> Self {
        Self {
            nu: 0.01 / PI,
            interior_points: 1280,
            initial_points: 42,
            points_per_side: 42,
            condition_points: ConditionPoints::ReferenceGrid,
        }
    }
}

const DOMAIN: [(f64, f64); 2] = [(-1.0, 1.0), (0.0, 1.0)];
/// Collocation points stop short of t = 1, as in the reference setup.
const INTERIOR: [(f64, f64); 2] = [(-1.0, 1.0), (0.0, 0.99)];
const X: usize = 0;
const T: usize = 1;

impl Pde for Burgers {
    fn name(&self) -> &'static str {
        BURGERS.name
    }
    fn coords(&self) -> &'static [&'static str] {
        &["x", "t"]
    }
    fn domain(&self) -> Vec<(f64, f64)> {
        DOMAIN.to_vec()
    }
    fn normalises_inputs(&self) -> bool {
        false
    }
    fn residual_spec(&self) -> JetSpec {
        JetSpec::new(2, &[T], &[X])
    }
    fn residual(&self, u: &Jet, forcing: Tensor<2>) -> Tensor<2> {
        let advection = u.value.clone().mul(u.d1(X));
        u.d1(T)
            .add(advection)
            .sub(u.d2(X).mul_scalar(self.nu))
            .sub(forcing)
    }
    fn sample_residual(&self, rng: &mut dyn rand::RngCore) -> ResidualBatch {
        let points = latin_hypercube(rng, &INTERIOR, self.interior_points);
        ResidualBatch {
            points,
            forcing: vec![0.0; self.interior_points],
        }
    }
    fn sample_conditions(&self, rng: &mut dyn rand::RngCore) -> Vec<Condition> {
        let (initial, left, right) = match self.condition_points {
            ConditionPoints::Continuous => (
                uniform_face(rng, &DOMAIN, T, 0.0, self.initial_points),
                uniform_face(rng, &DOMAIN, X, -1.0, self.points_per_side),
                uniform_face(rng, &DOMAIN, X, 1.0, self.points_per_side),
            ),
            ConditionPoints::ReferenceGrid => {
                let (xs, ts) = grid_axes(None);
                let initial = pick_without_replacement(rng, &xs, self.initial_points)
                    .into_iter()
                    .flat_map(|x| [x, 0.0])
                    .collect();
                let mut side = |x: f64| -> Vec<f64> {
                    pick_without_replacement(rng, &ts, self.points_per_side)
                        .into_iter()
                        .flat_map(|t| [x, t])
                        .collect()
                };
                (initial, side(-1.0), side(1.0))
            }
        };
        // The sources' L_b: the initial condition, and one mean over both sides (group 1).
        vec![
            Condition {
                target: map_rows(&initial, 2, |p| -(PI * p[X]).sin()),
                points: initial,
                quantity: Quantity::Value,
                group: 0,
            },
            Condition {
                target: vec![0.0; self.points_per_side],
                points: left,
                quantity: Quantity::Value,
                group: 1,
            },
            Condition {
                target: vec![0.0; self.points_per_side],
                points: right,
                quantity: Quantity::Value,
                group: 1,
            },
        ]
    }
    fn test_grid(&self, resolution: Option<usize>) -> Grid {
        let (xs, ts) = grid_axes(resolution);
        Grid::product(&[xs, ts])
    }
    fn reference(&self, points: &[f64]) -> Vec<f64> {
        map_rows(points, 2, |p| {
            burgers_reference::solution(p[X], p[T], self.nu)
        })
    }
}

/// The reference grid's axes: 256 x values by 100 t values 0, 0.01, …, 0.99 (the classic
/// burgers_shock.mat grid); `resolution` sets the points per axis instead.
fn grid_axes(resolution: Option<usize>) -> (Vec<f64>, Vec<f64>) {
    let (nx, nt) = resolution.map_or((256, 100), |n| (n, n));
    let ts = (0..nt).map(|i| 0.99 * i as f64 / (nt - 1) as f64).collect();
    (linspace(-1.0, 1.0, nx), ts)
}
