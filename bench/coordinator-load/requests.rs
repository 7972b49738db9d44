//! The messages a simulated worker sends: Heartbeat, ReportProgress (metric rows and a small
//! checkpoint) and CompleteJob, normal or carrying the stale markers.

use modsync_proto::*;
use trainer_core::{Checkpoint, MetricsRow, RunResult, RunStatus, TrainConfig};

use crate::shared::{STALE_ITER, STALE_REL_L2};
use crate::sim::Worker;

impl Worker {
    pub fn heartbeat(&self, job: &Job, iter: u64) -> HeartbeatRequest {
        HeartbeatRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: self.id.clone(),
            iter,
        }
    }

    pub fn progress(&self, job: &Job, stale: bool) -> Result<ReportProgressRequest, String> {
        let n = self.shared.metric_rows;
        let iters: Vec<u64> = if stale {
            vec![STALE_ITER]
        } else {
            (1..=n).map(|i| i * 10).collect()
        };
        let metrics = iters
            .iter()
            .map(|&iter| {
                let row = MetricsRow {
                    iter,
                    lr: 1e-3,
                    loss_r: 1.0 / iter as f64,
                    loss_b: 0.5 / iter as f64,
                    rel_l2: 0.1,
                    abs_err: 0.01,
                    abs_err_max: 0.1,
                    skipped_steps: 0,
                    elapsed_s: iter as f64 * 1e-3,
                    extra: Default::default(),
                };
                serde_json::to_string(&row)
                    .map(|row_json| MetricRow { row_json })
                    .map_err(|e| format!("{}: metrics row: {e}", self.id))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ckpt_iter = iters.last().copied().unwrap_or(0);
        let checkpoint = if self.shared.checkpoint_floats > 0 || stale {
            self.checkpoint(job, ckpt_iter)?
        } else {
            Vec::new()
        };
        Ok(ReportProgressRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: self.id.clone(),
            metrics,
            checkpoint,
        })
    }

    fn checkpoint(&self, job: &Job, iter: u64) -> Result<Vec<u8>, String> {
        let bad = |e: serde_json::Error| format!("{}: checkpoint: {e}", self.id);
        let config: serde_json::Value = serde_json::from_str(&job.config_json).map_err(bad)?;
        let mut ckpt: Checkpoint = serde_json::from_value(serde_json::json!({
            "iter": iter,
            "config": config,
            "rng_word_pos": "0",
            "skipped_steps": 0,
            "consecutive_skips": 0,
            "elapsed_s": 0.1,
            "tracker": {"best": null, "min_loss": null, "last": null},
            "adam_t": iter,
            "method_state": null,
        }))
        .map_err(bad)?;
        let n = self.shared.checkpoint_floats.max(1);
        ckpt.vectors = vec![("theta".into(), (0..n).map(|i| i as f64 * 0.5).collect())];
        Ok(ckpt.to_bytes())
    }

    pub fn complete(&self, job: &Job, stale: bool) -> Result<CompleteJobRequest, String> {
        let config: TrainConfig = serde_json::from_str(&job.config_json)
            .map_err(|e| format!("{}: job {} config: {e}", self.id, job.job_id))?;
        let best = if stale {
            STALE_REL_L2
        } else {
            0.01 + (self.index % 97) as f64 * 1e-4
        };
        let r = RunResult {
            status: RunStatus::Finished,
            rel_l2_best: best,
            rel_l2_min_loss: best * 1.5,
            rel_l2_last: best * 2.0,
            abs_err_best: best / 10.0,
            abs_err_max_best: best * 3.0,
            best_iter: 10,
            min_loss_iter: 20,
            iters_done: config.iters,
            diverged: false,
            skipped_steps: 0,
            wall_s: self.shared.work.as_secs_f64(),
            iters_per_s: 1000.0,
            num_params: 123,
            config,
        };
        let result_json =
            serde_json::to_string(&r).map_err(|e| format!("{}: result: {e}", self.id))?;
        Ok(CompleteJobRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: self.id.clone(),
            result_json,
            device: "sim".into(),
        })
    }
}
