//! An independent f64 host reference for trainer-level tests: the MLP of SPEC §1 with its
//! input derivatives by forward-mode jets written out here, each PDE's residual, forcing and
//! conditions from the SPEC §2 table (not from the crate's PDE files), the losses L_r and L_b,
//! and their gradients w.r.t. θ by central finite differences.
//!
//! From the crate only the sampled point locations are taken (the trainer's batches are
//! reproduced with its RNG streams); what is computed at those points is computed here.

use std::f64::consts::PI;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use trainer_core::pde::{Condition, Quantity, ResidualBatch};

use super::benchmark;

/// A benchmark as SPEC §2 defines it: coordinate order, domain, input normalisation.
#[derive(Clone, Copy, Debug)]
pub struct HostPde {
    pub name: &'static str,
    pub domain: &'static [(f64, f64)],
    /// Inputs standardised with the mean and std of U(domain) (all but Burgers).
    pub normalised: bool,
}

pub const NU: f64 = 0.01 / PI;

/// The benchmark as the default reading (`paper`, docs/readings.md) defines it.
pub fn host_pde(name: &str) -> HostPde {
    host_pde_read(name, false)
}

/// The benchmark as a reading defines it: `spec_v1` standardises the 3-D inputs too, the
/// sources (SPINN) feed them raw.
pub fn host_pde_read(name: &str, spec_v1: bool) -> HostPde {
    const SQUARE: &[(f64, f64)] = &[(-1.0, 1.0), (-1.0, 1.0)];
    const CUBE: &[(f64, f64)] = &[(-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0)];
    match name {
        "helmholtz2d" => HostPde {
            name: "helmholtz2d",
            domain: SQUARE,
            normalised: true,
        },
        // (t, x)
        "klein_gordon2d" => HostPde {
            name: "klein_gordon2d",
            domain: &[(0.0, 1.0), (0.0, 1.0)],
            normalised: true,
        },
        // (x, t), raw inputs
        "burgers" => HostPde {
            name: "burgers",
            domain: &[(-1.0, 1.0), (0.0, 1.0)],
            normalised: false,
        },
        "helmholtz3d" => HostPde {
            name: "helmholtz3d",
            domain: CUBE,
            normalised: spec_v1,
        },
        // (t, x, y)
        "klein_gordon3d" => HostPde {
            name: "klein_gordon3d",
            domain: &[(0.0, 10.0), (-1.0, 1.0), (-1.0, 1.0)],
            normalised: spec_v1,
        },
        other => panic!("no host reference for {other}"),
    }
}

impl HostPde {
    pub fn dim(&self) -> usize {
        self.domain.len()
    }

    /// (μ, σ) per axis: x̂ = (x − μ)/σ.
    fn input_map(&self) -> Vec<(f64, f64)> {
        self.domain
            .iter()
            .map(|&(lo, hi)| {
                if self.normalised {
                    ((lo + hi) / 2.0, (hi - lo) / 12f64.sqrt())
                } else {
                    (0.0, 1.0)
                }
            })
            .collect()
    }

    /// The exact solution (not Burgers, which has no closed form).
    pub fn exact(&self, p: &[f64]) -> f64 {
        match self.name {
            "helmholtz2d" => (PI * p[0]).sin() * (4.0 * PI * p[1]).sin(),
            "klein_gordon2d" => {
                let (t, x) = (p[0], p[1]);
                x * (5.0 * PI * t).cos() + (x * t).powi(3)
            }
            "helmholtz3d" => {
                (4.0 * PI * p[0]).sin() * (4.0 * PI * p[1]).sin() * (3.0 * PI * p[2]).sin()
            }
            "klein_gordon3d" => {
                let (t, x, y) = (p[0], p[1], p[2]);
                (x + y) * (2.0 * t).cos() + x * y * (2.0 * t).sin()
            }
            other => panic!("{other} has no closed-form solution"),
        }
    }

    /// The forcing f at a collocation point, from SPEC §2.
    pub fn forcing(&self, p: &[f64]) -> f64 {
        let u = || self.exact(p);
        match self.name {
            "helmholtz2d" => (1.0 - PI * PI - 16.0 * PI * PI) * u(),
            "helmholtz3d" => (1.0 - 41.0 * PI * PI) * u(),
            "klein_gordon2d" => {
                let (t, x) = (p[0], p[1]);
                let u_tt = -25.0 * PI * PI * x * (5.0 * PI * t).cos() + 6.0 * t * x.powi(3);
                let u_xx = 6.0 * x * t.powi(3);
                u_tt - u_xx + u().powi(3)
            }
            "klein_gordon3d" => u() * u() - 4.0 * u(),
            "burgers" => 0.0,
            other => unreachable!("{other}"),
        }
    }

    /// N[u] − f from the network's jet at point `p`.
    pub fn residual(&self, j: &PointJet, p: &[f64]) -> f64 {
        let f = self.forcing(p);
        match self.name {
            "helmholtz2d" | "helmholtz3d" => j.d2.iter().sum::<f64>() + j.u - f,
            "klein_gordon2d" => j.d2[0] - j.d2[1] + j.u.powi(3) - f,
            "klein_gordon3d" => j.d2[0] - j.d2[1] - j.d2[2] + j.u * j.u - f,
            "burgers" => j.d1[1] + j.u * j.d1[0] - NU * j.d2[0] - f,
            other => unreachable!("{other}"),
        }
    }

    /// What each of the crate's conditions must prescribe (SPEC §2), in the crate's order:
    /// the quantity and the target at a point.
    pub fn conditions(&self) -> Vec<(Quantity, Target)> {
        let zero: Target = |_, _| 0.0;
        let exact: Target = |h, p| h.exact(p);
        let v = Quantity::Value;
        match self.name {
            // u = 0 on the four edges, one mean per edge.
            "helmholtz2d" => vec![(v, zero); 4],
            // u = 0 on the six faces, one mean over all of them.
            "helmholtz3d" => vec![(v, zero)],
            // u(0, x) = x, u_t(0, x) = 0, u(t, 0) and u(t, 1) exact.
            "klein_gordon2d" => vec![
                (v, |_, p| p[1]),
                (Quantity::FirstDerivative(0), zero),
                (v, exact),
                (v, exact),
            ],
            // u(0, x) = −sin πx, u(t, ±1) = 0.
            "burgers" => vec![(v, |_, p| -(PI * p[0]).sin()), (v, zero), (v, zero)],
            // Initial values and the four side faces, exact.
            "klein_gordon3d" => vec![(v, exact), (v, exact)],
            other => unreachable!("{other}"),
        }
    }
}

impl HostPde {
    /// Which of [`Self::conditions`] the paper's sources pool into one mean, as
    /// docs/readings.md records it (written here from the docs, not from the PDE files).
    pub fn source_groups(&self) -> Vec<usize> {
        match self.name {
            "helmholtz2d" => vec![0, 1, 2, 3],
            "helmholtz3d" => vec![0],
            "klein_gordon2d" => vec![0, 1, 2, 3],
            // L_ic, and one mean over both sides.
            "burgers" => vec![0, 1, 1],
            "klein_gordon3d" => vec![0, 1],
            other => unreachable!("{other}"),
        }
    }
}

/// A condition's target value at a point.
pub type Target = fn(&HostPde, &[f64]) -> f64;

/// u and its first and diagonal second derivatives w.r.t. the raw coordinates at one point.
#[derive(Clone, Debug)]
pub struct PointJet {
    pub u: f64,
    pub d1: Vec<f64>,
    pub d2: Vec<f64>,
}

/// The MLP `dims[0] → … → 1` at one raw point, θ laid out layer by layer as row-major
/// W `[d_in, d_out]` (z = a·W + b) then b, tanh between layers (SPEC §1).
pub fn point_jet(h: &HostPde, dims: &[usize], theta: &[f64], p: &[f64]) -> PointJet {
    let dim = h.dim();
    let map = h.input_map();
    // Streams: a (value), a1[axis], a2[axis]; the input's derivative along axis is e_axis/σ.
    let mut a: Vec<f64> = (0..dim).map(|i| (p[i] - map[i].0) / map[i].1).collect();
    let mut a1: Vec<Vec<f64>> = (0..dim)
        .map(|ax| {
            (0..dim)
                .map(|i| if i == ax { 1.0 / map[ax].1 } else { 0.0 })
                .collect()
        })
        .collect();
    let mut a2: Vec<Vec<f64>> = vec![vec![0.0; dim]; dim];
    let mut offset = 0;
    let layers = dims.len() - 1;
    for l in 0..layers {
        let (d_in, d_out) = (dims[l], dims[l + 1]);
        let w = &theta[offset..offset + d_in * d_out];
        let b = &theta[offset + d_in * d_out..offset + d_in * d_out + d_out];
        offset += d_in * d_out + d_out;
        let times_w = |v: &[f64]| -> Vec<f64> {
            (0..d_out)
                .map(|j| (0..d_in).map(|i| v[i] * w[i * d_out + j]).sum())
                .collect()
        };
        let mut z = times_w(&a);
        for (zj, bj) in z.iter_mut().zip(b) {
            *zj += bj;
        }
        let z1: Vec<Vec<f64>> = a1.iter().map(|v| times_w(v)).collect();
        let z2: Vec<Vec<f64>> = a2.iter().map(|v| times_w(v)).collect();
        if l + 1 == layers {
            return PointJet {
                u: z[0],
                d1: z1.iter().map(|v| v[0]).collect(),
                d2: z2.iter().map(|v| v[0]).collect(),
            };
        }
        a = z.iter().map(|x| x.tanh()).collect();
        let s: Vec<f64> = a.iter().map(|x| 1.0 - x * x).collect();
        a2 = (0..dim)
            .map(|ax| {
                (0..d_out)
                    .map(|j| s[j] * z2[ax][j] - 2.0 * a[j] * s[j] * z1[ax][j] * z1[ax][j])
                    .collect()
            })
            .collect();
        a1 = (0..dim)
            .map(|ax| (0..d_out).map(|j| s[j] * z1[ax][j]).collect())
            .collect();
    }
    unreachable!("the last layer returns")
}

/// L_r = mean over the points of the squared residual.
pub fn residual_loss(h: &HostPde, dims: &[usize], theta: &[f64], points: &[f64]) -> f64 {
    let rows: Vec<&[f64]> = points.chunks_exact(h.dim()).collect();
    let sum: f64 = rows
        .iter()
        .map(|p| h.residual(&point_jet(h, dims, theta, p), p).powi(2))
        .sum();
    sum / rows.len() as f64
}

/// L_b = Σ over the conditions of mean((quantity − target)²), quantities and targets from SPEC.
pub fn boundary_loss(h: &HostPde, dims: &[usize], theta: &[f64], conditions: &[Condition]) -> f64 {
    condition_errors(h, dims, theta, conditions)
        .iter()
        .map(|(sum, n)| sum / *n as f64)
        .sum()
}

/// L_b as one mean over the points of every condition (`BoundaryLoss::PooledMean`).
pub fn pooled_boundary_loss(
    h: &HostPde,
    dims: &[usize],
    theta: &[f64],
    conditions: &[Condition],
) -> f64 {
    let errors = condition_errors(h, dims, theta, conditions);
    let points: usize = errors.iter().map(|(_, n)| n).sum();
    errors.iter().map(|(sum, _)| sum).sum::<f64>() / points as f64
}

/// L_b as the paper's sources compose it (`BoundaryLoss::Grouped`): the conditions of one
/// group of [`HostPde::source_groups`] share one mean, and the groups' means add up.
pub fn grouped_boundary_loss(
    h: &HostPde,
    dims: &[usize],
    theta: &[f64],
    conditions: &[Condition],
) -> f64 {
    let errors = condition_errors(h, dims, theta, conditions);
    let groups = h.source_groups();
    let mut total = 0.0;
    for g in 0..=*groups.iter().max().expect("at least one condition") {
        let members = errors.iter().zip(&groups).filter(|(_, gi)| **gi == g);
        let (sum, n) = members.fold((0.0, 0), |(s, n), ((es, en), _)| (s + es, n + en));
        if n > 0 {
            total += sum / n as f64;
        }
    }
    total
}

/// Per condition: Σ (quantity − target)² over its points, and its number of points.
fn condition_errors(
    h: &HostPde,
    dims: &[usize],
    theta: &[f64],
    conditions: &[Condition],
) -> Vec<(f64, usize)> {
    let spec = h.conditions();
    assert_eq!(
        conditions.len(),
        spec.len(),
        "{}: number of condition terms",
        h.name
    );
    conditions
        .iter()
        .zip(&spec)
        .map(|(c, (quantity, target))| {
            assert_eq!(c.quantity, *quantity, "{}: condition quantity", h.name);
            let rows: Vec<&[f64]> = c.points.chunks_exact(h.dim()).collect();
            let sum: f64 = rows
                .iter()
                .map(|p| {
                    let j = point_jet(h, dims, theta, p);
                    let q = match quantity {
                        Quantity::Value => j.u,
                        Quantity::FirstDerivative(axis) => j.d1[*axis],
                    };
                    (q - target(h, p)).powi(2)
                })
                .sum();
            (sum, rows.len())
        })
        .collect()
}

/// ∇θ f by fourth-order central differences in f64 (h = 1e-4: truncation ~h⁴, rounding
/// ~1e-16·|f|/h, both far below the 1e-6 the tests ask for).
pub fn fd_gradient(theta: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-4;
    let mut t = theta.to_vec();
    let mut at = |k: usize, s: f64| {
        t[k] = theta[k] + s;
        let v = f(&t);
        t[k] = theta[k];
        v
    };
    (0..theta.len())
        .map(|k| (8.0 * (at(k, h) - at(k, -h)) - (at(k, 2.0 * h) - at(k, -2.0 * h))) / (12.0 * h))
        .collect()
}

/// The trainer's sampling RNG (stream 1 of the seed) and its first `n` batches, drawn as the
/// trainer draws them: residual points, then the conditions, once per iteration.
pub fn trainer_batches(
    name: &str,
    seed: u64,
    nc: usize,
    n: usize,
) -> Vec<(ResidualBatch, Vec<Condition>)> {
    let pde = benchmark(name, nc);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    (0..n)
        .map(|_| {
            let r = pde.sample_residual(&mut rng);
            let c = pde.sample_conditions(&mut rng);
            (r, c)
        })
        .collect()
}

// ---- f64 vector algebra ----

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// ‖a − b‖ / ‖b‖.
pub fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    norm(&d) / norm(b)
}

/// The long-tailed straight-through slope S'(z) of SPEC §4.
pub fn ste_slope(z: f64) -> f64 {
    let a = z.abs();
    if a <= 0.4 {
        2.0 - 4.0 * a
    } else if a <= 1.0 {
        0.4
    } else {
        0.0
    }
}

/// Layer sizes `[in, width × depth, 1]`.
pub fn dims(input: usize, width: usize, depth: usize) -> Vec<usize> {
    let mut d = vec![input];
    d.extend(std::iter::repeat_n(width, depth));
    d.push(1);
    d
}

/// ModSync's pull-back factor ∂θ̃/∂θ at thresholds 0 (SPEC §4): every non-zero weight is kept
/// (M = 1) and Z = |W|, so a weight's factor is 1 + |W| S'(|W|); biases pass unchanged.
pub fn modsync_factor_at_zero_thresholds(dims: &[usize], theta: &[f64]) -> Vec<f64> {
    let mut f = vec![1.0; theta.len()];
    let mut offset = 0;
    for l in 0..dims.len() - 1 {
        let n_w = dims[l] * dims[l + 1];
        for k in offset..offset + n_w {
            let w = theta[k];
            assert!(w != 0.0, "a zero weight would be masked");
            f[k] = 1.0 + w.abs() * ste_slope(w.abs());
        }
        offset += n_w + dims[l + 1];
    }
    f
}
