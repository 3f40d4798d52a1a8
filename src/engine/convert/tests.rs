//! Converter tests: the checked-in examples, losslessness, and one case per construct.

use serde_yaml::Value;

use super::names::{Ids, id_from_image};
use super::refs::{rename_ids, rename_path, root_paths};
use super::*;

const EXAMPLES: &[(&str, &str)] = &[
    (
        include_str!("../../../examples/stackpulse/redis-incident-enrichment.yaml"),
        include_str!("../../../examples/playbooks/redis-incident-enrichment.yaml"),
    ),
    (
        include_str!("../../../examples/stackpulse/restart-crashlooping-pods.yaml"),
        include_str!("../../../examples/playbooks/restart-crashlooping-pods.yaml"),
    ),
    (
        include_str!("../../../examples/stackpulse/redis-alerts-trigger.yaml"),
        include_str!("../../../examples/triggers/redis-alerts.yaml"),
    ),
];

fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("example is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn one(yaml: &str) -> (Value, Vec<String>) {
    let c = convert(yaml).unwrap_or_else(|e| panic!("converts: {e}\n{yaml}"));
    assert_eq!(c.resources.len(), 1, "one resource");
    (c.resources[0].clone(), c.notes)
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[k],
    })
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is a string in {v:?}"))
}

#[test]
fn examples_convert_to_their_checked_in_canonical_form() {
    for (source, canonical) in EXAMPLES {
        let c = convert(source).expect("example converts");
        assert_eq!(
            c.resources,
            docs(canonical),
            "regenerate the canonical example from its source"
        );
        // Converting the canonical form again changes nothing.
        let again = convert(canonical).expect("canonical passes through");
        assert_eq!(again.resources, c.resources);
        assert!(again.notes.iter().all(|n| n.contains("already canonical")));
    }
}

#[test]
fn redis_example_changes_only_what_the_notes_say() {
    let (pb, notes) = one(EXAMPLES[0].0);
    assert_eq!(s(&pb, "metadata.name"), "redis-incident-enrichment");
    assert_eq!(
        s(&pb, "spec.description"),
        "Playbook automating active data enrichment for REDIS incidents"
    );
    assert_eq!(
        s(&pb, "spec.steps.0.image"),
        "us-docker.pkg.dev/stackpulse/public/kubect1/get-configmap"
    );
    assert_eq!(s(&pb, "spec.steps.0.outputParser.name"), "json");
    assert_eq!(
        s(&pb, "spec.steps.1.env.REDIS_URL"),
        r#"redis://{{ secret "Redis_Secret" }}@{{ .RedisConnectionString }}:{{ .RedisPort }}/"#
    );
    let expected = [
        "metadata.name 'redis_incident_enrichment' is not a valid Kubernetes name: renamed 'redis-incident-enrichment'",
        "steps[0].output_parser us-docker.pkg.dev/stackpulse/public/json-parser → outputParser json",
        "StackPulse steps have no phase: all 3 set to enrich",
    ];
    assert_eq!(notes.len(), expected.len(), "{notes:#?}");
    for (note, want) in notes.iter().zip(expected) {
        assert!(note.contains(want), "{note} should say {want}");
    }
}

/// Flattened dialect steps: (source path, the step's mapping), in order.
fn dialect_steps<'a>(list: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    for (i, v) in list.as_sequence().into_iter().flatten().enumerate() {
        let p = format!("{path}[{i}]");
        if v.get("name").is_some() {
            out.push((p, v));
        } else if let Some(inner) = v.get("foreach").and_then(|f| f.get("steps")) {
            dialect_steps(inner, &format!("{p}.foreach.steps"), out);
        } else if let Some(inner) = v.get("steps") {
            dialect_steps(inner, &format!("{p}.steps"), out);
        }
    }
}

#[test]
fn conversion_is_lossless_every_difference_is_noted() {
    for (source, _) in EXAMPLES.iter().take(2) {
        let src: Value = serde_yaml::from_str(source).expect("yaml");
        let c = convert(source).expect("converts");
        let pb = &c.resources[0];
        let mut before = Vec::new();
        dialect_steps(&src["steps"], "steps", &mut before);
        let after: Vec<&Value> = pb["spec"]["steps"]
            .as_sequence()
            .expect("steps")
            .iter()
            .flat_map(|e| match e.get("steps").and_then(Value::as_sequence) {
                Some(inner) => inner.iter().collect(),
                None => vec![e],
            })
            .collect();
        assert_eq!(before.len(), after.len(), "every step is kept");
        let noted = |path: &str| {
            c.notes
                .iter()
                .any(|n| n.contains(&format!("{path}:")) || n.contains(&format!("{path} ")))
        };
        for ((path, b), a) in before.iter().zip(&after) {
            assert_eq!(b["name"], a["image"], "{path}: image");
            if let Some(id) = b.get("id") {
                assert!(a["id"] == *id || noted(path), "{path}: id change is noted");
            }
            for field in ["when", "runner"] {
                assert!(
                    b.get(field) == a.get(field) || noted(&format!("{path}.{field}")),
                    "{path}.{field}"
                );
            }
            let env = b
                .get("env")
                .and_then(Value::as_mapping)
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                env.len(),
                a.get("env")
                    .and_then(Value::as_mapping)
                    .map_or(0, |m| m.len()),
                "{path}: env keys"
            );
            for (k, v) in env {
                let key = k.as_str().expect("env key");
                let out = &a["env"][key];
                let same = out == &v || out.as_str() == scalar(&v).as_deref();
                assert!(
                    same || noted(&format!("{path}.env.{key}")),
                    "{path}.env.{key}: {v:?} → {out:?}"
                );
            }
            let args = |v: &Value| {
                v.get("args")
                    .and_then(Value::as_sequence)
                    .map_or(0, |a| a.len())
            };
            assert_eq!(args(b), args(a), "{path}: args");
        }
        let params = src
            .get("parameters")
            .and_then(Value::as_sequence)
            .map_or(0, |p| p.len());
        assert_eq!(
            params,
            pb["spec"]
                .get("params")
                .and_then(Value::as_sequence)
                .map_or(0, |p| p.len())
        );
    }
}

#[test]
fn step_fields_map() {
    let (pb, notes) = one(r#"
apiVersion: stackpulse.io/v1
kind: Playbook
metadata: {name: p}
parameters:
  - {name: Runner, type: spd, Description: where, example: prod, optional: false}
  - {name: Slack, type: integration, description: chat, options: {integration_type: slack}, default: 7}
  - {name: Pw, type: secret, required: false}
steps:
  - name: reg.io/a/json-step:v2
    ignoreFailure: true
    envFrom: {integrationRef: '{{ $.params.Slack }}'}
    args: [--x, 5]
    output_parser: {name: us-docker.pkg.dev/stackpulse/public/raw-output-parser}
  - name: reg.io/a/json-step
    output_parser: {name: reg.io/my/parser}
    env: {N: 3, B: true}
"#);
    assert_eq!(s(&pb, "spec.params.0.type"), "runner");
    assert_eq!(s(&pb, "spec.params.0.description"), "where");
    assert_eq!(at(&pb, "spec.params.0.required"), &Value::Bool(true));
    assert_eq!(s(&pb, "spec.params.1.integrationType"), "slack");
    assert_eq!(s(&pb, "spec.params.1.default"), "7");
    assert_eq!(
        at(&pb, "spec.params.2.required"),
        &Value::Null,
        "required: false is the default"
    );
    assert_eq!(s(&pb, "spec.steps.0.id"), "json-step");
    assert_eq!(s(&pb, "spec.steps.1.id"), "json-step-2");
    assert_eq!(at(&pb, "spec.steps.0.continueOnError"), &Value::Bool(true));
    assert_eq!(
        s(&pb, "spec.steps.0.envFrom.0.integrationRef"),
        "{{ $.params.Slack }}"
    );
    assert_eq!(s(&pb, "spec.steps.0.args.1"), "5");
    assert_eq!(s(&pb, "spec.steps.0.outputParser.name"), "raw");
    assert_eq!(s(&pb, "spec.steps.1.outputParser.name"), "reg.io/my/parser");
    assert_eq!(s(&pb, "spec.steps.1.env.N"), "3");
    assert_eq!(s(&pb, "spec.steps.1.env.B"), "true");
    for want in [
        "type spd → runner",
        "ignoreFailure → continueOnError",
        "had no id: named it 'json-step-2'",
        "→ outputParser raw",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(want)),
            "{want} in {notes:#?}"
        );
    }
}

#[test]
fn renamed_ids_are_rewritten_where_templates_read_them() {
    let (pb, notes) = one(r#"
apiVersion: stackpulse.io/v1
kind: Playbook
metadata: {name: p}
steps:
  - {id: get_pods, name: a}
  - name: b
    when: '{{ gt (len $.get_pods.items) 0 }}'
    env:
      A: '{{ .get_pods.items }} {{ get "$.get_pods.x" }} {{ range .get_pods.items }}{{ .get_pods }}{{ end }}'
      Q: "{{ $.'get_pods'.n }}"
      KEEP: 'get_pods {{ .get_podsx }}'
  - foreach: {in: get_pods.items, steps: [{name: c}]}
  - {id: get_pods, name: d}
  - {name: e, env: {L: '{{ $.get_pods.y }}'}}
"#);
    assert_eq!(s(&pb, "spec.steps.0.id"), "get-pods");
    assert_eq!(
        s(&pb, "spec.steps.1.when"),
        "{{ gt (len $.'get-pods'.items) 0 }}"
    );
    assert_eq!(
        s(&pb, "spec.steps.1.env.A"),
        r#"{{ $.'get-pods'.items }} {{ get "$.'get-pods'.x" }} {{ range $.'get-pods'.items }}{{ .get_pods }}{{ end }}"#,
        "under range, `.` is the item: left alone"
    );
    assert_eq!(s(&pb, "spec.steps.1.env.Q"), "{{ $.'get-pods'.n }}");
    assert_eq!(s(&pb, "spec.steps.1.env.KEEP"), "get_pods {{ .get_podsx }}");
    assert_eq!(s(&pb, "spec.steps.2.foreach.path"), "$.'get-pods'.items");
    assert_eq!(
        s(&pb, "spec.steps.3.id"),
        "get-pods-2",
        "a repeated id gets a suffix"
    );
    assert_eq!(
        s(&pb, "spec.steps.4.env.L"),
        "{{ $.'get-pods-2'.y }}",
        "later reads see the last step with that id"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("steps[1].when: reads a renamed step id")),
        "{notes:#?}"
    );
}

#[test]
fn groups_and_loops_become_blocks() {
    let (pb, notes) = one(r#"
apiVersion: stackpulse.io/v1
kind: Playbook
metadata: {name: p}
steps:
  - when: '{{ .a }}'
    steps:
      - {name: x/one}
      - when: '{{ .b }}'
        steps: [{name: x/two, when: '{{ .c }}'}]
      - foreach: {in: {range: [0, 2]}, key: i, break: '{{ .done }}', steps: [{name: x/three}]}
      - {name: x/four}
  - foreach: {in: [a, {b: 1}], value: v, when: '{{ .v }}'}
    steps: [{name: x/five}]
"#);
    let steps = at(&pb, "spec.steps").as_sequence().expect("steps").clone();
    let ids: Vec<&str> = steps
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["group-1", "loop-1", "group-1-3", "loop-2"]);
    assert_eq!(s(&pb, "spec.steps.0.when"), "{{ .a }}");
    assert_eq!(
        s(&pb, "spec.steps.0.steps.1.when"),
        "{{ and (.b) (.c) }}",
        "nested group's when moves onto its steps"
    );
    assert_eq!(
        s(&pb, "spec.steps.1.when"),
        "{{ .a }}",
        "the loop keeps the group's condition"
    );
    assert_eq!(
        at(&pb, "spec.steps.1.foreach.range"),
        &serde_yaml::from_str::<Value>("[0, 2]").expect("yaml")
    );
    assert_eq!(s(&pb, "spec.steps.1.foreach.key"), "i");
    assert_eq!(s(&pb, "spec.steps.1.foreach.break"), "{{ .done }}");
    assert_eq!(s(&pb, "spec.steps.2.when"), "{{ .a }}");
    assert_eq!(s(&pb, "spec.steps.2.steps.0.image"), "x/four");
    assert_eq!(
        at(&pb, "spec.steps.3.foreach.items.1.b"),
        &Value::Number(1.into())
    );
    assert_eq!(s(&pb, "spec.steps.3.foreach.when"), "{{ .v }}");
    assert!(
        notes.iter().any(|n| n.contains("split into 3 blocks")),
        "{notes:#?}"
    );
}

#[test]
fn unknown_fields_are_kept_in_an_annotation() {
    let (pb, notes) = one(
        "apiVersion: stackpulse.io/v1\nkind: Playbook\nmetadata: {name: p, labels: {team: sre}, owner: me}\nsteps:\n  - {name: a, timeout: 30}\n",
    );
    let kept: serde_json::Value = serde_json::from_str(
        pb["metadata"]["annotations"][UNMAPPED_ANNOTATION]
            .as_str()
            .expect("kept"),
    )
    .expect("json");
    assert_eq!(
        kept,
        serde_json::json!({"metadata.owner": "me", "steps[0].timeout": 30})
    );
    assert_eq!(s(&pb, "metadata.labels.team"), "sre");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("steps[0].timeout has no canonical field"))
    );
}

#[test]
fn triggers_become_one_per_scenario() {
    let c = convert(EXAMPLES[2].0).expect("converts");
    assert_eq!(c.resources.len(), 3);
    let [a, _, muted] = &c.resources[..] else {
        unreachable!()
    };
    assert_eq!(s(a, "metadata.name"), "redis-alerts-redis-down");
    assert_eq!(s(a, "spec.playbookRef.name"), "redis-incident-enrichment");
    assert_eq!(s(a, "spec.sources.0"), "alertmanager");
    assert_eq!(s(a, "spec.params.RedisPort"), "6379");
    assert_eq!(
        a["metadata"]["annotations"]["stackpulse.io/scenario"].as_str(),
        Some("Redis down")
    );
    assert_eq!(muted["spec"]["enabled"], Value::Bool(false));
    assert!(
        muted["spec"].get("sources").is_none(),
        "an unknown integration listens to every source"
    );
    assert_eq!(
        muted["metadata"]["annotations"]["stackpulse.io/integration"].as_str(),
        Some("datadog-staging")
    );
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("'datadog-staging' is not an alert source"))
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let cases = [
        ("steps: [", "line"),
        ("kind: Playbook\nmetadata: {name: p}\n", "steps: missing"),
        ("kind: Playbook\nsteps: []\n", "metadata: missing"),
        (
            "kind: Playbook\nmetadata: {name: p}\nsteps: [{name: a, steps: [{name: b}]}]",
            "steps[0]: has both name",
        ),
        (
            "kind: Playbook\nmetadata: {name: p}\nsteps: [{id: x}]",
            "steps[0]: is neither a step",
        ),
        (
            "kind: Playbook\nmetadata: {name: p}\nsteps: [{foreach: {in: x, steps: [{foreach: {in: y, steps: [{name: a}]}}]}}]",
            "a loop inside a loop",
        ),
        (
            "kind: Playbook\nmetadata: {name: p}\nsteps: [{foreach: {in: {range: [1]}, steps: [{name: a}]}}]",
            "must be [from, to]",
        ),
        (
            "kind: Playbook\nmetadata: {name: p}\nsteps: [{name: a, env: [1]}]",
            "env: must be a mapping",
        ),
        (
            "kind: Playbook\nmetadata: {name: ___}\nsteps: [{name: a}]",
            "has no letter or digit",
        ),
        (
            "kind: Trigger\nmetadata: {name: t}\nscenarios: []\n",
            "playbook: missing",
        ),
        (
            "kind: ConfigMap\nmetadata: {name: c}\n",
            "nothing to convert",
        ),
        (
            "kind: Playbook\nmetadata: {name: p}\nsteps:\n- when: '{{ .a }} x'\n  steps: [{name: a, when: '{{ .b }}'}, {when: '{{ .c }}', steps: [{name: b}]}]\n",
            "",
        ),
    ];
    for (yaml, want) in cases {
        match convert(yaml) {
            Ok(_) => assert!(want.is_empty(), "{yaml} should fail with {want}"),
            Err(e) => assert!(
                !want.is_empty() && e.to_string().contains(want),
                "{yaml}: {e} should say {want}"
            ),
        }
    }
    let nested = "kind: Playbook\nmetadata: {name: p}\nsteps:\n- when: 'a {{ .a }}'\n  steps: [{when: '{{ .c }}', steps: [{name: b, when: '{{ .d }}'}]}]\n";
    assert!(
        convert(nested).is_ok(),
        "only the nested group and its step combine"
    );
    let both = "kind: Playbook\nmetadata: {name: p}\nsteps:\n- steps: [{when: 'x {{ .c }}', steps: [{name: b, when: '{{ .d }}'}]}]\n";
    assert!(
        convert(both)
            .expect_err("not single actions")
            .to_string()
            .contains("merge them by hand")
    );
}

#[test]
fn names_and_ids() {
    assert_eq!(
        dns_subdomain("Redis_Incident..Enrichment-"),
        "redis-incident.enrichment"
    );
    assert_eq!(dns_label("--A__b--"), "a-b");
    assert_eq!(
        id_from_image("us-docker.pkg.dev/x/teams-message:v1@sha256:ab"),
        "teams-message"
    );
    assert_eq!(id_from_image("registry:5000/x/Foo_Bar"), "foo-bar");
    assert_eq!(id_from_image("///"), "step");
    let mut ids = Ids::default();
    ids.reserve("slack");
    assert_eq!(
        ids.take("slack", false),
        "slack-2",
        "generated ids never take an id written later"
    );
    assert_eq!(ids.take("slack", true), "slack");
    assert_eq!(ids.take("slack", true), "slack-3");
    assert_eq!(ids.take(&"x".repeat(70), false).len(), 63);
    assert!(is_dns_label(
        &ids.take(&format!("{}-", "y".repeat(62)), false)
    ));
}

#[test]
fn template_scanning() {
    let paths = |src: &str| {
        root_paths(src)
            .into_iter()
            .map(|p| (p.segments.join("/"), p.printed, p.secret_arg))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        paths(
            r#"{{ $.'redis-info'.info.x }} {{- if .a.b }}{{ secret .params.pw }}{{ end -}} {{ "}}" }} {{ $x.y }} {{ 1.5 }}"#
        ),
        [
            ("redis-info/info/x".into(), true, false),
            ("a/b".into(), false, false),
            ("params/pw".into(), false, true)
        ]
    );
    assert_eq!(
        paths("{{ with .a }}{{ .b }}{{ $.c }}{{ end }}{{ .d }}"),
        [
            ("a".into(), false, false),
            ("c".into(), true, false),
            ("d".into(), true, false)
        ]
    );
    assert_eq!(
        paths("{{/* .x */}} {{ .params.Pw | quote }}"),
        [("params/Pw".into(), true, false)]
    );
    let renames = [("a_b".to_string(), "a-b".to_string())]
        .into_iter()
        .collect();
    assert_eq!(
        rename_ids("{{ .a_b.c }}", &renames).as_deref(),
        Some("{{ $.'a-b'.c }}")
    );
    assert_eq!(rename_ids("{{ .c.a_b }}", &renames), None);
    assert_eq!(
        rename_ids("{{ .a_b", &renames),
        None,
        "an unclosed action is left for lint to report"
    );
    assert_eq!(
        rename_path("a_b.items", &renames).as_deref(),
        Some("$.'a-b'.items")
    );
    assert_eq!(rename_path("$.'a_b'", &renames).as_deref(), Some("$.'a-b'"));
    assert_eq!(rename_path("other.a_b", &renames), None);
}

#[test]
fn canonical_documents_pass_through() {
    let text =
        "apiVersion: stackpulse.io/v1\nkind: Runner\nmetadata: {name: prod}\nspec: {}\n---\n";
    let c = convert(text).expect("passes");
    assert_eq!(c.resources, docs(text));
    assert_eq!(
        c.notes,
        ["Runner prod: already canonical (has spec): passed through unchanged"]
    );
    assert!(to_yaml(&c.resources).starts_with("---\napiVersion: stackpulse.io/v1\nkind: Runner\n"));
}
