//! RBAC the tests grant: what the chart gives a namespace by default (every signed-in
//! user may `use` the Runner `default`), and `use` of one Runner for one subject.

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// A Role named `name` in `ns` with `rules`, bound (a RoleBinding of that name) to
/// `subjects`.
pub async fn grant(client: &Client, ns: &str, name: &str, rules: Value, subjects: Value) {
    let role: Role = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name},
        "rules": rules
    }))
    .expect("a Role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": subjects
    }))
    .expect("a RoleBinding");
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap_or_else(|e| panic!("creating Role {name} in {ns}: {e}"));
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap_or_else(|e| panic!("creating RoleBinding {name} in {ns}: {e}"));
}

/// A user as a RoleBinding subject.
pub fn user(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name})
}

/// Lets `subject` (a RoleBinding subject) `use` Runner `runner` in `ns`: a Role and
/// RoleBinding named `name`, as `kubectl create role/rolebinding --verb=use` make them.
pub async fn grant_runner_use(client: &Client, ns: &str, name: &str, runner: &str, subject: Value) {
    let rules = json!([{"apiGroups": ["stackpulse.io"], "resources": ["runners"],
                        "resourceNames": [runner], "verbs": ["use"]}]);
    grant(client, ns, name, rules, json!([subject])).await;
}

/// The chart's default for one tenant: every authenticated user may `use` the Runner
/// `default` (steps without `runner:`).
pub async fn grant_default_runner(client: &Client, ns: &str) {
    let everyone = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                          "name": "system:authenticated"});
    grant_runner_use(client, ns, "use-runner-default", "default", everyone).await;
}
