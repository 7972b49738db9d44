//! Packs: K networks of the same shape trained in one batched step.
//!
//! A sweep is hundreds of networks of one shape (PDE × method × width × seed). A [`Pack`] trains
//! K of them together: their parameters are stacked as rows `[K, P]`, their points as
//! `[K, n, dim]`, and the reverse pass of `backprop` runs once for all of them, so the fixed
//! costs of a step (kernel launches on a GPU, op dispatch and the small GEMMs' overhead on a CPU)
//! are paid once. Everything else stays each network's own: θ, Adam state, gradient method,
//! ModSync thresholds, RNG (its own points), iteration counter and lr schedule, evaluations,
//! checkpoints and result. The methods' device reductions of all K networks come back in one
//! host transfer per step ([`apply`]).
//!
//! A single run is a pack of one ([`Trainer::run`]); there is one step code path. Networks
//! join at any step, from scratch or from a checkpoint (at their own iteration), and leave when
//! they finish, diverge or are cancelled, without touching the others: a network's trajectory
//! does not depend on its partners (`tests/packs.rs`).

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::batch::{Batch, PackBatch, RawBatch};
use super::losses::StepGradients;
use super::{RunResult, RunStatus, Trainer};
use crate::backprop::{Backward, PackLayers};
use crate::config::{Precision, TrainConfig};
use crate::observer::Observer;
use crate::pde::BoundaryLoss;
use crate::tensors::to_host;

/// What networks must share to be trained in one batched step: the shapes of every tensor of
/// the step. Methods, ModSync options, seeds, learning rates, iteration counts and evaluation
/// settings may differ.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PackKey {
    pub pde: String,
    pub width: usize,
    pub depth: usize,
    pub precision: Precision,
    /// Collocation lattice of the 3-D problems (it sets their point counts).
    pub nc: usize,
    /// The pack's batched step scales each derivative condition by one factor for all its
    /// networks, so they must read L_b the same way.
    pub boundary_loss: BoundaryLoss,
}

impl std::fmt::Display for PackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} width {} depth {} {:?} nc {}",
            self.pde, self.width, self.depth, self.precision, self.nc
        )?;
        if self.boundary_loss != BoundaryLoss::SumOfMeans {
            write!(f, " L_b {}", self.boundary_loss.name())?;
        }
        Ok(())
    }
}

impl PackKey {
    /// The key as one string, e.g. `burgers:w50:d5:f32:nc16`: what the coordinator stores per job
    /// (`jobs.pack_key`) to lease compatible jobs together. Migration 0003 computes the same
    /// string in SQL from `jobs.config_json` for jobs stored before it; a coordinator test keeps
    /// the two in step, so change both or neither.
    pub fn encode(&self) -> String {
        let precision = match self.precision {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        };
        let key = format!(
            "{}:w{}:d{}:{precision}:nc{}",
            self.pde, self.width, self.depth, self.nc
        );
        // Only a reading other than the first (sum_of_means) adds to the key, so keys stored
        // before readings existed (and migration 0003's) stay the same.
        if self.boundary_loss == BoundaryLoss::SumOfMeans {
            key
        } else {
            format!("{key}:{}", self.boundary_loss.name())
        }
    }
}

/// The pack key of a run: networks with equal keys can share a pack.
pub fn pack_key(config: &TrainConfig) -> PackKey {
    PackKey {
        pde: config.pde.clone(),
        width: config.width,
        depth: config.depth,
        precision: config.precision,
        nc: config.pde_options.nc,
        boundary_loss: config.pde_options.boundary_loss(),
    }
}

/// Why a network cannot join a pack.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PackError {
    #[error("pack key {network} differs from the pack's {pack}")]
    KeyMismatch { network: PackKey, pack: PackKey },
    #[error("the network is on device {network}, the pack on {pack}")]
    DeviceMismatch { network: String, pack: String },
}

/// A network of a [`Pack`] and whoever follows it.
pub struct Member<O> {
    /// Given by [`Pack::join`], unique in the pack's lifetime.
    pub id: u64,
    pub trainer: Trainer,
    pub observer: O,
}

/// A network that left its pack, with its result.
pub struct Left<O> {
    pub id: u64,
    pub trainer: Trainer,
    pub observer: O,
    pub result: RunResult,
}

/// K ≥ 0 networks of one [`PackKey`], trained together one step at a time.
pub struct Pack<O: Observer> {
    members: Vec<Member<O>>,
    next_id: u64,
}

impl<O: Observer> Default for Pack<O> {
    fn default() -> Self {
        Self {
            members: Vec::new(),
            next_id: 0,
        }
    }
}

impl<O: Observer> Pack<O> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The key every member shares (None while empty).
    pub fn key(&self) -> Option<PackKey> {
        self.members.first().map(|m| pack_key(&m.trainer.config))
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn members(&self) -> &[Member<O>] {
        &self.members
    }

    /// Adds a network (fresh, or resumed from a checkpoint: it continues at its own iteration)
    /// from the next step on. Returns its id.
    pub fn join(&mut self, trainer: Trainer, observer: O) -> Result<u64, PackError> {
        if let Some(first) = self.members.first() {
            let (pack, network) = (pack_key(&first.trainer.config), pack_key(&trainer.config));
            if pack != network {
                return Err(PackError::KeyMismatch { network, pack });
            }
            if first.trainer.ctx.device != trainer.ctx.device {
                return Err(PackError::DeviceMismatch {
                    network: format!("{:?}", trainer.ctx.device),
                    pack: format!("{:?}", first.trainer.ctx.device),
                });
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.members.push(Member {
            id,
            trainer,
            observer,
        });
        Ok(id)
    }

    /// Takes a network out between steps (its state stays where it is: checkpoint it to go on
    /// elsewhere).
    pub fn remove(&mut self, id: u64) -> Option<Member<O>> {
        let i = self.members.iter().position(|m| m.id == id)?;
        Some(self.members.remove(i))
    }

    /// One step of every member; returns the ones that left in this step (finished after their
    /// final evaluation, diverged, or cancelled by their observer after a checkpoint).
    pub fn step(&mut self) -> Vec<Left<O>> {
        let mut running: Vec<Running<'_>> = self
            .members
            .iter_mut()
            .map(|m| Running {
                trainer: &mut m.trainer,
                observer: &mut m.observer,
            })
            .collect();
        let left = step(&mut running);
        drop(running);
        let mut out = Vec::with_capacity(left.len());
        for (i, result) in left.into_iter().rev() {
            let m = self.members.remove(i);
            out.push(Left {
                id: m.id,
                trainer: m.trainer,
                observer: m.observer,
                result,
            });
        }
        out.reverse();
        out
    }

    /// Steps until every member has left.
    pub fn run(&mut self) -> Vec<Left<O>> {
        let mut out = Vec::new();
        while !self.is_empty() {
            out.extend(self.step());
        }
        out
    }
}

/// A network taking part in a step.
pub(super) struct Running<'a> {
    pub trainer: &'a mut Trainer,
    pub observer: &'a mut dyn Observer,
}

/// One step of every network in `members`: (index, result) of each that left, in order.
pub(super) fn step(members: &mut [Running<'_>]) -> Vec<(usize, RunResult)> {
    let mut left = Vec::new();
    let mut training = Vec::new();
    let mut finishing = Vec::new();
    for (i, m) in members.iter_mut().enumerate() {
        m.trainer.begin_segment();
        if m.trainer.iter >= m.trainer.config.iters {
            finishing.push(i);
        } else if m.observer.should_stop() {
            m.observer
                .on_checkpoint(&m.trainer.checkpoint(m.trainer.elapsed()));
            left.push((i, m.trainer.end_segment(RunStatus::Cancelled)));
        } else {
            training.push(i);
        }
    }
    if !training.is_empty() {
        let (diverged, reached_end) = train(&mut pick(members, &training));
        for j in diverged {
            let i = training[j];
            left.push((i, members[i].trainer.end_segment(RunStatus::Diverged)));
        }
        finishing.extend(reached_end.into_iter().map(|j| training[j]));
        finishing.sort_unstable();
    }
    if !finishing.is_empty() {
        final_evaluation(&mut pick(members, &finishing));
        for &i in &finishing {
            left.push((i, members[i].trainer.end_segment(RunStatus::Finished)));
        }
    }
    left.sort_by_key(|(i, _)| *i);
    left
}

/// The members at the (ascending) indices `idx`.
fn pick<'s, 'a>(members: &'s mut [Running<'a>], idx: &[usize]) -> Vec<&'s mut Running<'a>> {
    members
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| idx.binary_search(i).is_ok())
        .map(|(_, m)| m)
        .collect()
}

fn trainers<'s>(members: &'s mut [&mut Running<'_>]) -> Vec<&'s mut Trainer> {
    members.iter_mut().map(|m| &mut *m.trainer).collect()
}

/// One optimisation step of each member (with its evaluation when due, reporting, divergence
/// check and periodic checkpoint). Returns the positions that diverged and those that reached
/// their last iteration.
fn train(members: &mut [&mut Running<'_>]) -> (Vec<usize>, Vec<usize>) {
    let raws: Vec<RawBatch> = members.iter_mut().map(|m| m.trainer.sample_raw()).collect();
    let batch = PackBatch::upload(members[0].trainer, &raws);
    let eval_now: Vec<bool> = members
        .iter()
        .map(|m| m.trainer.iter.is_multiple_of(m.trainer.config.eval_every))
        .collect();
    let grads = gradients(&mut trainers(members), &batch, &eval_now, true);
    let mut step_grads = Vec::with_capacity(grads.len());
    for ((m, (g, own_batch)), &eval) in members.iter_mut().zip(grads).zip(&eval_now) {
        if eval {
            let row = m.trainer.evaluate(&own_batch, &g, m.trainer.elapsed());
            m.observer.on_metrics(&row);
        }
        step_grads.push(g);
    }
    apply(&mut trainers(members), step_grads);
    let (mut diverged, mut reached_end) = (Vec::new(), Vec::new());
    for (j, m) in members.iter_mut().enumerate() {
        let t = &mut *m.trainer;
        t.iter += 1;
        m.observer.on_step(t.iter);
        if t.consecutive_skips >= t.config.max_consecutive_skips {
            diverged.push(j);
            continue;
        }
        let every = t.config.checkpoint_every;
        if every > 0 && t.iter.is_multiple_of(every) && t.iter < t.config.iters {
            m.observer.on_checkpoint(&t.checkpoint(t.elapsed()));
        }
        if t.iter >= t.config.iters {
            reached_end.push(j);
        }
    }
    (diverged, reached_end)
}

/// The final evaluation of each member at θ_iters, with the losses of one more (unapplied)
/// batch.
fn final_evaluation(members: &mut [&mut Running<'_>]) {
    let raws: Vec<RawBatch> = members.iter_mut().map(|m| m.trainer.sample_raw()).collect();
    let batch = PackBatch::upload(members[0].trainer, &raws);
    let all = vec![true; members.len()];
    let grads = gradients(&mut trainers(members), &batch, &all, false);
    for (m, (g, own_batch)) in members.iter_mut().zip(grads) {
        let row = m.trainer.evaluate(&own_batch, &g, m.trainer.elapsed());
        m.observer.on_metrics(&row);
    }
}

/// The losses and task gradients of one step of each network (`all[i]`: both tasks, for an
/// evaluation; else the ones its method asks for), with each network's own view of `batch`.
/// ModSync masks and NTK traces are per network; the reverse pass is one batched pass over the
/// networks on the explicit path (the autodiff oracle runs each network alone).
pub(super) fn gradients(
    members: &mut [&mut Trainer],
    batch: &PackBatch,
    all: &[bool],
    training: bool,
) -> Vec<(StepGradients, Batch)> {
    let k = members.len();
    let own_batches: Vec<Batch> = (0..k).map(|i| batch.member(i)).collect();
    let mut masked = Vec::with_capacity(k);
    let mut tasks = Vec::with_capacity(k);
    for ((m, own), &all) in members.iter_mut().zip(&own_batches).zip(all) {
        masked.push(m.begin_gradients(own, training));
        tasks.push(if all {
            crate::methods::Tasks::Both
        } else {
            m.stepper.method.tasks(m.iter)
        });
    }
    let theta_used: Vec<Tensor<1>> = members
        .iter()
        .zip(&masked)
        .map(|(m, s)| s.as_ref().map_or(&m.theta, |s| &s.theta).clone())
        .collect();
    type Task = Option<(Tensor<1>, Tensor<1>)>;
    let mut residual: Vec<Task> = vec![None; k];
    let mut boundary: Vec<Task> = vec![None; k];
    let explicit: Vec<usize> = (0..k)
        .filter(|&i| members[i].backward == Backward::Explicit)
        .collect();
    if !explicit.is_empty() {
        let lead = &*members[explicit[0]];
        let rows = Tensor::cat(
            explicit
                .iter()
                .map(|&i| theta_used[i].clone().unsqueeze_dim(0))
                .collect(),
            0,
        );
        let layers = PackLayers::from_rows(&rows, &lead.arch);
        let selected;
        let batch = if explicit.len() == k {
            batch
        } else {
            selected = batch.select(&explicit);
            &selected
        };
        let p = lead.arch.num_params();
        let spread = |(losses, grads): (Tensor<1>, Tensor<2>), into: &mut Vec<Task>| {
            for (j, &i) in explicit.iter().enumerate() {
                into[i] = Some((
                    losses.clone().narrow(0, j, 1),
                    grads.clone().narrow(0, j, 1).reshape([p]),
                ));
            }
        };
        if explicit.iter().any(|&i| tasks[i].residual()) {
            spread(lead.residual_explicit(&layers, batch), &mut residual);
        }
        if explicit.iter().any(|&i| tasks[i].boundary()) {
            spread(lead.boundary_explicit(&layers, batch), &mut boundary);
        }
    }
    for i in (0..k).filter(|i| !explicit.contains(i)) {
        let m = &*members[i];
        if tasks[i].residual() {
            residual[i] = Some(m.task_autodiff(&theta_used[i], &own_batches[i], true));
        }
        if tasks[i].boundary() {
            boundary[i] = Some(m.task_autodiff(&theta_used[i], &own_batches[i], false));
        }
    }
    members
        .iter()
        .zip(masked)
        .zip(tasks)
        .zip(residual.into_iter().zip(boundary))
        .zip(own_batches)
        .map(|((((m, masked), tasks), (r, b)), own)| {
            let r = r.filter(|_| tasks.residual());
            let b = b.filter(|_| tasks.boundary());
            (m.finish_gradients(masked, r, b), own)
        })
        .collect()
}

/// Steps every network with its gradients. The device values each network's method needs on
/// the host (norms, dot products, losses to check) are concatenated and read back in one
/// transfer for the whole pack; each network then finishes its own update.
pub(super) fn apply(members: &mut [&mut Trainer], grads: Vec<StepGradients>) {
    let (reads, pending): (Vec<Tensor<1>>, Vec<_>) = members
        .iter_mut()
        .zip(grads)
        .map(|(m, g)| m.prepare_apply(g))
        .unzip();
    let lens: Vec<usize> = reads.iter().map(|r| r.dims()[0]).collect();
    let host = to_host(Tensor::cat(reads, 0));
    let mut rest = host.as_slice();
    for ((m, p), len) in members.iter_mut().zip(pending).zip(lens) {
        let (own, tail) = rest.split_at(len);
        m.finish_apply(p, own);
        rest = tail;
    }
}
