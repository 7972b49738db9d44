//! The training step's reverse pass, written out by hand (SPEC §1 jets, first order in θ), for a
//! pack of K networks of the same shape at once.
//!
//! Every tensor carries the pack as its leading dimension: weights `[K, in, out]`, points
//! `[K, n, dim]`. The jet streams of a layer (value, first derivatives, second derivatives) are
//! stacked as row blocks of one `[K, m·n, width]` tensor, so each layer is one batched matrix
//! product forward, one for the data gradient and one for the weight gradient, whatever the
//! number of streams or networks; the bias only touches the value block. The tanh jet and its
//! adjoint are a handful of elementwise passes over `[K, streams, n, width]` views. A single run
//! is a pack of one: there is one step code path.
//!
//! The work is cut into [`Chunks`] — groups of networks × ranges of rows — that run on separate
//! threads on the CPU and are summed in a fixed order, so a network's result does not depend on
//! its partners, on K, or on the core count.
//!
//! The cotangents of the losses with respect to the network outputs come from the PDE's own
//! residual through Burn autodiff over that last, `[K·n, 1]`-sized stage, so a PDE stays one
//! file. The autodiff path (`mlp::Layers::forward_jet` + `backward`) is kept as the oracle: the
//! tests compare both on every PDE (`tests/backprop.rs`).
//!
//! Files: `layers.rs` (the stacked streams, a pack's layers), `blocks.rs` (stream-block
//! reshapes), `tanh.rs` (the tanh jet and its adjoint), `tape.rs` (forward and reverse pass),
//! `chunks.rs` (networks × rows on threads), `losses.rs` (the task losses and their gradients).

mod blocks;
mod chunks;
mod layers;
mod losses;
mod tanh;
mod tape;

pub use chunks::Chunks;
pub use layers::{PackLayers, Streams};
pub use losses::{derivative_loss_and_grad, residual_loss_and_grad, value_loss_and_grad};
pub use tape::{Outputs, Tape};

/// How a training step computes ∇θ of its task losses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backward {
    /// The reverse pass of this module.
    #[default]
    Explicit,
    /// Burn autodiff through separate jet streams: the oracle, and the baseline of
    /// `bench/step-time.sh`.
    Autodiff,
}

impl std::str::FromStr for Backward {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "explicit" => Ok(Self::Explicit),
            "autodiff" => Ok(Self::Autodiff),
            _ => Err(format!("{s:?}: expected explicit or autodiff")),
        }
    }
}
