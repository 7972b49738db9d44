//! With a token configured, every RPC without it or with a wrong one is UNAUTHENTICATED.

use modsync_proto::*;
use tonic::Code;

use crate::common::*;

/// Calls every RPC of the service once and returns (name, status code).
async fn call_every_rpc(c: &mut Client) -> Vec<(&'static str, Code)> {
    fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
        r.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
    }
    let sweep = || "auth".to_string();
    vec![
        (
            "SubmitSweep",
            code(
                c.submit_sweep(SubmitSweepRequest {
                    spec: Some(spec("auth")),
                })
                .await,
            ),
        ),
        (
            "ListSweeps",
            code(c.list_sweeps(ListSweepsRequest {}).await),
        ),
        (
            "GetSweep",
            code(c.get_sweep(GetSweepRequest { sweep_id: sweep() }).await),
        ),
        (
            "CancelSweep",
            code(
                c.cancel_sweep(CancelSweepRequest { sweep_id: sweep() })
                    .await,
            ),
        ),
        (
            "RetryFailed",
            code(
                c.retry_failed(RetryFailedRequest { sweep_id: sweep() })
                    .await,
            ),
        ),
        (
            "GetCurves",
            code(c.get_curves(GetCurvesRequest { sweep_id: sweep() }).await),
        ),
        (
            "Query",
            code(
                c.query(QueryRequest {
                    sql: "SELECT 1".into(),
                    max_rows: 0,
                })
                .await,
            ),
        ),
        (
            "LeaseJob",
            code(
                c.lease_job(LeaseJobRequest {
                    worker_id: "w".into(),
                    ..Default::default()
                })
                .await,
            ),
        ),
        (
            "Heartbeat",
            code(
                c.heartbeat(HeartbeatRequest {
                    job_id: 1,
                    token: 1,
                    ..Default::default()
                })
                .await,
            ),
        ),
        (
            "ReportProgress",
            code(
                c.report_progress(ReportProgressRequest {
                    job_id: 1,
                    token: 1,
                    ..Default::default()
                })
                .await,
            ),
        ),
        (
            "CompleteJob",
            code(
                c.complete_job(CompleteJobRequest {
                    job_id: 1,
                    ..Default::default()
                })
                .await,
            ),
        ),
        (
            "FailJob",
            code(
                c.fail_job(FailJobRequest {
                    job_id: 1,
                    ..Default::default()
                })
                .await,
            ),
        ),
        (
            "ReleaseJob",
            code(
                c.release_job(ReleaseJobRequest {
                    job_id: 1,
                    ..Default::default()
                })
                .await,
            ),
        ),
    ]
}

#[tokio::test]
async fn every_rpc_needs_the_right_token() {
    let server = Server::start(|c| c.token = Some("correct horse".into())).await;
    for token in [
        None,
        Some("wrong"),
        Some("correct hors"),
        Some("correct horse "),
    ] {
        let mut c = server.client_with(token).await;
        let codes = call_every_rpc(&mut c).await;
        assert_eq!(codes.len(), 13, "every RPC of sweep.proto");
        for (rpc, code) in codes {
            assert_eq!(code, Code::Unauthenticated, "{rpc} with {token:?}");
        }
    }
    // Nothing got through.
    let mut c = server.client().await;
    assert!(
        c.list_sweeps(ListSweepsRequest {})
            .await
            .unwrap()
            .into_inner()
            .sweeps
            .is_empty()
    );

    // With the right token every RPC gets past authentication.
    for (rpc, code) in call_every_rpc(&mut c).await {
        assert_ne!(code, Code::Unauthenticated, "{rpc}");
    }
    assert_eq!(summary(&mut c, "auth").await.total, 12);
}

#[tokio::test]
async fn no_token_configured_means_open() {
    let server = Server::start(|_| {}).await;
    let mut c = server.client_with(Some("anything")).await;
    assert!(c.list_sweeps(ListSweepsRequest {}).await.is_ok());
}
