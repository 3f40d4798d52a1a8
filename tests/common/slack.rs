//! A local stand-in for Slack and Microsoft Teams, which the test machines cannot
//! reach: it speaks their documented wire formats and records what it receives.
//! Slack's Web API (`POST /api/chat.postMessage` and `/api/chat.update` with
//! `Authorization: Bearer`, answering `{"ok": true, "channel", "ts"}`, and
//! `message_not_found` for an update of a ts it never gave), a Teams Workflows URL (any
//! Adaptive Card message, 202), and an interaction's `response_url`. The interactions
//! sent to the operator are built as Slack documents them: a form body
//! `payload=<block_actions JSON>` signed with `v0=HMAC-SHA256(secret, "v0:TIMESTAMP:BODY")`
//! in `X-Slack-Signature`, with `X-Slack-Request-Timestamp`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::http::post;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Ok,
    Fail,
    Hang,
}

#[derive(Clone, Debug)]
pub struct Call {
    pub path: String,
    pub auth: Option<String>,
    pub body: Value,
}

/// The fake Slack + Teams + response_url server.
#[derive(Clone)]
pub struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    mode: Arc<Mutex<Mode>>,
    addr: SocketAddr,
}

impl Fake {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let mut fake = Fake {
            calls: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            addr: listener.local_addr().expect("an address"),
        };
        fake.addr = listener.local_addr().expect("an address");
        let app = Router::new().fallback(answer).with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn calls(&self, prefix: &str) -> Vec<Call> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Polls until `pred` holds for the calls under `prefix`.
    pub async fn wait(
        &self,
        prefix: &str,
        what: &str,
        pred: impl Fn(&[Call]) -> bool,
    ) -> Vec<Call> {
        let deadline = Instant::now() + super::TIMEOUT;
        loop {
            let calls = self.calls(prefix);
            if pred(&calls) {
                return calls;
            }
            assert!(Instant::now() < deadline, "{what}: the fake got {calls:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn json_response(v: Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

pub const POSTED_TS: &str = "1503435956.000247";

async fn answer(State(fake): State<Fake>, uri: Uri, headers: HeaderMap, body: String) -> Response {
    let call = Call {
        path: uri.path().to_string(),
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
    };
    fake.calls.lock().unwrap().push(call.clone());
    let mode = *fake.mode.lock().unwrap();
    match mode {
        Mode::Fail => return (StatusCode::INTERNAL_SERVER_ERROR, "outage").into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Mode::Ok => {}
    }
    let channel = call.body["channel"].clone();
    match call.path.as_str() {
        "/api/chat.postMessage" => {
            json_response(json!({"ok": true, "channel": channel, "ts": POSTED_TS, "message": {"text": call.body["text"]}}))
                .into_response()
        }
        "/api/chat.update" if call.body["ts"] == POSTED_TS => {
            json_response(json!({"ok": true, "channel": channel, "ts": POSTED_TS, "text": call.body["text"]}))
                .into_response()
        }
        "/api/chat.update" => json_response(json!({"ok": false, "error": "message_not_found"})).into_response(),
        _ => (StatusCode::ACCEPTED, "").into_response(),
    }
}

/// A Slack interaction as Slack sends it: form-encoded `payload`, v0-signed.
pub fn interaction(user: &str, action: &str, value: &str, response_url: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "team_id": "T0E2E"},
        "api_app_id": "A0E2E", "token": "unused-legacy-token", "trigger_id": "1.2.abc",
        "container": {"type": "message", "message_ts": POSTED_TS, "channel_id": "C0SRE"},
        "channel": {"id": "C0SRE", "name": "sre"},
        "response_url": response_url,
        "actions": [{"type": "button", "action_id": action, "block_id": "approval-0",
                     "value": value, "action_ts": "1.3"}]
    });
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

pub fn signature(secret: &str, ts: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("v0:{ts}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

pub async fn click(addr: SocketAddr, body: &str, secret: &str, ts: i64) -> (u16, String) {
    let ts = ts.to_string();
    let sig = signature(secret, &ts, body);
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Slack-Request-Timestamp", ts.as_str()),
        ("X-Slack-Signature", sig.as_str()),
    ];
    post(addr, "/slack/interactions", &headers, body.as_bytes()).await
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// The Approve button's value in a Slack message body, if it has one.
pub fn approve_value(body: &Value) -> Option<String> {
    body["blocks"].as_array()?.iter().find_map(|b| {
        b["elements"].as_array()?.iter().find_map(|e| {
            (e["action_id"] == "approve").then(|| e["value"].as_str().map(str::to_string))?
        })
    })
}
