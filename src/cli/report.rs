//! `playbook-operator report`: the weekly incident review, from the Executions in
//! the cluster or in a file `kubectl get` wrote (`engine::report` computes it; this
//! reads them and prints).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;

use serde::Deserialize as _;

use super::cluster::{self, api_error};
use crate::api::Execution;
use crate::engine::report;

/// Arguments of `report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Count Executions created in this window before now: `90m`, `24h`, `7d`, `2w`.
    #[arg(long, default_value = "7d", value_parser = parse_since)]
    pub since: SignedDuration,
    /// The window ends here (RFC 3339, e.g. `2026-11-23T00:00:00Z`): last week's
    /// review on a Monday, or a fixed window over a file. Default: now.
    #[arg(long, value_parser = parse_until)]
    pub until: Option<Timestamp>,
    /// One namespace (default: all namespaces you may list Executions in).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Read the Executions from this file instead of the cluster: what
    /// `kubectl get executions -A -o yaml` (or `-o json`) wrote, e.g. kept for a
    /// post-mortem; `-` reads standard input.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Markdown,
}

/// `7d` → 7 days. A number and one unit of s, m, h, d, w.
fn parse_since(text: &str) -> Result<SignedDuration, String> {
    let hint = "expected a number and a unit, e.g. 90m, 24h, 7d or 2w";
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{text}': no unit: {hint}"))?;
    let (number, unit) = text.split_at(unit_at);
    let n: i64 = number.parse().map_err(|_| format!("'{text}': {hint}"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("'{text}': unknown unit '{unit}': {hint}")),
    };
    n.checked_mul(seconds)
        .filter(|s| *s > 0)
        .map(SignedDuration::from_secs)
        .ok_or_else(|| format!("'{text}': {hint} (greater than zero)"))
}

fn parse_until(text: &str) -> Result<Timestamp, String> {
    text.parse().map_err(|e| {
        format!("'{text}': expected an RFC 3339 time such as 2026-11-23T00:00:00Z ({e})")
    })
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (execs, malformed) = match &args.file {
        Some(path) => read_file(path, args.namespace.as_deref())?,
        None => cluster::block_on(list_cluster(args.namespace.as_deref()))?,
    };
    if malformed > 0 {
        eprintln!(
            "warning: {malformed} Execution(s) could not be read (malformed) and are not counted"
        );
    }
    let now = args.until.unwrap_or_else(Timestamp::now);
    let since = now.checked_sub(args.since).unwrap_or(Timestamp::MIN);
    let review = report::build(&execs, since, now);
    match args.format {
        Format::Table => print!("{}", report::table(&review)),
        Format::Markdown => print!("{}", report::markdown(&review)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&review)?),
    }
    Ok(ExitCode::SUCCESS)
}

async fn list_cluster(namespace: Option<&str>) -> anyhow::Result<(Vec<Execution>, usize)> {
    let session = cluster::connect(None).await?;
    let api: Api<DeserializeGuard<Execution>> = match namespace {
        Some(ns) => Api::namespaced(session.client, ns),
        None => Api::all(session.client),
    };
    list_all(&api).await
}

/// Executions from YAML or JSON documents: `kind: List` with `items` (what
/// `kubectl get -o yaml` writes), or Executions one per document. Other kinds are
/// skipped, malformed Executions counted, as in the cluster.
fn read_file(path: &PathBuf, namespace: Option<&str>) -> anyhow::Result<(Vec<Execution>, usize)> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let doc = serde_yaml::Value::deserialize(doc).with_context(|| {
            format!(
                "{}: not YAML or JSON (expected `kubectl get executions -o yaml` output)",
                path.display()
            )
        })?;
        match doc.get("items").and_then(serde_yaml::Value::as_sequence) {
            Some(items) => objects.extend(items.iter().cloned()),
            None if !doc.is_null() => objects.push(doc),
            None => {}
        }
    }
    let mut execs = Vec::new();
    let mut malformed = 0;
    for object in objects {
        if object.get("kind").and_then(serde_yaml::Value::as_str) != Some("Execution") {
            continue;
        }
        let name = object
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(serde_yaml::Value::as_str)
            .unwrap_or("(no name)")
            .to_string();
        match serde_yaml::from_value::<Execution>(object) {
            Ok(exec)
                if namespace.is_none_or(|ns| exec.metadata.namespace.as_deref() == Some(ns)) =>
            {
                execs.push(exec)
            }
            Ok(_) => {}
            Err(e) => {
                // A file is the user's to fix: say what the first bad one got wrong.
                if malformed == 0 {
                    eprintln!(
                        "{}: Execution {name} could not be read: {e}",
                        path.display()
                    );
                }
                malformed += 1
            }
        }
    }
    Ok((execs, malformed))
}

/// Every Execution, a page at a time; malformed ones are counted, not fatal.
async fn list_all(
    api: &Api<DeserializeGuard<Execution>>,
) -> anyhow::Result<(Vec<Execution>, usize)> {
    let mut execs = Vec::new();
    let mut malformed = 0;
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await.map_err(|e| {
            let err = api_error(e, "listing Executions");
            anyhow!("{err:#} (pass -n NAMESPACE to report on one namespace you may read)")
        })?;
        for item in page.items {
            match item.0 {
                Ok(exec) => execs.push(exec),
                Err(_) => malformed += 1,
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok((execs, malformed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_with_one_unit() {
        for (text, secs) in [
            ("90m", 5_400),
            ("24h", 86_400),
            ("7d", 604_800),
            ("2w", 1_209_600),
            ("30s", 30),
        ] {
            assert_eq!(
                parse_since(text),
                Ok(SignedDuration::from_secs(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_windows_say_what_is_expected() {
        for text in ["7", "d", "7x", "0d", "-1d", "1.5d", "99999999999999999w"] {
            let err = parse_since(text).expect_err(text);
            assert!(err.contains("e.g. 90m, 24h, 7d or 2w"), "{text}: {err}");
        }
    }
}
