//! The worker writes the group-commit writer batches, and what each is answered.
//!
//! An [`OpKind`] is validated before it is built (`worker_ops.rs`), so every field here is
//! already checked; the writer (`writer.rs`) runs a batch of them in one transaction through the
//! per-kind statements of `lease.rs`, `progress.rs` and `complete.rs` and answers each with an
//! [`Answer`] after the COMMIT.

use modsync_proto::{CompleteJobRequest, Job, LeaseJobRequest, ReportProgressRequest};
use trainer_core::{MetricsRow, RunResult};

use crate::fence::LeaseTerms;

/// One worker write, as the writer receives it.
pub(crate) enum OpKind {
    Lease {
        req: LeaseJobRequest,
        terms: LeaseTerms,
        /// Also (re)write the worker's row.
        register: bool,
        now: i64,
    },
    Extend {
        job_id: i64,
        token: i64,
        lease_ms: u64,
    },
    Progress {
        req: ReportProgressRequest,
        rows: Vec<MetricsRow>,
        /// The iteration in the checkpoint's header (`fence::check_checkpoint`); `None`: no
        /// checkpoint in this report.
        checkpoint_iter: Option<i64>,
        lease_ms: u64,
    },
    Complete {
        req: CompleteJobRequest,
        result: Box<RunResult>,
    },
}

/// What an op is answered after the COMMIT.
pub(crate) enum Answer {
    /// The jobs leased (none when nothing is queued), all of one pack key.
    Leased(Vec<Job>),
    /// The cancel flag.
    Extended(bool),
    Completed,
}
