//! A step's points: sampled on the host from the run's RNG ([`RawBatch`]), normalised and
//! uploaded for one network ([`Batch`]) or for every network of a pack at once
//! ([`PackBatch`], `[K, n, ·]`, of which each network's [`Batch`] is a view).

use burn::tensor::Tensor;

use super::Trainer;
use crate::pde::{self, Condition, Quantity, ResidualBatch};

/// Points of one iteration of one network, on the device and normalised (views of a
/// [`PackBatch`]).
pub(super) struct Batch {
    pub(super) residual_x: Tensor<2>,
    pub(super) forcing: Tensor<2>,
    /// All value conditions in one forward: inputs, targets, and each row's weight in L_b
    /// (its condition's scale / its condition's n).
    pub(super) values: Option<(Tensor<2>, Tensor<2>, Tensor<2>)>,
    /// Derivative conditions, one forward each: inputs, targets, axis, and the factor on the
    /// condition's mean ([`crate::pde::BoundaryLoss::condition_scales`]).
    pub(super) derivatives: Vec<(Tensor<2>, Tensor<2>, usize, f64)>,
}

impl Batch {
    /// The boundary inputs in NTK order: the value block, then each derivative condition,
    /// with the derivative axis (None = u itself).
    pub(super) fn boundary_blocks(&self) -> Vec<(Tensor<2>, Option<usize>)> {
        self.values
            .iter()
            .map(|(x, _, _)| (x.clone(), None))
            .chain(
                self.derivatives
                    .iter()
                    .map(|(x, _, a, _)| (x.clone(), Some(*a))),
            )
            .collect()
    }
}

/// One iteration's points on the host, before normalisation.
pub(super) struct RawBatch {
    pub(super) residual: ResidualBatch,
    pub(super) conditions: Vec<Condition>,
}

impl RawBatch {
    /// The value conditions (stacked into one forward) and the derivative conditions (one
    /// forward each), each in sampling order.
    pub(super) fn partition(&self) -> (Vec<&Condition>, Vec<&Condition>) {
        self.conditions
            .iter()
            .partition(|c| c.quantity == Quantity::Value)
    }

    /// Host twin of [`Batch::boundary_blocks`]: raw points per block, with the derivative axis.
    pub(super) fn boundary_blocks(&self) -> Vec<(Vec<f64>, Option<usize>)> {
        let (values, derivatives) = self.partition();
        let stacked: Vec<f64> = values.iter().flat_map(|c| c.points.clone()).collect();
        (!values.is_empty())
            .then_some((stacked, None))
            .into_iter()
            .chain(derivatives.iter().map(|c| match c.quantity {
                Quantity::FirstDerivative(a) => (c.points.clone(), Some(a)),
                Quantity::Value => unreachable!("partitioned"),
            }))
            .collect()
    }
}

/// The points of one step of every network of a pack, normalised, stacked `[K, n, ·]`.
pub(super) struct PackBatch {
    pub residual_x: Tensor<3>,
    pub forcing: Tensor<3>,
    /// All value conditions of a network in one block: inputs, targets, and each row's weight
    /// in L_b.
    pub values: Option<(Tensor<3>, Tensor<3>, Tensor<3>)>,
    /// Derivative conditions, one block each: inputs, targets, axis, factor on their mean.
    pub derivatives: Vec<(Tensor<3>, Tensor<3>, usize, f64)>,
}

/// One network's points on the host, normalised, in [`PackBatch`]'s blocks.
struct HostBatch {
    residual: Vec<f64>,
    forcing: Vec<f64>,
    values: Option<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    derivatives: Vec<(Vec<f64>, Vec<f64>, usize, f64)>,
}

impl HostBatch {
    /// All value conditions stacked in one block (in order), each derivative condition in its
    /// own.
    fn new(lead: &Trainer, raw: &RawBatch) -> Self {
        let norm = |p: &[f64]| pde::normalise(p, &lead.input_shift, &lead.input_scale);
        let (value_conds, deriv_conds) = raw.partition();
        let counts_and_groups: Vec<(usize, usize)> = value_conds
            .iter()
            .chain(&deriv_conds)
            .map(|c| (c.target.len(), c.group))
            .collect();
        let scales = lead
            .config
            .pde_options
            .boundary_loss()
            .condition_scales(&counts_and_groups);
        let (value_scales, deriv_scales) = scales.split_at(value_conds.len());
        let values = (!value_conds.is_empty()).then(|| {
            let mut points = Vec::new();
            let mut target = Vec::new();
            let mut weight = Vec::new();
            for (c, scale) in value_conds.iter().zip(value_scales) {
                let n = c.target.len();
                points.extend(norm(&c.points));
                target.extend_from_slice(&c.target);
                weight.extend(std::iter::repeat_n(scale / n as f64, n));
            }
            (points, target, weight)
        });
        let derivatives = deriv_conds
            .iter()
            .zip(deriv_scales)
            .map(|(c, &scale)| {
                let Quantity::FirstDerivative(axis) = c.quantity else {
                    unreachable!("partitioned")
                };
                (norm(&c.points), c.target.clone(), axis, scale)
            })
            .collect();
        Self {
            residual: norm(&raw.residual.points),
            forcing: raw.residual.forcing.clone(),
            values,
            derivatives,
        }
    }
}

impl PackBatch {
    /// Uploads each network's points `raws` (one per network, in pack order) in one tensor per
    /// block. `lead` is any member: they share the PDE and its input map.
    pub fn upload(lead: &Trainer, raws: &[RawBatch]) -> Self {
        let hosts: Vec<HostBatch> = raws.iter().map(|r| HostBatch::new(lead, r)).collect();
        let dim = lead.pde.dim();
        let k = hosts.len();
        let ctx = &lead.ctx;
        // Rows `cols`-wide gathered from every network: [K, n, cols].
        let stacked = |part: &dyn Fn(&HostBatch) -> &[f64], cols: usize| {
            let flat: Vec<f64> = hosts.iter().flat_map(|h| part(h).iter().copied()).collect();
            let n = part(&hosts[0]).len() / cols;
            debug_assert!(hosts.iter().all(|h| part(h).len() == n * cols));
            ctx.tensor3(&flat, [k, n, cols])
        };
        let values = hosts[0].values.as_ref().map(|_| {
            (
                stacked(&|h| v_ref(h).0, dim),
                stacked(&|h| v_ref(h).1, 1),
                stacked(&|h| v_ref(h).2, 1),
            )
        });
        let derivatives = (0..hosts[0].derivatives.len())
            .map(|c| {
                (
                    stacked(&|h| &h.derivatives[c].0, dim),
                    stacked(&|h| &h.derivatives[c].1, 1),
                    hosts[0].derivatives[c].2,
                    hosts[0].derivatives[c].3,
                )
            })
            .collect();
        Self {
            residual_x: stacked(&|h| &h.residual, dim),
            forcing: stacked(&|h| &h.forcing, 1),
            values,
            derivatives,
        }
    }

    /// Network `k`'s points as its own [`Batch`].
    pub(super) fn member(&self, k: usize) -> Batch {
        let own = |t: &Tensor<3>| {
            let [_, n, c] = t.dims();
            t.clone().narrow(0, k, 1).reshape([n, c])
        };
        Batch {
            residual_x: own(&self.residual_x),
            forcing: own(&self.forcing),
            values: self
                .values
                .as_ref()
                .map(|(x, t, w)| (own(x), own(t), own(w))),
            derivatives: self
                .derivatives
                .iter()
                .map(|(x, t, a, s)| (own(x), own(t), *a, *s))
                .collect(),
        }
    }

    /// The networks at `idx` only.
    pub(super) fn select(&self, idx: &[usize]) -> Self {
        let sel = |t: &Tensor<3>| {
            Tensor::cat(idx.iter().map(|&i| t.clone().narrow(0, i, 1)).collect(), 0)
        };
        Self {
            residual_x: sel(&self.residual_x),
            forcing: sel(&self.forcing),
            values: self
                .values
                .as_ref()
                .map(|(x, t, w)| (sel(x), sel(t), sel(w))),
            derivatives: self
                .derivatives
                .iter()
                .map(|(x, t, a, s)| (sel(x), sel(t), *a, *s))
                .collect(),
        }
    }
}

fn v_ref(h: &HostBatch) -> (&[f64], &[f64], &[f64]) {
    let (x, t, w) = h
        .values
        .as_ref()
        .expect("every network of a pack has the same conditions");
    (x, t, w)
}

impl Trainer {
    /// This iteration's points on the host, raw (unnormalised), from the run's RNG.
    pub(super) fn sample_raw(&mut self) -> RawBatch {
        RawBatch {
            residual: self.pde.sample_residual(&mut self.rng),
            conditions: self.pde.sample_conditions(&mut self.rng),
        }
    }
}
