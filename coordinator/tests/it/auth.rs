//! With a token configured, every RPC without it or with a wrong one is UNAUTHENTICATED; the
//! gRPC health service on the same port answers without a token and says nothing else.

use modsync_proto::*;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

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
    // The limit on wrong tokens is off here: this test sends ~80 of them from one address
    // (`tests/auth_hardening.rs` tests the limit).
    let server = Server::start(|c| {
        c.token = Some("correct horse battery".into());
        c.auth_limiter = coordinator::auth_limit::AuthLimiter::new(0);
    })
    .await;
    for token in [
        None,
        Some(""),
        Some("wrong"),
        Some("correct horse batter"),
        Some("correct horse battery "),
        Some("correct horse batterycorrect horse battery"),
        Some("CORRECT HORSE BATTERY"),
    ] {
        let mut c = server.client_with(token).await;
        let codes = call_every_rpc(&mut c).await;
        assert_eq!(codes.len(), proto_rpcs().len(), "every RPC of sweep.proto");
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

/// The RPC names declared by the `Sweeps` service in sweep.proto.
fn proto_rpcs() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/proto/sweep.proto");
    let text = std::fs::read_to_string(path).unwrap();
    let body = text
        .split("service Sweeps {")
        .nth(1)
        .expect("service Sweeps in sweep.proto");
    let body = &body[..body.find("\n}").expect("end of service Sweeps")];
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .map(|l| l.split('(').next().unwrap().trim().to_string())
        .collect()
}

#[tokio::test]
async fn the_auth_test_calls_every_rpc_of_the_proto() {
    // A new RPC in sweep.proto must be added to `call_every_rpc`, or this fails.
    let server = Server::start(|c| c.token = Some("0123456789abcdef".into())).await;
    let mut c = server.client_with(None).await;
    let mut called: Vec<String> = call_every_rpc(&mut c)
        .await
        .into_iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let mut declared = proto_rpcs();
    assert!(declared.len() >= 13, "{declared:?}");
    called.sort();
    declared.sort();
    assert_eq!(called, declared);
}

#[tokio::test]
async fn health_answers_without_a_token_and_reveals_nothing_else() {
    let server = Server::start(|c| c.token = Some("correct horse battery".into())).await;
    // One channel, no token anywhere.
    let mut sweeps = server.client_with(None).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "modsync.v1.Sweeps"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health check of {service:?}: {e}"));
        assert_eq!(r.get_ref().status(), ServingStatus::Serving, "{service:?}");
        // The answer is a status and nothing else: no version, no metadata beyond the protocol's.
        let extra: Vec<String> = r
            .metadata()
            .clone()
            .into_headers()
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| !matches!(k.as_str(), "content-type" | "date" | "grpc-status"))
            .collect();
        assert!(extra.is_empty(), "{extra:?}");
    }
    // Watch answers too (the stream's first message is the current status).
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    // An unknown service name learns only "not found".
    let e = health
        .check(HealthCheckRequest {
            service: "secrets.Vault".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // The Sweeps RPCs on the same port, same channel, still refuse.
    for (rpc, code) in call_every_rpc(&mut sweeps).await {
        assert_eq!(code, Code::Unauthenticated, "{rpc} without a token");
    }
    // Nothing else is served: no reflection, no other service.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    for path in [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.health.v1.Health/List",
        "/grpc.channelz.v1.Channelz/GetTopChannels",
    ] {
        grpc.ready().await.unwrap();
        let e = grpc
            .unary::<(), (), _>(tonic::Request::new(()), path.parse().unwrap(), NoBody)
            .await
            .unwrap_err();
        assert!(
            matches!(e.code(), Code::Unimplemented | Code::Unauthenticated),
            "{path}: {e}"
        );
    }
    // Nothing got in through the health service.
    let mut c = server.client().await;
    assert!(
        c.list_sweeps(ListSweepsRequest {})
            .await
            .unwrap()
            .into_inner()
            .sweeps
            .is_empty()
    );
}

/// A codec for calls whose messages are empty: enough to knock on any method path.
#[derive(Clone, Copy, Default)]
struct NoBody;

impl tonic::codec::Codec for NoBody {
    type Encode = ();
    type Decode = ();
    type Encoder = NoBody;
    type Decoder = NoBody;
    fn encoder(&mut self) -> NoBody {
        NoBody
    }
    fn decoder(&mut self) -> NoBody {
        NoBody
    }
}

impl tonic::codec::Encoder for NoBody {
    type Item = ();
    type Error = tonic::Status;
    fn encode(&mut self, _: (), _: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        Ok(())
    }
}

impl tonic::codec::Decoder for NoBody {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, _: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        Ok(Some(()))
    }
}
