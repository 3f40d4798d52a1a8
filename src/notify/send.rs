//! The HTTP calls to chat: Slack's Web API (`chat.postMessage`, `chat.update`), a
//! Teams Workflows URL and a generic webhook, each with a timeout. Errors never carry
//! the URL (a Teams Workflows URL holds its signature) nor the token.

use std::time::Duration;

use serde_json::Value;

use crate::engine::notify::config::{Channel, SlackChannel};

/// One HTTP client for every channel: connection reuse, one timeout.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("playbook-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        // Only a TLS backend that cannot start fails here; without it nothing is sent.
        .unwrap_or_default()
}

/// A failed delivery, in words for status (no URL, no token).
fn failed(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        "no answer within the timeout".into()
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    }
}

/// Calls Slack's `method` with `body`; the posted message's `(channel, ts)`.
pub async fn slack(
    http: &reqwest::Client,
    slack: &SlackChannel,
    method: &str,
    body: &Value,
) -> Result<(String, String), String> {
    let url = format!("{}/{method}", slack.api_url.trim_end_matches('/'));
    let answer = http
        .post(url)
        .bearer_auth(&slack.token.0)
        .json(body)
        .send()
        .await
        .map_err(failed)?;
    let status = answer.status();
    if !status.is_success() {
        return Err(format!(
            "Slack answered {method} with HTTP {}",
            status.as_u16()
        ));
    }
    let reply: Value = answer.json().await.map_err(failed)?;
    if reply["ok"] != Value::Bool(true) {
        let why = reply["error"].as_str().unwrap_or("no error given");
        return Err(format!("Slack refused {method}: {why}"));
    }
    let field = |k: &str| reply[k].as_str().unwrap_or_default().to_string();
    Ok((field("channel"), field("ts")))
}

/// POSTs `body` to a Teams Workflows or webhook URL; any 2xx is delivered.
pub async fn post(
    http: &reqwest::Client,
    channel: &Channel,
    url: &str,
    body: &Value,
) -> Result<(), String> {
    let answer = http.post(url).json(body).send().await.map_err(failed)?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "the {} endpoint answered HTTP {}",
            channel.kind().as_str(),
            status.as_u16()
        ))
    }
}
