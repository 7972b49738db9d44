//! The training loop: sample, two task gradients through Taylor jets, combine, Adam, evaluate.
//!
//! One [`Trainer`] owns one run. `run` drives it to the end (or to cancellation) and reports
//! through an [`Observer`]; `checkpoint`/`resume` make a run continue bit-identically on the
//! CPU backend, because every random number comes from one host RNG whose position is saved.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::adam::{Adam, AdamParams, AdamState};
use crate::backprop::{self, Backward, Chunks, PackLayers};
use crate::checkpoint::{Checkpoint, Evaluation, Tracker};
use crate::config::TrainConfig;
use crate::error::{ConfigError, TrainError};
use crate::jet::JetSpec;
use crate::methods::{self, MethodState, PairStats, StepOutcome, Stepper, TaskGrads};
use crate::mlp::{Architecture, Layers};
use crate::modsync::diagnostics::spread;
use crate::modsync::{MaskedStep, ModSync};
use crate::observer::{MetricsRow, Observer};
use crate::pde::{self, Condition, Grid, Pde, Quantity, ResidualBatch};
use crate::tensors::{Ctx, to_host};

mod pack;
mod trace;
pub use pack::{Left, Member, Pack, PackError, PackKey, pack_key};
pub use trace::{
    ConditionPoints, NtkBoundaryPoint, NtkPoints, StepInputs, StepOutputs, StepTrace,
    fidelity_config,
};

/// RNG streams: one for the initial weights, one for every sampled point.
const INIT_STREAM: u64 = 0;
const SAMPLE_STREAM: u64 = 1;
/// Test-grid rows per evaluation forward, to bound memory on 10⁶-point 3-D grids.
const EVAL_CHUNK: usize = 32_768;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Finished,
    /// `max_consecutive_skips` non-finite steps in a row.
    Diverged,
    /// The observer asked to stop; a checkpoint was emitted first.
    Cancelled,
}

/// The numbers a run reports: what `result.json` and the coordinator's `results` table hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub status: RunStatus,
    /// Test relative L2 at the best evaluation.
    pub rel_l2_best: f64,
    /// Test relative L2 at the evaluation with the lowest training loss.
    pub rel_l2_min_loss: f64,
    /// Test relative L2 at the last evaluation.
    pub rel_l2_last: f64,
    /// Mean and max absolute error at the best evaluation.
    pub abs_err_best: f64,
    pub abs_err_max_best: f64,
    pub best_iter: u64,
    pub min_loss_iter: u64,
    pub iters_done: u64,
    pub diverged: bool,
    pub skipped_steps: u64,
    pub wall_s: f64,
    pub iters_per_s: f64,
    pub num_params: usize,
    pub config: TrainConfig,
}

/// [`Trainer::peek_gradients`]: host copies of one step's losses and gradients (empty where
/// not computed) and the parameters the network computed with (θ̃ under ModSync).
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct PeekedGradients {
    pub theta_used: Vec<f64>,
    pub losses: [f64; 2],
    pub g_r: Vec<f64>,
    pub g_b: Vec<f64>,
    pub dt_r: Vec<f64>,
    pub dt_b: Vec<f64>,
}

/// Losses and gradients of one step; `None` where a task was not back-propagated.
struct StepGradients {
    loss_r: Option<Tensor<1>>,
    loss_b: Option<Tensor<1>>,
    /// ∇θ of each task loss (under ModSync: pulled back through the masks).
    g_r: Option<Tensor<1>>,
    g_b: Option<Tensor<1>>,
    /// ModSync: ∂L_r/∂t and ∂L_b/∂t of the mask thresholds t = (t_r + t_b)/2.
    dt_r: Option<Tensor<1>>,
    dt_b: Option<Tensor<1>>,
    /// ModSync: the masked network the gradients were taken at.
    masked: Option<MaskedStep>,
}

/// Points of one iteration of one network, on the device and normalised (views of a
/// [`pack::PackBatch`]).
struct Batch {
    residual_x: Tensor<2>,
    forcing: Tensor<2>,
    /// All value conditions in one forward: inputs, targets, and 1/n of each row's condition.
    values: Option<(Tensor<2>, Tensor<2>, Tensor<2>)>,
    /// Derivative conditions, one forward each: inputs, targets, axis.
    derivatives: Vec<(Tensor<2>, Tensor<2>, usize)>,
}

impl Batch {
    /// The boundary inputs in NTK order: the value block, then each derivative condition,
    /// with the derivative axis (None = u itself).
    fn boundary_blocks(&self) -> Vec<(Tensor<2>, Option<usize>)> {
        self.values
            .iter()
            .map(|(x, _, _)| (x.clone(), None))
            .chain(
                self.derivatives
                    .iter()
                    .map(|(x, _, a)| (x.clone(), Some(*a))),
            )
            .collect()
    }
}

/// One iteration's points on the host, before normalisation.
struct RawBatch {
    residual: ResidualBatch,
    conditions: Vec<Condition>,
}

impl RawBatch {
    /// The value conditions (stacked into one forward) and the derivative conditions (one
    /// forward each), each in sampling order.
    fn partition(&self) -> (Vec<&Condition>, Vec<&Condition>) {
        self.conditions
            .iter()
            .partition(|c| c.quantity == Quantity::Value)
    }

    /// Host twin of [`Batch::boundary_blocks`]: raw points per block, with the derivative axis.
    fn boundary_blocks(&self) -> Vec<(Vec<f64>, Option<usize>)> {
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

/// One training run in progress.
pub struct Trainer {
    config: TrainConfig,
    ctx: Ctx,
    pde: Box<dyn Pde>,
    arch: Architecture,
    /// The gradient method and the outer Adam.
    stepper: Stepper,
    /// ModSync's thresholds and their optimiser, for `modsync+X` methods.
    modsync: Option<ModSync>,
    theta: Tensor<1>,
    rng: ChaCha8Rng,
    /// x̂ = (x − shift) · scale per input axis.
    input_shift: Vec<f64>,
    input_scale: Vec<f64>,
    residual_spec: JetSpec,
    test_points: Vec<Tensor<2>>,
    test_reference: Vec<f64>,
    test_reference_norm: f64,
    iter: u64,
    skipped_steps: u64,
    consecutive_skips: u64,
    elapsed_before: f64,
    tracker: Tracker,
    backward: Backward,
    /// How the explicit pass splits a pack's work (CPU: in parallel chunks).
    chunks: Chunks,
    /// When the current `run` (or pack membership) began, for elapsed times and iters/s.
    segment: Option<Segment>,
}

/// The part of a run since it (re)started in this process.
#[derive(Clone, Copy, Debug)]
struct Segment {
    started: Instant,
    start_iter: u64,
}

impl Trainer {
    /// A fresh run: validates the config, draws the initial network, builds the test grid.
    pub fn new(config: TrainConfig, device: &Device) -> Result<Self, TrainError> {
        config.validate()?;
        let ctx = Ctx::new(device.clone(), config.precision);
        let pde = pde::by_name(&config.pde, &config.pde_options)
            .ok_or_else(|| ConfigError::new("pde", format!("unknown PDE {:?}", config.pde)))?;
        let arch = Architecture::new(pde.dim(), config.width, config.depth);
        let init = arch.xavier_normal(&mut seeded_rng(config.seed, INIT_STREAM));
        let (wrapped, base) = methods::split_modsync(&config.method);
        let method = methods::build(base, &config.method_options, &ctx, arch.num_params())?;
        let modsync = wrapped.then(|| ModSync::new(&ctx, &arch, config.modsync.clone()));
        let (input_shift, input_scale) = pde.input_map();
        let grid = pde.test_grid(config.pde_options.test_grid);
        let test_reference = pde.reference(&grid.points);
        let test_reference_norm = test_reference.iter().map(|u| u * u).sum::<f64>().sqrt();
        let mut trainer = Self {
            theta: ctx.vector(&init),
            stepper: Stepper {
                method,
                adam: Adam::new(&ctx, init.len(), AdamParams::default()),
            },
            modsync,
            rng: seeded_rng(config.seed, SAMPLE_STREAM),
            residual_spec: pde.residual_spec(),
            test_points: Vec::new(),
            test_reference,
            test_reference_norm,
            input_shift,
            input_scale,
            iter: 0,
            skipped_steps: 0,
            consecutive_skips: 0,
            elapsed_before: 0.0,
            tracker: Tracker::default(),
            backward: Backward::default(),
            chunks: if ctx.device == Device::flex() {
                Chunks::CPU
            } else {
                Chunks::ONE
            },
            segment: None,
            config,
            ctx,
            pde,
            arch,
        };
        trainer.test_points = trainer.upload_grid(&grid);
        Ok(trainer)
    }

    /// Continues a run from `checkpoint`; the config must be the one it was taken with
    /// (`checkpoint_every` may differ).
    pub fn resume(checkpoint: &Checkpoint, device: &Device) -> Result<Self, TrainError> {
        let mut t = Self::new(checkpoint.config.clone(), device)?;
        let theta = checkpoint.vector("theta").ok_or_else(|| missing("theta"))?;
        if theta.len() != t.arch.num_params() {
            return Err(TrainError::Checkpoint(format!(
                "theta has {} values, the network has {}",
                theta.len(),
                t.arch.num_params()
            )));
        }
        let adam = AdamState {
            m: checkpoint
                .vector("adam_m")
                .ok_or_else(|| missing("adam_m"))?
                .to_vec(),
            v: checkpoint
                .vector("adam_v")
                .ok_or_else(|| missing("adam_v"))?
                .to_vec(),
            t: checkpoint.adam_t,
        };
        if adam.m.len() != theta.len() || adam.v.len() != theta.len() {
            return Err(TrainError::Checkpoint(
                "Adam moments do not match theta".into(),
            ));
        }
        t.theta = t.ctx.vector(theta);
        t.stepper.adam = Adam::restore(&t.ctx, AdamParams::default(), &adam);
        let null = serde_json::Value::Null;
        let state = &checkpoint.method_state;
        let method_state = MethodState {
            json: state.get("method").cloned().unwrap_or(null.clone()),
            vectors: checkpoint
                .vectors
                .iter()
                .filter_map(|(n, v)| Some((n.strip_prefix("method.")?.to_string(), v.clone())))
                .collect(),
        };
        t.stepper
            .method
            .load(&t.ctx, &method_state)
            .map_err(TrainError::Checkpoint)?;
        if let Some(m) = &mut t.modsync {
            m.load(&t.ctx, state.get("modsync").unwrap_or(&null), |name| {
                checkpoint.vector(name)
            })
            .map_err(TrainError::Checkpoint)?;
        }
        t.rng.set_word_pos(checkpoint.rng_word_pos()?);
        t.iter = checkpoint.iter;
        t.skipped_steps = checkpoint.skipped_steps;
        t.consecutive_skips = checkpoint.consecutive_skips;
        t.elapsed_before = checkpoint.elapsed_s;
        t.tracker = checkpoint.tracker.clone();
        Ok(t)
    }

    /// Chooses how the task gradients are computed (tests and benchmarks compare the two; the
    /// results agree to rounding).
    pub fn set_backward(&mut self, backward: Backward) {
        self.backward = backward;
    }

    /// Overrides how the explicit pass splits the work on this device (benchmarks measure what
    /// the chunks give). In a pack, the first network's setting applies to all.
    #[doc(hidden)]
    pub fn set_chunks(&mut self, chunks: Chunks) {
        self.chunks = chunks;
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    pub fn iter(&self) -> u64 {
        self.iter
    }

    pub fn num_params(&self) -> usize {
        self.arch.num_params()
    }

    /// Current parameters on the host.
    pub fn parameters(&self) -> Vec<f64> {
        to_host(self.theta.clone())
    }

    pub fn pde(&self) -> &dyn Pde {
        self.pde.as_ref()
    }

    /// Snapshot of the run after `self.iter()` steps.
    pub fn checkpoint(&self, elapsed_s: f64) -> Checkpoint {
        let adam = self.stepper.adam.state();
        let method = self.stepper.method.save();
        let mut vectors = vec![
            ("theta".into(), self.parameters()),
            ("adam_m".into(), adam.m),
            ("adam_v".into(), adam.v),
        ];
        vectors.extend(
            method
                .vectors
                .into_iter()
                .map(|(n, v)| (format!("method.{n}"), v)),
        );
        let mut method_state = serde_json::json!({ "method": method.json });
        if let Some(m) = &self.modsync {
            let (json, v) = m.save();
            method_state["modsync"] = json;
            vectors.extend(v);
        }
        Checkpoint {
            iter: self.iter,
            config: self.config.clone(),
            rng_word_pos: self.rng.get_word_pos().to_string(),
            skipped_steps: self.skipped_steps,
            consecutive_skips: self.consecutive_skips,
            elapsed_s,
            tracker: self.tracker.clone(),
            adam_t: adam.t,
            method_state,
            vectors,
        }
    }

    /// Trains until `config.iters` steps are done, the run diverges, or the observer stops it:
    /// a pack of one.
    pub fn run(&mut self, observer: &mut dyn Observer) -> RunResult {
        let mut members = [pack::Running {
            trainer: self,
            observer,
        }];
        loop {
            if let Some((_, result)) = pack::step(&mut members).pop() {
                return result;
            }
        }
    }

    /// Starts timing a run segment unless one is under way.
    fn begin_segment(&mut self) {
        if self.segment.is_none() {
            self.segment = Some(Segment {
                started: Instant::now(),
                start_iter: self.iter,
            });
        }
    }

    /// Seconds of training so far, across resumes.
    fn elapsed(&self) -> f64 {
        self.elapsed_before
            + self
                .segment
                .map_or(0.0, |s| s.started.elapsed().as_secs_f64())
    }

    /// Ends the segment: the run's result.
    fn end_segment(&mut self, status: RunStatus) -> RunResult {
        let wall_s = self.elapsed();
        let segment = self.segment.take();
        let (iters, secs) = segment.map_or((0, 0.0), |s| {
            (self.iter - s.start_iter, s.started.elapsed().as_secs_f64())
        });
        self.result(status, wall_s, iters, secs)
    }

    /// This network's gradients for the points `raw`, as a pack of one.
    fn own_gradients(
        &mut self,
        raw: &RawBatch,
        all: bool,
        training: bool,
    ) -> (StepGradients, Batch) {
        let batch = pack::PackBatch::upload(self, std::slice::from_ref(raw));
        pack::gradients(&mut [&mut *self], &batch, &[all], training)
            .pop()
            .expect("one network")
    }

    /// Applies this network's gradients, as a pack of one.
    fn apply_own(&mut self, grads: StepGradients) {
        pack::apply(&mut [&mut *self], vec![grads]);
    }

    /// The next step's losses and task gradients (after ModSync's pull-back) at the current
    /// state, which is left unchanged: for comparing [`Backward`] paths.
    #[doc(hidden)]
    pub fn peek_gradients(&mut self) -> PeekedGradients {
        let word_pos = self.rng.get_word_pos();
        let raw = self.sample_raw();
        self.rng.set_word_pos(word_pos);
        let (g, _) = self.own_gradients(&raw, true, false);
        let host = |t: Option<Tensor<1>>| t.map(to_host).unwrap_or_default();
        PeekedGradients {
            theta_used: to_host(g.masked.as_ref().map_or(&self.theta, |m| &m.theta).clone()),
            losses: [host(g.loss_r)[0], host(g.loss_b)[0]],
            g_r: host(g.g_r),
            g_b: host(g.g_b),
            dt_r: host(g.dt_r),
            dt_b: host(g.dt_b),
        }
    }

    /// One optimisation step without evaluation or reporting (benchmarks).
    pub fn train_step(&mut self) {
        let raw = self.sample_raw();
        let (grads, _) = self.own_gradients(&raw, false, true);
        self.apply_own(grads);
        self.iter += 1;
    }

    fn result(
        &self,
        status: RunStatus,
        wall_s: f64,
        iters_this_segment: u64,
        segment_s: f64,
    ) -> RunResult {
        let none = Evaluation {
            iter: 0,
            rel_l2: f64::NAN,
            abs_err: f64::NAN,
            abs_err_max: f64::NAN,
            loss: f64::NAN,
        };
        // Iteration 0 is always evaluated with finite initial weights, so these exist.
        let best = self.tracker.best.unwrap_or(none);
        let min_loss = self.tracker.min_loss.unwrap_or(none);
        let last = self.tracker.last.unwrap_or(none);
        RunResult {
            status,
            rel_l2_best: best.rel_l2,
            rel_l2_min_loss: min_loss.rel_l2,
            rel_l2_last: last.rel_l2,
            abs_err_best: best.abs_err,
            abs_err_max_best: best.abs_err_max,
            best_iter: best.iter,
            min_loss_iter: min_loss.iter,
            iters_done: self.iter,
            diverged: status == RunStatus::Diverged,
            skipped_steps: self.skipped_steps,
            wall_s,
            iters_per_s: if segment_s > 0.0 {
                iters_this_segment as f64 / segment_s
            } else {
                0.0
            },
            num_params: self.arch.num_params(),
            config: self.config.clone(),
        }
    }

    /// The first half of a step of θ (and ModSync's thresholds) with this step's gradients:
    /// the device values to read back (see [`pack::apply`]). The gradients the method did not
    /// ask for (computed only for an evaluation or for a partner in the pack) are dropped, so
    /// a run depends neither on `eval_every` nor on its pack.
    fn prepare_apply(&mut self, grads: StepGradients) -> (Tensor<1>, PendingApply) {
        let tasks = self.stepper.method.tasks(self.iter);
        let keep = |on: bool, t: Option<Tensor<1>>| if on { t } else { None };
        let mut checks: Vec<Tensor<1>> = keep(tasks.residual(), grads.loss_r)
            .into_iter()
            .chain(keep(tasks.boundary(), grads.loss_b))
            .collect();
        let thresholds = self.modsync.as_ref().map(|m| {
            m.threshold_grads(
                keep(tasks.residual(), grads.dt_r),
                keep(tasks.boundary(), grads.dt_b),
            )
        });
        if let Some(t) = &thresholds {
            checks.push(t.check());
        }
        let task_grads = TaskGrads {
            g_r: keep(tasks.residual(), grads.g_r),
            g_b: keep(tasks.boundary(), grads.g_b),
        };
        let (read, step) = self.stepper.prepare(task_grads, checks);
        (read, PendingApply { step, thresholds })
    }

    /// The second half: steps θ, or skips the step if anything read back is non-finite or
    /// the method finds no usable direction.
    fn finish_apply(&mut self, pending: PendingApply, host: &[f64]) {
        let lr = self.config.lr_at(self.iter);
        let (outcome, _) = self.stepper.finish(&mut self.theta, pending.step, host, lr);
        if outcome == StepOutcome::Skipped {
            self.skipped_steps += 1;
            self.consecutive_skips += 1;
            return;
        }
        self.consecutive_skips = 0;
        if let (Some(m), Some(g)) = (&mut self.modsync, pending.thresholds) {
            let lr_t = if m.opts.lr_t_decay {
                m.opts.lr_t * lr / self.config.lr
            } else {
                m.opts.lr_t
            };
            m.step_thresholds(g, lr_t);
        }
    }

    /// This iteration's points on the host, raw (unnormalised), from the run's RNG.
    fn sample_raw(&mut self) -> RawBatch {
        RawBatch {
            residual: self.pde.sample_residual(&mut self.rng),
            conditions: self.pde.sample_conditions(&mut self.rng),
        }
    }

    /// L_r (autodiff scalar) of the network `layers` on `batch`.
    fn residual_loss(&self, layers: &Layers, batch: &Batch) -> Tensor<1> {
        let jet = layers.forward_jet(
            batch.residual_x.clone(),
            &self.residual_spec,
            &self.input_scale,
        );
        self.pde
            .residual(&jet, batch.forcing.clone())
            .square()
            .mean()
    }

    /// L_r and ∇θ L_r of each network of a pack by the explicit reverse pass: `[K]`, `[K, P]`.
    fn residual_explicit(
        &self,
        layers: &PackLayers,
        batch: &pack::PackBatch,
    ) -> (Tensor<1>, Tensor<2>) {
        backprop::residual_loss_and_grad(
            layers,
            self.pde.as_ref(),
            batch.residual_x.clone(),
            batch.forcing.clone(),
            &self.residual_spec,
            &self.input_scale,
            self.chunks,
        )
    }

    /// L_b and ∇θ L_b of each network of a pack by the explicit reverse pass: one pass per
    /// block of conditions.
    fn boundary_explicit(
        &self,
        layers: &PackLayers,
        batch: &pack::PackBatch,
    ) -> (Tensor<1>, Tensor<2>) {
        let values = batch.values.iter().map(|(x, target, weight)| {
            backprop::value_loss_and_grad(
                layers,
                x.clone(),
                target.clone(),
                weight.clone(),
                self.chunks,
            )
        });
        let derivatives = batch.derivatives.iter().map(|(x, target, axis)| {
            backprop::derivative_loss_and_grad(
                layers,
                x.clone(),
                target.clone(),
                *axis,
                &self.input_scale,
                self.chunks,
            )
        });
        values
            .chain(derivatives)
            .reduce(|(l1, g1), (l2, g2)| (l1.add(l2), g1.add(g2)))
            .expect("every PDE has at least one condition")
    }

    /// L_b (autodiff scalar) of the network `layers` on `batch`.
    fn boundary_loss(&self, layers: &Layers, batch: &Batch) -> Tensor<1> {
        let dim = self.pde.dim();
        let mut loss_b: Option<Tensor<1>> = None;
        let mut add =
            |term: Tensor<1>| loss_b = Some(loss_b.take().map_or(term.clone(), |l| l.add(term)));
        if let Some((x, target, weight)) = &batch.values {
            let u = layers.forward(x.clone());
            add(u.sub(target.clone()).square().mul(weight.clone()).sum());
        }
        for (x, target, axis) in &batch.derivatives {
            let jet = layers.forward_jet(
                x.clone(),
                &JetSpec::new(dim, &[*axis], &[]),
                &self.input_scale,
            );
            add(jet.d1(*axis).sub(target.clone()).square().mean());
        }
        loss_b.expect("every PDE has at least one condition")
    }

    /// ModSync's masked network for this step (resetting thresholds when `training`), and the
    /// NTK traces the method wants before step `iter`: the part of a step's gradients that
    /// each network of a pack does on its own, before the pack's batched pass.
    fn begin_gradients(&mut self, batch: &Batch, training: bool) -> Option<MaskedStep> {
        let masked = match &mut self.modsync {
            Some(m) if training => Some(m.begin_step(&self.theta)),
            Some(m) => Some(m.masked(&self.theta)),
            None => None,
        };
        if training && self.stepper.method.ntk_due(self.iter) {
            let theta = masked.as_ref().map_or(&self.theta, |m| &m.theta).clone();
            let (t_r, t_b) = self.ntk_traces(batch, &theta, masked.as_ref());
            self.stepper.method.set_ntk_traces(t_r, t_b);
        }
        masked
    }

    /// A task loss and its ∇θ̃ for this network alone, by Burn autodiff (the oracle path).
    fn task_autodiff(
        &self,
        theta: &Tensor<1>,
        batch: &Batch,
        residual: bool,
    ) -> (Tensor<1>, Tensor<1>) {
        let leaves = Layers::from_flat(theta, &self.arch).into_leaves();
        let loss = if residual {
            self.residual_loss(&leaves, batch)
        } else {
            self.boundary_loss(&leaves, batch)
        };
        let g = leaves.flat_grad(&loss.backward());
        (loss.inner(), g)
    }

    /// The per-network end of a step's gradients: ModSync's pull-back of ∇θ̃ to θ and t.
    fn finish_gradients(
        &self,
        masked: Option<MaskedStep>,
        residual: Option<(Tensor<1>, Tensor<1>)>,
        boundary: Option<(Tensor<1>, Tensor<1>)>,
    ) -> StepGradients {
        let (weight_r, weight_b) = self
            .modsync
            .as_ref()
            .map_or((1.0, 1.0), |m| (m.opts.lambda_r, m.opts.lambda_b));
        let pull = |task: Option<(Tensor<1>, Tensor<1>)>, weight: f64| {
            task.map(|(loss, g_tilde)| match (&self.modsync, &masked) {
                (Some(m), Some(step)) => {
                    let (g, dt) = m.pull_back(step, g_tilde, weight);
                    (loss, g, Some(dt))
                }
                _ => (loss, g_tilde, None),
            })
        };
        let (loss_r, g_r, dt_r) = split3(pull(residual, weight_r));
        let (loss_b, g_b, dt_b) = split3(pull(boundary, weight_b));
        StepGradients {
            loss_r,
            loss_b,
            g_r,
            g_b,
            dt_r,
            dt_b,
            masked,
        }
    }

    /// ∇θ of the scalar `f(layers)` at the network `theta` (θ̃ under ModSync, pulled back).
    fn point_grad(
        &self,
        theta: &Tensor<1>,
        masked: Option<&MaskedStep>,
        f: impl FnOnce(&Layers) -> Tensor<1>,
    ) -> Tensor<1> {
        let layers = Layers::from_flat(theta, &self.arch).into_leaves();
        let g = layers.flat_grad(&f(&layers).backward());
        match (&self.modsync, masked) {
            (Some(m), Some(step)) => m.pull_back_theta(step, g),
            _ => g,
        }
    }

    /// ∇θ of the residual r_i (or of ℓ_r,i = r_i² if `squared`) at batch row `i`.
    fn residual_point_grad(
        &self,
        batch: &Batch,
        i: usize,
        theta: &Tensor<1>,
        masked: Option<&MaskedStep>,
        squared: bool,
    ) -> Tensor<1> {
        self.point_grad(theta, masked, |layers| {
            let x = batch.residual_x.clone().slice(i..i + 1);
            let jet = layers.forward_jet(x, &self.residual_spec, &self.input_scale);
            let r = self
                .pde
                .residual(&jet, batch.forcing.clone().slice(i..i + 1));
            if squared { r.square().sum() } else { r.sum() }
        })
    }

    /// NTK-block traces Σ_i ‖∂r_i/∂θ‖² and Σ_j ‖∂b_j/∂θ‖² (b_j = the conditioned quantity, u or
    /// u_t, at boundary point j) on `ntk_points` evenly spaced points of each task's batch:
    /// one backward per point, one host read.
    fn ntk_traces(
        &self,
        batch: &Batch,
        theta: &Tensor<1>,
        masked: Option<&MaskedStep>,
    ) -> (f64, f64) {
        let blocks = batch.boundary_blocks();
        let sizes: Vec<usize> = blocks.iter().map(|(x, _)| x.dims()[0]).collect();
        let (rows_r, rows_b) = self.ntk_rows(batch.residual_x.dims()[0], &sizes);
        let sq_r: Vec<Tensor<1>> = rows_r
            .into_iter()
            .map(|i| {
                self.residual_point_grad(batch, i, theta, masked, false)
                    .square()
                    .sum()
            })
            .collect();
        let dim = self.pde.dim();
        let sq_b: Vec<Tensor<1>> = rows_b
            .into_iter()
            .map(|(block, j)| {
                let (x, axis) = &blocks[block];
                let row = x.clone().slice(j..j + 1);
                self.point_grad(theta, masked, |layers| match axis {
                    None => layers.forward(row).sum(),
                    Some(a) => layers
                        .forward_jet(row, &JetSpec::new(dim, &[*a], &[]), &self.input_scale)
                        .d1(*a)
                        .sum(),
                })
                .square()
                .sum()
            })
            .collect();
        let t = to_host(Tensor::cat(
            vec![Tensor::cat(sq_r, 0).sum(), Tensor::cat(sq_b, 0).sum()],
            0,
        ));
        (t[0], t[1])
    }

    /// The NTK trace subsample: `ntk_points` evenly spaced residual rows, and as many evenly
    /// spaced boundary rows over the boundary blocks laid end to end, as (block, row).
    fn ntk_rows(&self, n_r: usize, block_sizes: &[usize]) -> (Vec<usize>, Vec<(usize, usize)>) {
        let k = self.stepper.method.ntk_points();
        let n_b: usize = block_sizes.iter().sum();
        let boundary = spread(n_b, k)
            .into_iter()
            .map(|mut j| {
                let mut block = 0;
                while j >= block_sizes[block] {
                    j -= block_sizes[block];
                    block += 1;
                }
                (block, j)
            })
            .collect();
        (spread(n_r, k), boundary)
    }

    /// Fraction of `orth_points` residual points i with |∇θ ℓ_r,i · ∇θ L_b| > eps_dot.
    fn orth_frac(&self, batch: &Batch, grads: &StepGradients) -> Option<f64> {
        let g_b = grads.g_b.as_ref()?;
        let masked = grads.masked.as_ref();
        let theta = masked.map_or(&self.theta, |m| &m.theta).clone();
        let opts = &self.config.diagnostics;
        let dots: Vec<Tensor<1>> = spread(batch.residual_x.dims()[0], opts.orth_points)
            .into_iter()
            .map(|i| {
                self.residual_point_grad(batch, i, &theta, masked, true)
                    .mul(g_b.clone())
                    .sum()
            })
            .collect();
        let dots = to_host(Tensor::cat(dots, 0));
        let above = dots.iter().filter(|d| d.abs() > opts.eps_dot).count();
        Some(above as f64 / dots.len() as f64)
    }

    /// The diagnostics of SPEC §5 for this step's gradients (see `modsync::diagnostics`).
    fn diagnostics(&self, batch: &Batch, grads: &StepGradients) -> BTreeMap<String, f64> {
        let mut extra = BTreeMap::new();
        if !self.config.diagnostics.enabled {
            return extra;
        }
        if let (Some(g_r), Some(g_b)) = (&grads.g_r, &grads.g_b) {
            let n = g_r.dims()[0];
            let s = PairStats::from_probe(&to_host(methods::stats::probe(g_r, g_b)), n);
            extra.insert("cos_rb".into(), s.cos);
            extra.insert("norm_g_r".into(), s.norm_r);
            extra.insert("norm_g_b".into(), s.norm_b);
        }
        extra.extend(self.stepper.method.diagnostics());
        if let Some(m) = &self.modsync {
            extra.extend(m.diagnostics(&self.theta));
        }
        let orth_due = self
            .config
            .diagnostics
            .orth_due(self.iter, self.config.eval_every);
        if let Some(f) = orth_due.then(|| self.orth_frac(batch, grads)).flatten() {
            extra.insert("orth_frac".into(), f);
        }
        extra
    }

    /// Test errors at the current θ, recorded in the tracker unless non-finite.
    fn evaluate(&mut self, batch: &Batch, grads: &StepGradients, elapsed_s: f64) -> MetricsRow {
        let losses = to_host(Tensor::cat(
            vec![
                grads
                    .loss_r
                    .clone()
                    .expect("evaluations compute both losses"),
                grads
                    .loss_b
                    .clone()
                    .expect("evaluations compute both losses"),
            ],
            0,
        ));
        let extra = self.diagnostics(batch, grads);
        let pred = self.predict_test_grid();
        let mut sq_err = 0.0;
        let mut abs_sum = 0.0;
        let mut abs_max: f64 = 0.0;
        for (p, r) in pred.iter().zip(&self.test_reference) {
            let e = p - r;
            sq_err += e * e;
            abs_sum += e.abs();
            abs_max = abs_max.max(e.abs());
        }
        let rel_l2 = sq_err.sqrt() / self.test_reference_norm;
        let abs_err = abs_sum / pred.len() as f64;
        let eval = Evaluation {
            iter: self.iter,
            rel_l2,
            abs_err,
            abs_err_max: abs_max,
            loss: losses[0] + losses[1],
        };
        if [rel_l2, abs_err, abs_max, eval.loss]
            .iter()
            .all(|v| v.is_finite())
        {
            self.tracker.record(eval);
        }
        MetricsRow {
            iter: self.iter,
            lr: self.config.lr_at(self.iter),
            loss_r: losses[0],
            loss_b: losses[1],
            rel_l2,
            abs_err,
            abs_err_max: abs_max,
            skipped_steps: self.skipped_steps,
            elapsed_s,
            extra,
        }
    }

    /// The network on every test point, in grid order.
    pub fn predict_test_grid(&self) -> Vec<f64> {
        let layers = Layers::from_flat(&self.effective_theta(), &self.arch);
        let mut out = Vec::with_capacity(self.test_reference.len());
        for chunk in &self.test_points {
            out.extend(to_host(layers.forward(chunk.clone())));
        }
        out
    }

    /// The network at arbitrary raw points (row-major), for tests and plots.
    pub fn predict(&self, points: &[f64]) -> Vec<f64> {
        let layers = Layers::from_flat(&self.effective_theta(), &self.arch);
        to_host(layers.forward(self.upload_points(points)))
    }

    /// The parameters the network computes with: θ, or ModSync's masked θ̃.
    fn effective_theta(&self) -> Tensor<1> {
        match &self.modsync {
            Some(m) => m.masked(&self.theta).theta,
            None => self.theta.clone(),
        }
    }

    /// Normalises raw row-major points and uploads them as `[n, dim]`.
    fn upload_points(&self, points: &[f64]) -> Tensor<2> {
        let dim = self.pde.dim();
        let normalised = pde::normalise(points, &self.input_shift, &self.input_scale);
        self.ctx.matrix(&normalised, points.len() / dim, dim)
    }

    fn upload_grid(&self, grid: &Grid) -> Vec<Tensor<2>> {
        let dim = self.pde.dim();
        grid.points
            .chunks(EVAL_CHUNK * dim)
            .map(|c| self.upload_points(c))
            .collect()
    }
}

fn seeded_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A step that waits for its host values (see [`Trainer::prepare_apply`]).
struct PendingApply {
    step: methods::PendingStep,
    thresholds: Option<crate::modsync::ThresholdGrads>,
}

fn split3<A, B, C>(t: Option<(A, B, Option<C>)>) -> (Option<A>, Option<B>, Option<C>) {
    match t {
        Some((a, b, c)) => (Some(a), Some(b), c),
        None => (None, None, None),
    }
}

fn missing(name: &str) -> TrainError {
    TrainError::Checkpoint(format!("missing vector {name}"))
}
