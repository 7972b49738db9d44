//! Sweep files and what they expand to, shared by the CLI (which reads and checks a file before
//! anything is sent) and the coordinator (which checks the spec again when it arrives and stores
//! its jobs): the same rules on both sides, from one crate that knows nothing of servers.
//!
//! [`sweep_file::load`] reads a sweep file (TOML) into a [`modsync_proto::SweepSpec`];
//! [`grid::expand`] / [`grid::expand_jobs`] turn a spec into its jobs (PDEs × methods × widths ×
//! seeds × series), each a validated `TrainConfig` with its canonical JSON, the job's identity;
//! [`series`] holds the rules of extra axes (`[grid.axes]`) and named variants
//! (`[[grid.variants]]`); [`field`] what grid and series share (errors that name the field,
//! identifiers, the TrainConfig JSON shape, laying settings over a config).
//!
//! Import order (each file imports only those before it): `field` → `series` → `grid` →
//! `sweep_file`.

pub mod field;
pub mod grid;
pub mod series;
pub mod sweep_file;

pub use grid::FieldError;
