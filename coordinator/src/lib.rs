//! The modsync coordinator: a gRPC service (`proto/sweep.proto`) over one SQLite file.
//!
//! It owns the queue of training jobs of every sweep and everything they report: it validates
//! and expands sweeps into jobs ([`grid`]), hands them to pulling workers under leases with
//! fencing tokens ([`Store::lease_jobs`] and the fenced writes of `worker_ops.rs`, committed in
//! groups by the writer thread of `writer.rs`), returns expired leases to the queue
//! ([`Reaper`]), stores metrics, checkpoints and results, aggregates results into
//! capacity-scaling curves with SQL ([`Store::curves`]), and answers read-only SQL ([`query`]).
//! It never trains: workers do, with trainer-core.
//!
//! Everything lives in the SQLite file, so a coordinator can be killed and restarted at any time:
//! the new one opens the same file and carries on, and leases that expired meanwhile are reaped.
//!
//! Entry points: [`serve`] / [`serve_with_listener`] run the whole server; [`Store`] gives the
//! same operations without gRPC (for tests and in-process use). Sweep files and their expansion
//! into jobs ([`grid::expand`]) are the `modsync-sweep-spec` crate, re-exported here: the CLI
//! checks a file with the same rules the coordinator applies when the sweep arrives.
//!
//! The write path, bottom up (each file imports only those before it):
//! `fence.rs` (the rules every worker write obeys, its wire types, time helpers) →
//! `jobs/` (every statement that changes `jobs` rows: `ops`, `sql`, `lease`, `progress`,
//! `complete`, `queue`) → `writer.rs` (the group-commit thread and its transactions) →
//! `store.rs` (the file, its pools, the writer) → `worker_ops.rs`, `sweep_ops.rs`, `reaper.rs`
//! (the operations) → `service.rs` / `server.rs` (gRPC).
//!
//! Status codes: bad input → `INVALID_ARGUMENT` naming the field; unknown sweep/job →
//! `NOT_FOUND`; a write with a stale fencing token → `FAILED_PRECONDITION` (nothing written);
//! a Query that would write → `PERMISSION_DENIED`; a Query past its time → `DEADLINE_EXCEEDED`;
//! missing/wrong token → `UNAUTHENTICATED`.

pub mod auth;
pub mod auth_limit;
pub mod config;
pub mod conn;
mod curves;
pub mod error;
mod fence;
mod jobs;
pub mod query;
mod reader;
mod reaper;
mod schema;
mod server;
mod service;
mod sqlite_ext;
mod store;
mod sweep_ops;
mod worker_ops;
mod writer;

// Sweep files and their expansion live in their own crate, shared with the CLI; re-exported
// so that `crate::grid` and friends read as before here.
pub use sweep_spec::{field, grid, series, sweep_file};

pub use config::ServeConfig;
pub use error::{Error, Result};
pub use fence::LeaseTerms;
pub use grid::FieldError;
pub use reader::Reader;
pub use reaper::Reaper;
pub use schema::MIGRATOR;
pub use server::{serve, serve_with_listener};
pub use service::SweepService;
pub use store::Store;
pub use sweep_ops::FailedJob;
