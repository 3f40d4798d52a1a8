//! Webhook signatures: HMAC-SHA256 over the raw body, checked in constant time
//! against each of several secrets (so a secret can be rotated: add the new one,
//! switch the sender, remove the old one).
//!
//! - PagerDuty v3: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]` over the body
//!   (PagerDuty lists one signature per secret it holds while rotating).
//! - Grafana: a hex signature in a configurable header (default
//!   `X-Grafana-Alerting-Signature`); when a timestamp header is configured, over
//!   `TIMESTAMP:BODY`, and the timestamp must be within the replay window.
//! - Generic: `X-Playbook-Signature: [sha256=]<hex>` over `TIMESTAMP:BODY`, with
//!   `X-Playbook-Timestamp` (Unix seconds) required and within the replay window.
//!
//! Uses `ring` (already in the tree through kube's rustls): its `hmac::verify` does
//! the constant-time comparison, so no hand-written compare and no new crates.
//! The time is a parameter: the caller passes "now" (this module stays pure).

use std::fmt;

use ring::hmac;

/// Default replay window: a signed timestamp further than this from now is refused.
pub const DEFAULT_REPLAY_WINDOW_SECONDS: u64 = 300;

/// HMAC keys, one per secret. Never printed (Debug shows only how many).
#[derive(Clone, Default)]
pub struct Secrets {
    keys: Vec<hmac::Key>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} keys)", self.keys.len())
    }
}

impl Secrets {
    /// One key per non-empty secret.
    pub fn new<S: AsRef<[u8]>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let keys = secrets
            .into_iter()
            .filter(|s| !s.as_ref().is_empty())
            .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.as_ref()))
            .collect();
        Self { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when `tag` is the HMAC of `message` under any of the keys.
    fn any_signs(&self, message: &[u8], tag: &[u8]) -> bool {
        // Every key is tried (no early exit) so the time taken does not tell which
        // key matched; each comparison is constant-time in ring.
        self.keys.iter().fold(false, |ok, key| {
            hmac::verify(key, message, tag).is_ok() | ok
        })
    }
}

/// Why a signature was refused (the 401/403 answer's text; never holds a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no {0} header: this endpoint requires a signed request (or a bearer token)")]
    Missing(String),
    #[error("{header} is malformed: {why}")]
    Malformed { header: String, why: String },
    #[error(
        "{0} does not match the body under any configured secret: check the sender's signing secret"
    )]
    Mismatch(String),
    #[error(
        "the timestamp in {header} is {age} s from the operator's clock, outside the replay window of {window} s: \
         a replayed or delayed request, or a clock out of sync"
    )]
    Stale {
        header: String,
        age: i64,
        window: u64,
    },
}

/// Checks `X-PagerDuty-Signature` (`header`: its value, if present).
pub fn verify_pagerduty(
    header: Option<&str>,
    body: &[u8],
    secrets: &Secrets,
) -> Result<(), SignatureError> {
    const NAME: &str = "X-PagerDuty-Signature";
    let value = header.ok_or_else(|| SignatureError::Missing(NAME.into()))?;
    let mut tags = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        // Other versions than v1 may appear one day; they are skipped, not refused.
        if let Some(hex) = part.strip_prefix("v1=") {
            tags.push(decode_hex(hex).map_err(|why| SignatureError::Malformed {
                header: NAME.into(),
                why,
            })?);
        }
    }
    if tags.is_empty() {
        return Err(SignatureError::Malformed {
            header: NAME.into(),
            why: "no v1=<hex> signature in it".into(),
        });
    }
    let ok = tags
        .iter()
        .fold(false, |ok, tag| secrets.any_signs(body, tag) | ok);
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(NAME.into()))
    }
}

/// A signature in one header, optionally over `TIMESTAMP:BODY` with the timestamp
/// (Unix seconds) from another header (Grafana's scheme, and the generic one).
#[derive(Debug, Clone, Copy)]
pub struct Timestamped<'a> {
    /// Name and value of the signature header.
    pub signature: (&'a str, Option<&'a str>),
    /// Name and value of the timestamp header; `None` when the scheme has none.
    pub timestamp: Option<(&'a str, Option<&'a str>)>,
    /// Now, in Unix seconds.
    pub now: i64,
    pub window_seconds: u64,
}

/// Checks a [`Timestamped`] signature of `body`.
pub fn verify_timestamped(
    req: Timestamped<'_>,
    body: &[u8],
    secrets: &Secrets,
) -> Result<(), SignatureError> {
    let (sig_name, sig) = req.signature;
    let sig = sig.ok_or_else(|| SignatureError::Missing(sig_name.into()))?;
    let hex = sig.trim();
    let hex = hex.strip_prefix("sha256=").unwrap_or(hex);
    let tag = decode_hex(hex).map_err(|why| SignatureError::Malformed {
        header: sig_name.into(),
        why,
    })?;
    // With a timestamp, the signed message is `TIMESTAMP:BODY`, so an old signature
    // cannot be sent again under a new timestamp.
    let mut signed_at = None;
    let message = match req.timestamp {
        None => std::borrow::Cow::Borrowed(body),
        Some((ts_name, ts)) => {
            let ts = ts
                .ok_or_else(|| SignatureError::Missing(ts_name.into()))?
                .trim();
            let seconds: i64 = ts.parse().map_err(|_| SignatureError::Malformed {
                header: ts_name.into(),
                why: format!("{ts:?} is not a Unix time in seconds"),
            })?;
            signed_at = Some((ts_name, seconds));
            let mut m = Vec::with_capacity(ts.len() + 1 + body.len());
            m.extend_from_slice(ts.as_bytes());
            m.push(b':');
            m.extend_from_slice(body);
            std::borrow::Cow::Owned(m)
        }
    };
    // The signature first: an unsigned request learns nothing about the clock.
    if !secrets.any_signs(&message, &tag) {
        return Err(SignatureError::Mismatch(sig_name.into()));
    }
    if let Some((ts_name, seconds)) = signed_at {
        let age = req.now.saturating_sub(seconds);
        if age.unsigned_abs() > req.window_seconds {
            return Err(SignatureError::Stale {
                header: ts_name.into(),
                age,
                window: req.window_seconds,
            });
        }
    }
    Ok(())
}

/// Slack's request signing (v0): `X-Slack-Signature: v0=<hex>`, the HMAC-SHA256 of
/// `v0:TIMESTAMP:BODY` under the app's signing secret, with `X-Slack-Request-Timestamp`
/// (Unix seconds) within the replay window (Slack suggests five minutes).
pub fn verify_slack(
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: i64,
    window_seconds: u64,
    secrets: &Secrets,
) -> Result<(), SignatureError> {
    const SIG: &str = "X-Slack-Signature";
    const TS: &str = "X-Slack-Request-Timestamp";
    let sig = signature.ok_or_else(|| SignatureError::Missing(SIG.into()))?;
    let hex = sig
        .trim()
        .strip_prefix("v0=")
        .ok_or_else(|| SignatureError::Malformed {
            header: SIG.into(),
            why: "it does not start with v0=".into(),
        })?;
    let tag = decode_hex(hex).map_err(|why| SignatureError::Malformed {
        header: SIG.into(),
        why,
    })?;
    let ts = timestamp
        .ok_or_else(|| SignatureError::Missing(TS.into()))?
        .trim();
    let seconds: i64 = ts.parse().map_err(|_| SignatureError::Malformed {
        header: TS.into(),
        why: format!("{ts:?} is not a Unix time in seconds"),
    })?;
    let mut message = format!("v0:{ts}:").into_bytes();
    message.extend_from_slice(body);
    if !secrets.any_signs(&message, &tag) {
        return Err(SignatureError::Mismatch(SIG.into()));
    }
    let age = now.saturating_sub(seconds);
    if age.unsigned_abs() > window_seconds {
        return Err(SignatureError::Stale {
            header: TS.into(),
            age,
            window: window_seconds,
        });
    }
    Ok(())
}

/// Lower- or upper-case hex into bytes. (Three lines; not worth a crate.)
fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 128 {
        return Err("the signature is not hex of a SHA-256 HMAC".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| "the signature is not hex of a SHA-256 HMAC".to_string())
        })
        .collect()
}

/// The hex HMAC-SHA256 of `message` under `secret`: what a sender puts in its
/// header. For tests, the bench and the docs' examples.
pub fn sign_hex(secret: &[u8], message: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::sign(&key, message)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
