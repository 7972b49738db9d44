//! The five benchmark problems (SPEC §2). Each PDE is one self-contained file: its domain,
//! samplers, residual, conditions, exact or reference solution, test grid and [`PdeEntry`].
//! Adding a PDE is its file plus one line in [`PDES`]; [`NAMES`], [`by_name`], validation and
//! the CLI's help all read that table. [`PdeOptions`] holds the options every PDE is built with.
//!
//! Host-side work (sampling, forcing terms, targets, reference solutions) is done in `f64`;
//! only the network and its derivatives run on the device.

mod burgers;
pub mod burgers_reference;
mod helmholtz;
mod klein_gordon;
mod reading;

use burn::tensor::Tensor;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::jet::{Jet, JetSpec};

pub use burgers::Burgers;
pub use helmholtz::{Helmholtz2d, Helmholtz3d};
pub use klein_gordon::{KleinGordon2d, KleinGordon3d};
pub use reading::{BoundaryLoss, ConditionPoints, Reading, base_method};

/// A benchmark as the registry knows it; each PDE's file defines its entry.
pub struct PdeEntry {
    /// The key in `TrainConfig::pde` and sweep files.
    pub name: &'static str,
    /// Builds the benchmark.
    pub build: fn(&PdeOptions) -> Box<dyn Pde>,
    /// Whether the sources decay the lr (StepLR) in a run of this base method
    /// ([`reading::base_method`]); the `spec_v1` reading decays it in every run.
    pub sources_decay_lr: fn(&str) -> bool,
}

/// The registry: every benchmark, in the paper's order.
pub const PDES: &[PdeEntry] = &[
    helmholtz::HELMHOLTZ2D,
    klein_gordon::KLEIN_GORDON2D,
    burgers::BURGERS,
    helmholtz::HELMHOLTZ3D,
    klein_gordon::KLEIN_GORDON3D,
];

/// Every benchmark name, in registry order.
pub const NAMES: [&str; PDES.len()] = registry_names!(PDES);

/// Upper bounds that keep a typo from allocating the machine away.
pub const MAX_NC: usize = 256;
pub const MAX_TEST_GRID: usize = 1_000;

/// Options of the benchmark problems that are not part of the grid axes
/// (`TrainConfig::pde_options`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PdeOptions {
    /// Points per axis of the 3-D collocation lattice (`nc³` interior, `nc²` per face).
    pub nc: usize,
    /// Override of the test-grid resolution per axis (default: the SPEC's grid of each PDE).
    /// 3-D problems default to 100³ = 10⁶ points, which is slow on a CPU: sweeps often set 32.
    pub test_grid: Option<usize>,
    /// The reading of the benchmarks ([`Reading`]): L_b's composition, condition sampling and
    /// which methods decay the lr. Absent in JSON means `spec_v1`, the reading of every job
    /// stored before readings existed (module `reading`).
    #[serde(
        default = "Reading::when_absent",
        skip_serializing_if = "Reading::is_written_by_absence"
    )]
    pub reading: Reading,
    /// Overrides the reading's L_b composition (the ablation's `pooled_mean`); left out of the
    /// JSON when unset, so configs stored before it existed keep their canonical JSON and hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boundary_loss: Option<BoundaryLoss>,
}

impl Default for PdeOptions {
    fn default() -> Self {
        Self {
            nc: 16,
            test_grid: None,
            reading: Reading::default(),
            boundary_loss: None,
        }
    }
}

impl PdeOptions {
    /// What a config's JSON means when it has no `pde_options` at all (see [`Reading`]).
    pub(crate) fn when_absent() -> Self {
        Self {
            reading: Reading::when_absent(),
            ..Self::default()
        }
    }

    /// How L_b combines the conditions: the override, else the reading's.
    pub fn boundary_loss(&self) -> BoundaryLoss {
        self.boundary_loss
            .unwrap_or_else(|| self.reading.boundary_loss())
    }

    /// Checks both options; `prefix` is this struct's path in the config (`pde_options`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let nc = self.nc;
        if !(2..=MAX_NC).contains(&nc) {
            return Err(ConfigError::new(
                format!("{prefix}.nc"),
                format!("must be in 2..={MAX_NC}, got {nc}"),
            ));
        }
        if let Some(g) = self.test_grid
            && !(2..=MAX_TEST_GRID).contains(&g)
        {
            return Err(ConfigError::new(
                format!("{prefix}.test_grid"),
                format!("must be in 2..={MAX_TEST_GRID}, got {g}"),
            ));
        }
        Ok(())
    }
}

/// Whether StepLR applies to a run of `method` on the benchmark `pde` under `reading`.
pub fn decays_lr(reading: Reading, pde: &str, method: &str) -> bool {
    match reading {
        Reading::SpecV1 => true,
        Reading::Paper => PDES
            .iter()
            .find(|p| p.name == pde)
            .is_none_or(|p| (p.sources_decay_lr)(base_method(method))),
    }
}

/// Checks that `name` is a benchmark of the registry; the error names the field `pde`.
pub fn validate_name(name: &str) -> Result<(), ConfigError> {
    if NAMES.contains(&name) {
        Ok(())
    } else {
        Err(ConfigError::new(
            "pde",
            format!("unknown PDE {name:?} (known: {})", NAMES.join(", ")),
        ))
    }
}

/// Collocation points for the residual loss, with the forcing term f at each point.
#[derive(Clone, Debug)]
pub struct ResidualBatch {
    /// Row-major `[n, dim]` raw coordinates.
    pub points: Vec<f64>,
    pub forcing: Vec<f64>,
}

/// What a boundary or initial condition prescribes at its points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// u itself.
    Value,
    /// ∂u/∂x_axis (Klein–Gordon's u_t(0, x) = 0).
    FirstDerivative(usize),
}

/// One term of L_b: mean((quantity − target)²) over its points.
#[derive(Clone, Debug)]
pub struct Condition {
    pub points: Vec<f64>,
    pub target: Vec<f64>,
    pub quantity: Quantity,
    /// Conditions of one group share one mean under [`BoundaryLoss::Grouped`]: the point sets
    /// that the paper's sources pool into one loss term (docs/readings.md).
    pub group: usize,
}

/// A regular test grid: the coordinates of every point, row-major, and the size per axis.
#[derive(Clone, Debug)]
pub struct Grid {
    pub points: Vec<f64>,
    pub shape: Vec<usize>,
}

impl Grid {
    /// The tensor product of per-axis coordinate lists; the last axis varies fastest.
    pub fn product(axes: &[Vec<f64>]) -> Grid {
        let shape: Vec<usize> = axes.iter().map(Vec::len).collect();
        let n: usize = shape.iter().product();
        let mut points = Vec::with_capacity(n * axes.len());
        for i in 0..n {
            let mut rest = i;
            let mut coords = vec![0.0; axes.len()];
            for (a, axis) in axes.iter().enumerate().rev() {
                coords[a] = axis[rest % axis.len()];
                rest /= axis.len();
            }
            points.extend(coords);
        }
        Grid { points, shape }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A benchmark problem: everything the trainer needs to know about one PDE.
pub trait Pde: Send + Sync {
    fn name(&self) -> &'static str;
    /// Coordinate names in input order (burgers: `x`, `t`).
    fn coords(&self) -> &'static [&'static str];
    /// `[lo, hi]` per input axis.
    fn domain(&self) -> Vec<(f64, f64)>;
    /// Whether inputs are standardised with the mean and standard deviation of the uniform
    /// distribution on the domain (Helmholtz, Klein–Gordon) or fed raw (Burgers).
    fn normalises_inputs(&self) -> bool;
    /// The derivatives the residual needs.
    fn residual_spec(&self) -> JetSpec;
    /// The residual N[u] − f at each collocation point, `[n, 1]`.
    fn residual(&self, u: &Jet, forcing: Tensor<2>) -> Tensor<2>;
    /// Fresh collocation points (resampled every iteration).
    fn sample_residual(&self, rng: &mut dyn rand::RngCore) -> ResidualBatch;
    /// Fresh boundary and initial-condition points, one entry per term of L_b.
    fn sample_conditions(&self, rng: &mut dyn rand::RngCore) -> Vec<Condition>;
    /// The test grid (`resolution` overrides the points per axis).
    fn test_grid(&self, resolution: Option<usize>) -> Grid;
    /// The exact or reference solution at row-major points.
    fn reference(&self, points: &[f64]) -> Vec<f64>;

    fn dim(&self) -> usize {
        self.coords().len()
    }

    /// Affine input map: x̂ = (x − shift) · scale per axis.
    fn input_map(&self) -> (Vec<f64>, Vec<f64>) {
        if self.normalises_inputs() {
            self.domain()
                .iter()
                .map(|&(lo, hi)| ((lo + hi) / 2.0, 12f64.sqrt() / (hi - lo)))
                .unzip()
        } else {
            (vec![0.0; self.dim()], vec![1.0; self.dim()])
        }
    }
}

/// The benchmark called `name`, built with `options`.
pub fn by_name(name: &str, options: &PdeOptions) -> Option<Box<dyn Pde>> {
    PDES.iter()
        .find(|p| p.name == name)
        .map(|p| (p.build)(options))
}

// ---- sampling helpers shared by the PDE files ----

/// `n` points uniform in the box `domain`, row-major.
pub(crate) fn uniform_box(
    rng: &mut dyn rand::RngCore,
    domain: &[(f64, f64)],
    n: usize,
) -> Vec<f64> {
    let mut pts = Vec::with_capacity(n * domain.len());
    for _ in 0..n {
        for &(lo, hi) in domain {
            pts.push(lo + (hi - lo) * rng.random::<f64>());
        }
    }
    pts
}

/// `n` points uniform on the face `axis = value` of the box `domain`.
pub(crate) fn uniform_face(
    rng: &mut dyn rand::RngCore,
    domain: &[(f64, f64)],
    axis: usize,
    value: f64,
    n: usize,
) -> Vec<f64> {
    let mut face = domain.to_vec();
    face[axis] = (value, value);
    uniform_box(rng, &face, n)
}

/// `k` distinct values of `values` in random order (a partial Fisher–Yates shuffle with our
/// RNG, so the draw is reproducible); all of them, shuffled, when `k` exceeds their number.
pub(crate) fn pick_without_replacement(
    rng: &mut dyn rand::RngCore,
    values: &[f64],
    k: usize,
) -> Vec<f64> {
    let mut pool = values.to_vec();
    let k = k.min(pool.len());
    for i in 0..k {
        let j = rng.random_range(i..pool.len());
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool
}

/// Latin hypercube sample of `n` points in `domain`: each axis is cut into `n` equal strata,
/// each stratum holds exactly one point, strata are paired by independent permutations.
pub(crate) fn latin_hypercube(
    rng: &mut dyn rand::RngCore,
    domain: &[(f64, f64)],
    n: usize,
) -> Vec<f64> {
    let mut pts = vec![0.0; n * domain.len()];
    for (a, &(lo, hi)) in domain.iter().enumerate() {
        let mut strata: Vec<usize> = (0..n).collect();
        // Fisher–Yates with our RNG so the permutation is reproducible.
        for i in (1..n).rev() {
            let j = rng.random_range(0..=i);
            strata.swap(i, j);
        }
        for (i, &s) in strata.iter().enumerate() {
            let u = (s as f64 + rng.random::<f64>()) / n as f64;
            pts[i * domain.len() + a] = lo + (hi - lo) * u;
        }
    }
    pts
}

/// Applies the affine input map x̂ = (x − shift) · scale to row-major points.
pub fn normalise(points: &[f64], shift: &[f64], scale: &[f64]) -> Vec<f64> {
    let dim = shift.len();
    points
        .chunks_exact(dim)
        .flat_map(|p| (0..dim).map(move |a| (p[a] - shift[a]) * scale[a]))
        .collect()
}

/// `n` evenly spaced values from `lo` to `hi` inclusive.
pub fn linspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![lo];
    }
    (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect()
}

/// Evaluates `f` on each row of row-major `points` of dimension `dim`.
pub(crate) fn map_rows(points: &[f64], dim: usize, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    points.chunks_exact(dim).map(f).collect()
}
