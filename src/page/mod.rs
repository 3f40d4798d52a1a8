//! The execution page under `/ui/`: a view of Executions for people, with approve /
//! reject buttons (its one write), on the same HTTP server as the webhooks and
//! metrics (every replica serves it).
//!
//! Rendered from caches, never an API list per request: the process's one Execution
//! cache (`crate::cache`, kept on every replica, shared with the controller and the
//! notifier) and the page's own cache of the Events about Executions ([`events`]: the
//! newest few per Execution). The cache keeps a finished run without its outputs,
//! plans and snapshot (`engine::slim`): the detail view of one reads it from the API
//! server, one GET per view. The views are decided in `engine::page`; here: who is asking
//! ([`auth`]), the templates (minijinja, autoescaped), and the routes.
//!
//! Routes: `GET /ui/` (list, filters as query parameters), `GET /ui/login`, `POST
//! /ui/login`, `POST /ui/logout`, `GET /ui/executions/{ns}/{name}` (detail), `.../live`
//! (the part that changes, for the refresh script), `.../log?step=ID` (the step's
//! log through `pods/log`, bounded), `POST .../decide` (approve or reject a waiting
//! step with the person's own token: [`decide`], the page's only write),
//! `/ui/static/*`.

pub mod auth;
pub mod decide;
pub mod events;
mod log;
mod login;
pub mod plans;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use minijinja::Environment;

use crate::api::Execution;
use crate::cache::{Change, Executions};
use crate::engine::page::{self as view, Access, ListFilter};
use crate::engine::slim::is_slim;
use auth::{GET_EXECUTIONS, Sessions, User};
use login::{request_cookie, sign_in_page};

/// Most rows on the list page: the newest; the filters reach older ones.
pub const LIST_CAP: usize = 200;
/// Default bound of one log shown on the page (`pods/log?limitBytes=`).
pub const DEFAULT_LOG_LIMIT_BYTES: i64 = 256 * 1024;

/// How the page runs.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Show this namespace only (`run -n`; `None`: all namespaces).
    pub namespace: Option<String>,
    /// `--external-url` (where people reach the page).
    pub external_url: Option<String>,
    /// Most bytes of a step log returned.
    pub log_limit_bytes: i64,
    /// `--page-plain-http`: the page is served over plain http (local testing), so
    /// its cookies go without `Secure`. Otherwise they are always Secure.
    pub plain_http: bool,
    /// Session expiry and bound (`--page-session-idle-seconds`,
    /// `--page-session-max-seconds`).
    pub sessions: session::Limits,
}

/// The page's templates, parsed once.
pub struct Templates(Environment<'static>);

impl Default for Templates {
    fn default() -> Self {
        let mut env = Environment::new();
        // `.html` names: minijinja escapes every value for HTML (outputs, alert labels
        // and messages come from outside). A template that does not parse is a bug of
        // this crate, caught by the tests: the page then answers 500 with the reason.
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("list.html", include_str!("templates/list.html")),
            ("detail.html", include_str!("templates/detail.html")),
            ("live.html", include_str!("templates/live.html")),
            ("step.html", include_str!("templates/step.html")),
            ("timeline.html", include_str!("templates/timeline.html")),
            ("decide.html", include_str!("templates/decide.html")),
            ("dryrun.html", include_str!("templates/dryrun.html")),
            (
                "plan_fields.html",
                include_str!("templates/plan_fields.html"),
            ),
            (
                "approval_plan.html",
                include_str!("templates/approval_plan.html"),
            ),
        ] {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "page template does not parse");
            }
        }
        Self(env)
    }
}

impl Templates {
    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, minijinja::Error> {
        self.0.get_template(name)?.render(ctx)
    }

    /// The list page.
    pub fn list(&self, v: &view::ListView, user: &str) -> Result<String, minijinja::Error> {
        self.render("list.html", minijinja::context! { view => v, user })
    }

    /// The detail page, or (`live_only`) the part the refresh script swaps in. Its
    /// approve/reject forms carry `csrf`; `refused` is a decision just refused.
    pub fn detail(
        &self,
        d: &view::Detail,
        user: &str,
        live_only: bool,
        csrf: &str,
        refused: Option<&decide::Refusal>,
    ) -> Result<String, minijinja::Error> {
        let name = if live_only {
            "live.html"
        } else {
            "detail.html"
        };
        self.render(name, minijinja::context! { d, user, csrf, refused })
    }

    fn login(
        &self,
        error: Option<&str>,
        next: &str,
        csrf: &str,
    ) -> Result<String, minijinja::Error> {
        self.render("login.html", minijinja::context! { error, next, csrf })
    }
}

/// What the page reads: the caches and the sessions.
pub struct Caches {
    pub executions: Store<DeserializeGuard<Execution>>,
    /// The newest Events about each Execution ([`events`]).
    pub events: Arc<events::EventCache>,
    /// Plans seen, for what changed since an earlier approval.
    pub plans: Arc<plans::Memory>,
}

impl Caches {
    /// The namespaces that have Executions: where access is asked about.
    pub fn namespaces(&self) -> Vec<String> {
        let guards = self.executions.state();
        view::namespaces_of(guards.iter().filter_map(|g| g.0.as_ref().ok()))
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// The list view. A malformed Execution is skipped (the controller reports it).
    pub fn list(&self, access: &Access, filter: &ListFilter, now: Timestamp) -> view::ListView {
        let guards = self.executions.state();
        let execs: Vec<&Execution> = guards.iter().filter_map(|g| g.0.as_ref().ok()).collect();
        view::list(&execs, access, filter, now, LIST_CAP)
    }

    /// The detail view of `ns/name` as cached (a finished run is cached slimmed: see
    /// [`Self::detail_of`]).
    pub fn detail(&self, ns: &str, name: &str, now: Timestamp) -> Option<view::Detail> {
        let guard = self.executions.get(&ObjectRef::new(name).within(ns))?;
        self.detail_of(guard.0.as_ref().ok()?, now)
    }

    /// The detail view of `exec`, which must be whole: the cache keeps a finished run
    /// without its outputs, plans and snapshot (`engine::slim`), so the page reads
    /// such a run from the API server ([`whole`]).
    pub fn detail_of(&self, exec: &Execution, now: Timestamp) -> Option<view::Detail> {
        let uid = exec.metadata.uid.as_deref()?;
        let ns = exec.metadata.namespace.as_deref()?;
        let events = self.events.about(ns, uid);
        let mut d = view::detail(exec, events, now);
        for w in &mut d.waiting {
            if let Some(plan) = &w.plan {
                w.changed =
                    view::decision::since_approved(&exec.spec.approvals, &w.step, plan, |h| {
                        self.plans.get(uid, &w.step, h)
                    });
            }
        }
        Some(d)
    }
}

struct Shared {
    client: Client,
    /// The operator's cluster config: the address and CA for clients that act as a
    /// signed-in person (its credentials are never used for them).
    cluster: kube::Config,
    config: Config,
    caches: Caches,
    sessions: Sessions,
    templates: Templates,
}

/// The page's routes and the task that keeps its caches (run it until shutdown).
/// `client` is the operator's; `cluster` the config it was built from, whose address
/// and CA the approvals written as a signed-in person use. Watches Executions itself:
/// [`start_with`] shares a process's cache.
pub fn start(
    client: Client,
    cluster: kube::Config,
    config: Config,
) -> (Router, impl Future<Output = ()> + Send) {
    let (executions, watch) = Executions::start(client.clone(), config.namespace.as_deref());
    let (routes, task) = start_with(client, cluster, config, &executions);
    (routes, async move {
        futures::join!(watch, task);
    })
}

/// [`start`] on the process's Execution cache (`crate::cache`), whose watch the
/// caller runs. The page keeps its own cache of Events.
pub fn start_with(
    client: Client,
    cluster: kube::Config,
    config: Config,
    executions: &Executions,
) -> (Router, impl Future<Output = ()> + Send + use<>) {
    let ns = config.namespace.clone();
    let events = Arc::new(events::EventCache::default());
    let event_api: Api<Event> = api(&client, ns.as_deref());
    let plans = Arc::new(plans::Memory::default());
    let seen = plans.clone();
    let shared = Arc::new(Shared {
        sessions: Sessions::new(client.clone(), config.sessions),
        client,
        cluster,
        config,
        caches: Caches {
            executions: executions.store(),
            events: events.clone(),
            plans,
        },
        templates: Templates::default(),
    });
    // Plans are remembered as they are shown: a run is cached whole while it runs.
    // The Event cache learns which runs exist, and forgets a deleted run's Events.
    let known = events.clone();
    let plans_seen = executions.subscribe().for_each(move |change| {
        match change {
            Change::Applied(cached) => {
                if let Ok(exec) = &cached.0 {
                    seen.observe(exec);
                    known.run_seen(
                        &exec.namespace().unwrap_or_default(),
                        &exec.uid().unwrap_or_default(),
                    );
                }
            }
            Change::Deleted(cached) => {
                if let Ok(exec) = &cached.0 {
                    known.run_gone(
                        &exec.namespace().unwrap_or_default(),
                        &exec.uid().unwrap_or_default(),
                    );
                }
            }
        }
        futures::future::ready(())
    });
    // Only Events about Executions (the controller records one per transition), kept
    // bounded per Execution by the cache.
    let event_watch = watcher(
        event_api,
        watcher::Config::default().fields("involvedObject.kind=Execution"),
    )
    .default_backoff()
    .for_each(move |e| {
        match e {
            Ok(e) => events.apply(e),
            Err(e) => tracing::warn!(error = %e, "page: Event watch"),
        }
        futures::future::ready(())
    });
    let task = async move {
        futures::join!(plans_seen, event_watch);
    };
    (routes(shared), task)
}

/// `ns/name` as the API server has it (`None`: not there).
async fn whole(shared: &Shared, ns: &str, name: &str) -> Result<Option<Execution>, kube::Error> {
    let api: Api<Execution> = Api::namespaced(shared.client.clone(), ns);
    api.get_opt(name).await
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(list_page))
        .route("/ui/login", get(login::login_page).post(login::login))
        .route("/ui/logout", axum::routing::post(login::logout))
        .route("/ui/executions/{ns}/{name}", get(detail_page))
        .route("/ui/executions/{ns}/{name}/live", get(live_fragment))
        .route(
            "/ui/executions/{ns}/{name}/decide",
            axum::routing::post(decide::decide),
        )
        .route("/ui/executions/{ns}/{name}/log", get(log::step_log))
        .route("/ui/static/page.css", get(stylesheet))
        .route("/ui/static/page.js", get(script))
        .with_state(shared)
}

/// Headers of every page: nothing cached (outputs can be sensitive), only our own
/// script and stylesheet may run or apply (an output that slipped past escaping still
/// could not run), never framed.
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                 img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

fn rendered(result: Result<String, minijinja::Error>) -> Response {
    match result {
        Ok(body) => html(StatusCode::OK, body),
        Err(e) => {
            tracing::error!(error = %e, "page: rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rendering the page failed: {e}"),
            )
                .into_response()
        }
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The signed-in user and their session id, or the sign-in page (401).
async fn signed_in(
    shared: &Shared,
    headers: &HeaderMap,
    next: &str,
) -> Result<(String, User), Response> {
    let Some(id) = request_cookie(headers, auth::COOKIE).map(str::to_string) else {
        return Err(sign_in_page(
            shared,
            headers,
            StatusCode::UNAUTHORIZED,
            None,
            next,
        ));
    };
    match shared.sessions.user(&id).await {
        Ok(user) => Ok((id, user)),
        Err(e) => Err(sign_in_page(
            shared,
            headers,
            StatusCode::UNAUTHORIZED,
            Some(&e.to_string()),
            next,
        )),
    }
}

/// Where a person may see Executions: everywhere if allowed cluster-wide, else each
/// namespace that has Executions, asked one by one (answers cached per session).
async fn access(shared: &Shared, session: &str, user: &User, namespaces: Vec<String>) -> Access {
    let scope = shared.config.namespace.as_deref();
    let wide = scope.is_none()
        && shared
            .sessions
            .allowed(session, user, GET_EXECUTIONS, "")
            .await;
    if wide {
        return Access::from_answers(true, []);
    }
    let mut answers = Vec::with_capacity(namespaces.len());
    for ns in &namespaces {
        let allowed = shared
            .sessions
            .allowed(session, user, GET_EXECUTIONS, ns)
            .await;
        answers.push((ns.as_str(), allowed));
    }
    Access::from_answers(false, answers)
}

async fn list_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(filter): Query<ListFilter>,
) -> Response {
    let (session, user) = match signed_in(&shared, &headers, "/ui/").await {
        Ok(u) => u,
        Err(page) => return page,
    };
    let namespaces = shared.caches.namespaces();
    let access = access(&shared, &session, &user, namespaces).await;
    let v = shared.caches.list(&access, &filter, Timestamp::now());
    rendered(shared.templates.list(&v, &user.name))
}

/// The detail view, if the user may see it; otherwise the answer to send.
async fn visible_detail(
    shared: &Shared,
    headers: &HeaderMap,
    ns: &str,
    name: &str,
) -> Result<(view::Detail, String, User), Response> {
    let (session, user) = signed_in(shared, headers, &view::execution_path(ns, name)).await?;
    // Not found and not allowed read the same: the page does not tell what exists.
    let not_found = || {
        text(
            StatusCode::NOT_FOUND,
            format!(
                "no Execution {ns}/{name} that {} may see: check the name, or ask for `get executions.stackpulse.io` in namespace {ns}",
                user.name
            ),
        )
    };
    if shared.config.namespace.as_deref().is_some_and(|n| n != ns)
        || !shared
            .sessions
            .allowed(&session, &user, GET_EXECUTIONS, ns)
            .await
    {
        return Err(not_found());
    }
    let Some(cached) = shared
        .caches
        .executions
        .get(&ObjectRef::new(name).within(ns))
    else {
        return Err(not_found());
    };
    let Ok(exec) = &cached.0 else {
        return Err(not_found());
    };
    // A finished run is cached slimmed: the page shows it whole, one GET per view.
    let read;
    let exec = if is_slim(exec) {
        read = match whole(shared, ns, name).await {
            Ok(Some(e)) => e,
            Ok(None) => return Err(not_found()),
            Err(e) => {
                return Err(text(
                    StatusCode::BAD_GATEWAY,
                    format!("reading Execution {ns}/{name} from the API server: {e}"),
                ));
            }
        };
        &read
    } else {
        exec
    };
    match shared.caches.detail_of(exec, Timestamp::now()) {
        Some(d) => Ok((d, session, user)),
        None => Err(not_found()),
    }
}

async fn detail_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    detail_response(&shared, &headers, &ns, &name, false, None).await
}

async fn live_fragment(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    detail_response(&shared, &headers, &ns, &name, true, None).await
}

async fn detail_response(
    shared: &Shared,
    headers: &HeaderMap,
    ns: &str,
    name: &str,
    live_only: bool,
    refused: Option<decide::Refusal>,
) -> Response {
    let (d, session, user) = match visible_detail(shared, headers, ns, name).await {
        Ok(v) => v,
        Err(answer) => return answer,
    };
    // The session's own form token: a session that ended meanwhile gets an empty one,
    // which no decision matches.
    let csrf = shared.sessions.form_token(&session).unwrap_or_default();
    rendered(
        shared
            .templates
            .detail(&d, &user.name, live_only, &csrf, refused.as_ref()),
    )
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("static/page.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("static/page.js"),
    )
}

#[cfg(test)]
mod tests;
