//! Klein–Gordon equations with manufactured solutions (SPEC §2). Time is the first coordinate.

use std::f64::consts::PI;

use burn::tensor::Tensor;

use super::{
    Condition, Grid, Pde, PdeEntry, Quantity, ResidualBatch, linspace, map_rows, uniform_box,
    uniform_face,
};
use crate::jet::{Jet, JetSpec};

pub const KLEIN_GORDON2D: PdeEntry = PdeEntry {
    name: "klein_gordon2d",
    build: |_| Box::new(KleinGordon2d),
    // DCGD's Klein_Gordon.py steps its StepLR in the Adam and the DCGD branch alike.
    sources_decay_lr: |_| true,
};

/// `klein_gordon2d`: u_tt − u_xx + u³ = f on (t, x) ∈ [0,1]², u = x cos(5πt) + (xt)³.
#[derive(Clone, Copy, Debug, Default)]
pub struct KleinGordon2d;

const KG2D_BOX: [(f64, f64); 2] = [(0.0, 1.0), (0.0, 1.0)];
const KG2D_POINTS: usize = 128;

fn kg2d_exact(p: &[f64]) -> f64 {
    let (t, x) = (p[0], p[1]);
    x * (5.0 * PI * t).cos() + (x * t).powi(3)
}

fn kg2d_forcing(p: &[f64]) -> f64 {
    let (t, x) = (p[0], p[1]);
    let u_tt = -25.0 * PI * PI * x * (5.0 * PI * t).cos() + 6.0 * t * x.powi(3);
    let u_xx = 6.0 * x * t.powi(3);
    u_tt - u_xx + kg2d_exact(p).powi(3)
}

impl Pde for KleinGordon2d {
    fn name(&self) -> &'static str {
        KLEIN_GORDON2D.name
    }
    fn coords(&self) -> &'static [&'static str] {
        &["t", "x"]
    }
    fn domain(&self) -> Vec<(f64, f64)> {
        KG2D_BOX.to_vec()
    }
    fn normalises_inputs(&self) -> bool {
        true
    }
    fn residual_spec(&self) -> JetSpec {
        JetSpec::new(2, &[], &[0, 1])
    }
    fn residual(&self, u: &Jet, forcing: Tensor<2>) -> Tensor<2> {
        let cube = u.value.clone().powi_scalar(3);
        u.d2(0).sub(u.d2(1)).add(cube).sub(forcing)
    }
    fn sample_residual(&self, rng: &mut dyn rand::RngCore) -> ResidualBatch {
        let points = uniform_box(rng, &KG2D_BOX, KG2D_POINTS);
        let forcing = map_rows(&points, 2, kg2d_forcing);
        ResidualBatch { points, forcing }
    }
    fn sample_conditions(&self, rng: &mut dyn rand::RngCore) -> Vec<Condition> {
        // Initial: u(0, x) = x and u_t(0, x) = 0 on the same points; edges x = 0 and x = 1.
        let initial = uniform_face(rng, &KG2D_BOX, 0, 0.0, KG2D_POINTS);
        let left = uniform_face(rng, &KG2D_BOX, 1, 0.0, KG2D_POINTS);
        let right = uniform_face(rng, &KG2D_BOX, 1, 1.0, KG2D_POINTS);
        vec![
            Condition {
                target: map_rows(&initial, 2, |p| p[1]),
                points: initial.clone(),
                quantity: Quantity::Value,
                group: 0,
            },
            Condition {
                target: vec![0.0; KG2D_POINTS],
                points: initial,
                quantity: Quantity::FirstDerivative(0),
                group: 1,
            },
            Condition {
                target: map_rows(&left, 2, kg2d_exact),
                points: left,
                quantity: Quantity::Value,
                group: 2,
            },
            Condition {
                target: map_rows(&right, 2, kg2d_exact),
                points: right,
                quantity: Quantity::Value,
                group: 3,
            },
        ]
    }
    fn test_grid(&self, resolution: Option<usize>) -> Grid {
        let n = resolution.unwrap_or(100);
        Grid::product(&[linspace(0.0, 1.0, n), linspace(0.0, 1.0, n)])
    }
    fn reference(&self, points: &[f64]) -> Vec<f64> {
        map_rows(points, 2, kg2d_exact)
    }
}

pub const KLEIN_GORDON3D: PdeEntry = PdeEntry {
    name: "klein_gordon3d",
    build: |o| {
        Box::new(KleinGordon3d {
            nc: o.nc,
            // SPINN's PINN takes raw coordinates (t in [0, 10]); spec_v1 standardised them.
            normalise: !o.reading.follows_sources(),
        })
    },
    // SPINN: constant Adam lr.
    sources_decay_lr: |_| false,
};

/// `klein_gordon3d`: u_tt − u_xx − u_yy + u² = f on (t, x, y) ∈ [0,10]×[−1,1]²,
/// u = (x+y) cos 2t + x y sin 2t, so f = u² − 4u.
#[derive(Clone, Copy, Debug)]
pub struct KleinGordon3d {
    pub nc: usize,
    /// Standardise the inputs (spec_v1) or feed them raw (the sources).
    pub normalise: bool,
}

impl Default for KleinGordon3d {
    fn default() -> Self {
        Self {
            nc: 16,
            normalise: false,
        }
    }
}

const KG3D_BOX: [(f64, f64); 3] = [(0.0, 10.0), (-1.0, 1.0), (-1.0, 1.0)];

fn kg3d_exact(p: &[f64]) -> f64 {
    let (t, x, y) = (p[0], p[1], p[2]);
    (x + y) * (2.0 * t).cos() + x * y * (2.0 * t).sin()
}

impl Pde for KleinGordon3d {
    fn name(&self) -> &'static str {
        KLEIN_GORDON3D.name
    }
    fn coords(&self) -> &'static [&'static str] {
        &["t", "x", "y"]
    }
    fn domain(&self) -> Vec<(f64, f64)> {
        KG3D_BOX.to_vec()
    }
    fn normalises_inputs(&self) -> bool {
        self.normalise
    }
    fn residual_spec(&self) -> JetSpec {
        JetSpec::new(3, &[], &[0, 1, 2])
    }
    fn residual(&self, u: &Jet, forcing: Tensor<2>) -> Tensor<2> {
        let square = u.value.clone().square();
        u.d2(0).sub(u.d2(1)).sub(u.d2(2)).add(square).sub(forcing)
    }
    fn sample_residual(&self, rng: &mut dyn rand::RngCore) -> ResidualBatch {
        let points = uniform_box(rng, &KG3D_BOX, self.nc.pow(3));
        let forcing = map_rows(&points, 3, |p| {
            let u = kg3d_exact(p);
            u * u - 4.0 * u
        });
        ResidualBatch { points, forcing }
    }
    fn sample_conditions(&self, rng: &mut dyn rand::RngCore) -> Vec<Condition> {
        // Initial values at t = 0 (no u_t condition) and the four side faces, all exact.
        let per_face = self.nc.pow(2);
        let initial = uniform_face(rng, &KG3D_BOX, 0, 0.0, per_face);
        let mut sides = Vec::with_capacity(4 * per_face * 3);
        for axis in 1..3 {
            for value in [-1.0, 1.0] {
                sides.extend(uniform_face(rng, &KG3D_BOX, axis, value, per_face));
            }
        }
        vec![
            Condition {
                target: map_rows(&initial, 3, kg3d_exact),
                points: initial,
                quantity: Quantity::Value,
                group: 0,
            },
            Condition {
                target: map_rows(&sides, 3, kg3d_exact),
                points: sides,
                quantity: Quantity::Value,
                group: 1,
            },
        ]
    }
    fn test_grid(&self, resolution: Option<usize>) -> Grid {
        let n = resolution.unwrap_or(100);
        Grid::product(&[
            linspace(0.0, 10.0, n),
            linspace(-1.0, 1.0, n),
            linspace(-1.0, 1.0, n),
        ])
    }
    fn reference(&self, points: &[f64]) -> Vec<f64> {
        map_rows(points, 3, kg3d_exact)
    }
}
