//! playbook-operator: incident-response playbooks as Kubernetes resources.
//!
//! `api` holds the CRD types, `engine` the pure core (templates, output parsers, the
//! step planner, Job building, the StackPulse converter, lint). Neither may touch a
//! client, a runtime or the network; the shell around them does the I/O: `controller`
//! (observe, plan, apply), `metrics` and `server` (the HTTP endpoints), `webhook`
//! (alerts in), `page` (the execution page for people), `leader` (leader election),
//! `jq_sandbox` (output parsers' jq filters in a child process), and `cli`.

pub mod api;
pub mod cache;
pub mod cli;
pub mod controller;
pub mod engine;
pub mod jq_sandbox;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod page;
pub mod server;
pub mod webhook;
