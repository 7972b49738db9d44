//! Readings of the benchmarks: how the boundary and initial conditions combine into L_b, how
//! their points are sampled, and which methods decay the learning rate. The paper says its
//! formulations and sampling follow its sources (DCGD, ConFIG, MultiAdam); `docs/readings.md`
//! records what each source does, per PDE, and where each fact comes from.
//!
//! A config names a [`Reading`] preset (`pde_options.reading`); `pde_options.boundary_loss`
//! overrides the preset's L_b alone (the ablation's `pooled_mean`).
//!
//! Stored configs: a job stored before readings existed has no `reading` in its JSON and was
//! trained with what is now [`Reading::SpecV1`]. So in JSON an absent `reading` *means*
//! `spec_v1` (and `spec_v1` is written by absence), which keeps every old job's canonical JSON,
//! hash and results; the typed default (what `modsync train` and a sweep file's `[train]` start
//! from) is [`Reading::Paper`], written out explicitly.

use serde::{Deserialize, Serialize};

/// A named reading of all five benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading {
    /// What the paper's sources do (docs/readings.md): conditions the sources pool share one
    /// mean ([`BoundaryLoss::Grouped`]); Burgers' initial and side points are drawn from the
    /// reference grid; the 3-D problems take raw coordinates; StepLR decays the lr where the
    /// sources decay it (burgers: Adam's runs only; 2-D Helmholtz and Klein–Gordon: every
    /// method; 3-D: none).
    #[default]
    Paper,
    /// SPEC.md's first reading, the only one before 2026-12-06: every condition adds its own
    /// mean, condition points are continuous, and StepLR decays the lr of every method.
    SpecV1,
}

impl Reading {
    pub const NAMES: [&str; 2] = ["paper", "spec_v1"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Parses a name of [`Self::NAMES`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "paper" => Some(Self::Paper),
            "spec_v1" => Some(Self::SpecV1),
            _ => None,
        }
    }

    /// What an absent `reading` means in a config's JSON (see the module docs).
    pub(crate) fn when_absent() -> Self {
        Self::SpecV1
    }

    pub(crate) fn is_written_by_absence(&self) -> bool {
        *self == Self::when_absent()
    }

    /// How L_b combines the conditions' terms.
    pub fn boundary_loss(self) -> BoundaryLoss {
        match self {
            Self::Paper => BoundaryLoss::Grouped,
            Self::SpecV1 => BoundaryLoss::SumOfMeans,
        }
    }

    /// Whether each benchmark is built as its sources build it (condition points, input
    /// normalisation, lr schedule): each PDE's file says what that means for it.
    pub fn follows_sources(self) -> bool {
        self == Self::Paper
    }
}

/// The method whose schedule a run follows: ModSync wraps a method without changing its
/// schedule (`modsync+dcgd` runs as `dcgd` does).
pub fn base_method(method: &str) -> &str {
    method.strip_prefix("modsync+").unwrap_or(method)
}

/// Where a PDE draws its condition points from each iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionPoints {
    /// Uniform on the boundary face or initial slice.
    Continuous,
    /// Drawn without replacement from the reference grid's points on that face or slice.
    ReferenceGrid,
}

/// How a PDE's boundary and initial-condition terms combine into L_b: readings of the paper's
/// eq. (2) (`L_b = 1/|N_b| Σ_{x ∈ N_b} |B[u] − g|²`, one mean over every boundary point)
/// against SPEC §0 ("g_b = ∇θ L_b, the sum of all boundary and initial-condition losses").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundaryLoss {
    /// SPEC's first reading: each condition (burgers: the initial condition, the left side, the
    /// right side) contributes its own mean, L_b = Σ_conditions mean. Where SPEC pools a
    /// condition's points itself (helmholtz3d's six faces) that pooling is one condition here.
    SumOfMeans,
    /// Eq. (2) read literally: one mean over the points of every condition together. With equal
    /// point counts this is `SumOfMeans` divided by the number of conditions.
    PooledMean,
    /// The sources' reading: conditions of one group (`Condition::group`, set by each PDE from
    /// its sources) share one mean, and L_b is the sum of the groups' means — burgers:
    /// L_ic + one mean over both sides' points, i.e. weights 1 : ½ : ½.
    Grouped,
}

impl BoundaryLoss {
    pub const NAMES: [&str; 3] = ["sum_of_means", "pooled_mean", "grouped"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Parses a name of [`Self::NAMES`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sum_of_means" => Some(Self::SumOfMeans),
            "pooled_mean" => Some(Self::PooledMean),
            "grouped" => Some(Self::Grouped),
            _ => None,
        }
    }

    /// The factor on each condition's mean squared error, given each condition's point count
    /// and group: 1 for a sum of means, n_c / Σ n for one pooled mean, n_c / Σ_{its group} n
    /// for grouped means.
    pub fn condition_scales(&self, counts_and_groups: &[(usize, usize)]) -> Vec<f64> {
        let pooled_over = |keep: &dyn Fn(usize) -> bool| -> usize {
            counts_and_groups
                .iter()
                .filter(|&&(_, g)| keep(g))
                .map(|&(n, _)| n)
                .sum()
        };
        counts_and_groups
            .iter()
            .map(|&(n, group)| match self {
                Self::SumOfMeans => 1.0,
                Self::PooledMean => n as f64 / pooled_over(&|_| true) as f64,
                Self::Grouped => n as f64 / pooled_over(&|g| g == group) as f64,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burgers' three conditions of 42 points: the initial condition alone, both sides pooled.
    #[test]
    fn condition_scales_follow_the_formulas() {
        let burgers = [(42, 0), (42, 1), (42, 1)];
        assert_eq!(
            BoundaryLoss::SumOfMeans.condition_scales(&burgers),
            [1.0, 1.0, 1.0]
        );
        assert_eq!(
            BoundaryLoss::PooledMean.condition_scales(&burgers),
            [1.0 / 3.0; 3]
        );
        assert_eq!(
            BoundaryLoss::Grouped.condition_scales(&burgers),
            [1.0, 0.5, 0.5]
        );
        // Unequal counts: each condition weighs by its share of its group's points.
        let uneven = [(10, 0), (30, 0), (5, 1)];
        assert_eq!(
            BoundaryLoss::Grouped.condition_scales(&uneven),
            [0.25, 0.75, 1.0]
        );
    }

    #[test]
    fn names_round_trip() {
        for name in BoundaryLoss::NAMES {
            assert_eq!(BoundaryLoss::parse(name).unwrap().name(), name);
        }
        for name in Reading::NAMES {
            assert_eq!(Reading::parse(name).unwrap().name(), name);
        }
        assert_eq!(Reading::parse("sources"), None);
    }
}
