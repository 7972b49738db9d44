//! Bearer-token authentication: one shared token for the coordinator, its workers and its
//! clients, carried as `authorization: Bearer <token>` metadata on every RPC.
//!
//! The comparison runs in constant time over SHA-256 digests of both tokens: comparing fixed
//! 32-byte digests with a fold that never stops early leaks neither where the first wrong byte is
//! nor the token's length. Tokens are never logged; a refusal says only which of "missing" or
//! "wrong" happened. With an [`AuthLimiter`] (the server has one), wrong tokens are limited per
//! client address: once an address used up its failures, its calls are refused `UNAVAILABLE`
//! without checking the token until the limit refills (`auth_limit.rs`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::auth_limit::AuthLimiter;

/// Metadata key and scheme of the token.
const HEADER: &str = "authorization";
const SCHEME: &str = "Bearer ";

/// Server-side check. With no token configured every request passes (loopback use).
#[derive(Clone)]
pub struct BearerAuth {
    /// SHA-256 of the expected token; the token itself is not kept.
    expected: Option<Arc<[u8; 32]>>,
    /// Wrong tokens per client address (`check` only; `matches` leaves it to its caller).
    limiter: Option<AuthLimiter>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("enabled", &self.expected.is_some())
            .finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Equal digests, compared without an early exit.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl BearerAuth {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            expected: token.map(|t| Arc::new(digest(t.as_bytes()))),
            limiter: None,
        }
    }

    /// Limits wrong tokens per client address in [`BearerAuth::check`].
    pub fn with_limiter(mut self, limiter: AuthLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Whether a token is required at all.
    pub fn enabled(&self) -> bool {
        self.expected.is_some()
    }

    /// Whether `presented` is the token, in constant time (the dashboard's login form and
    /// `Authorization: Bearer` header use it). True for anything when no token is configured.
    pub fn matches(&self, presented: &str) -> bool {
        match &self.expected {
            None => true,
            Some(expected) => ct_eq(&digest(presented.as_bytes()), expected),
        }
    }

    /// Checks the request's metadata; `UNAUTHENTICATED` when the token is missing or wrong.
    pub fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let Some(expected) = &self.expected else {
            return Ok(());
        };
        let Some(header) = req.metadata().get(HEADER) else {
            return Err(Status::unauthenticated(
                "missing `authorization: Bearer <token>` metadata",
            ));
        };
        // Unknown only for in-process transports; they share one bucket.
        let ip = req
            .remote_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        if let Some(limiter) = &self.limiter
            && let Err(wait) = limiter.admit(ip)
        {
            return Err(Status::unavailable(AuthLimiter::refusal(ip, wait)));
        }
        let presented = header
            .as_bytes()
            .strip_prefix(SCHEME.as_bytes())
            .map(digest);
        match presented {
            Some(d) if ct_eq(&d, expected) => Ok(()),
            _ => {
                if let Some(limiter) = &self.limiter {
                    limiter.failed(ip);
                }
                Err(Status::unauthenticated("wrong bearer token"))
            }
        }
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check(&req)?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(header: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(h) = header {
            r.metadata_mut().insert(HEADER, h.parse().unwrap());
        }
        r
    }

    #[test]
    fn checks_scheme_and_token() {
        let auth = BearerAuth::new(Some("s3cret"));
        assert!(auth.check(&with(Some("Bearer s3cret"))).is_ok());
        for bad in [
            None,
            Some("Bearer s3cre"),
            Some("Bearer s3cret "),
            Some("bearer s3cret"),
            Some("s3cret"),
            Some("Bearer "),
        ] {
            let e = auth.check(&with(bad)).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad:?}");
            assert!(!e.message().contains("s3cret"), "the token leaked: {e}");
        }
        assert!(BearerAuth::new(None).check(&with(None)).is_ok());
    }

    #[test]
    fn wrong_tokens_lock_the_address_out_even_for_the_right_one() {
        let auth = BearerAuth::new(Some("s3cret")).with_limiter(AuthLimiter::new(3));
        for _ in 0..3 {
            let e = auth.check(&with(Some("Bearer guess"))).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
        }
        let e = auth.check(&with(Some("Bearer s3cret"))).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
        assert!(e.message().contains("too many failed"), "{e}");
        // A missing token is not a guess.
        let e = BearerAuth::new(Some("s3cret"))
            .with_limiter(AuthLimiter::new(1))
            .check(&with(None))
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn ct_eq_needs_every_byte() {
        let a = digest(b"token");
        assert!(ct_eq(&a, &digest(b"token")));
        for i in [0, 15, 31] {
            let mut b = a;
            b[i] ^= 1;
            assert!(!ct_eq(&a, &b), "byte {i}");
        }
    }

    #[test]
    fn tokens_of_other_lengths_are_refused() {
        // The digests have one length whatever the token's: a shorter or longer token (even one
        // that starts with the right one) is simply a different digest.
        let token = "a".repeat(40);
        let auth = BearerAuth::new(Some(&token));
        assert!(auth.check(&with(Some(&format!("Bearer {token}")))).is_ok());
        for other in [
            String::new(),
            "a".into(),
            "a".repeat(39),
            "a".repeat(41),
            "a".repeat(4096),
            format!("{token}{token}"),
        ] {
            let e = auth
                .check(&with(Some(&format!("Bearer {other}"))))
                .unwrap_err();
            assert_eq!(
                e.code(),
                tonic::Code::Unauthenticated,
                "length {}",
                other.len()
            );
            assert!(!ct_eq(&digest(other.as_bytes()), &digest(token.as_bytes())));
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let server = BearerAuth::new(Some("hunter2"));
        let shown = format!("{server:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
