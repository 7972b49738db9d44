//! What modsync's read commands make of a sweep store — the CLI's data layer, so that `src/`
//! is only flags and wiring.
//!
//! - [`source`]: where the answers come from: a store file read-only, or a coordinator.
//! - [`curves`]: the capacity-scaling table, CSV and chart (`modsync curves`, `sweep run`).
//! - [`history`]: one metric over the iterations, per method and width (`modsync history`),
//!   drawn by `history/chart.rs`.
//! - [`table`]: query answers as an aligned table or CSV (`modsync sql`).
//! - [`metrics_csv`]: `metrics.csv` of `modsync train --out`.
//! - [`reference`], [`run`], [`hint`]: `modsync reference`'s CSV, `modsync train`'s summary
//!   line, and the commands that read a store after `sweep run`.
//! - [`files`]: output directories and atomic writes.
//!
//! Every chart is the dashboard's (`dashboard::svg`, `dashboard::scaling`), as a file through
//! `dashboard::sheet`: a curve looks the same in a file and on the page.

pub mod curves;
pub mod files;
pub mod hint;
pub mod history;
pub mod metrics_csv;
pub mod reference;
pub mod run;
pub mod source;
pub mod table;

pub use source::Source;
