//! The failed-authentication limit: how many wrong tokens one client address may present, shared
//! by every port of a process (the coordinator's gRPC port and its `--http` dashboard hand the
//! same [`AuthLimiter`] to their token checks).
//!
//! Each wrong token (a gRPC call, a dashboard request with `Authorization: Bearer`, a login form,
//! a login URL) takes one cell of a GCRA bucket per address (`governor`): `per_minute` cells at
//! once, then one more every `60 / per_minute` s. When an address has no cell left it is locked
//! out until the next one comes: every attempt that carries a token is then refused *unchecked*
//! (gRPC `UNAVAILABLE`, HTTP 429 with `Retry-After`) — the right token too, or the lock-out
//! would tell a right guess from a wrong one. So an address gets `per_minute` guesses, then one
//! per refill period, however many it sends in parallel (up to the few already being checked
//! when the lock starts). Requests without a token, and dashboard sessions (256 random bits,
//! not guessable), are not limited.
//!
//! Addresses: IPv4 as is, IPv6 by its /64 (one host usually owns a whole /64). Behind a reverse
//! proxy every client shares the proxy's address, and one local user can lock out the others on
//! loopback for as long as they keep guessing; workers retry `UNAVAILABLE`, so they carry on
//! once it stops.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// The default of `--auth-failures-per-minute`.
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 30;

/// Past this many tracked addresses, the forgotten ones are dropped on the next failure.
const PRUNE_ABOVE: usize = 4096;

type Limiter =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock, StateInformationMiddleware>;

/// Failed authentications per client address; clones share the counts. `Default` is
/// [`DEFAULT_FAILURES_PER_MINUTE`].
#[derive(Clone)]
pub struct AuthLimiter {
    /// `None`: no limit (`--auth-failures-per-minute 0`).
    inner: Option<Arc<Inner>>,
}

struct Inner {
    per_minute: u32,
    failures: Limiter,
    /// Addresses without a cell left, and until when.
    locked: Mutex<HashMap<IpAddr, Instant>>,
}

impl Default for AuthLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_FAILURES_PER_MINUTE)
    }
}

impl std::fmt::Debug for AuthLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(i) => write!(f, "AuthLimiter({} failures a minute)", i.per_minute),
            None => write!(f, "AuthLimiter(off)"),
        }
    }
}

/// The key of an address: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl AuthLimiter {
    /// `per_minute` wrong tokens at once per address, then one every `60 / per_minute` s; 0 turns
    /// the limit off.
    pub fn new(per_minute: u32) -> Self {
        let inner = NonZeroU32::new(per_minute).map(|n| {
            Arc::new(Inner {
                per_minute,
                failures: RateLimiter::keyed(Quota::per_minute(n))
                    .with_middleware::<StateInformationMiddleware>(),
                locked: Mutex::new(HashMap::new()),
            })
        });
        Self { inner }
    }

    /// Before a token from `ip` is checked: `Err(wait)` while the address is locked out (refuse
    /// without checking; it may try again after `wait`).
    pub fn admit(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let now = Instant::now();
        let locked = inner.locked.lock().unwrap_or_else(|p| p.into_inner());
        match locked.get(&key(ip)) {
            Some(until) if *until > now => Err(*until - now),
            _ => Ok(()),
        }
    }

    /// After a wrong token from `ip`: takes a cell, and locks the address out once none is
    /// left, until the next one comes.
    pub fn failed(&self, ip: IpAddr) {
        let Some(inner) = &self.inner else {
            return;
        };
        let k = key(ip);
        let wait = match inner.failures.check_key(&k) {
            Ok(state) if state.remaining_burst_capacity() > 0 => None,
            // The last cell: the next one comes after one refill period.
            Ok(state) => Some(state.quota().replenish_interval()),
            // None left already (failures checked at the same time).
            Err(not_until) => Some(not_until.wait_time_from(DefaultClock::default().now())),
        };
        if inner.failures.len() > PRUNE_ABOVE {
            inner.failures.retain_recent();
        }
        let Some(wait) = wait else {
            return;
        };
        let now = Instant::now();
        let mut locked = inner.locked.lock().unwrap_or_else(|p| p.into_inner());
        if locked.len() > PRUNE_ABOVE {
            locked.retain(|_, until| *until > now);
        }
        let until = now + wait.max(Duration::from_millis(1));
        let entry = locked.entry(k).or_insert(until);
        *entry = (*entry).max(until);
        tracing::warn!(
            client = %ip,
            seconds = wait.as_secs_f64(),
            "too many failed authentication attempts: this address is refused until the limit refills"
        );
    }

    /// The message of a refusal while locked out (`wait` from [`AuthLimiter::admit`]).
    pub fn refusal(ip: IpAddr, wait: Duration) -> String {
        format!(
            "too many failed authentication attempts from {ip}: retry in {} s",
            retry_after_secs(wait)
        )
    }
}

/// Whole seconds to wait, at least 1 (for `Retry-After`).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_is_locked_out() {
        let limiter = AuthLimiter::new(5);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..5 {
            assert!(limiter.admit(ip).is_ok(), "failure {i}");
            limiter.failed(ip);
        }
        let wait = limiter.admit(ip).unwrap_err();
        // 5 a minute: one cell every 12 s.
        assert!(
            wait > Duration::from_secs(10) && wait <= Duration::from_secs(12),
            "{wait:?}"
        );
        assert!(
            limiter.admit(other).is_ok(),
            "another address is not locked out"
        );
        // Clones share the counts.
        assert!(limiter.clone().admit(ip).is_err());
        assert!(AuthLimiter::new(5).admit(ip).is_ok());
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_bucket_and_off_means_off() {
        let limiter = AuthLimiter::new(1);
        limiter.failed("2001:db8::1".parse().unwrap());
        assert!(limiter.admit("2001:db8::ffff:2".parse().unwrap()).is_err());
        assert!(limiter.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
        limiter.failed("::ffff:10.1.1.1".parse().unwrap());
        assert!(limiter.admit("10.1.1.1".parse().unwrap()).is_err());
        let off = AuthLimiter::new(0);
        for _ in 0..100 {
            off.failed("10.0.0.1".parse().unwrap());
        }
        assert!(off.admit("10.0.0.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
