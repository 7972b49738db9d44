//! The modsync gRPC contract: messages and the `Sweeps` service generated from
//! `proto/sweep.proto`. See that file for what each RPC promises.

#![allow(clippy::large_enum_variant)]

/// Package `modsync.v1`.
pub mod v1 {
    tonic::include_proto!("modsync.v1");
}

pub use v1::*;

/// Most jobs one `LeaseJob` may ask for (`max_jobs`), so the most networks a worker slot packs
/// together: far more than any device trains well in one step.
pub const MAX_LEASE_JOBS: u32 = 1_024;
