//! `playbook-operator report`: the weekly incident review, from the Executions in
//! the cluster (`engine::report` computes it; this lists them and prints).

use std::process::ExitCode;

use anyhow::anyhow;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;

use super::cluster::{self, api_error};
use crate::api::Execution;
use crate::engine::report;

/// Arguments of `report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Count Executions created in this window before now: `90m`, `24h`, `7d`, `2w`.
    #[arg(long, default_value = "7d", value_parser = parse_since)]
    pub since: SignedDuration,
    /// One namespace (default: all namespaces you may list Executions in).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
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

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    cluster::block_on(print(args))
}

async fn print(args: &Args) -> anyhow::Result<ExitCode> {
    let session = cluster::connect(None).await?;
    let api: Api<DeserializeGuard<Execution>> = match &args.namespace {
        Some(ns) => Api::namespaced(session.client, ns),
        None => Api::all(session.client),
    };
    let (execs, malformed) = list_all(&api).await?;
    if malformed > 0 {
        eprintln!(
            "warning: {malformed} Execution(s) could not be read (malformed) and are not counted"
        );
    }
    let now = Timestamp::now();
    let since = now.checked_sub(args.since).unwrap_or(Timestamp::MIN);
    let review = report::build(&execs, since, now);
    match args.format {
        Format::Table => print!("{}", report::table(&review)),
        Format::Markdown => print!("{}", report::markdown(&review)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&review)?),
    }
    Ok(ExitCode::SUCCESS)
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
