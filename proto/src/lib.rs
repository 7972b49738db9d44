//! The modsync gRPC contract: messages and the `Sweeps` service generated from
//! `proto/sweep.proto`. See that file for what each RPC promises.

#![allow(clippy::large_enum_variant)]

/// Package `modsync.v1`.
pub mod v1 {
    tonic::include_proto!("modsync.v1");
}

pub use v1::*;

/// Most jobs one `LeaseJob` may ask for (`max_jobs`), so the most networks a worker slot packs
/// together: far more than any device trains well in one step.
pub const MAX_LEASE_JOBS: u32 = 1_024;

/// `head` followed by the texts of an error's sources, each once, on one line: tonic hides the
/// real cause (connection refused, a rustls error) in the source chain. Shared by the client's
/// status lines and the coordinator's start-up errors.
pub fn with_sources(
    mut head: String,
    mut source: Option<&(dyn std::error::Error + 'static)>,
) -> String {
    while let Some(s) = source {
        let text = s.to_string();
        if !head.contains(&text) {
            head.push_str(": ");
            head.push_str(&text);
        }
        source = s.source();
    }
    head
}

#[cfg(test)]
mod tests {
    use std::fmt;

    /// An error with a text and an optional source.
    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);

    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn sources_follow_the_head_once_each() {
        let chain = E(
            "transport error",
            Some(Box::new(E(
                "transport error",
                Some(Box::new(E("connection refused", None))),
            ))),
        );
        let line = super::with_sources("UNAVAILABLE".into(), Some(&chain));
        assert_eq!(line, "UNAVAILABLE: transport error: connection refused");
        assert_eq!(super::with_sources("head".into(), None), "head");
    }
}
