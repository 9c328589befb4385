//! Token-bucket rate limits per API key (test mode lower than live).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Bucket size: requests allowed in a burst.
    pub burst: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub test: Option<Limit>,
    pub live: Option<Limit>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            test: Some(Limit {
                per_second: 200.0,
                burst: 400.0,
            }),
            live: Some(Limit {
                per_second: 1000.0,
                burst: 2000.0,
            }),
        }
    }
}

impl Limits {
    pub const OFF: Limits = Limits {
        test: None,
        live: None,
    };

    /// `off`, or `TEST_PER_SECOND,LIVE_PER_SECOND` (bursts are twice the rate).
    pub fn parse(s: &str) -> Result<Limits, String> {
        if s == "off" {
            return Ok(Limits::OFF);
        }
        let parse = |p: &str| -> Result<Option<Limit>, String> {
            let r: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("`{p}` is not a number"))?;
            if !(r > 0.0 && r.is_finite()) {
                return Err(format!("rate `{p}` must be positive"));
            }
            Ok(Some(Limit {
                per_second: r,
                burst: (2.0 * r).max(1.0),
            }))
        };
        match s.split_once(',') {
            Some((t, l)) => Ok(Limits {
                test: parse(t)?,
                live: parse(l)?,
            }),
            None => Err("expected `off` or TEST,LIVE requests per second, e.g. 200,1000".into()),
        }
    }
}

/// The outcome of taking one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until one request is allowed (0 when allowed).
    pub retry_after_secs: u64,
}

#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn take(&self, key_id: &str, limit: Limit) -> Decision {
        self.take_at(key_id, limit, Instant::now())
    }

    pub fn take_at(&self, key_id: &str, limit: Limit, now: Instant) -> Decision {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Forget idle keys rather than grow without bound: a full bucket is the default.
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * limit.per_second
                    < limit.burst
            });
        }
        let (tokens, at) = buckets
            .entry(key_id.to_string())
            .or_insert((limit.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * limit.per_second)
            .min(limit.burst);
        *at = now;
        let allowed = *tokens >= 1.0;
        if allowed {
            *tokens -= 1.0;
        }
        Decision {
            allowed,
            limit: limit.burst as u64,
            remaining: tokens.floor().max(0.0) as u64,
            reset_secs: ((limit.burst - *tokens) / limit.per_second).ceil().max(0.0) as u64,
            retry_after_secs: if allowed {
                0
            } else {
                ((1.0 - *tokens) / limit.per_second).ceil().max(1.0) as u64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_the_rate() {
        let l = Limiter::default();
        let lim = Limit {
            per_second: 1.0,
            burst: 2.0,
        };
        let t0 = Instant::now();
        assert!(l.take_at("k", lim, t0).allowed);
        assert!(l.take_at("k", lim, t0).allowed);
        let d = l.take_at("k", lim, t0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 1);
        assert!(l.take_at("other", lim, t0).allowed, "buckets are per key");
        assert!(
            l.take_at("k", lim, t0 + Duration::from_millis(1000))
                .allowed
        );
    }

    #[test]
    fn parses_settings() {
        assert_eq!(Limits::parse("off").unwrap(), Limits::OFF);
        assert_eq!(Limits::parse("10,100").unwrap().live.unwrap().burst, 200.0);
        assert!(Limits::parse("10").is_err());
        assert!(Limits::parse("-1,5").is_err());
    }
}
