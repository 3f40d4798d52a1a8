//! Who is looking at the page, and what they may see: the API server decides.
//!
//! A person signs in with a Kubernetes bearer token (the one `kubectl` uses). The
//! token stays in an HttpOnly, SameSite=Strict cookie (Secure behind https), and every
//! replica checks it itself with a TokenReview; access to a namespace is a
//! SubjectAccessReview for that user. So no replica holds session state another needs
//! (any replica behind the Service can answer any request), signing out elsewhere or
//! revoking the token takes effect within [`TTL`], and the operator keeps no key of its
//! own to protect or rotate. Answers are cached for [`TTL`] under a SHA-256 of the token,
//! never the token itself, so a page refresh costs no API call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};

/// How long a TokenReview or SubjectAccessReview answer is reused.
pub const TTL: Duration = Duration::from_secs(30);
/// Most tokens remembered; past it, expired entries are dropped, then all.
const MAX_SESSIONS: usize = 10_000;
/// Name of the session cookie.
pub const COOKIE: &str = "pbo_session";

/// A signed-in person, as TokenReview says.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    info: UserInfo,
}

/// One thing the page may need to be allowed: `verb` on `resource[/subresource]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permission {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
}

/// Seeing Executions: `get executions.stackpulse.io`.
pub const GET_EXECUTIONS: Permission = Permission {
    verb: "get",
    group: "stackpulse.io",
    resource: "executions",
    subresource: "",
};
/// Reading a step's log: `get pods/log`.
pub const GET_POD_LOGS: Permission = Permission {
    verb: "get",
    group: "",
    resource: "pods",
    subresource: "log",
};

struct Session {
    checked: Instant,
    /// `None`: the API server did not accept the token.
    user: Option<User>,
    /// Access answers: (permission, namespace; "" = all namespaces) → (allowed, when).
    answers: HashMap<(Permission, String), (bool, Instant)>,
}

/// The sessions of this replica: a cache of the API server's answers.
pub struct Sessions {
    client: Client,
    cache: Mutex<HashMap<[u8; 32], Session>>,
}

/// Why a request has no signed-in user.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "the API server did not accept this token: sign in with a current one (`kubectl create token NAME` or the token in your kubeconfig)"
    )]
    BadToken,
    #[error("cannot reach the API server to check the token ({0}): try again")]
    Unavailable(String),
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The user `token` belongs to (TokenReview, cached for [`TTL`]).
    pub async fn user(&self, token: &str) -> Result<User, Refused> {
        let k = key(token);
        if let Some(s) = self.lock().get(&k).filter(|s| s.checked.elapsed() < TTL) {
            return s.user.clone().ok_or(Refused::BadToken);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Refused::Unavailable(e.to_string()))?;
        let user = answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .and_then(|info| {
                let name = info.username.clone().filter(|n| !n.is_empty())?;
                Some(User { name, info })
            });
        let mut cache = self.lock();
        if cache.len() >= MAX_SESSIONS {
            cache.retain(|_, s| s.checked.elapsed() < TTL);
            if cache.len() >= MAX_SESSIONS {
                cache.clear();
            }
        }
        cache.insert(
            k,
            Session {
                checked: Instant::now(),
                user: user.clone(),
                answers: HashMap::new(),
            },
        );
        user.ok_or(Refused::BadToken)
    }

    /// Whether `user` (signed in with `token`) has `perm` in `namespace` ("" = in every
    /// namespace): a SubjectAccessReview, cached for [`TTL`]. An error denies.
    pub async fn allowed(
        &self,
        token: &str,
        user: &User,
        perm: Permission,
        namespace: &str,
    ) -> bool {
        let k = key(token);
        let cached_key = (perm, namespace.to_string());
        let cached = self.lock().get(&k).and_then(|s| {
            s.answers
                .get(&cached_key)
                .filter(|(_, at)| at.elapsed() < TTL)
                .map(|(allowed, _)| *allowed)
        });
        if let Some(allowed) = cached {
            return allowed;
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                groups: user.info.groups.clone(),
                uid: user.info.uid.clone(),
                extra: user.info.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_string()).filter(|n| !n.is_empty()),
                    verb: Some(perm.verb.into()),
                    group: Some(perm.group.into()),
                    resource: Some(perm.resource.into()),
                    subresource: Some(perm.subresource.to_string()).filter(|s| !s.is_empty()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = match Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
        {
            Ok(answer) => answer.status.is_some_and(|s| s.allowed),
            Err(e) => {
                tracing::warn!(error = %e, user = %user.name, "SubjectAccessReview failed: denied");
                return false;
            }
        };
        if let Some(s) = self.lock().get_mut(&k) {
            s.answers.insert(cached_key, (allowed, Instant::now()));
        }
        allowed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves a cache, not an invariant: keep using it.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The session token in a `Cookie` header, if any.
pub fn token_from_cookies(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// A token as it can go in a cookie: bearer tokens (JWTs, static tokens) are
/// base64url, hex or dotted; anything else is refused rather than encoded.
pub fn cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
        })
}

/// `Set-Cookie` for a signed-in session (`token` = None: signing out).
pub fn set_cookie(token: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(t) => format!("{COOKIE}={t}; Path=/ui; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let cases = [
            ("pbo_session=abc.def", Some("abc.def")),
            ("a=1; pbo_session=tok; b=2", Some("tok")),
            ("pbo_session=", None),
            ("other=x", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(token_from_cookies(header), want, "{header:?}");
        }
    }

    #[test]
    fn only_token_characters_go_in_a_cookie() {
        assert!(cookie_safe("eyJhbGciOi.eyJzdWIi.sig-_"));
        for bad in ["", "a b", "a;b", "a\"b", "a,b", "tok\n"] {
            assert!(!cookie_safe(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_https() {
        assert_eq!(
            set_cookie(Some("t"), true),
            "pbo_session=t; Path=/ui; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            set_cookie(Some("t"), false),
            "pbo_session=t; Path=/ui; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie(None, false).contains("Max-Age=0"));
    }
}
