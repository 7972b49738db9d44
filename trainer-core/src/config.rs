//! `TrainConfig`: the complete, serialisable description of one training run.
//!
//! A run is a pure function of its config (on the CPU backend): the coordinator expands a sweep
//! into these, stores each as JSON and hashes it (canonically) for idempotent submission; a
//! worker hands the stored JSON back to trainer-core unchanged. Every default here is the one
//! `SPEC.md` names. The option groups live with what they configure (`methods`, `modsync`,
//! `pde`) and are re-exported here.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::mlp::Architecture;
use crate::pde;

pub use crate::methods::MethodOptions;
pub use crate::modsync::{DiagnosticsOptions, ModSyncOptions};
pub use crate::pde::{MAX_NC, MAX_TEST_GRID, PdeOptions};
pub use crate::tensors::Precision;

/// Everything that determines one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Benchmark name, see [`pde::PDES`].
    pub pde: String,
    /// Gradient method key, see [`crate::methods::METHODS`].
    pub method: String,
    /// Hidden units per layer.
    pub width: usize,
    /// Number of hidden layers (the paper's "5-layer MLP" is depth 5).
    pub depth: usize,
    /// Optimisation steps.
    pub iters: u64,
    /// Seeds initialisation and every sampled point.
    pub seed: u64,
    /// Adam learning rate for the network parameters.
    pub lr: f64,
    /// StepLR schedule: multiply the learning rate by `lr_decay_gamma` every `lr_decay_every`,
    /// for the methods whose runs the reading decays (`pde_options.reading`).
    pub lr_decay: bool,
    pub lr_decay_every: u64,
    pub lr_decay_gamma: f64,
    /// Evaluate the test error (and emit a metrics row) every this many iterations.
    pub eval_every: u64,
    /// Emit a resumable checkpoint every this many iterations (0 = never).
    pub checkpoint_every: u64,
    pub precision: Precision,
    /// A run whose last this-many steps were all skipped as non-finite is ended as `diverged`.
    pub max_consecutive_skips: u64,
    /// Absent in JSON: the options of a config stored before readings existed (`pde::Reading`).
    #[serde(default = "PdeOptions::when_absent")]
    pub pde_options: PdeOptions,
    /// Options of the gradient methods; only the chosen method's are read.
    pub method_options: MethodOptions,
    /// ModSync options, read when `method` is `modsync+X`.
    pub modsync: ModSyncOptions,
    /// Gradient diagnostics written into the metrics rows.
    pub diagnostics: DiagnosticsOptions,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            pde: "burgers".into(),
            method: "adam".into(),
            width: 50,
            depth: 5,
            iters: 50_000,
            seed: 0,
            lr: 1e-3,
            lr_decay: true,
            lr_decay_every: 1000,
            lr_decay_gamma: 0.9,
            eval_every: 100,
            checkpoint_every: 0,
            precision: Precision::F32,
            max_consecutive_skips: 100,
            pde_options: PdeOptions::default(),
            method_options: MethodOptions::default(),
            modsync: ModSyncOptions::default(),
            diagnostics: DiagnosticsOptions::default(),
        }
    }
}

/// Upper bounds that keep a typo from allocating the machine away.
pub const MAX_WIDTH: usize = 16_384;
pub const MAX_DEPTH: usize = 64;
pub const MAX_ITERS: u64 = 100_000_000;
/// Most parameters one network may have: 2²⁵ ≈ 33.5 M (width 2,048 at depth 8; the paper's
/// widest, 1,024 at depth 5, is 4.2 M). Width and depth are bounded one at a time above, but
/// width 16,384 at depth 64 is 17 billion parameters, which no worker can allocate (in a sweep
/// it would crash, be re-leased and crash the next). A checkpoint is ~24 bytes per parameter.
pub const MAX_PARAMS: usize = 1 << 25;
/// Input dimension assumed for [`MAX_PARAMS`] (the largest of the benchmark PDEs is 3; one
/// spare), so the bound does not depend on which PDE a sweep pairs the width with.
const MAX_INPUT_DIM: usize = 4;

impl TrainConfig {
    /// Every field with its default as JSON — the shape a config's JSON may have. Unlike
    /// `serde_json::to_value(TrainConfig::default())` it includes the fields that serialisation
    /// leaves out when unset so that configs stored before they existed keep their canonical
    /// JSON and hash (`pde_options.boundary_loss`, null: the reading's).
    ///
    /// User input (a sweep's `[train]`) is laid over this, not deserialised alone: an absent
    /// `pde_options.reading` in JSON means `spec_v1` (stored jobs), in user input the default.
    pub fn every_field_json() -> serde_json::Value {
        let mut json = serde_json::to_value(Self::default()).expect("TrainConfig serialises");
        json["pde_options"]["boundary_loss"] = serde_json::Value::Null;
        json
    }

    /// Checks every field; the error names the first offending field and what is wrong with it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(field: &str, problem: String) -> Result<(), ConfigError> {
            Err(ConfigError::new(field, problem))
        }
        pde::validate_name(&self.pde)?;
        crate::methods::validate_method(&self.method)?;
        self.method_options.validate("method_options")?;
        self.modsync.validate("modsync")?;
        self.diagnostics.validate("diagnostics")?;
        if self.width == 0 || self.width > MAX_WIDTH {
            return bad(
                "width",
                format!("must be in 1..={MAX_WIDTH}, got {}", self.width),
            );
        }
        if self.depth == 0 || self.depth > MAX_DEPTH {
            return bad(
                "depth",
                format!("must be in 1..={MAX_DEPTH}, got {}", self.depth),
            );
        }
        // Width and depth are within their bounds, so this cannot overflow.
        let params = Architecture::new(MAX_INPUT_DIM, self.width, self.depth).num_params();
        if params > MAX_PARAMS {
            return bad(
                "width",
                format!(
                    "width {} at depth {} is about {params} parameters, more than the \
                     {MAX_PARAMS} a network may have (lower the width or the depth)",
                    self.width, self.depth
                ),
            );
        }
        if self.iters == 0 || self.iters > MAX_ITERS {
            return bad(
                "iters",
                format!("must be in 1..={MAX_ITERS}, got {}", self.iters),
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(
                "lr",
                format!("must be a finite number > 0, got {}", self.lr),
            );
        }
        if self.lr_decay {
            if self.lr_decay_every == 0 {
                return bad("lr_decay_every", "must be >= 1 when lr_decay is on".into());
            }
            if !(self.lr_decay_gamma.is_finite()
                && self.lr_decay_gamma > 0.0
                && self.lr_decay_gamma <= 1.0)
            {
                return bad(
                    "lr_decay_gamma",
                    format!("must be in (0, 1], got {}", self.lr_decay_gamma),
                );
            }
        }
        if self.eval_every == 0 {
            return bad("eval_every", "must be >= 1".into());
        }
        if self.max_consecutive_skips == 0 {
            return bad("max_consecutive_skips", "must be >= 1".into());
        }
        self.pde_options.validate("pde_options")?;
        Ok(())
    }

    /// The learning rate in force at iteration `iter` (StepLR, where the reading decays it).
    pub fn lr_at(&self, iter: u64) -> f64 {
        if self.lr_decay && pde::decays_lr(self.pde_options.reading, &self.pde, &self.method) {
            self.lr
                * self
                    .lr_decay_gamma
                    .powi((iter / self.lr_decay_every) as i32)
        } else {
            self.lr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape includes the fields serialisation omits at their default, and nothing that
    /// is not a field: it reads back as the default config under `deny_unknown_fields`.
    #[test]
    fn every_field_json_is_the_default_with_no_field_left_out() {
        let every = TrainConfig::every_field_json();
        let back: TrainConfig = serde_json::from_value(every.clone()).unwrap();
        assert_eq!(back, TrainConfig::default());
        assert!(every["pde_options"]["boundary_loss"].is_null());
        assert_eq!(every["pde_options"]["reading"], "paper");
        let serialised = serde_json::to_value(TrainConfig::default()).unwrap();
        assert!(serialised["pde_options"].get("boundary_loss").is_none());
    }

    /// A job stored before readings existed has neither `reading` nor `boundary_loss` in its
    /// JSON: it reads back as `spec_v1` (what it was trained with), and serialises to the very
    /// same JSON, so its hash is unchanged. The default reading is written out.
    #[test]
    fn a_config_stored_before_readings_keeps_its_reading_and_its_json() {
        let mut old = TrainConfig::default();
        old.pde_options.reading = pde::Reading::SpecV1;
        let json = serde_json::to_string(&old).unwrap();
        assert!(
            !json.contains("reading") && !json.contains("boundary_loss"),
            "{json}"
        );
        let back: TrainConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.pde_options.reading, pde::Reading::SpecV1);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        // No pde_options at all: the same.
        let bare: TrainConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(bare.pde_options.reading, pde::Reading::SpecV1);
        let new = serde_json::to_string(&TrainConfig::default()).unwrap();
        assert!(new.contains(r#""reading":"paper""#), "{new}");
    }

    /// StepLR applies where the reading decays the lr: every run under spec_v1; under the
    /// sources' reading as docs/readings.md records it per benchmark.
    #[test]
    fn the_reading_decides_which_runs_decay_the_lr() {
        use pde::Reading::{Paper, SpecV1};
        let at = |reading, pde: &str, method: &str| {
            let mut c = TrainConfig {
                pde: pde.into(),
                method: method.into(),
                ..TrainConfig::default()
            };
            c.pde_options.reading = reading;
            c.lr_at(1000)
        };
        let (decayed, constant) = (1e-3 * 0.9, 1e-3);
        for (reading, pde, method, want) in [
            (SpecV1, "burgers", "adam", decayed),
            (SpecV1, "burgers", "dcgd", decayed),
            (SpecV1, "helmholtz3d", "dcgd", decayed),
            (Paper, "burgers", "adam", decayed),
            (Paper, "burgers", "modsync+adam", decayed),
            (Paper, "burgers", "dcgd", constant),
            (Paper, "burgers", "modsync+dcgd", constant),
            (Paper, "burgers", "pcgrad", constant),
            (Paper, "helmholtz2d", "dcgd", decayed),
            (Paper, "klein_gordon2d", "modsync+dcgd", decayed),
            (Paper, "helmholtz3d", "adam", constant),
            (Paper, "klein_gordon3d", "dcgd", constant),
        ] {
            assert_eq!(at(reading, pde, method), want, "{reading:?} {pde} {method}");
        }
    }

    fn with_shape(width: usize, depth: usize) -> Result<(), ConfigError> {
        TrainConfig {
            width,
            depth,
            ..TrainConfig::default()
        }
        .validate()
    }

    /// Width, depth and the network's size are checked here and nowhere else (the coordinator
    /// and the sweep files translate the field names), so each bound is pinned down here.
    #[test]
    fn network_shape_is_bounded_naming_the_field() {
        assert!(with_shape(50, 5).is_ok());
        for (width, depth, field) in [
            (0, 5, "width"),
            (MAX_WIDTH + 1, 1, "width"),
            (50, 0, "depth"),
            (50, MAX_DEPTH + 1, "depth"),
        ] {
            let e = with_shape(width, depth).unwrap_err();
            assert_eq!(e.field, field, "{width}×{depth}: {e}");
        }
        // Each within its bound, together far too large for any worker.
        assert!(with_shape(MAX_WIDTH, 1).is_ok());
        let e = with_shape(MAX_WIDTH, MAX_DEPTH).unwrap_err();
        assert_eq!(e.field, "width");
        assert!(e.problem.contains("parameters"), "{e}");
        // The bound itself: width 2,048 fits at depth 8 (29.4 M), not at depth 9 (33.6 M).
        assert!(with_shape(2048, 8).is_ok());
        assert_eq!(with_shape(2048, 9).unwrap_err().field, "width");
    }
}
