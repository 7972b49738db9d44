//! The `Sweeps` gRPC service: unwraps each request, calls the store, wraps the answer.
//!
//! Nothing here decides anything about the store; the rules live in the store modules
//! (`sweep_ops.rs`, `worker_ops.rs`, `curves.rs`, `query/`) so they can be read and tested without
//! gRPC. Errors become statuses through `From<Error> for Status` (`error.rs`).
//!
//! What this layer does add is the size limits of a request, checked before anything is parsed
//! or any lock is taken (see [`ServeConfig`]): metric rows per report (`max_metric_rows`) and
//! checkpoint bytes (`max_checkpoint_bytes`) → `RESOURCE_EXHAUSTED` naming the field; one metric
//! row's JSON ([`MAX_ROW_JSON_BYTES`]) and a result's JSON ([`MAX_RESULT_JSON_BYTES`]) →
//! `INVALID_ARGUMENT` naming the field. (Iterations beyond trainer-core's `MAX_ITERS` are
//! refused where the rows and the checkpoint are parsed, `fence.rs`: they travel only inside.)
//! Every status message is cut to [`MAX_STATUS_MESSAGE`] bytes, so an error that quotes a huge
//! input (an unknown 10 MB PDE name) still reaches the client as a small, readable status.

use std::sync::Arc;

use modsync_proto::sweeps_server::Sweeps;
use modsync_proto::*;
use tonic::{Request, Response, Status};

use crate::config::ServeConfig;
use crate::error::Error;
use crate::fence::LeaseTerms;
use crate::store::Store;

type Reply<T> = Result<Response<T>, Status>;

/// Largest JSON of one metric row (a MetricsRow with its diagnostics is well under 4 KiB).
pub const MAX_ROW_JSON_BYTES: usize = 64 * 1024;
/// Largest RunResult JSON (a few KiB in practice: the numbers plus the config).
pub const MAX_RESULT_JSON_BYTES: usize = 1024 * 1024;
/// Longest status message sent back; longer ones are cut (with a note) on a char boundary.
pub const MAX_STATUS_MESSAGE: usize = 1024;

/// The service state: the store and the settings the RPCs need. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SweepService {
    store: Store,
    config: Arc<ServeConfig>,
}

impl SweepService {
    pub fn new(store: Store, config: Arc<ServeConfig>) -> Self {
        Self { store, config }
    }

    /// The size limits of a progress report, before anything in it is parsed.
    fn check_progress(&self, req: &ReportProgressRequest) -> Result<(), Status> {
        let c = &self.config;
        if req.metrics.len() > c.max_metric_rows {
            return Err(too_big(
                "metrics",
                req.metrics.len(),
                "rows",
                c.max_metric_rows,
                "--max-metric-rows",
            ));
        }
        if req.checkpoint.len() > c.max_checkpoint_bytes {
            return Err(too_big(
                "checkpoint",
                req.checkpoint.len(),
                "bytes",
                c.max_checkpoint_bytes,
                "--max-checkpoint-bytes",
            ));
        }
        for (i, m) in req.metrics.iter().enumerate() {
            if m.row_json.len() > MAX_ROW_JSON_BYTES {
                return Err(Error::invalid(
                    format!("metrics[{i}].row_json"),
                    format!(
                        "{} bytes is more than {MAX_ROW_JSON_BYTES} bytes for one row",
                        m.row_json.len()
                    ),
                )
                .into());
            }
        }
        Ok(())
    }

    /// The most rows a Query answers: the coordinator's cap (`max_query_rows`) when the request
    /// asks for 0, else the number asked for; more than the cap is refused naming it (a result
    /// that only turns out longer is cut and marked `truncated`).
    fn query_rows(&self, asked: u32) -> Result<usize, Status> {
        let cap = self.config.max_query_rows;
        match asked as usize {
            0 => Ok(cap),
            n if n > cap => Err(too_big("max_rows", n, "rows", cap, "--max-query-rows")),
            n => Ok(n),
        }
    }

    fn terms(&self) -> LeaseTerms {
        LeaseTerms {
            lease_ms: self.config.lease_ms,
            heartbeat_ms: self.config.heartbeat_ms,
        }
    }
}

fn ok<T>(v: Result<T, Error>) -> Reply<T> {
    v.map(Response::new).map_err(|e| capped(Status::from(e)))
}

/// `status` with its message cut to [`MAX_STATUS_MESSAGE`] bytes. The message travels in an
/// HTTP/2 trailer: one that quotes a multi-megabyte input would be refused by the client's
/// header limits and arrive as an opaque transport error instead of the field's name.
fn capped(status: Status) -> Status {
    let msg = status.message();
    if msg.len() <= MAX_STATUS_MESSAGE {
        return status;
    }
    let mut end = MAX_STATUS_MESSAGE;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    Status::new(
        status.code(),
        format!("{}… ({} bytes cut)", &msg[..end], msg.len() - end),
    )
}

/// `RESOURCE_EXHAUSTED` naming the field and the limit that refused it.
fn too_big(field: &str, got: usize, unit: &str, limit: usize, flag: &str) -> Status {
    Status::resource_exhausted(format!(
        "invalid {field}: {got} {unit} is more than the coordinator's limit of {limit} ({flag})"
    ))
}

/// A sweep id from a request; an empty one is a client bug worth naming.
fn sweep_id(id: &str) -> Result<&str, Status> {
    if id.is_empty() {
        Err(Error::invalid("sweep_id", "must not be empty").into())
    } else {
        Ok(id)
    }
}

#[tonic::async_trait]
impl Sweeps for SweepService {
    async fn submit_sweep(&self, req: Request<SubmitSweepRequest>) -> Reply<SubmitSweepResponse> {
        let Some(spec) = req.into_inner().spec else {
            return Err(Error::invalid("spec", "missing").into());
        };
        ok(self.store.submit_sweep(&spec).await)
    }

    async fn list_sweeps(&self, _req: Request<ListSweepsRequest>) -> Reply<ListSweepsResponse> {
        ok(self
            .store
            .list_sweeps()
            .await
            .map(|sweeps| ListSweepsResponse { sweeps }))
    }

    async fn get_sweep(&self, req: Request<GetSweepRequest>) -> Reply<SweepSummary> {
        let req = req.into_inner();
        ok(self.store.get_sweep(sweep_id(&req.sweep_id)?).await)
    }

    async fn cancel_sweep(&self, req: Request<CancelSweepRequest>) -> Reply<SweepSummary> {
        let req = req.into_inner();
        ok(self.store.cancel_sweep(sweep_id(&req.sweep_id)?).await)
    }

    async fn retry_failed(&self, req: Request<RetryFailedRequest>) -> Reply<SweepSummary> {
        let req = req.into_inner();
        ok(self.store.retry_failed(sweep_id(&req.sweep_id)?).await)
    }

    async fn get_curves(&self, req: Request<GetCurvesRequest>) -> Reply<GetCurvesResponse> {
        let req = req.into_inner();
        ok(self
            .store
            .curves(sweep_id(&req.sweep_id)?)
            .await
            .map(|points| GetCurvesResponse { points }))
    }

    async fn query(&self, req: Request<QueryRequest>) -> Reply<QueryResponse> {
        let req = req.into_inner();
        let max_rows = self.query_rows(req.max_rows)?;
        ok(self
            .store
            .query(
                &req.sql,
                max_rows,
                self.config.query_timeout(),
                self.config.max_message_bytes,
            )
            .await)
    }

    async fn lease_job(&self, req: Request<LeaseJobRequest>) -> Reply<LeaseJobResponse> {
        let req = req.into_inner();
        ok(self.store.lease_jobs(&req, self.terms()).await.map(|jobs| {
            let mut jobs = jobs.into_iter();
            LeaseJobResponse {
                job: jobs.next(),
                more: jobs.collect(),
            }
        }))
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Reply<HeartbeatResponse> {
        let req = req.into_inner();
        ok(self
            .store
            .heartbeat(&req, self.terms())
            .await
            .map(|cancel| HeartbeatResponse { cancel }))
    }

    async fn report_progress(
        &self,
        req: Request<ReportProgressRequest>,
    ) -> Reply<HeartbeatResponse> {
        let req = req.into_inner();
        self.check_progress(&req)?;
        ok(self
            .store
            .report_progress(req, self.terms())
            .await
            .map(|cancel| HeartbeatResponse { cancel }))
    }

    async fn complete_job(&self, req: Request<CompleteJobRequest>) -> Reply<Ack> {
        let req = req.into_inner();
        if req.result_json.len() > MAX_RESULT_JSON_BYTES {
            return Err(Error::invalid(
                "result_json",
                format!(
                    "{} bytes is more than {MAX_RESULT_JSON_BYTES} bytes for one result",
                    req.result_json.len()
                ),
            )
            .into());
        }
        ok(self.store.complete_job(req).await.map(|()| Ack {}))
    }

    async fn fail_job(&self, req: Request<FailJobRequest>) -> Reply<Ack> {
        ok(self
            .store
            .fail_job(&req.into_inner())
            .await
            .map(|()| Ack {}))
    }

    async fn release_job(&self, req: Request<ReleaseJobRequest>) -> Reply<Ack> {
        ok(self
            .store
            .release_job(&req.into_inner())
            .await
            .map(|()| Ack {}))
    }
}
