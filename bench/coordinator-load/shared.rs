//! What the simulated workers share — the plan and the run's live counters ([`Shared`]) — and
//! what each records ([`WorkerStats`]), merged at the end; the stale-write markers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use modsync_proto::sweeps_client::SweepsClient;
use tonic::transport::Channel;

pub type Client = SweepsClient<Channel>;

/// Metric rows, checkpoints and results written with a stale token carry these markers, so the
/// final check can also look for them in the database (any row found = a stale write stuck).
pub const STALE_ITER: u64 = 987_654;
pub const STALE_REL_L2: f64 = 4242.0;

/// The RPCs whose latency is measured, in table order.
pub const RPC_NAMES: [&str; 4] = ["LeaseJob", "Heartbeat", "ReportProgress", "CompleteJob"];

/// What every worker shares: the plan and the run's live counters.
pub struct Shared {
    pub work: Duration,
    pub ramp: Duration,
    pub metric_rows: u64,
    pub checkpoint_floats: usize,
    pub lease_ms: u64,
    pub reap_every_ms: u64,
    pub seed: u64,
    /// Completions the coordinator acknowledged so far.
    pub acked: AtomicU64,
    pub jobs: u64,
    /// Set by the monitor when no job is queued or running any more, or at the deadline.
    pub stop: AtomicBool,
    pub deadline: Instant,
}

impl Shared {
    pub fn finished(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self.acked.load(Ordering::Relaxed) >= self.jobs
            || Instant::now() > self.deadline
    }
}

/// Everything one worker observed; merged by the caller.
#[derive(Default)]
pub struct WorkerStats {
    /// Latency in microseconds per RPC of [`RPC_NAMES`] (stale writes and monitor calls are not
    /// here).
    pub lat_us: [Vec<u32>; 4],
    pub empty_leases: u64,
    /// (job id, worker id) of every completion the coordinator acknowledged.
    pub acked: Vec<(i64, String)>,
    /// Writes of a live (non-stalling) worker refused as stale: its lease expired under load.
    pub leases_lost: u64,
    pub transient_errors: u64,
    /// The first few transient errors, for the report.
    pub transient_seen: Vec<String>,
    pub stale_sent: u64,
    pub stale_accepted: u64,
    pub stale_refused: u64,
    /// Of those, refused while another worker held the job's lease (not after it was done).
    pub stale_vs_live: u64,
    /// Stalled jobs that another worker had leased before the stale writes were sent.
    pub taken_over: u64,
    pub stalled: u64,
    /// Anything that should not happen (wrong status codes, …), one line each.
    pub unexpected: Vec<String>,
    pub last_ack: Option<Instant>,
    /// When each acknowledgement arrived (for the steady-state rate).
    pub ack_times: Vec<Instant>,
}

impl WorkerStats {
    /// Adds another worker's observations to these.
    pub fn merge(&mut self, s: WorkerStats) {
        for (a, b) in self.lat_us.iter_mut().zip(s.lat_us) {
            a.extend(b);
        }
        self.empty_leases += s.empty_leases;
        self.acked.extend(s.acked);
        self.leases_lost += s.leases_lost;
        self.transient_errors += s.transient_errors;
        if self.transient_seen.len() < 5 {
            self.transient_seen.extend(s.transient_seen);
        }
        self.stale_sent += s.stale_sent;
        self.stale_accepted += s.stale_accepted;
        self.stale_refused += s.stale_refused;
        self.stale_vs_live += s.stale_vs_live;
        self.taken_over += s.taken_over;
        self.stalled += s.stalled;
        self.unexpected.extend(s.unexpected);
        self.last_ack = self.last_ack.max(s.last_ack);
        self.ack_times.extend(s.ack_times);
    }
}
