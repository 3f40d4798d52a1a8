//! The API server's own count of the requests it served (`apiserver_request_total` on
//! its `/metrics`), so a bench half can say what it cost the cluster by verb and
//! resource, whoever sent the requests (the operator, the Job controller, kwok).

use std::collections::BTreeMap;

use anyhow::Context as _;

/// Requests served, by (verb, resource[/subresource]).
pub type Requests = BTreeMap<(String, String), f64>;

/// Verbs that write, as the metric names them (a create is a POST, an update a PUT).
pub const WRITES: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// The API server's counters now.
pub async fn requests(client: &kube::Client) -> anyhow::Result<Requests> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .context("a GET /metrics request")?;
    let text = client
        .request_text(request)
        .await
        .context("reading the API server's /metrics")?;
    let requests = parse(&text);
    anyhow::ensure!(
        !requests.is_empty(),
        "no apiserver_request_total on the API server's /metrics"
    );
    Ok(requests)
}

/// `apiserver_request_total` summed over the labels other than verb and resource.
pub fn parse(text: &str) -> Requests {
    let mut out = Requests::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split("\",")
                .filter_map(|kv| kv.split_once("=\""))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let mut resource = label("resource");
        let sub = label("subresource");
        if !sub.is_empty() {
            resource = format!("{resource}/{sub}");
        }
        *out.entry((label("verb"), resource)).or_default() += value;
    }
    out
}

/// What was served between `before` and `after`.
pub fn delta(before: &Requests, after: &Requests) -> Requests {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// All writes in `requests`.
pub fn writes(requests: &Requests) -> f64 {
    requests
        .iter()
        .filter(|((verb, _), _)| WRITES.contains(&verb.as_str()))
        .map(|(_, v)| v)
        .sum()
}

/// Prints the writes of both halves per `unit` (`n` of them: steps, alerts), by verb
/// and resource (reads and watches are left out: the operator's are mostly its
/// watches' and log reads'). `label` names the second half's column.
pub fn print_writes(unit: &str, n: usize, floor: &Requests, label: &str, operator: &Requests) {
    let per = |r: &Requests, k: &(String, String)| r.get(k).copied().unwrap_or(0.0) / n as f64;
    println!();
    println!("API server writes per {unit} (`apiserver_request_total` deltas, every client):");
    println!();
    println!("| verb resource | floor | {label} | {label} − floor |");
    println!("|---|---|---|---|");
    let keys: std::collections::BTreeSet<&(String, String)> = floor
        .keys()
        .chain(operator.keys())
        .filter(|(verb, _)| WRITES.contains(&verb.as_str()))
        .collect();
    for k in keys {
        let (f, o) = (per(floor, k), per(operator, k));
        if f < 0.005 && o < 0.005 {
            continue;
        }
        println!("| {} {} | {f:.2} | {o:.2} | {:+.2} |", k.0, k.1, o - f);
    }
    let (f, o) = (writes(floor) / n as f64, writes(operator) / n as f64);
    println!("| **all writes** | {f:.2} | {o:.2} | {:+.2} |", o - f);
}
