//! The report of a run: the latency table, throughput, stale writes, the database checks and
//! the last line `cycles_per_s=… p50_ms=… p99_ms=… lost=… duplicated=… stale_accepted=…`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::shared::{RPC_NAMES, WorkerStats};
use crate::verify::Verdict;

const TARGET_CYCLES_PER_S: f64 = 2000.0;
const TARGET_P99_MS: f64 = 50.0;

/// What a run measured and found, for [`print`].
pub struct Outcome {
    /// gRPC channels the workers shared.
    pub n_conn: usize,
    pub load_before: String,
    pub load_after: String,
    pub submit_s: f64,
    /// From the start of the run to the last acknowledgement.
    pub run_s: f64,
    /// From the start of the run until every worker stopped.
    pub wall: Duration,
    pub stats: WorkerStats,
    pub verdict: Verdict,
    pub timed_out: bool,
}

/// Prints the report of a run over the store `db`; `true` when every check passed.
pub fn print(args: &Args, db: &Path, outcome: Outcome) -> bool {
    let Outcome {
        n_conn,
        load_before,
        load_after,
        submit_s,
        run_s,
        wall,
        mut stats,
        verdict: v,
        timed_out,
    } = outcome;
    let workers = args.workers as usize;
    let acked = stats.acked.len() as f64;
    let cycles_per_s = if run_s > 0.0 { acked / run_s } else { 0.0 };
    let mut all: Vec<u32> = stats.lat_us.iter().flatten().copied().collect();
    all.sort_unstable();
    let (p50, p99) = (pct_ms(&all, 0.50), pct_ms(&all, 0.99));
    println!(
        "coordinator-load: {} jobs, {} workers over {} connections, work {} ms/job (±50 %), \
         lease {} ms, reaper every {} ms, {} metric rows + {}-float checkpoint per job",
        args.jobs,
        workers,
        n_conn,
        args.work_ms,
        args.lease_ms,
        args.reap_every_ms,
        args.metric_rows,
        args.checkpoint_floats
    );
    println!(
        "machine: {} cores, load average {load_before} before, {load_after} after; sweep \
         submitted in {submit_s:.2} s",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<16} {:>8} {:>9} {:>9} {:>9}",
        "rpc", "count", "p50_ms", "p99_ms", "max_ms"
    );
    for (name, lat) in RPC_NAMES.iter().zip(&stats.lat_us) {
        let mut l = lat.clone();
        l.sort_unstable();
        println!(
            "{name:<16} {:>8} {:>9.2} {:>9.2} {:>9.2}",
            l.len(),
            pct_ms(&l, 0.5),
            pct_ms(&l, 0.99),
            pct_ms(&l, 1.0)
        );
    }
    println!(
        "{:<16} {:>8} {:>9.2} {:>9.2} {:>9.2}",
        "all",
        all.len(),
        p50,
        p99,
        pct_ms(&all, 1.0)
    );
    let steady =
        steady_rate(&mut stats.ack_times).map_or_else(|| "-".to_string(), |r| format!("{r:.0}"));
    println!(
        "completions acknowledged: {} in {run_s:.2} s ({:.0} RPC/s; steady state, 10th-90th \
         percentile of completions: {steady} cycles/s); empty leases {}; live leases lost under \
         load {}; transient errors {}",
        stats.acked.len(),
        all.len() as f64 / wall.as_secs_f64().max(1e-9),
        stats.empty_leases,
        stats.leases_lost,
        stats.transient_errors
    );
    println!(
        "stale writes: {} stalled workers, {} jobs taken over before the writes; {} sent, {} \
         refused (FAILED_PRECONDITION; {} while another worker held the lease), {} accepted; \
         stale marker rows in the database: {}",
        stats.stalled,
        stats.taken_over,
        stats.stale_sent,
        stats.stale_refused,
        stats.stale_vs_live,
        stats.stale_accepted,
        v.stale_rows
    );
    println!(
        "database: jobs {} ({}), results {}, metric rows {}; without result {}, acknowledged \
         but not stored {}, >1 result {}, acknowledged twice {}",
        v.jobs,
        v.states,
        v.results,
        v.metric_rows,
        v.no_result,
        v.ack_mismatch,
        v.multi_results,
        v.dup_acks
    );
    let met = cycles_per_s >= TARGET_CYCLES_PER_S && p99 < TARGET_P99_MS;
    println!(
        "targets (>= {TARGET_CYCLES_PER_S} cycles/s, p99 < {TARGET_P99_MS} ms): {}",
        if met { "met" } else { "NOT met" }
    );
    for t in stats.transient_seen.iter().take(5) {
        println!("transient (retried): {t}");
    }
    for u in stats.unexpected.iter().take(10) {
        println!("unexpected: {u}");
    }
    if stats.unexpected.len() > 10 {
        println!("unexpected: … {} more", stats.unexpected.len() - 10);
    }
    if timed_out {
        println!("timed out after {} s (--timeout-s)", args.timeout_s);
    }
    if args.keep_db || args.db.is_some() {
        println!("database kept at {}", db.display());
    }
    let lost = v.no_result + v.ack_mismatch;
    let duplicated = v.multi_results + v.dup_acks;
    let stale_accepted = stats.stale_accepted + v.stale_rows;
    println!(
        "cycles_per_s={cycles_per_s:.1} p50_ms={p50:.2} p99_ms={p99:.2} lost={lost} \
         duplicated={duplicated} stale_accepted={stale_accepted}"
    );
    lost == 0 && duplicated == 0 && stale_accepted == 0 && stats.unexpected.is_empty() && !timed_out
}

/// Completions per second between the 10th and the 90th percentile of the acknowledgement
/// times: the rate once every worker is busy, without the ramp-up and the last stragglers.
fn steady_rate(times: &mut [Instant]) -> Option<f64> {
    times.sort_unstable();
    let (lo, hi) = (times.len() / 10, times.len() * 9 / 10);
    let span = times.get(hi)?.duration_since(*times.get(lo)?).as_secs_f64();
    (span > 0.0).then(|| (hi - lo) as f64 / span)
}

/// Nearest-rank percentile of sorted microseconds, in ms.
fn pct_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn steady_rate_leaves_out_the_ramp_and_the_stragglers() {
        let t0 = Instant::now();
        // 100 completions 10 ms apart, then one straggler 6 s later.
        let mut times: Vec<Instant> = (0..100)
            .map(|i| t0 + Duration::from_millis(10 * i))
            .collect();
        times.push(t0 + Duration::from_secs(6));
        times.reverse();
        // The 10th..90th of 101: 80 completions over 800 ms.
        let rate = steady_rate(&mut times).unwrap();
        assert!((rate - 100.0).abs() < 1e-6, "{rate}");
        assert_eq!(steady_rate(&mut []), None);
    }
}
