//! Errors of trainer-core. Each names the field or value that caused it.

use thiserror::Error;

/// A configuration value that cannot be used, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {field}: {problem}")]
pub struct ConfigError {
    /// Dotted path of the field (`width`, `pde_options.nc`, …).
    pub field: String,
    /// What is wrong with it, in words.
    pub problem: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Anything that can stop a run before it produces a result.
#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("checkpoint does not fit this run: {0}")]
    Checkpoint(String),
}
