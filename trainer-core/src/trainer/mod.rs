//! Training: one run ([`Trainer`]) and K same-shape runs in one batched step ([`Pack`]).
//!
//! One [`Trainer`] owns one run. `run` drives it to the end (or to cancellation) as a pack of
//! one and reports through an [`Observer`]; `checkpoint`/`resume` make a run continue
//! bit-identically on the CPU backend, because every random number comes from one host RNG
//! whose position is saved.
//!
//! One file per part of a step:
//! - `pack.rs`: the loop (sample, gradients, evaluate when due, apply, count skips,
//!   checkpoint) for every network of a pack, and the [`Pack`] API;
//! - `batch.rs`: the step's points, sampled from the run's RNG, normalised and uploaded;
//! - `losses.rs`: L_r and L_b and their gradients (the explicit pass of a whole pack, or
//!   Burn autodiff for one network), with ModSync's masked network and pull-back;
//! - `ntk.rs`: per-point gradients and the NTK traces;
//! - `update.rs`: the method and the outer Adam step θ, or the step is skipped;
//! - `evaluation.rs`: test-grid errors and the metrics row; `diagnostics.rs`: the SPEC §5
//!   diagnostics in it;
//! - `resume.rs`: checkpoint and resume; `trace.rs`: step traces for differential tests.
//!
//! This file: the run's state, its construction, timing, and its result.

use std::time::Instant;

use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::adam::{Adam, AdamParams};
use crate::backprop::{Backward, Chunks};
use crate::checkpoint::{Evaluation, Tracker};
use crate::config::TrainConfig;
use crate::error::{ConfigError, TrainError};
use crate::jet::JetSpec;
use crate::methods::{self, Stepper};
use crate::mlp::Architecture;
use crate::modsync::ModSync;
use crate::observer::Observer;
use crate::pde::{self, Pde};
use crate::tensors::{Ctx, to_host};

mod batch;
mod diagnostics;
mod evaluation;
mod losses;
mod ntk;
mod pack;
mod resume;
mod trace;
mod update;

use batch::{Batch, PackBatch, RawBatch};
use losses::StepGradients;
pub use pack::{Left, Member, Pack, PackError, PackKey, pack_key};
pub use trace::{
    ConditionPoints, NtkBoundaryPoint, NtkPoints, StepInputs, StepOutputs, StepTrace,
    fidelity_config,
};

/// RNG streams: one for the initial weights, one for every sampled point.
const INIT_STREAM: u64 = 0;
const SAMPLE_STREAM: u64 = 1;

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
        let batch = PackBatch::upload(self, std::slice::from_ref(raw));
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
}

fn seeded_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}
