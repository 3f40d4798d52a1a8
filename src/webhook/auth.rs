//! Who may post alerts: a bearer token from `--webhook-token-file`, or a source's
//! own signature with secrets from its secret file. The files are mounted from a
//! Secret (the operator never reads Secrets through the API, so it needs no `get
//! secrets` permission) and re-read when they change, so rotating a token is an
//! edit of the Secret: the kubelet updates the mounted file, the next request sees it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::AlertSource;
use crate::engine::alert::signature::{
    self, Secrets, SignatureError, Timestamped, verify_pagerduty, verify_timestamped,
};

/// Default header of Grafana's HMAC signature.
pub const GRAFANA_SIGNATURE_HEADER: &str = "X-Grafana-Alerting-Signature";
/// Headers of the generic source's signature and its timestamp.
pub const GENERIC_SIGNATURE_HEADER: &str = "X-Playbook-Signature";
pub const GENERIC_TIMESTAMP_HEADER: &str = "X-Playbook-Timestamp";

/// Accepted bearer tokens, kept as SHA-256 digests: compared in constant time, and
/// never in memory as themselves longer than the read of the file.
#[derive(Clone, Default)]
pub struct Tokens(Vec<[u8; 32]>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({})", self.0.len())
    }
}

impl Tokens {
    pub fn new<S: AsRef<[u8]>>(tokens: impl IntoIterator<Item = S>) -> Self {
        Self(
            tokens
                .into_iter()
                .filter(|t| !t.as_ref().is_empty())
                .map(|t| Sha256::digest(t.as_ref()).into())
                .collect(),
        )
    }

    fn accepts(&self, token: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // No early exit: the time does not say which token (if any) matched.
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |ok, t| ok | t.ct_eq(&presented))
            .into()
    }
}

/// Why a request is refused: 401 (no credentials at all) or 403 (credentials that
/// are not accepted). The text never holds a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated(String),
    Forbidden(String),
}

/// What the server holds to check a request.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub tokens: Tokens,
    pub pagerduty: Secrets,
    pub grafana: Secrets,
    pub generic: Secrets,
    /// Grafana's signature header (`X-Grafana-Alerting-Signature` unless the contact
    /// point says otherwise) and its optional timestamp header.
    pub grafana_signature_header: String,
    pub grafana_timestamp_header: Option<String>,
    pub replay_window_seconds: u64,
}

/// Checks one request of `source`: a valid bearer token, or else the source's
/// signature when secrets are configured for it. `header` reads a request header.
pub fn authenticate<'a>(
    creds: &Credentials,
    source: AlertSource,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    if let Some(auth) = header("authorization") {
        let Some(token) = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
        else {
            return Err(Refusal::Unauthenticated(
                "the Authorization header must be `Bearer <token>`".into(),
            ));
        };
        return if creds.tokens.accepts(token.trim()) {
            Ok(())
        } else {
            Err(Refusal::Forbidden(
                "the bearer token is not one of the operator's webhook tokens (--webhook-token-file)"
                    .into(),
            ))
        };
    }
    let checked = match source {
        AlertSource::Pagerduty if !creds.pagerduty.is_empty() => Some(verify_pagerduty(
            header("x-pagerduty-signature"),
            body,
            &creds.pagerduty,
        )),
        AlertSource::Grafana if !creds.grafana.is_empty() => {
            let sig = creds.grafana_signature_header.as_str();
            let req = Timestamped {
                signature: (sig, header(sig)),
                timestamp: creds
                    .grafana_timestamp_header
                    .as_deref()
                    .map(|ts| (ts, header(ts))),
                now,
                window_seconds: creds.replay_window_seconds,
            };
            Some(verify_timestamped(req, body, &creds.grafana))
        }
        AlertSource::Generic if !creds.generic.is_empty() => {
            let req = Timestamped {
                signature: (GENERIC_SIGNATURE_HEADER, header(GENERIC_SIGNATURE_HEADER)),
                timestamp: Some((GENERIC_TIMESTAMP_HEADER, header(GENERIC_TIMESTAMP_HEADER))),
                now,
                window_seconds: creds.replay_window_seconds,
            };
            Some(verify_timestamped(req, body, &creds.generic))
        }
        _ => None,
    };
    match checked {
        Some(Ok(())) => Ok(()),
        Some(Err(e @ SignatureError::Missing(_))) => Err(Refusal::Unauthenticated(e.to_string())),
        Some(Err(e)) => Err(Refusal::Forbidden(e.to_string())),
        None if creds.tokens.0.is_empty() => Err(Refusal::Unauthenticated(
            "no webhook credentials are configured: start the operator with --webhook-token-file \
             (and send `Authorization: Bearer <token>`)"
                .into(),
        )),
        None => Err(Refusal::Unauthenticated(
            "no credentials: send `Authorization: Bearer <token>` with a token from the operator's --webhook-token-file"
                .into(),
        )),
    }
}

/// A file of values, one per line (blank lines and `#` comments skipped), re-read
/// when its modification time or size changes. A Secret mounted as a volume is
/// updated in place by the kubelet, so a rotated token takes effect without a
/// restart. If a re-read fails, the last values stay (and a warning is logged).
#[derive(Debug)]
pub struct LinesFile {
    path: PathBuf,
    state: Mutex<(Option<Stamp>, Arc<Vec<String>>)>,
}

/// A file's modification time and size: what tells that it changed.
type Stamp = (SystemTime, u64);

impl LinesFile {
    /// Reads the file once: a missing or unreadable file is an error at startup.
    pub fn open(path: &Path) -> Result<Self, String> {
        let file = Self {
            path: path.to_path_buf(),
            state: Mutex::new((None, Arc::default())),
        };
        file.reload().map(|_| file)
    }

    /// The current lines (re-read first if the file changed).
    pub fn lines(&self) -> Arc<Vec<String>> {
        if let Err(e) = self.reload() {
            tracing::warn!(path = %self.path.display(), error = %e, "re-reading a webhook credentials file; keeping the values read before");
        }
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.1.clone()
    }

    fn reload(&self) -> Result<bool, String> {
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 == Some(stamp) {
            return Ok(false);
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        *state = (Some(stamp), Arc::new(lines));
        Ok(true)
    }
}

/// Where the credentials come from, and the settings that are not secret.
#[derive(Debug, Default)]
pub struct CredentialFiles {
    pub tokens: Option<LinesFile>,
    pub pagerduty: Option<LinesFile>,
    pub grafana: Option<LinesFile>,
    pub generic: Option<LinesFile>,
    pub grafana_signature_header: String,
    pub grafana_timestamp_header: Option<String>,
    pub replay_window_seconds: u64,
}

impl CredentialFiles {
    /// The credentials as the files say now. (Cheap when nothing changed: a stat
    /// per file, and keys built from a handful of lines.)
    pub fn current(&self) -> Credentials {
        let lines = |f: &Option<LinesFile>| f.as_ref().map(|f| f.lines()).unwrap_or_default();
        Credentials {
            tokens: Tokens::new(lines(&self.tokens).iter()),
            pagerduty: Secrets::new(lines(&self.pagerduty).iter()),
            grafana: Secrets::new(lines(&self.grafana).iter()),
            generic: Secrets::new(lines(&self.generic).iter()),
            grafana_signature_header: if self.grafana_signature_header.is_empty() {
                GRAFANA_SIGNATURE_HEADER.into()
            } else {
                self.grafana_signature_header.clone()
            },
            grafana_timestamp_header: self.grafana_timestamp_header.clone(),
            replay_window_seconds: if self.replay_window_seconds == 0 {
                signature::DEFAULT_REPLAY_WINDOW_SECONDS
            } else {
                self.replay_window_seconds
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::alert::signature::sign_hex;

    fn creds() -> Credentials {
        Credentials {
            tokens: Tokens::new(["tok-1", "tok-2"]),
            pagerduty: Secrets::new(["pd"]),
            grafana_signature_header: GRAFANA_SIGNATURE_HEADER.into(),
            replay_window_seconds: 300,
            ..Credentials::default()
        }
    }

    fn check(
        c: &Credentials,
        source: AlertSource,
        headers: &[(&str, &str)],
    ) -> Result<(), Refusal> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        authenticate(
            c,
            source,
            |name| {
                let name = name.to_ascii_lowercase();
                headers
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.as_str())
            },
            b"{}",
            0,
        )
    }

    #[test]
    fn tokens_and_signatures() {
        let c = creds();
        assert_eq!(
            check(
                &c,
                AlertSource::Alertmanager,
                &[("Authorization", "Bearer tok-2")]
            ),
            Ok(())
        );
        assert!(matches!(
            check(
                &c,
                AlertSource::Alertmanager,
                &[("Authorization", "Bearer nope")]
            ),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            check(
                &c,
                AlertSource::Alertmanager,
                &[("Authorization", "Basic dTpw")]
            ),
            Err(Refusal::Unauthenticated(_))
        ));
        assert!(matches!(
            check(&c, AlertSource::Alertmanager, &[]),
            Err(Refusal::Unauthenticated(_))
        ));
        // PagerDuty signs instead; a token works there too.
        let sig = format!("v1={}", sign_hex(b"pd", b"{}"));
        assert_eq!(
            check(
                &c,
                AlertSource::Pagerduty,
                &[("X-PagerDuty-Signature", &sig)]
            ),
            Ok(())
        );
        assert!(matches!(
            check(
                &c,
                AlertSource::Pagerduty,
                &[("X-PagerDuty-Signature", "v1=00")]
            ),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            check(&c, AlertSource::Pagerduty, &[]),
            Err(Refusal::Unauthenticated(_))
        ));
        // With nothing configured, nothing gets in.
        let none = Credentials::default();
        let Err(Refusal::Unauthenticated(why)) = check(&none, AlertSource::Generic, &[]) else {
            panic!("refused")
        };
        assert!(why.contains("--webhook-token-file"), "{why}");
        assert!(matches!(
            check(
                &none,
                AlertSource::Generic,
                &[("Authorization", "Bearer x")]
            ),
            Err(Refusal::Forbidden(_))
        ));
    }

    #[test]
    fn a_rotated_token_file_is_read_again() {
        let dir = std::env::temp_dir().join(format!("pbo-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("tokens");
        std::fs::write(&path, "# webhook tokens\nold\n\n").expect("write");
        let file = LinesFile::open(&path).expect("opens");
        assert_eq!(*file.lines(), vec!["old".to_string()]);
        // A different size is a change even within the mtime's resolution.
        std::fs::write(&path, "new-token\n").expect("write");
        assert_eq!(*file.lines(), vec!["new-token".to_string()]);
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(
            *file.lines(),
            vec!["new-token".to_string()],
            "kept when unreadable"
        );
        assert!(
            LinesFile::open(&path).is_err(),
            "missing at startup is an error"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tokens_never_print() {
        assert_eq!(format!("{:?}", Tokens::new(["hunter2"])), "Tokens(1)");
    }
}
