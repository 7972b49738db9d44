//! modsync's libraries composed in one process, for the CLI's commands that run more than one
//! of them: [`LocalSweep`] (`modsync sweep run`: a coordinator, its dashboard and workers) and
//! [`server::serve`] (`modsync coordinator --http`: the coordinator and its dashboard) and
//! [`shutdown_signal`] (how every serving command is asked to stop).

pub mod local_sweep;
pub mod server;
pub mod signal;

pub use local_sweep::{Ending, LocalSweep, LocalSweepConfig};
pub use signal::shutdown_signal;
