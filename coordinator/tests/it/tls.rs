//! TLS: a coordinator serving a certificate signed by a CA made here (rcgen, at test time) is
//! reachable by a client that trusts that CA, and by nothing else: not by a TLS client that
//! trusts another CA, and not by a plaintext client.

use std::path::Path;
use std::time::{Duration, Instant};

use coordinator::ServeConfig;
use modsync_proto::sweeps_client::SweepsClient;
use modsync_proto::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::certs::make_certs;
use crate::common::*;

/// A channel to `url`, trusting `ca` when given. Not connected yet.
fn endpoint(url: &str, ca: Option<&Path>) -> Endpoint {
    let e = Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    match ca {
        Some(ca) => e
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap())),
            )
            .unwrap(),
        None => e,
    }
}

fn client(channel: Channel, token: Option<&str>) -> Client {
    SweepsClient::with_interceptor(channel, RawAuth::new(token))
}

/// Connects, retrying while the server starts (it binds before it serves).
async fn connect_trusting(url: &str, ca: &Path) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match endpoint(url, Some(ca)).connect().await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {url}: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The whole error chain on one line, to say why a call failed.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(x) = source {
        s.push_str(" / ");
        s.push_str(&x.to_string());
        source = x.source();
    }
    s
}

#[tokio::test]
async fn only_a_client_trusting_the_ca_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path(), "good");
    let (other_ca, _, _) = make_certs(dir.path(), "other");
    let server = Server::start(|c| {
        c.token = Some("tls-token-0123456789".into());
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;

    // Trusting the CA, by IP address and by name: submit and lease work.
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}", server.addr.port());
        let mut c = client(
            connect_trusting(&url, &ca).await,
            Some("tls-token-0123456789"),
        );
        let s = submit(&mut c, spec("tls")).await;
        assert_eq!(s.jobs_total, 12, "{host}");
        let job = lease(&mut c, &format!("w-{host}")).await.expect("a job");
        assert!(job.job_id > 0 && job.token > 0);
    }
    let mut c = client(
        connect_trusting(&format!("https://127.0.0.1:{}", server.addr.port()), &ca).await,
        Some("tls-token-0123456789"),
    );
    assert_eq!(summary(&mut c, "tls").await.running, 2);
    // TLS does not replace the token.
    let mut no_token = client(
        connect_trusting(&format!("https://127.0.0.1:{}", server.addr.port()), &ca).await,
        None,
    );
    let e = no_token
        .list_sweeps(ListSweepsRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);

    // Trusting another CA: the handshake fails, nothing is called.
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let e = endpoint(&url, Some(&other_ca))
        .connect()
        .await
        .expect_err("a client trusting another CA connected");
    let why = chain(&e);
    assert!(
        why.contains("certificate") || why.contains("UnknownIssuer"),
        "{why}"
    );

    // Plaintext against the TLS port: no gRPC answer.
    let plain = format!("http://127.0.0.1:{}", server.addr.port());
    match endpoint(&plain, None).connect().await {
        Err(_) => {}
        Ok(channel) => {
            let e = client(channel, Some("tls-token-0123456789"))
                .list_sweeps(ListSweepsRequest {})
                .await
                .expect_err("a plaintext call was answered by the TLS server");
            assert_ne!(e.code(), tonic::Code::Ok);
        }
    }

    // The refused clients changed nothing.
    assert_eq!(summary(&mut c, "tls").await.running, 2);
    let (r, _dir) = server.stop().await;
    r.unwrap();
}

#[tokio::test]
async fn bad_certificate_settings_are_refused_naming_the_flag_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path(), "x");
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let config = |c: Option<&Path>, k: Option<&Path>| ServeConfig {
        tls_cert: c.map(Path::to_path_buf),
        tls_key: k.map(Path::to_path_buf),
        ..ServeConfig::default()
    };
    let cases: Vec<(ServeConfig, &[&str])> = vec![
        (config(Some(&cert), None), &["--tls-cert", "--tls-key"]),
        (config(None, Some(&key)), &["--tls-cert", "--tls-key"]),
        (
            config(Some(&missing), Some(&key)),
            &["--tls-cert", "missing.pem"],
        ),
        (
            config(Some(&cert), Some(&missing)),
            &["--tls-key", "missing.pem"],
        ),
        (
            config(Some(&garbage), Some(&key)),
            &["--tls-cert", "garbage.pem"],
        ),
        (
            config(Some(&cert), Some(&garbage)),
            &["--tls-key", "garbage.pem"],
        ),
        // A certificate where the key should be, and a PEM block that is not DER inside.
        (config(Some(&cert), Some(&ca)), &["--tls-key", "x-ca.pem"]),
        (
            config(Some(&broken), Some(&key)),
            &["--tls-cert", "broken.pem"],
        ),
    ];
    for (c, words) in cases {
        let e = match c.load_tls() {
            Ok(_) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        };
        for w in words {
            assert!(e.contains(w), "{c:?}: {e:?} does not name {w}");
        }
        // And serving refuses it before it opens the store.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let db = dir.path().join("never.db");
        let r = coordinator::serve_with_listener(
            ServeConfig {
                db: db.clone(),
                ..c
            },
            listener,
            async {},
        )
        .await;
        assert!(r.is_err());
        assert!(
            !db.exists(),
            "the store was created for a config that cannot serve"
        );
    }
    assert!(
        config(Some(&cert), Some(&key))
            .load_tls()
            .unwrap()
            .is_some()
    );
    assert!(config(None, None).load_tls().unwrap().is_none());
}
