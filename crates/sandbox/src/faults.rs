//! Fault injection: what the sandbox does instead of (or on top of) answering faithfully.
//! Set at start (command-line flags) and replaced at run time (`POST /__sandbox/faults`).

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// What an outage looks like to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageKind {
    /// 503 SERVICE_UNAVAILABLE.
    #[default]
    Unavailable,
    /// The connection is closed without an answer.
    Drop,
}

/// A fault of the deployment, answered to every request (after the rate faults' draw and
/// outages, like `unauthorized`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentFault {
    /// 403 `NO_AUTH`: API not enabled, IP not allow-listed.
    NoAuth,
    /// 404: wrong base URL or path.
    NotFound,
    /// 405: wrong method or path.
    MethodNotAllowed,
    /// 400 `INVALID_REQUEST` about a header (Accept, User-Agent).
    InvalidRequest,
}

impl DeploymentFault {
    /// Every deployment fault, with its command-line name.
    pub const ALL: [(Self, &'static str); 4] = [
        (Self::NoAuth, "no-auth"),
        (Self::NotFound, "not-found"),
        (Self::MethodNotAllowed, "method-not-allowed"),
        (Self::InvalidRequest, "invalid-request"),
    ];
}

/// A fault setting that cannot be installed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// Not one of the deployment faults.
    #[error("deployment fault {given:?}: expected one of {expected}")]
    DeploymentFault {
        /// What was given.
        given: String,
        /// The names accepted, comma-separated.
        expected: String,
    },
    /// An outage that is not `START_MS:DURATION_MS[:KIND]`.
    #[error("outage {given:?}: {why}")]
    Outage {
        /// What was given.
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// An outage kind other than `unavailable` or `drop`.
    #[error("outage kind {0:?}: expected unavailable or drop")]
    OutageKind(String),
    /// A rate outside `[0, 1]`.
    #[error("{name} must be within [0, 1], got {rate}")]
    Rate {
        /// The field.
        name: &'static str,
        /// Its value.
        rate: f64,
    },
}

impl std::str::FromStr for DeploymentFault {
    type Err = FaultError;
    /// `no-auth`, `not-found`, `method-not-allowed` or `invalid-request` (`_` also accepted).
    fn from_str(s: &str) -> Result<Self, FaultError> {
        let wanted = s.replace('_', "-");
        Self::ALL
            .iter()
            .find(|(_, name)| *name == wanted)
            .map(|(f, _)| *f)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(_, n)| *n).collect();
                FaultError::DeploymentFault {
                    given: s.into(),
                    expected: names.join(", "),
                }
            })
    }
}

/// A window, relative to when the faults were installed, during which every request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// Start, milliseconds after installation.
    #[serde(default)]
    pub start_ms: u64,
    /// Length in milliseconds.
    pub duration_ms: u64,
    /// How it fails.
    #[serde(default)]
    pub kind: OutageKind,
}

impl std::str::FromStr for Outage {
    type Err = FaultError;
    /// `START_MS:DURATION_MS[:drop|unavailable]`.
    fn from_str(s: &str) -> Result<Self, FaultError> {
        let mut parts = s.split(':');
        let bad = |why: String| FaultError::Outage {
            given: s.into(),
            why,
        };
        let num = |p: Option<&str>| -> Result<u64, FaultError> {
            p.ok_or_else(|| bad("expected START_MS:DURATION_MS[:KIND]".into()))?
                .parse()
                .map_err(|e: std::num::ParseIntError| bad(e.to_string()))
        };
        let start_ms = num(parts.next())?;
        let duration_ms = num(parts.next())?;
        let kind = match parts.next() {
            None | Some("unavailable") => OutageKind::Unavailable,
            Some("drop") => OutageKind::Drop,
            Some(k) => return Err(FaultError::OutageKind(k.into())),
        };
        Ok(Self {
            start_ms,
            duration_ms,
            kind,
        })
    }
}

/// Every injectable fault. Rates are probabilities in `[0, 1]` per request, drawn in the order
/// of the fields (at most one rate fault per request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added latency for every request, in milliseconds.
    pub latency_ms: u64,
    /// Uniform random extra latency, 0..=jitter_ms.
    pub jitter_ms: u64,
    /// Share of requests answered 500 SYSTEM_ERROR.
    pub rate_500: f64,
    /// Share answered 503 SERVICE_UNAVAILABLE.
    pub rate_503: f64,
    /// Share answered 429 FREQUENCY_LIMITED with `Retry-After`.
    pub rate_429: f64,
    /// `Retry-After` seconds sent with 429.
    pub retry_after_secs: u64,
    /// Share of requests that hang for `hang_ms`, then lose the connection.
    pub rate_hang: f64,
    /// How long a hang lasts (past the client's timeout).
    pub hang_ms: u64,
    /// Share of requests whose connection is closed without an answer.
    pub rate_drop: f64,
    /// Share of accepted requests answered 204 with a wrong signature.
    pub rate_bad_signature: f64,
    /// Share of accepted requests answered 204 with a `WECHATPAY/SIGNTEST/` signature.
    pub rate_signtest: f64,
    /// Answer 401 SIGN_ERROR to everything (a wrong key, as WeChat Pay would see it).
    pub unauthorized: bool,
    /// Answer every request with a deployment fault (403 NO_AUTH, 404, 405, 400 INVALID_REQUEST).
    pub deployment_fault: Option<DeploymentFault>,
    /// Answer 500 SYSTEM_ERROR to every request for this `out_order_no` (a body WeChat Pay keeps
    /// failing on while it answers everything else), repeatable.
    pub fail_orders: Vec<String>,
    /// Outage windows, `START_MS:DURATION_MS[:drop]`, repeatable.
    pub outages: Vec<Outage>,
    /// Apply the faults only to requests signed by this merchant (`mchid` of `Authorization`):
    /// WeChat Pay throttling or refusing one merchant of a platform while serving the others.
    pub only_mchid: Option<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            jitter_ms: 0,
            rate_500: 0.0,
            rate_503: 0.0,
            rate_429: 0.0,
            retry_after_secs: 1,
            rate_hang: 0.0,
            hang_ms: 60_000,
            rate_drop: 0.0,
            rate_bad_signature: 0.0,
            rate_signtest: 0.0,
            unauthorized: false,
            deployment_fault: None,
            fail_orders: Vec::new(),
            outages: Vec::new(),
            only_mchid: None,
        }
    }
}

/// A fault that replaces the faithful answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Answer this status with WeChat Pay's error body.
    Status(u16),
    /// Hang, then drop.
    Hang(Duration),
    /// Close the connection without an answer.
    Drop,
    /// 401 SIGN_ERROR.
    Unauthorized,
    /// A deployment fault's answer.
    Deployment(DeploymentFault),
}

/// How a 204 is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFault {
    /// Correctly.
    None,
    /// With a wrong signature.
    Bad,
    /// With a `WECHATPAY/SIGNTEST/` probe.
    SignTest,
}

impl Faults {
    /// Reject rates outside `[0, 1]`.
    pub fn validate(&self) -> Result<(), FaultError> {
        let rates = [
            ("rate_500", self.rate_500),
            ("rate_503", self.rate_503),
            ("rate_429", self.rate_429),
            ("rate_hang", self.rate_hang),
            ("rate_drop", self.rate_drop),
            ("rate_bad_signature", self.rate_bad_signature),
            ("rate_signtest", self.rate_signtest),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(FaultError::Rate { name, rate });
            }
        }
        Ok(())
    }

    /// The latency to add to this request.
    pub fn latency<R: Rng>(&self, rng: &mut R) -> Duration {
        let jitter = if self.jitter_ms > 0 {
            rng.gen_range(0..=self.jitter_ms)
        } else {
            0
        };
        Duration::from_millis(self.latency_ms + jitter)
    }

    /// The fault replacing this request's answer, `elapsed` after installation.
    pub fn pick<R: Rng>(&self, rng: &mut R, elapsed: Duration) -> Option<Injected> {
        let ms = elapsed.as_millis() as u64;
        if let Some(o) = self
            .outages
            .iter()
            .find(|o| ms >= o.start_ms && ms < o.start_ms.saturating_add(o.duration_ms))
        {
            return Some(match o.kind {
                OutageKind::Unavailable => Injected::Status(503),
                OutageKind::Drop => Injected::Drop,
            });
        }
        if self.unauthorized {
            return Some(Injected::Unauthorized);
        }
        if let Some(f) = self.deployment_fault {
            return Some(Injected::Deployment(f));
        }
        let table = [
            (self.rate_500, Injected::Status(500)),
            (self.rate_503, Injected::Status(503)),
            (self.rate_429, Injected::Status(429)),
            (
                self.rate_hang,
                Injected::Hang(Duration::from_millis(self.hang_ms)),
            ),
            (self.rate_drop, Injected::Drop),
        ];
        table
            .into_iter()
            .find(|(rate, _)| *rate > 0.0 && rng.gen_bool(*rate))
            .map(|(_, f)| f)
    }

    /// Does this body name an order that always fails?
    pub fn fails_order(&self, body: &[u8]) -> bool {
        if self.fail_orders.is_empty() {
            return false;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return false;
        };
        v.get("out_order_no")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|o| self.fail_orders.iter().any(|f| f == o))
    }

    /// How to sign an accepted request's 204.
    pub fn signature<R: Rng>(&self, rng: &mut R) -> SignatureFault {
        if self.rate_bad_signature > 0.0 && rng.gen_bool(self.rate_bad_signature) {
            SignatureFault::Bad
        } else if self.rate_signtest > 0.0 && rng.gen_bool(self.rate_signtest) {
            SignatureFault::SignTest
        } else {
            SignatureFault::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_windows_apply_only_inside() {
        let f = Faults {
            outages: vec!["100:50".parse().unwrap(), "300:10:drop".parse().unwrap()],
            ..Faults::default()
        };
        let mut rng = rand::thread_rng();
        assert_eq!(f.pick(&mut rng, Duration::from_millis(99)), None);
        assert_eq!(
            f.pick(&mut rng, Duration::from_millis(100)),
            Some(Injected::Status(503))
        );
        assert_eq!(f.pick(&mut rng, Duration::from_millis(150)), None);
        assert_eq!(
            f.pick(&mut rng, Duration::from_millis(305)),
            Some(Injected::Drop)
        );
        assert!("1".parse::<Outage>().is_err());
        assert!("1:2:boom".parse::<Outage>().is_err());
        assert_eq!("no-auth".parse(), Ok(DeploymentFault::NoAuth));
        assert_eq!(
            "method_not_allowed".parse(),
            Ok(DeploymentFault::MethodNotAllowed)
        );
        assert!("teapot".parse::<DeploymentFault>().is_err());
    }

    #[test]
    fn certain_rates_always_fire_and_zero_rates_never() {
        let mut rng = rand::thread_rng();
        let f = Faults {
            rate_429: 1.0,
            ..Faults::default()
        };
        assert!((0..100).all(|_| f.pick(&mut rng, Duration::ZERO) == Some(Injected::Status(429))));
        assert!((0..100).all(|_| Faults::default().pick(&mut rng, Duration::ZERO).is_none()));
        assert!(Faults {
            rate_drop: 1.5,
            ..Faults::default()
        }
        .validate()
        .is_err());
    }
}
