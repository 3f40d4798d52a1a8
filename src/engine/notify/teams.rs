//! Microsoft Teams (a Workflows "when a Teams webhook request is received" URL,
//! which takes a message with an Adaptive Card attachment and cannot edit it) and
//! the generic JSON webhook: one post per event.

use serde_json::{Value, json};

use super::RunView;

/// The Workflows webhook body: a `message` with one Adaptive Card (v1.4). A wait gets
/// an "Open to approve" button to the page (Teams cannot call back to the operator).
pub fn card(view: &RunView, event: &str) -> Value {
    let headline = match event {
        "start" => format!("Playbook {} started", view.playbook),
        "end" => format!("Playbook {} {}", view.playbook, view.phase),
        _ => format!("Playbook {} waits for approval", view.playbook),
    };
    let mut facts = vec![
        json!({"title": "Run", "value": format!("{}/{}", view.namespace, view.name)}),
        json!({"title": "Phase", "value": view.phase}),
    ];
    let mut push = |title: &str, v: &Option<String>| {
        if let Some(v) = v {
            facts.push(json!({"title": title, "value": v}));
        }
    };
    push("Alert", &view.alert);
    push("Step", &view.current_step);
    push("Severity", &view.severity);
    let mut body = vec![
        json!({"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true, "text": headline}),
        json!({"type": "FactSet", "facts": facts}),
    ];
    for w in &view.waiting {
        body.push(json!({"type": "TextBlock", "wrap": true, "text":
            format!("Step {} waits for approval of plan {}", w.step, w.plan_hash)}));
    }
    if event == "end"
        && let Some(m) = &view.message
    {
        body.push(json!({"type": "TextBlock", "wrap": true, "text": m}));
    }
    let actions: Vec<Value> = view
        .url
        .iter()
        .map(|url| {
            let title = if view.waiting.is_empty() {
                "Open the run"
            } else {
                "Open to approve"
            };
            json!({"type": "Action.OpenUrl", "title": title, "url": url})
        })
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            }
        }]
    })
}

/// The generic webhook body: the event and the run as the message shows it.
pub fn webhook(view: &RunView, event: &str) -> Value {
    json!({"event": event, "id": format!("{}/{}/{event}", view.namespace, view.name), "run": view})
}
