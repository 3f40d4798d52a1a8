//! The dialect's secret params passed as whole env values: converted into secret
//! references; anything else about secrets is left as written, for `lint` to judge.

use serde_yaml::Value;

use super::convert;
use crate::engine::lint::{Severity, lint_playbook};

const PLAYBOOK: &str = r#"
apiVersion: stackpulse.io/v1
kind: Playbook
metadata: {name: p}
parameters:
  - {name: Key, type: secret}
  - {name: Region}
steps:
  - name: reg.io/aws/cli
    env:
      DOLLAR: "{{ $.params.Key }}"
      DOT: '{{ .params.Key }}'
      BARE: '{{- .Key -}}'
      ALREADY: '{{ secret .params.Key }}'
      PLAIN: '{{ $.params.Region }}'
"#;

fn env(yaml: &str) -> (Value, Vec<String>) {
    let c = convert(yaml).expect("converts");
    let env = c.resources[0]["spec"]["steps"][0]["env"].clone();
    (env, c.notes)
}

#[test]
fn a_secret_param_as_the_whole_env_value_becomes_a_reference() {
    let (env, notes) = env(PLAYBOOK);
    for key in ["DOLLAR", "DOT", "BARE", "ALREADY"] {
        assert_eq!(env[key].as_str(), Some("{{ secret .params.Key }}"), "{key}");
    }
    assert_eq!(
        env["PLAIN"].as_str(),
        Some("{{ $.params.Region }}"),
        "not a secret param"
    );
    let said: Vec<&String> = notes
        .iter()
        .filter(|n| n.contains("secret param 'Key'"))
        .collect();
    assert_eq!(said.len(), 3, "one note per rewritten value: {notes:?}");
    for key in ["DOLLAR", "DOT", "BARE"] {
        let at = format!("steps[0].env.{key}:");
        assert!(said.iter().any(|n| n.contains(&at)), "{key}: {said:?}");
    }
}

#[test]
fn a_secret_param_printed_inside_text_stays_a_lint_error() {
    let yaml = PLAYBOOK.replace(
        r#"DOLLAR: "{{ $.params.Key }}""#,
        r#"DOLLAR: "key={{ $.params.Key }}""#,
    );
    let c = convert(&yaml).expect("converts");
    let env = &c.resources[0]["spec"]["steps"][0]["env"];
    assert_eq!(
        env["DOLLAR"].as_str(),
        Some("key={{ $.params.Key }}"),
        "left as written"
    );
    let pb: crate::api::Playbook =
        serde_yaml::from_value(c.resources[0].clone()).expect("a canonical Playbook");
    let errors: Vec<String> = lint_playbook(&pb.spec, None)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{}: {}", f.path, f.message))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("env.DOLLAR") && errors[0].contains("prints secret param 'Key'"),
        "{errors:?}"
    );
}
