//! A blocking gRPC client for the tests: reads the store through `Query` without starting a
//! `modsync sql` process per poll (fast enough to poll every 20 ms on a loaded machine), and
//! plays a hand-driven worker (lease, heartbeat, report, complete, release) whose writes the
//! tests control exactly, e.g. with a token that no longer holds the lease.

use std::future::Future;
use std::time::Duration;

use modsync_client::Client;
use modsync_proto::value::Kind;
use modsync_proto::*;
use tonic::Status;

use super::Coordinator;

pub struct Rpc {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Rpc {
    /// A client of `coord` (with its token). The channel reconnects by itself after the
    /// coordinator restarts on the same port.
    pub fn new(coord: &Coordinator) -> Rpc {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = {
            let _inside = rt.enter();
            modsync_client::connect(&coord.url, coord.token.as_deref()).unwrap()
        };
        Rpc { rt, client }
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A query's rows as text (NULL as the empty string, like `modsync sql --csv`). Retries
    /// while the coordinator is unreachable (it may be restarting), for up to 30 s.
    pub fn sql(&self, sql: &str) -> Vec<Vec<String>> {
        let mut waited = Duration::ZERO;
        let response = loop {
            let mut c = self.client();
            let r = self.block_on(c.query(QueryRequest {
                sql: sql.to_string(),
                max_rows: 0,
            }));
            match r {
                Ok(r) => break r.into_inner(),
                Err(s) if s.code() == tonic::Code::Unavailable && waited.as_secs() < 30 => {
                    std::thread::sleep(Duration::from_millis(100));
                    waited += Duration::from_millis(100);
                }
                Err(s) => panic!("{sql}: {s}"),
            }
        };
        response
            .rows
            .into_iter()
            .map(|row| {
                row.values
                    .into_iter()
                    .map(|v| match v.kind {
                        Some(Kind::Integer(i)) => i.to_string(),
                        Some(Kind::Real(x)) => format!("{x:?}"),
                        Some(Kind::Text(t)) => t,
                        Some(Kind::Blob(b)) => format!("<{} bytes>", b.len()),
                        Some(Kind::Null(_)) | None => String::new(),
                    })
                    .collect()
            })
            .collect()
    }

    /// One integer from a query that returns one row of one column (NULL → `None`).
    pub fn sql_opt(&self, sql: &str) -> Option<i64> {
        let rows = self.sql(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        let v = &rows[0][0];
        (!v.is_empty()).then(|| {
            v.parse()
                .unwrap_or_else(|_| panic!("{sql}: not an integer: {rows:?}"))
        })
    }

    /// One integer from a query that returns one non-NULL integer.
    pub fn sql_int(&self, sql: &str) -> i64 {
        self.sql_opt(sql).unwrap_or_else(|| panic!("{sql}: NULL"))
    }

    pub fn lease(&self, worker_id: &str) -> Option<Job> {
        let mut c = self.client();
        self.block_on(c.lease_job(LeaseJobRequest {
            worker_id: worker_id.into(),
            host: "test".into(),
            device: "cpu".into(),
            ..Default::default()
        }))
        .expect("LeaseJob")
        .into_inner()
        .job
    }

    pub fn heartbeat(&self, job: &Job, worker_id: &str) -> Result<bool, Status> {
        let mut c = self.client();
        self.block_on(c.heartbeat(HeartbeatRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: worker_id.into(),
            iter: 1,
        }))
        .map(|r| r.into_inner().cancel)
    }

    pub fn report(&self, req: ReportProgressRequest) -> Result<bool, Status> {
        let mut c = self.client();
        self.block_on(c.report_progress(req))
            .map(|r| r.into_inner().cancel)
    }

    pub fn complete(&self, req: CompleteJobRequest) -> Result<(), Status> {
        let mut c = self.client();
        self.block_on(c.complete_job(req)).map(|_| ())
    }

    pub fn fail(&self, job: &Job, worker_id: &str, error: &str) -> Result<(), Status> {
        let mut c = self.client();
        self.block_on(c.fail_job(FailJobRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: worker_id.into(),
            error: error.into(),
        }))
        .map(|_| ())
    }

    pub fn release(&self, job: &Job, worker_id: &str) -> Result<(), Status> {
        let mut c = self.client();
        self.block_on(c.release_job(ReleaseJobRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: worker_id.into(),
        }))
        .map(|_| ())
    }
}

/// A metric row as a worker sends it, for iteration `iter` (finite made-up numbers).
pub fn metric_row(iter: u64) -> MetricRow {
    let row = trainer_core::MetricsRow {
        iter,
        lr: 1e-3,
        loss_r: 0.5,
        loss_b: 0.25,
        rel_l2: 0.75,
        abs_err: 0.125,
        abs_err_max: 1.0,
        skipped_steps: 0,
        elapsed_s: 0.1,
        extra: Default::default(),
    };
    MetricRow {
        row_json: serde_json::to_string(&row).unwrap(),
    }
}

/// A made-up but valid finished result of `job` (its own config, finite numbers).
pub fn result_json(job: &Job) -> String {
    let config: trainer_core::TrainConfig = serde_json::from_str(&job.config_json).unwrap();
    let r = trainer_core::RunResult {
        status: trainer_core::RunStatus::Finished,
        rel_l2_best: 0.125,
        rel_l2_min_loss: 0.25,
        rel_l2_last: 0.5,
        abs_err_best: 0.01,
        abs_err_max_best: 0.05,
        best_iter: 0,
        min_loss_iter: 0,
        iters_done: config.iters,
        diverged: false,
        skipped_steps: 0,
        wall_s: 0.5,
        iters_per_s: 20.0,
        num_params: 1,
        config,
    };
    serde_json::to_string(&r).unwrap()
}
