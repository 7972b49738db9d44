//! Helmholtz equation Δu + k²u = f with a manufactured solution, in 2-D and 3-D (SPEC §2).
//! Helmholtz2d is the paper's hard case for plain Adam: a₂ = 4 makes the solution oscillate
//! four times along y.

use std::f64::consts::PI;

use burn::tensor::Tensor;

use super::{
    Condition, Grid, Pde, PdeEntry, Quantity, ResidualBatch, linspace, map_rows, uniform_box,
    uniform_face,
};
use crate::jet::{Jet, JetSpec};

pub const HELMHOLTZ2D: PdeEntry = PdeEntry {
    name: "helmholtz2d",
    build: |_| Box::new(Helmholtz2d::default()),
    // DCGD's Helmholtz.py steps its StepLR in the Adam and the DCGD branch alike.
    sources_decay_lr: |_| true,
};

/// `helmholtz2d`: u_xx + u_yy + k²u = f on [−1,1]², u = sin(a₁πx) sin(a₂πy), u = 0 on the edges.
#[derive(Clone, Debug)]
pub struct Helmholtz2d {
    pub k: f64,
    pub a1: f64,
    pub a2: f64,
    pub interior_points: usize,
    pub points_per_edge: usize,
}

impl Default for Helmholtz2d {
    fn default() -> Self {
        Self {
            k: 1.0,
            a1: 1.0,
            a2: 4.0,
            interior_points: 1280,
            points_per_edge: 128,
        }
    }
}

impl Helmholtz2d {
    fn exact(&self, p: &[f64]) -> f64 {
        (self.a1 * PI * p[0]).sin() * (self.a2 * PI * p[1]).sin()
    }
}

const BOX2: [(f64, f64); 2] = [(-1.0, 1.0), (-1.0, 1.0)];
const BOX3: [(f64, f64); 3] = [(-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0)];

/// Δu + k²u − f, the residual shared by both dimensions.
fn helmholtz_residual(u: &Jet, k: f64, forcing: Tensor<2>) -> Tensor<2> {
    let mut r = u.value.clone().mul_scalar(k * k).sub(forcing);
    for axis in 0..u.d2.len() {
        r = r.add(u.d2(axis));
    }
    r
}

impl Pde for Helmholtz2d {
    fn name(&self) -> &'static str {
        HELMHOLTZ2D.name
    }
    fn coords(&self) -> &'static [&'static str] {
        &["x", "y"]
    }
    fn domain(&self) -> Vec<(f64, f64)> {
        BOX2.to_vec()
    }
    fn normalises_inputs(&self) -> bool {
        true
    }
    fn residual_spec(&self) -> JetSpec {
        JetSpec::new(2, &[], &[0, 1])
    }
    fn residual(&self, u: &Jet, forcing: Tensor<2>) -> Tensor<2> {
        helmholtz_residual(u, self.k, forcing)
    }
    fn sample_residual(&self, rng: &mut dyn rand::RngCore) -> ResidualBatch {
        let points = uniform_box(rng, &BOX2, self.interior_points);
        let coef = self.k * self.k - (self.a1 * PI).powi(2) - (self.a2 * PI).powi(2);
        let forcing = map_rows(&points, 2, |p| coef * self.exact(p));
        ResidualBatch { points, forcing }
    }
    fn sample_conditions(&self, rng: &mut dyn rand::RngCore) -> Vec<Condition> {
        // L_b = Σ over the four edges of mean(u²).
        let mut edges = Vec::with_capacity(4);
        for axis in 0..2 {
            for value in [-1.0, 1.0] {
                let points = uniform_face(rng, &BOX2, axis, value, self.points_per_edge);
                let target = vec![0.0; self.points_per_edge];
                edges.push(Condition {
                    points,
                    target,
                    quantity: Quantity::Value,
                    group: edges.len(),
                });
            }
        }
        edges
    }
    fn test_grid(&self, resolution: Option<usize>) -> Grid {
        let n = resolution.unwrap_or(100);
        Grid::product(&[linspace(-1.0, 1.0, n), linspace(-1.0, 1.0, n)])
    }
    fn reference(&self, points: &[f64]) -> Vec<f64> {
        map_rows(points, 2, |p| self.exact(p))
    }
}

pub const HELMHOLTZ3D: PdeEntry = PdeEntry {
    name: "helmholtz3d",
    build: |o| {
        Box::new(Helmholtz3d {
            nc: o.nc,
            // SPINN's PINN takes raw coordinates; spec_v1 standardised them.
            normalise: !o.reading.follows_sources(),
            ..Default::default()
        })
    },
    // SPINN (and DCGD's helmholtz3d variant): constant Adam lr.
    sources_decay_lr: |_| false,
};

/// `helmholtz3d`: Δu + k²u = f on [−1,1]³, u = sin(4πx) sin(4πy) sin(3πz), u = 0 on the faces.
#[derive(Clone, Debug)]
pub struct Helmholtz3d {
    pub k: f64,
    /// Points per axis of the lattice: nc³ interior, nc² per face.
    pub nc: usize,
    /// Standardise the inputs (spec_v1) or feed them raw (the sources).
    pub normalise: bool,
}

impl Default for Helmholtz3d {
    fn default() -> Self {
        Self {
            k: 1.0,
            nc: 16,
            normalise: false,
        }
    }
}

const HELMHOLTZ3D_FREQ: [f64; 3] = [4.0, 4.0, 3.0];

fn helmholtz3d_exact(p: &[f64]) -> f64 {
    p.iter()
        .zip(HELMHOLTZ3D_FREQ)
        .map(|(x, a)| (a * PI * x).sin())
        .product()
}

impl Pde for Helmholtz3d {
    fn name(&self) -> &'static str {
        HELMHOLTZ3D.name
    }
    fn coords(&self) -> &'static [&'static str] {
        &["x", "y", "z"]
    }
    fn domain(&self) -> Vec<(f64, f64)> {
        BOX3.to_vec()
    }
    fn normalises_inputs(&self) -> bool {
        self.normalise
    }
    fn residual_spec(&self) -> JetSpec {
        JetSpec::new(3, &[], &[0, 1, 2])
    }
    fn residual(&self, u: &Jet, forcing: Tensor<2>) -> Tensor<2> {
        helmholtz_residual(u, self.k, forcing)
    }
    fn sample_residual(&self, rng: &mut dyn rand::RngCore) -> ResidualBatch {
        let points = uniform_box(rng, &BOX3, self.nc.pow(3));
        let coef = self.k * self.k
            - HELMHOLTZ3D_FREQ
                .iter()
                .map(|a| (a * PI).powi(2))
                .sum::<f64>();
        let forcing = map_rows(&points, 3, |p| coef * helmholtz3d_exact(p));
        ResidualBatch { points, forcing }
    }
    fn sample_conditions(&self, rng: &mut dyn rand::RngCore) -> Vec<Condition> {
        // L_b = one mean over all face points (SPEC §2).
        let per_face = self.nc.pow(2);
        let mut points = Vec::with_capacity(6 * per_face * 3);
        for axis in 0..3 {
            for value in [-1.0, 1.0] {
                points.extend(uniform_face(rng, &BOX3, axis, value, per_face));
            }
        }
        let target = vec![0.0; 6 * per_face];
        vec![Condition {
            points,
            target,
            quantity: Quantity::Value,
            group: 0,
        }]
    }
    fn test_grid(&self, resolution: Option<usize>) -> Grid {
        let n = resolution.unwrap_or(100);
        let axis = linspace(-1.0, 1.0, n);
        Grid::product(&[axis.clone(), axis.clone(), axis])
    }
    fn reference(&self, points: &[f64]) -> Vec<f64> {
        map_rows(points, 3, helmholtz3d_exact)
    }
}
