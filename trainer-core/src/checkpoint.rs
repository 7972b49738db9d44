//! Everything needed to continue a run exactly where it stopped: parameters, optimiser and
//! method state, the step counter, the sampling RNG position, and the best-so-far bookkeeping.
//!
//! Wire format (`to_bytes`): the magic line `MODSYNC-CKPT 1\n`, a little-endian u64 length and a
//! JSON header, then each named vector as raw little-endian f64 (its length is in the header).
//! f64 holds f32 parameters exactly, so a restore is bit-identical in either precision.

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::TrainError;

const MAGIC: &[u8] = b"MODSYNC-CKPT 1\n";

/// Best, lowest-loss and last evaluation of a run, as the reported errors need them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    /// (iteration, rel L2, mean abs error, max abs error) at the lowest test rel L2.
    pub best: Option<Evaluation>,
    /// The evaluation at the lowest training loss L_r + L_b (DCGD's convention).
    pub min_loss: Option<Evaluation>,
    pub last: Option<Evaluation>,
}

/// One evaluation's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub iter: u64,
    pub rel_l2: f64,
    pub abs_err: f64,
    pub abs_err_max: f64,
    pub loss: f64,
}

impl Tracker {
    pub fn record(&mut self, e: Evaluation) {
        if self.best.is_none_or(|b| e.rel_l2 < b.rel_l2) {
            self.best = Some(e);
        }
        if self.min_loss.is_none_or(|b| e.loss < b.loss) {
            self.min_loss = Some(e);
        }
        self.last = Some(e);
    }
}

/// A resumable snapshot of a run after `iter` steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub iter: u64,
    pub config: TrainConfig,
    /// ChaCha word position of the sampling RNG (u128 as a decimal string for JSON).
    pub rng_word_pos: String,
    pub skipped_steps: u64,
    pub consecutive_skips: u64,
    /// Training seconds before this checkpoint (so throughput survives resumes).
    pub elapsed_s: f64,
    pub tracker: Tracker,
    /// Bias-correction step of the parameter optimiser.
    pub adam_t: u64,
    /// Integer state of the method and of ModSync (step counters):
    /// `{"method": …, "modsync": …}`. Their floats travel as vectors, which round-trip exactly.
    pub method_state: serde_json::Value,
    /// Named vectors: `theta`, `adam_m`, `adam_v`, the method's as `method.<name>` (moments,
    /// LRA/NTK weights) and ModSync's as `modsync.<name>` (thresholds and their Adam).
    #[serde(skip)]
    pub vectors: Vec<(String, Vec<f64>)>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    #[serde(flatten)]
    checkpoint: Checkpoint,
    vector_names: Vec<String>,
    vector_lens: Vec<usize>,
}

impl Checkpoint {
    pub fn vector(&self, name: &str) -> Option<&[f64]> {
        self.vectors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            checkpoint: Checkpoint {
                vectors: Vec::new(),
                ..self.clone()
            },
            vector_names: self.vectors.iter().map(|(n, _)| n.clone()).collect(),
            vector_lens: self.vectors.iter().map(|(_, v)| v.len()).collect(),
        };
        let json = serde_json::to_vec(&header).expect("checkpoint header serialises");
        let payload: usize = self.vectors.iter().map(|(_, v)| v.len() * 8).sum();
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + json.len() + payload);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for (_, v) in &self.vectors {
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TrainError> {
        let bad = |what: &str| TrainError::Checkpoint(what.to_string());
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("missing MODSYNC-CKPT 1 magic"))?;
        let (len, rest) = rest
            .split_at_checked(8)
            .ok_or_else(|| bad("truncated header length"))?;
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        let (json, mut rest) = rest
            .split_at_checked(len)
            .ok_or_else(|| bad("truncated header"))?;
        let header: Header = serde_json::from_slice(json)
            .map_err(|e| TrainError::Checkpoint(format!("bad header: {e}")))?;
        if header.vector_names.len() != header.vector_lens.len() {
            return Err(bad("vector names and lengths differ"));
        }
        let mut checkpoint = header.checkpoint;
        for (name, &n) in header.vector_names.into_iter().zip(&header.vector_lens) {
            let nbytes = n
                .checked_mul(8)
                .ok_or_else(|| bad("vector length overflows"))?;
            let (raw, tail) = rest
                .split_at_checked(nbytes)
                .ok_or_else(|| bad("truncated vector data"))?;
            let v = raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            checkpoint.vectors.push((name, v));
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the last vector"));
        }
        Ok(checkpoint)
    }

    pub fn rng_word_pos(&self) -> Result<u128, TrainError> {
        self.rng_word_pos
            .parse()
            .map_err(|_| TrainError::Checkpoint("bad rng_word_pos".into()))
    }
}
