//! Who is looking at the page, and what they may see: the API server decides.
//!
//! A person signs in with a Kubernetes bearer token (the one `kubectl` uses); a
//! TokenReview says who that is. The browser gets a session cookie holding a random
//! id ([`session`]), never the token: the token stays in this replica's memory, and
//! each request is checked against it again at most every [`TTL`] (a revoked token
//! stops working within that time). Access to a namespace is a SubjectAccessReview
//! for that user, cached per session for [`TTL`]. Sessions live in one replica:
//! behind a Service with several replicas, the page needs sticky sessions (the chart
//! sets the Service's `sessionAffinity: ClientIP`), or people sign in again on the
//! replica they reach. That keeps the operator free of a key to protect and rotate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::config::AuthInfo;
use kube::{Api, Client, Config};
use ring::rand::SystemRandom;

use super::session::{self, Limits, Store, Throttle};

/// How long a TokenReview or SubjectAccessReview answer is reused.
pub const TTL: Duration = Duration::from_secs(30);
/// Name of the session cookie (a random id).
pub const COOKIE: &str = "pbo_session";
/// Name of the sign-in form's CSRF cookie (a random value the form repeats).
pub const CSRF_COOKIE: &str = "pbo_csrf";

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
    /// The bearer token, for the TokenReview every [`TTL`]; never leaves this process.
    token: String,
    /// The value the approve/reject forms of this session repeat (a synchronizer
    /// token): bound to the session, so a cookie planted by a sibling host cannot
    /// forge it, as it could a double-submit cookie.
    csrf: String,
    user: User,
    checked: Instant,
    /// Access answers: (permission, namespace; "" = all namespaces) → (allowed, when).
    answers: HashMap<(Permission, String), (bool, Instant)>,
}

/// The sessions of this replica, and its sign-in throttle.
pub struct Sessions {
    client: Client,
    rng: SystemRandom,
    store: Mutex<Store<Session>>,
    throttle: Mutex<Throttle>,
}

/// Why a request has no signed-in user.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "the API server did not accept this token: sign in with a current one (`kubectl create token NAME` or the token in your kubeconfig)"
    )]
    BadToken,
    #[error("your session has ended (signed out, idle too long or too old): sign in again")]
    NoSession,
    #[error("cannot reach the API server to check the token ({0}): try again")]
    Unavailable(String),
    #[error(
        "too many failed sign-ins from your address: wait a minute, then sign in with a current token"
    )]
    Throttled,
}

impl Sessions {
    pub fn new(client: Client, limits: Limits) -> Self {
        Self {
            client,
            rng: SystemRandom::new(),
            store: Mutex::new(Store::new(limits)),
            throttle: Mutex::new(Throttle::default()),
        }
    }

    /// A fresh random value (a session id, a CSRF token).
    pub fn random(&self) -> Option<String> {
        session::new_id(&self.rng)
    }

    /// Signs in with `token` from `addr`: a TokenReview, then a new session; returns
    /// its id (for the cookie) and the user. Failed tries count against `addr`.
    pub async fn sign_in(&self, token: &str, addr: IpAddr) -> Result<(String, User), Refused> {
        if !lock(&self.throttle).allows(addr, Instant::now()) {
            return Err(Refused::Throttled);
        }
        let user = match self.review(token).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                lock(&self.throttle).failed(addr, Instant::now());
                return Err(Refused::BadToken);
            }
            Err(e) => return Err(e),
        };
        let id = self
            .random()
            .ok_or_else(|| Refused::Unavailable("no randomness for a session id".into()))?;
        let csrf = self
            .random()
            .ok_or_else(|| Refused::Unavailable("no randomness for a form token".into()))?;
        let now = Instant::now();
        let session = Session {
            token: token.to_string(),
            csrf,
            user: user.clone(),
            checked: now,
            answers: HashMap::new(),
        };
        lock(&self.store).insert(&id, session, now);
        Ok((id, user))
    }

    /// The user of session `id`: its token checked again when the last check is
    /// older than [`TTL`]; a token no longer accepted ends the session.
    pub async fn user(&self, id: &str) -> Result<User, Refused> {
        if !session::well_formed(id) {
            return Err(Refused::NoSession);
        }
        let token = {
            let mut store = lock(&self.store);
            let s = store
                .get_mut(id, Instant::now())
                .ok_or(Refused::NoSession)?;
            if s.checked.elapsed() < TTL {
                return Ok(s.user.clone());
            }
            s.token.clone()
        };
        match self.review(&token).await? {
            Some(user) => {
                if let Some(s) = lock(&self.store).get_mut(id, Instant::now()) {
                    s.user = user.clone();
                    s.checked = Instant::now();
                }
                Ok(user)
            }
            None => {
                self.sign_out(id);
                Err(Refused::BadToken)
            }
        }
    }

    /// A client that acts as the person of session `id`: the operator's cluster
    /// config (address, CA, timeouts) with its credentials replaced by the session's
    /// bearer token, so RBAC and the admission policies judge that person's writes
    /// exactly as `kubectl`'s. Built per request: the token never leaves this process.
    pub fn client_as(&self, id: &str, cluster: &Config) -> Result<Client, Refused> {
        let token = lock(&self.store)
            .get_mut(id, Instant::now())
            .map(|s| s.token.clone())
            .ok_or(Refused::NoSession)?;
        Client::try_from(as_bearer(cluster, token))
            .map_err(|e| Refused::Unavailable(format!("building a client: {e}")))
    }

    /// The form token of session `id` (see [`Session`]'s `csrf`).
    pub fn form_token(&self, id: &str) -> Option<String> {
        lock(&self.store)
            .get_mut(id, Instant::now())
            .map(|s| s.csrf.clone())
    }

    /// Ends session `id` on this replica.
    pub fn sign_out(&self, id: &str) {
        lock(&self.store).remove(id);
    }

    /// A TokenReview: `None` when the API server does not accept the token.
    async fn review(&self, token: &str) -> Result<Option<User>, Refused> {
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
        Ok(answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .and_then(|info| {
                let name = info.username.clone().filter(|n| !n.is_empty())?;
                Some(User { name, info })
            }))
    }

    /// Whether `user` (of session `id`) has `perm` in `namespace` ("" = in every
    /// namespace): a SubjectAccessReview, cached for [`TTL`]. An error denies.
    pub async fn allowed(&self, id: &str, user: &User, perm: Permission, namespace: &str) -> bool {
        let cached_key = (perm, namespace.to_string());
        let cached = lock(&self.store).get_mut(id, Instant::now()).and_then(|s| {
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
        if let Some(s) = lock(&self.store).get_mut(id, Instant::now()) {
            // Bounded: the permissions are a few constants, the namespaces those
            // with Executions.
            s.answers.insert(cached_key, (allowed, Instant::now()));
        }
        allowed
    }
}

/// `cluster` with `token` as its only credential: no client certificate, exec
/// plugin, token file, impersonation or extra header of the operator's is kept.
pub fn as_bearer(cluster: &Config, token: String) -> Config {
    let mut config = cluster.clone();
    config.auth_info = AuthInfo {
        token: Some(token.into()),
        ..AuthInfo::default()
    };
    config.headers.clear();
    config
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a cache, not an invariant: keep using it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The value of cookie `name` in a `Cookie` header, if any.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// A token as the sign-in form takes it: bearer tokens (JWTs, static tokens) are
/// base64url, hex or dotted; anything else is refused before any API call.
pub fn token_shaped(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 16 * 1024
        && token.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
        })
}

/// `Set-Cookie` for cookie `name` holding `value` (None: delete it). HttpOnly: no
/// script reads it. SameSite=Strict: a request from another site carries no cookie
/// of ours, so it can neither use a session nor pass a form's CSRF check (Lax would
/// send the session on links from chat, where Strict shows the sign-in page once; the
/// approve/reject forms need Strict). Secure unless the
/// operator is told it is served over plain http.
pub fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!("{name}={v}; Path=/ui; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{name}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// Whether the form's CSRF value equals the expected one (the sign-in cookie's, or
/// the session's form token), in constant time.
pub fn csrf_matches(expected: Option<&str>, form: &str) -> bool {
    use subtle::ConstantTimeEq;
    match expected {
        Some(c) if session::well_formed(c) && c.len() == form.len() => {
            bool::from(c.as_bytes().ct_eq(form.as_bytes()))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_among_others() {
        let cases = [
            ("pbo_session=abc.def", Some("abc.def")),
            ("a=1; pbo_session=tok; b=2", Some("tok")),
            ("pbo_session=", None),
            ("other=x", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(cookie(header, COOKIE), want, "{header:?}");
        }
        assert_eq!(cookie("pbo_session=a; pbo_csrf=b", CSRF_COOKIE), Some("b"));
    }

    #[test]
    fn a_persons_client_keeps_the_cluster_but_none_of_the_operators_credentials() {
        use secrecy::ExposeSecret;
        let mut operator = Config::new("https://10.0.0.1:6443".parse().expect("a URL"));
        operator.root_cert = Some(vec![b"ca".to_vec()]);
        operator.auth_info = AuthInfo {
            token: Some("operator-token".to_string().into()),
            token_file: Some("/var/run/secrets/token".into()),
            client_certificate_data: Some("cert".into()),
            client_key_data: Some("key".to_string().into()),
            impersonate: Some("system:admin".into()),
            ..AuthInfo::default()
        };
        let person = as_bearer(&operator, "bobs-token".into());
        assert_eq!(person.cluster_url, operator.cluster_url);
        assert_eq!(person.root_cert, operator.root_cert);
        assert_eq!(
            person
                .auth_info
                .token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            Some("bobs-token".to_string())
        );
        let a = &person.auth_info;
        assert!(a.token_file.is_none() && a.impersonate.is_none() && a.exec.is_none());
        assert!(a.client_certificate_data.is_none() && a.client_key_data.is_none());
    }

    #[test]
    fn only_token_characters_are_taken() {
        assert!(token_shaped("eyJhbGciOi.eyJzdWIi.sig-_"));
        let long = "a".repeat(16 * 1024 + 1);
        for bad in ["", "a b", "a;b", "a\"b", "a,b", "tok\n", &long] {
            assert!(!token_shaped(bad), "{bad:?}");
        }
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_unless_told_plain_http() {
        assert_eq!(
            set_cookie(COOKIE, Some("t"), true),
            "pbo_session=t; Path=/ui; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            set_cookie(COOKIE, Some("t"), false),
            "pbo_session=t; Path=/ui; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie(COOKIE, None, false).contains("Max-Age=0"));
    }

    #[test]
    fn the_csrf_value_must_repeat_the_cookie() {
        let v = "ab".repeat(32);
        assert!(csrf_matches(Some(&v), &v));
        let other = "cd".repeat(32);
        let cases = [
            (None, v.as_str()),
            (Some(v.as_str()), ""),
            (Some(v.as_str()), other.as_str()),
            (Some(""), ""),
            (Some("short"), "short"),
        ];
        for (cookie, form) in cases {
            assert!(!csrf_matches(cookie, form), "{cookie:?} {form:?}");
        }
    }
}
