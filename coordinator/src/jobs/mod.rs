//! Every statement that changes a row of `jobs`, and the job life cycle they implement.
//!
//! ```text
//! queued ──lease──▶ running ──complete──▶ done
//!    ▲                 │ fail / expiry: attempts left → queued, none left → failed
//!    └──── release ────┘ a cancelled sweep ends its jobs as cancelled; retry re-queues them
//! ```
//!
//! Where each transition's SQL lives:
//!
//! | transition | file | run by |
//! |---|---|---|
//! | lease (queued → running, new token) | `lease.rs` | the writer, batched |
//! | heartbeat, progress (lease extended; metrics, checkpoint) | `progress.rs` | the writer, batched |
//! | complete (running → done; result row) | `complete.rs` | the writer, batched |
//! | fail, release (fenced `UPDATE … RETURNING`) | `queue.rs` | `worker_ops.rs`, own transaction |
//! | reap expired leases | `queue.rs` | the reaper, own transaction |
//! | create a sweep's jobs, cancel, retry | `queue.rs` | `sweep_ops.rs`, own transaction |
//!
//! `ops.rs` holds the writes the writer batches ([`ops::OpKind`]) and their answers; `sql.rs`
//! the placeholder builders of the set-based statements and the refusal of a fenced write.
//! Reads of a sweep's jobs for its status (counts by state, failed jobs) live with the sweep
//! summaries in `sweep_ops.rs`.
//!
//! The fence every worker write passes — `(id, token) match AND state = 'running'`, checked in
//! the same transaction before anything is written — is in every statement here that a worker's
//! write runs; the rules are stated in `fence.rs`.

pub(crate) mod complete;
pub(crate) mod lease;
pub(crate) mod ops;
pub(crate) mod progress;
pub(crate) mod queue;
pub(crate) mod sql;
