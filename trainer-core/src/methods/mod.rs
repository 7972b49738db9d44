//! Gradient methods (SPEC §3): how the two task gradients g_r (residual) and g_b (boundary)
//! become one parameter update.
//!
//! Each method lives in one file with its rule, its state, its options struct and its
//! [`MethodEntry`] (a family shares a file: `weights.rs`, `projection.rs`). The registry below
//! lists the entries ([`METHODS`]) and declares [`MethodOptions`] from them;
//! names, validation, construction, `modsync methods` and the CLI's `--X.y` flags all come
//! from it. A method is chosen by name in `TrainConfig::method` (`modsync+X` wraps any of
//! them, see [`crate::modsync`]). A step goes:
//! 1. the trainer asks [`GradientMethod::tasks`] which task gradients to back-propagate;
//! 2. [`GradientMethod::probe`] reduces them on the device to a few numbers (norms, cosine …);
//! 3. [`Stepper::step`] reads those back together with the losses — the step's only host
//!    transfer, shared by every network of a pack ([`Stepper::prepare`] / [`Stepper::finish`])
//!    — and skips the step if anything is non-finite;
//! 4. [`GradientMethod::update`] does its scalar algebra in f64 and returns a direction for the
//!    outer Adam (most methods), a ready parameter step (`multiadam`, `mconfig`), or a skip.
//!
//! Methods check that their direction cannot overflow ([`stats::PairStats::combination_is_safe`])
//! before they change their own state, so a skipped step leaves everything as it was.

pub mod cagrad;
pub mod mconfig;
pub mod multiadam;
pub mod projection;
pub mod stats;
pub mod weights;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::adam::Adam;
use crate::error::ConfigError;
use crate::options::{Check, OptionSpec};
use crate::tensors::{Ctx, to_host};

pub use cagrad::CagradOptions;
pub use mconfig::{MconfigOptions, MconfigVariant};
pub use multiadam::MultiAdamOptions;
pub use projection::{DcgdOptions, DcgdVariant};
pub use stats::{Coefficients, PairStats};
pub use weights::{LraOptions, NtkOptions, WeightedOptions};

/// A gradient method as the registry knows it. Each method's file defines its entry (and its
/// options struct, if it has one) beside the method itself.
pub struct MethodEntry {
    /// The key in `TrainConfig::method`; also the name of its options field in
    /// [`MethodOptions`] (`method_options.cagrad`).
    pub name: &'static str,
    /// One line for `modsync methods`.
    pub summary: &'static str,
    /// Its options, with their paths in [`MethodOptions`] (`cagrad.c`): help, range, access.
    pub options: &'static [OptionSpec<MethodOptions>],
    /// Whether it reads the shared [`MethodOptions::eps`] (then `modsync methods` lists it).
    pub uses_eps: bool,
    /// Builds the method for `n` parameters.
    pub build: fn(&MethodOptions, &Ctx, usize) -> Box<dyn GradientMethod>,
}

/// Declares the registry: [`METHODS`] in order, and [`MethodOptions`] with one field per
/// method that has options, named after the method and in registry order (the order a config
/// is serialised, and so hashed, in).
macro_rules! registry {
    ($($entry:path $(=> $field:ident: $options:ty)?;)*) => {
        /// Every base method, in SPEC order. `modsync+X` is valid for each X here.
        pub const METHODS: &[MethodEntry] = &[$($entry),*];

        /// All method options (`TrainConfig::method_options`). Only the chosen method's are
        /// read; [`MethodOptions::validate`] checks them all.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct MethodOptions {
            /// ε of SPEC §3: added to gradient norms (nr = ‖g_r‖ + ε) and to the denominators
            /// that could otherwise be zero.
            pub eps: f64,
            $($(pub $field: $options,)?)*
        }

        impl Default for MethodOptions {
            fn default() -> Self {
                Self {
                    eps: 1e-8,
                    $($($field: <$options>::default(),)?)*
                }
            }
        }
    };
}

// The registry: adding a method is its file plus one line here.
registry! {
    weights::ADAM => adam: WeightedOptions;
    weights::LRA => lra: LraOptions;
    weights::NTK => ntk: NtkOptions;
    multiadam::MULTIADAM => multiadam: MultiAdamOptions;
    projection::PCGRAD;
    cagrad::CAGRAD => cagrad: CagradOptions;
    projection::DCGD => dcgd: DcgdOptions;
    projection::CONFIG;
    mconfig::MCONFIG => mconfig: MconfigOptions;
}

/// Every base method key, in registry order.
pub const NAMES: [&str; METHODS.len()] = registry_names!(METHODS);

/// The option every pair method shares.
pub const EPS: OptionSpec<MethodOptions> = OptionSpec::float(
    "eps",
    "ε added to gradient norms (all methods)",
    Check::Positive,
    |o| o.eps,
    |o, v| o.eps = v,
);

impl MethodOptions {
    /// Every option: [`EPS`], then each method's, in registry order.
    pub fn specs() -> impl Iterator<Item = &'static OptionSpec<MethodOptions>> {
        std::iter::once(&EPS).chain(METHODS.iter().flat_map(|m| m.options))
    }

    /// Checks every option; `prefix` is the path of this struct in the config.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        Self::specs().try_for_each(|s| s.validate(self, prefix))
    }
}

/// The registry entry of the base method `name` (without `modsync+`).
pub fn lookup(name: &str) -> Option<&'static MethodEntry> {
    METHODS.iter().find(|m| m.name == name)
}

/// Prefix that wraps a method in ModSync.
pub const MODSYNC_PREFIX: &str = "modsync+";

/// Splits `modsync+X` into (true, X); any other key into (false, key).
pub fn split_modsync(method: &str) -> (bool, &str) {
    match method.strip_prefix(MODSYNC_PREFIX) {
        Some(base) => (true, base),
        None => (false, method),
    }
}

/// The registry entry of `method`, optionally wrapped in ModSync; the error names the field.
fn entry(method: &str) -> Result<&'static MethodEntry, ConfigError> {
    lookup(split_modsync(method).1).ok_or_else(|| {
        ConfigError::new(
            "method",
            format!(
                "unknown method {method:?} (known: {}, each also as {MODSYNC_PREFIX}X)",
                NAMES.join(", ")
            ),
        )
    })
}

/// Checks that `method` names a known method, optionally wrapped in ModSync.
pub fn validate_method(method: &str) -> Result<(), ConfigError> {
    entry(method).map(drop)
}

/// Which task gradients a step back-propagates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tasks {
    Both,
    Residual,
    Boundary,
}

impl Tasks {
    pub fn residual(self) -> bool {
        matches!(self, Tasks::Both | Tasks::Residual)
    }
    pub fn boundary(self) -> bool {
        matches!(self, Tasks::Both | Tasks::Boundary)
    }
}

/// The task gradients of one step, w.r.t. the network parameters θ (under ModSync: after
/// the straight-through pull-back, thresholds excluded). `None` = not back-propagated.
#[derive(Clone, Debug)]
pub struct TaskGrads {
    pub g_r: Option<Tensor<1>>,
    pub g_b: Option<Tensor<1>>,
}

impl TaskGrads {
    /// Both gradients; panics if a method that asked for both did not get them.
    pub fn both(self) -> (Tensor<1>, Tensor<1>) {
        (
            self.g_r.expect("this method needs g_r every step"),
            self.g_b.expect("this method needs g_b every step"),
        )
    }
}

/// What a method does with θ this step.
#[derive(Clone, Debug)]
pub enum Update {
    /// Step the outer Adam with this direction.
    Direction(Tensor<1>),
    /// θ ← θ − Δ (the method is its own optimiser).
    Delta(Tensor<1>),
    /// Leave θ unchanged, not a failure (e.g. `mconfig` before it has seen both tasks).
    Hold,
    /// Nothing usable (zero or overflowing direction): skipped and counted.
    Skip,
}

/// Method state for checkpoints: integers in JSON, every float as a named vector (exact).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MethodState {
    pub json: serde_json::Value,
    pub vectors: Vec<(String, Vec<f64>)>,
}

impl MethodState {
    pub fn with_vectors(vectors: Vec<(String, Vec<f64>)>) -> Self {
        Self {
            json: serde_json::Value::Null,
            vectors,
        }
    }

    /// The vector `name`, which must have `len` values.
    pub fn vector(&self, name: &str, len: usize) -> Result<&[f64], String> {
        let v = self
            .vectors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| format!("method state lacks vector {name}"))?;
        if v.len() != len {
            return Err(format!(
                "method state vector {name} has {} values, expected {len}",
                v.len()
            ));
        }
        Ok(v)
    }

    /// The integer `name` of the JSON part.
    pub fn counter(&self, name: &str) -> Result<u64, String> {
        self.json
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("method state lacks counter {name}"))
    }
}

/// A rule that turns the task gradients into a parameter update.
pub trait GradientMethod: Send {
    /// The method key (without `modsync+`).
    fn name(&self) -> &'static str;
    /// Which task gradients step `iter` needs.
    fn tasks(&self, _iter: u64) -> Tasks {
        Tasks::Both
    }
    /// Whether the trainer should measure NTK traces before step `iter`.
    fn ntk_due(&self, _iter: u64) -> bool {
        false
    }
    /// Points per task for the NTK traces.
    fn ntk_points(&self) -> usize {
        0
    }
    /// Σ‖∂r_i/∂θ‖² over residual points and Σ‖∂b_i/∂θ‖² over boundary points.
    fn set_ntk_traces(&mut self, _t_r: f64, _t_b: f64) {}
    /// Device reductions [`GradientMethod::update`] needs on the host; must be non-finite
    /// whenever a gradient it uses is. Default: [`stats::probe`] of (g_r, g_b).
    fn probe(&mut self, grads: &TaskGrads) -> Tensor<1> {
        let (g_r, g_b) = grads.clone().both();
        stats::probe(&g_r, &g_b)
    }
    /// The update, from the gradients and the host values of `probe` (all finite).
    fn update(&mut self, grads: TaskGrads, probe: &[f64], lr: f64) -> Update;
    /// Values for the metrics rows (e.g. the current loss weights).
    fn diagnostics(&self) -> Vec<(String, f64)> {
        Vec::new()
    }
    fn save(&self) -> MethodState {
        MethodState::default()
    }
    fn load(&mut self, _ctx: &Ctx, _state: &MethodState) -> Result<(), String> {
        Ok(())
    }
}

/// The common tail of pair methods: decode the probe, skip if both gradients are zero or
/// `coefficients` declines (None) or the direction could overflow, else the direction.
pub fn pair_direction(
    grads: TaskGrads,
    probe: &[f64],
    coefficients: impl FnOnce(&PairStats) -> Option<Coefficients>,
) -> Update {
    let (g_r, g_b) = grads.both();
    let s = PairStats::from_probe(probe, g_r.dims()[0]);
    if s.both_zero() {
        return Update::Skip;
    }
    match coefficients(&s) {
        Some(c) if s.combination_is_safe(c, g_r.dtype()) => Update::Direction(c.apply(g_r, g_b)),
        _ => Update::Skip,
    }
}

/// A stateless rule on (g_r, g_b): `pcgrad`, `cagrad`, `dcgd`, `config`.
pub struct PairRule {
    pub name: &'static str,
    pub rule: Box<dyn Fn(&PairStats) -> Coefficients + Send>,
}

impl PairRule {
    /// The method `name` that steps along `rule`'s combination.
    pub fn boxed(
        name: &'static str,
        rule: impl Fn(&PairStats) -> Coefficients + Send + 'static,
    ) -> Box<dyn GradientMethod> {
        Box::new(PairRule {
            name,
            rule: Box::new(rule),
        })
    }
}

impl GradientMethod for PairRule {
    fn name(&self) -> &'static str {
        self.name
    }
    fn update(&mut self, grads: TaskGrads, probe: &[f64], _lr: f64) -> Update {
        pair_direction(grads, probe, |s| Some((self.rule)(s)))
    }
}

/// Builds the method `name` (a `modsync+` prefix is ignored: the trainer adds ModSync) for
/// `n` parameters.
pub fn build(
    name: &str,
    opts: &MethodOptions,
    ctx: &Ctx,
    n: usize,
) -> Result<Box<dyn GradientMethod>, ConfigError> {
    Ok((entry(name)?.build)(opts, ctx, n))
}

/// How one call of [`Stepper::step`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// θ changed.
    Applied,
    /// θ deliberately unchanged (not counted as skipped).
    Held,
    /// Non-finite inputs or an unusable direction: nothing changed; counted by the caller.
    Skipped,
}

/// A method plus the outer Adam it steps θ with (unused by `multiadam` and `mconfig`).
pub struct Stepper {
    pub method: Box<dyn GradientMethod>,
    pub adam: Adam,
}

/// A step between [`Stepper::prepare`] and [`Stepper::finish`]: the gradients, waiting for
/// the host values of the read-back.
pub struct PendingStep {
    grads: TaskGrads,
    n_checks: usize,
}

impl Stepper {
    /// One update of `theta`. `checks` are further device values that must all be finite for
    /// the step to proceed (losses, ModSync's threshold gradients); they travel in the same
    /// read-back as the method's probe and are returned on the host.
    pub fn step(
        &mut self,
        theta: &mut Tensor<1>,
        grads: TaskGrads,
        checks: Vec<Tensor<1>>,
        lr: f64,
    ) -> (StepOutcome, Vec<f64>) {
        let (read, pending) = self.prepare(grads, checks);
        self.finish(theta, pending, &to_host(read), lr)
    }

    /// The first half of [`Stepper::step`]: the device values the step must read back
    /// (`checks`, then the method's probe). A pack concatenates those of all its networks
    /// into one host transfer.
    pub fn prepare(
        &mut self,
        grads: TaskGrads,
        checks: Vec<Tensor<1>>,
    ) -> (Tensor<1>, PendingStep) {
        let probe = self.method.probe(&grads);
        let n_checks: usize = checks.iter().map(|c| c.dims()[0]).sum();
        let mut parts = checks;
        parts.push(probe);
        (Tensor::cat(parts, 0), PendingStep { grads, n_checks })
    }

    /// The second half: `host` holds the values of [`Stepper::prepare`]'s tensor.
    pub fn finish(
        &mut self,
        theta: &mut Tensor<1>,
        pending: PendingStep,
        host: &[f64],
        lr: f64,
    ) -> (StepOutcome, Vec<f64>) {
        let (check_values, probe_values) = host.split_at(pending.n_checks);
        let check_values = check_values.to_vec();
        if !host.iter().all(|v| v.is_finite()) {
            return (StepOutcome::Skipped, check_values);
        }
        let outcome = match self.method.update(pending.grads, probe_values, lr) {
            Update::Direction(d) => {
                *theta = self.adam.step(theta.clone(), d, lr);
                StepOutcome::Applied
            }
            Update::Delta(d) => {
                *theta = theta.clone().sub(d);
                StepOutcome::Applied
            }
            Update::Hold => StepOutcome::Held,
            Update::Skip => StepOutcome::Skipped,
        };
        (outcome, check_values)
    }
}
