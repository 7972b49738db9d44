//! The command line: [`Args`], each flag checked by clap and the flags together by
//! [`Args::check`].

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "coordinator-load",
    about = "Load-test a real coordinator (in-process, loopback gRPC, SQLite) with simulated workers"
)]
pub struct Args {
    /// Jobs in the sweep: one lease+complete cycle each.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub jobs: u64,
    /// Simulated workers running concurrently.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub workers: u64,
    /// gRPC channels (TCP connections) shared round-robin by the workers; 0 = one per worker.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub connections: u64,
    /// Simulated training time per job in ms (±50 %), split around the heartbeat; 0 = none.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub work_ms: u64,
    /// First leases are spread uniformly over this many ms [default: --work-ms].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub ramp_ms: Option<u64>,
    /// Metric rows per ReportProgress.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub metric_rows: u64,
    /// f64 values in the checkpoint sent with each ReportProgress; 0 = no checkpoint.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub checkpoint_floats: u64,
    /// Fraction of workers that stall past their lease and then write with a stale token.
    #[arg(long, default_value_t = 0.01, value_parser = parse_fraction)]
    pub stall_fraction: f64,
    /// Coordinator lease length (ServeConfig lease_ms).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=600_000))]
    pub lease_ms: u64,
    /// Heartbeat interval the coordinator announces (ServeConfig heartbeat_ms).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub heartbeat_ms: u64,
    /// Reaper period (ServeConfig reap_every_ms).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub reap_every_ms: u64,
    /// Give up (and fail) after this many seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout_s: u64,
    /// SQLite file for the coordinator (must not exist) [default: a temporary file].
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Keep the database file at the end (the temporary one is removed otherwise).
    #[arg(long)]
    pub keep_db: bool,
    /// Tokio worker threads [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: Option<u64>,
    /// Seed of the simulated timings.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=0.5).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be in 0..=0.5, got {v}"))
    }
}

impl Args {
    /// Checks between flags (each flag alone is checked by clap).
    pub fn check(&self) -> Result<(), String> {
        if self.heartbeat_ms >= self.lease_ms {
            return Err(format!(
                "--heartbeat-ms ({}) must be below --lease-ms ({})",
                self.heartbeat_ms, self.lease_ms
            ));
        }
        if self.connections > self.workers {
            return Err(format!(
                "--connections ({}) must be at most --workers ({}); 0 = one per worker",
                self.connections, self.workers
            ));
        }
        // The longest silence of a live worker is 3/4 of the work time (half of 1.5 × work).
        if self.work_ms * 3 / 4 + 100 >= self.lease_ms {
            return Err(format!(
                "--lease-ms ({}) must exceed 3/4 of --work-ms ({}) + 100 ms, or live workers lose \
                 their leases",
                self.lease_ms, self.work_ms
            ));
        }
        if let Some(db) = &self.db
            && db.exists()
        {
            return Err(format!(
                "--db: {} already exists; the load test needs a fresh store",
                db.display()
            ));
        }
        Ok(())
    }
}
