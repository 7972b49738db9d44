//! trainer-core: physics-informed neural network training for the ModSync benchmarks.
//!
//! One run = one [`TrainConfig`]: an MLP whose input derivatives come from forward Taylor jets
//! ([`jet`]), one of five benchmark PDEs ([`pde`]), a gradient method ([`methods`]), optionally
//! wrapped in ModSync's masked layers ([`modsync`]), and Adam.
//! [`Trainer`] runs it (or a [`Pack`] runs K of one shape together) and reports through an
//! [`Observer`]. PDEs and methods are registries ([`pde::PDES`], [`methods::METHODS`]): their
//! names, validation, construction and, through [`catalogue`] and [`options`], every option's
//! help, default and CLI flag come from those tables. This crate knows nothing of gRPC or SQL;
//! the worker and `modsync train` drive it, the coordinator validates configs with it.
//! `SPEC.md` in the shared folder is the numerical contract.

/// The `name` of every entry of a registry table (`&[Entry]`), as a const array.
macro_rules! registry_names {
    ($table:expr) => {{
        let mut names = [""; $table.len()];
        let mut i = 0;
        while i < names.len() {
            names[i] = $table[i].name;
            i += 1;
        }
        names
    }};
}

pub mod adam;
pub mod backprop;
pub mod catalogue;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod diagnostic_kind;
pub mod error;
pub mod jet;
pub mod methods;
pub mod metrics_row;
pub mod mlp;
pub mod modsync;
pub mod observer;
pub mod options;
pub mod pde;
pub mod tensors;
pub mod trainer;

pub use checkpoint::Checkpoint;
pub use config::{Precision, TrainConfig};
pub use device::parse_device;
pub use diagnostic_kind::{AxisScale, DiagnosticKind};
pub use error::{ConfigError, TrainError};
pub use metrics_row::{
    METRICS_COLUMNS, MetricValue, MetricsColumn, MetricsRow, ReadMetric, real_metrics_columns,
};
pub use observer::{NoopObserver, Observer};
pub use trainer::{
    Left, Member, Pack, PackError, PackKey, RunResult, RunStatus, Trainer, pack_key,
};

/// The default device: Burn's pure-Rust CPU backend (`--device cpu`). Other devices:
/// [`parse_device`].
pub fn default_device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}
