//! The `Sweeps` gRPC service: unwraps each request, calls the store, wraps the answer.
//!
//! Nothing here decides anything; the rules live in the store modules (`sweeps.rs`,
//! `lease.rs`, `curves.rs`, `query.rs`) so they can be read and tested without gRPC. Errors
//! become statuses through `From<Error> for Status` (`error.rs`).

use std::sync::Arc;

use modsync_proto::sweeps_server::Sweeps;
use modsync_proto::*;
use tonic::{Request, Response, Status};

use crate::config::ServeConfig;
use crate::error::Error;
use crate::lease::LeaseTerms;
use crate::store::Store;

type Reply<T> = Result<Response<T>, Status>;

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

    fn terms(&self) -> LeaseTerms {
        LeaseTerms {
            lease_ms: self.config.lease_ms,
            heartbeat_ms: self.config.heartbeat_ms,
        }
    }
}

fn ok<T>(v: Result<T, Error>) -> Reply<T> {
    v.map(Response::new).map_err(Status::from)
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
        let cap = self.config.max_query_rows;
        let max_rows = match req.max_rows as usize {
            0 => cap,
            n => n.min(cap),
        };
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
        ok(self
            .store
            .lease_job(&req, self.terms())
            .await
            .map(|job| LeaseJobResponse { job }))
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
        ok(self
            .store
            .report_progress(&req, self.terms())
            .await
            .map(|cancel| HeartbeatResponse { cancel }))
    }

    async fn complete_job(&self, req: Request<CompleteJobRequest>) -> Reply<Ack> {
        ok(self
            .store
            .complete_job(&req.into_inner())
            .await
            .map(|()| Ack {}))
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
