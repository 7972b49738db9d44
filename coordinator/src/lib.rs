//! The modsync coordinator: a gRPC service (`proto/sweep.proto`) over one SQLite file.
//!
//! It owns the queue of training jobs of every sweep and everything they report: it validates
//! and expands sweeps into jobs ([`sweep`]), hands them to pulling workers under leases with
//! fencing tokens ([`Store::lease_job`] and the fenced writes in `lease.rs`), returns expired
//! leases to the queue ([`Reaper`]), stores metrics, checkpoints and results, aggregates results
//! into capacity-scaling curves with SQL ([`Store::curves`]), and answers read-only SQL
//! ([`query`]). It never trains: workers do, with trainer-core.
//!
//! Everything lives in the SQLite file, so a coordinator can be killed and restarted at any time:
//! the new one opens the same file and carries on, and leases that expired meanwhile are reaped.
//!
//! Entry points: [`serve`] / [`serve_with_listener`] run the whole server; [`Store`] gives the
//! same operations without gRPC (for tests and in-process use); [`sweep::expand`] is the
//! validation the CLI runs before submitting.
//!
//! Status codes: bad input → `INVALID_ARGUMENT` naming the field; unknown sweep/job →
//! `NOT_FOUND`; a write with a stale fencing token → `FAILED_PRECONDITION` (nothing written);
//! a Query that would write → `PERMISSION_DENIED`; a Query past its time → `DEADLINE_EXCEEDED`;
//! missing/wrong token → `UNAUTHENTICATED`.

pub mod auth;
mod batch;
pub mod config;
mod curves;
pub mod error;
mod lease;
pub mod query;
mod reader;
mod reaper;
mod server;
mod service;
mod sqlite_ext;
mod store;
pub mod sweep;
mod sweeps;

pub use config::ServeConfig;
pub use error::{Error, Result};
pub use lease::LeaseTerms;
pub use reader::Reader;
pub use reaper::Reaper;
pub use server::{serve, serve_with_listener};
pub use service::SweepService;
pub use store::{MIGRATOR, Store};
pub use sweep::FieldError;
