//! The caps on what comes back in an error, and on what is kept of one (docs/operations.md,
//! "Limits"): a status message is cut to 1 KiB, a value quoted in it to 64 characters, and a
//! job's stored `last_error` to 16 KiB — each checked to the byte.

use modsync_proto::*;
use tonic::Code;

use crate::common::*;

/// A status message longer than 1 KiB (SQLite names an unknown column in full) arrives as
/// its first 1,024 bytes and a note of how much was cut.
#[tokio::test]
async fn status_messages_are_cut_to_1_kib() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    let column = "x".repeat(5_000);
    let e = c
        .query(QueryRequest {
            sql: format!("SELECT {column}"),
            max_rows: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let full = format!("invalid sql: no such column: {column}");
    let cut = format!("{}… ({} bytes cut)", &full[..1024], full.len() - 1024);
    assert_eq!(e.message(), cut);
    // A message within the cap comes back whole.
    let e = c
        .query(QueryRequest {
            sql: "SELECT short_name".into(),
            max_rows: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "invalid sql: no such column: short_name");
}

/// An offending value is quoted by its first 64 characters (of its quoted form) and its length,
/// however long it is.
#[tokio::test]
async fn a_value_is_quoted_by_its_first_64_characters() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    let pde = "p".repeat(1_000_000);
    let e = c
        .submit_sweep(SubmitSweepRequest {
            spec: Some(SweepSpec {
                pdes: vec![pde.clone(), pde.clone()],
                ..spec("quote")
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let shown = format!("{pde:?}");
    assert_eq!(
        e.message(),
        format!(
            "invalid pdes[1]: {}…({} chars) repeats pdes[0]",
            &shown[..64],
            shown.len()
        )
    );
}

/// FailJob's error is kept whole up to 16 KiB, and a longer one is cut to at most 16,384 bytes
/// on a character boundary; an empty one is noted as such.
#[tokio::test]
async fn a_stored_last_error_is_cut_to_16_kib() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    submit(
        &mut c,
        SweepSpec {
            max_attempts: 5,
            ..one_job("errors")
        },
    )
    .await;
    // Two-byte characters after one one-byte character: byte 16,384 falls inside a character.
    let long = format!("x{}", "é".repeat(10_000));
    let fitting = "e".repeat(16 * 1024);
    for (error, kept) in [
        (long.as_str(), &long[..16 * 1024 - 1]),
        (fitting.as_str(), fitting.as_str()),
        ("  ", "(the worker sent no error message)"),
    ] {
        let job = lease(&mut c, "w").await.expect("the job is queued again");
        c.fail_job(FailJobRequest {
            job_id: job.job_id,
            token: job.token,
            worker_id: "w".into(),
            error: error.into(),
        })
        .await
        .unwrap();
        let rows = sql(&mut c, "SELECT last_error FROM jobs").await;
        let stored = text(&rows[0][0]);
        assert!(
            stored == kept,
            "a {}-byte error was stored as {} bytes",
            error.len(),
            stored.len()
        );
    }
}
