//! Checkpoint and resume of one run: what is saved (θ, Adam moments, step, RNG position,
//! best-so-far bookkeeping, the method's and ModSync's state) and how a run continues from it
//! bit-identically on the CPU backend.

use burn::tensor::Device;

use super::Trainer;
use crate::adam::{Adam, AdamParams, AdamState};
use crate::checkpoint::Checkpoint;
use crate::error::TrainError;
use crate::methods::MethodState;

impl Trainer {
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
}

fn missing(name: &str) -> TrainError {
    TrainError::Checkpoint(format!("missing vector {name}"))
}
