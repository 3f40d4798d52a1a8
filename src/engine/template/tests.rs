//! Tests for `engine::template`: rendering as playbook authors see it. Secrets,
//! escaping, error positions and hostile input are in `tests_safety.rs`.

use serde_json::{Value, json};

use super::*;

/// A context shaped like the controller's: params merged at the root, step outputs
/// at the root and by step id, alert, execution.
pub(super) fn ctx() -> Value {
    json!({
        "params": {"Namespace": "prod", "RedisPassword": "redis-password"},
        "RedisConnectionString": "redis-master.prod", "RedisPort": 6379,
        "redis-info": {"info": {"Clients": {"connected_clients": 0}}},
        "Clients": {"connected_clients": 0, "blocked": "12"},
        "x": {"Items": [{"State": "healthy"}, {"State": "degraded"}]},
        "items": [{"name": "a"}, {"name": "b"}],
        "pods": [{"name": "p1", "ready": true}, {"name": "p2"}, {"name": "p3", "ready": false}],
        "labels": {"b": "2", "a": "1", "c": "3"},
        "output": "raw text",
        "event": {"Type": "Alert", "Priority": "HIGH"},
        "alert": {"labels": {"namespace": "prod", "evil": "$(OTHER)", "evil2": "$$(OTHER)"}},
        "execution": {"id": "exec-42"},
        "empty": [], "nothing": null, "neg": -1.5, "ratio": 0.25, "big": 12345678901u64,
    })
}

pub(super) fn r(src: &str) -> String {
    render(src, &ctx()).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

pub(super) fn fails(src: &str) -> TemplateError {
    match render(src, &ctx()) {
        Ok(out) => panic!("{src:?} should fail, rendered {out:?}"),
        Err(e) => e,
    }
}

#[test]
fn plain_text_is_returned_verbatim() {
    let s = "no templates here: $(X) } }} { \u{E000} $.a[0]";
    assert_eq!(render(s, &Value::Null).unwrap(), s);
    assert_eq!(render_env(s, &Value::Null).unwrap().text, s);
}

#[test]
fn stackpulse_paths() {
    // Quoted step ids (single or double quotes), as in StackPulse playbooks.
    assert_eq!(
        r("{{ $.'redis-info'.info.Clients.connected_clients }}"),
        "0"
    );
    assert_eq!(
        r(r#"{{ $."redis-info".info.Clients.connected_clients }}"#),
        "0"
    );
    assert_eq!(r("{{ .redis-info.info.Clients.connected_clients }}"), "0");
    assert_eq!(
        r("{{ $.x.Items[0].State }} {{ .items[1].name }} {{ $.x.Items[-1].State }}"),
        "healthy b degraded"
    );
    assert_eq!(
        r("{{ $.pods[:].name }} {{ $.pods.[:].name }} {{ $.pods[*].name }}"),
        "[p1 p2 p3] [p1 p2 p3] [p1 p2 p3]"
    );
    assert_eq!(
        r("{{ $.pods[0:2].name }} {{ $.labels.* }} {{ $.labels['a'] }}"),
        "[p1 p2] [1 2 3] 1"
    );
    // Elements without the field are skipped by a projection (JSONPath).
    assert_eq!(r("{{ $.pods[:].ready }}"), "[true false]");
    assert_eq!(r("{{ $.output }} {{ .output }}"), "raw text raw text");
    assert_eq!(r("{{ len $.pods[:].name }}"), "3");
}

#[test]
fn missing_values_render_no_value_at_any_depth() {
    assert_eq!(
        r("{{ .missing }}|{{ .missing.deep.er }}|{{ $.x.Items[9].State }}"),
        "<no value>|<no value>|<no value>"
    );
    assert_eq!(r("{{ .nothing }}"), "<nil>");
    assert_eq!(r("{{ range .missing }}x{{ else }}none{{ end }}"), "none");
    // Reading a field of a list or a string is a mistake worth an error.
    assert!(fails("{{ .items.name }}").message.contains("[:]"));
    assert!(fails("{{ .output.x }}").message.contains("a string"));
}

#[test]
fn text_and_string_literals_are_not_rewritten() {
    assert_eq!(
        r(r#"$.a[0] {{ "$.a[0] .* {{ }}" }} .b[:]"#),
        "$.a[0] $.a[0] .* {{ }} .b[:]"
    );
    assert_eq!(r("{{ `raw \\n $.x` }}"), "raw \\n $.x");
    assert_eq!(r(r#"{{ "tab\there\u00e9" }}"#), "tab\there\u{e9}");
}

#[test]
fn control_structures_trims_variables_pipes() {
    assert_eq!(
        r("{{ if eq 1 2 }}a{{ else if eq .event.Type \"Alert\" }}b{{ else }}c{{ end }}"),
        "b"
    );
    assert_eq!(
        r("{{ if .missing }}a{{ else if false }}b{{ else }}c{{ end }}"),
        "c"
    );
    assert_eq!(r("{{ range .items }}{{ .name }},{{ end }}"), "a,b,");
    assert_eq!(
        r("{{ range $i, $p := .items }}{{ $i }}={{ $p.name }} {{ end }}"),
        "0=a 1=b "
    );
    assert_eq!(r("{{ range $v := .items }}{{ $v.name }}{{ end }}"), "ab");
    // Maps range in key order (gtmpl's own order is random); else only when empty.
    assert_eq!(
        r("{{ range $k, $v := .labels }}{{ $k }}={{ $v }};{{ else }}none{{ end }}"),
        "a=1;b=2;c=3;"
    );
    assert_eq!(r("{{ range .empty }}x{{ else }}none{{ end }}"), "none");
    assert_eq!(
        r("{{ range $k, $v := .empty }}x{{ else }}none{{ end }}"),
        "none"
    );
    assert_eq!(r("{{ range 3 }}{{ . }}{{ end }}"), "012");
    assert_eq!(
        r("{{ with .event }}{{ .Type }}{{ end }}{{ with .missing }}x{{ else }}-{{ end }}"),
        "Alert-"
    );
    assert_eq!(r("a  {{- \"b\" -}}  c {{- /* note */ -}} d"), "abcd");
    assert_eq!(r("{{/* only a comment */}}"), "");
    assert_eq!(r("{{ \"x\" }}}"), "x}");
    assert_eq!(
        r("{{ $n := .params.Namespace }}{{ $n }}-{{ $n | upper }}"),
        "prod-PROD"
    );
    assert_eq!(r("{{ if $t := .event.Type }}{{ $t }}{{ end }}"), "Alert");
    // `$` is the root inside range/with, `.` the element.
    assert_eq!(
        r("{{ range .items }}{{ .name }}@{{ $.params.Namespace }} {{ end }}"),
        "a@prod b@prod "
    );
    assert_eq!(r("{{ .event.Type | lower | printf \"%s!\" }}"), "alert!");
    assert_eq!(
        r("{{ (index .items 1).name }} {{ (get \"$.event\").Type }}"),
        "b Alert"
    );
}

#[test]
fn builtins() {
    assert_eq!(
        r("{{ and true 1 }} {{ or 0 \"\" \"x\" }} {{ not .missing }}"),
        "1 x true"
    );
    assert_eq!(
        r("{{ eq 1 2 1 }} {{ ne .event.Type \"Alert\" }} {{ le 2 2 }} {{ ge 1 2 }} {{ gt 2.5 2 }}"),
        "true false true false true"
    );
    assert_eq!(
        r("{{ len .items }} {{ len \"héllo\" }} {{ len .labels }} {{ len .missing }}"),
        "2 6 3 0"
    );
    assert_eq!(
        r("{{ index .items 0 \"name\" }} {{ index .labels \"a\" }} {{ index .labels \"zz\" }}"),
        "a 1 <no value>"
    );
    assert!(
        fails("{{ index .items 5 }}")
            .message
            .contains("out of range")
    );
    assert_eq!(
        r("{{ printf \"%s-%d\" .event.Type .RedisPort }}"),
        "Alert-6379"
    );
}

#[test]
fn sprig_subset() {
    assert_eq!(
        r(
            "{{ .missing | default \"dflt\" }} {{ default \"d\" .event.Type }} {{ default \"d\" \"\" }}"
        ),
        "dflt Alert d"
    );
    assert_eq!(r("{{ quote .event.Type \"a\\\"b\" }}"), r#""Alert" "a\"b""#);
    assert_eq!(
        r("{{ toJson .labels }} {{ toJson .missing }}"),
        r#"{"a":"1","b":"2","c":"3"} null"#
    );
    assert_eq!(
        r("{{ toPrettyJson .event }}"),
        "{\n  \"Priority\": \"HIGH\",\n  \"Type\": \"Alert\"\n}"
    );
    assert_eq!(r("{{ (fromJson \"{\\\"a\\\": [1, 2]}\").a }}"), "[1 2]");
    assert_eq!(
        r("{{ b64enc \"user:pw\" }} {{ \"dXNlcjpwdw==\" | b64dec }}"),
        "dXNlcjpwdw== user:pw"
    );
    assert_eq!(
        r(
            "{{ upper \"ab\" }} {{ lower \"AB\" }} [{{ trim \"  x \" }}] {{ .output | replace \" \" \"_\" }}"
        ),
        "AB ab [x] raw_text"
    );
    assert_eq!(
        r("{{ kebabcase \"RedisInfo\" }} {{ \"HTTPServer_name x\" | kebabcase }}"),
        "redis-info http-server-name-x"
    );
    assert_eq!(
        r("{{ int \"12\" }} {{ int 3.9 }} {{ float \"2.5\" }} {{ int .Clients.blocked }}"),
        "12 3 2.5 12"
    );
    assert_eq!(
        r("{{ ieq .event.Priority \"high\" }} {{ ine \"A\" \"a\" }} {{ ieq .missing \"\" }}"),
        "true false false"
    );
    assert_eq!(
        r(
            "{{ get \"$.event.Type\" }} {{ get .labels \"b\" }} {{ $p := \"$.event.Priority\" }}{{ get $p }}"
        ),
        "Alert 2 HIGH"
    );
    assert_eq!(
        r("{{ slice .items 1 }} {{ slice \"abcdef\" 1 3 }} {{ slice .items 0 1 | len }}"),
        "[map[name:b]] bc 1"
    );
    assert_eq!(
        r("{{ empty .empty }} {{ empty .missing }} {{ empty 0 }} {{ empty .items }}"),
        "true true true false"
    );
    assert_eq!(r("{{ rest .items }} {{ rest .empty }}"), "[map[name:b]] []");
    assert!(fails("{{ int .missing }}").message.contains("missing"));
    assert!(
        fails("{{ fromJson \"{\" }}")
            .message
            .contains("not valid JSON")
    );
    assert!(
        fails("{{ slice \"abc\" 2 9 }}")
            .message
            .contains("out of range")
    );
}

#[test]
fn numbers_compare_sensibly() {
    // JSON ints against literal ints (Go would need both to be the same kind).
    assert_eq!(
        r("{{ lt .Clients.connected_clients 1 }} {{ eq .RedisPort 6379 }} {{ gt .big 1 }}"),
        "true true true"
    );
    // A numeric string from an output against a number compares as numbers...
    assert_eq!(
        r(
            "{{ gt .Clients.blocked 5 }} {{ eq .Clients.blocked 12 }} {{ lt (int .Clients.blocked) 100 }}"
        ),
        "true true true"
    );
    // ...while two strings compare as strings, as in Go.
    assert_eq!(
        r("{{ lt \"9\" \"10\" }} {{ lt (int \"9\") (int \"10\") }}"),
        "false true"
    );
    assert_eq!(
        r("{{ lt .ratio 0.5 }} {{ lt .neg 0 }} {{ .neg }} {{ lt -2 -1 }}"),
        "true true -1.5 true"
    );
    // Scalars of different kinds compare by printed form: StackPulse's SDK turns
    // "true" into a boolean, authors still write "true".
    assert_eq!(
        r("{{ eq .pods[0].ready \"true\" }} {{ eq .missing 0 }} {{ ne .missing 0 }}"),
        "true false true"
    );
    let e = fails("{{ lt .Clients.missing 1 }}");
    assert!(e.message.contains("missing value"), "{e}");
    assert!(
        fails("{{ lt .event.Type 1 }}")
            .message
            .contains("cannot compare")
    );
    assert!(
        fails("{{ 99999999999999999999999 }}")
            .message
            .contains("bad number")
    );
    assert_eq!(
        r("{{ 0x1F }} {{ 1_000 }} {{ 'a' }} {{ 1e3 }}"),
        "31 1000 97 1000"
    );
    // gtmpl_value would turn these into integers; they travel as text instead.
    assert_eq!(
        r("{{ -0.5 }} {{ 1e-17 }} {{ gt 1e-17 0 }}"),
        "-0.5 0.00000000000000001 true"
    );
    let tiny = json!({"t": 1e-17, "n": -2.25});
    let out = render("{{ .t }} {{ .n }} {{ lt .n -2 }}", &tiny).unwrap();
    assert_eq!(out, "0.00000000000000001 -2.25 true");
}

#[test]
fn conditions() {
    let c = |s: &str| render_condition(s, &ctx());
    assert_eq!(c("{{ lt .Clients.connected_clients 1 }}"), Ok(true));
    assert_eq!(
        c(" {{ eq $.x.Items[0].State \"healthy\" | not }} \n"),
        Ok(false)
    );
    assert_eq!(c("TRUE"), Ok(true));
    assert_eq!(c("{{ .missing }}"), Ok(false));
    assert_eq!(c("{{ if false }}true{{ end }}"), Ok(false));
    assert_eq!(c("{{ if .pods }}True{{ else }}False{{ end }}"), Ok(true));
    let e = c("{{ .event.Type }}").unwrap_err();
    assert!(
        e.message.contains("must render true or false") && e.message.contains("\"Alert\""),
        "{e}"
    );
}

#[test]
fn references_for_lint() {
    let refs = references(
        "{{ $.'redis-info'.info.Clients.x }} {{ .params.A }} {{ $.x.Items[0].State }} \
         {{ get \"$.event.Type\" }} {{ range .pods }}{{ .name }}{{ $.execution.id }}{{ end }} {{ $.pods[:].name }}",
    )
    .unwrap();
    let want: Vec<Vec<&str>> = vec![
        vec!["redis-info", "info", "Clients", "x"],
        vec!["params", "A"],
        vec!["x", "Items", "[0]", "State"],
        vec!["event", "Type"],
        vec!["pods"],
        vec!["execution", "id"],
        vec!["pods", "[:]", "name"],
    ];
    assert_eq!(refs, want);
    assert_eq!(references("plain").unwrap(), Vec::<Vec<String>>::new());
    assert!(references("{{ nope }}").is_err());
}

/// The seed's Redis playbook (shared/seed/stackpulse-talk.txt), its env values
/// rendered as the Job builder does: one `SecretNames` per container.
#[test]
fn seed_redis_playbook_env() {
    let c = ctx();
    let env = [
        (
            "REDIS_URL",
            r#"redis://{{ secret "Redis_Secret" }}@{{ .RedisConnectionString }}:{{ .RedisPort }}/"#,
        ),
        (
            "TEAMS_TITLE",
            "High Level Information about REDIS Server {{ .RedisConnectionString }}",
        ),
        ("TEAMS_WEBHOOK", r#"{{ secret "Teams_Key" }}"#),
        ("TEAMS_CONTENT", "Selected Parameters from REDIS:"),
        (
            "TEAMS_URL",
            "https://app.stackpulse.io/execution/{{ .execution.id }}",
        ),
        (
            "TEAMS_TABLE_DATA",
            "{\n  name: \"Connected Clients\",\n  value: \"{{ .Clients.connected_clients }}\"\n},\n",
        ),
    ];
    let mut names = SecretNames::new();
    let mut secrets = Vec::new();
    let mut out = Vec::new();
    for (k, v) in env {
        let r = render_env_with(v, &c, &mut names).unwrap();
        secrets.extend(r.secrets);
        out.push((k, r.text));
    }
    assert_eq!(
        out[0].1,
        "redis://$(SP_SECRET_REDIS_SECRET)@redis-master.prod:6379/"
    );
    assert_eq!(
        out[1].1,
        "High Level Information about REDIS Server redis-master.prod"
    );
    assert_eq!(out[2].1, "$(SP_SECRET_TEAMS_KEY)");
    assert_eq!(out[3].1, "Selected Parameters from REDIS:");
    assert_eq!(out[4].1, "https://app.stackpulse.io/execution/exec-42");
    assert_eq!(
        out[5].1,
        "{\n  name: \"Connected Clients\",\n  value: \"0\"\n},\n"
    );
    let vars: Vec<_> = secrets
        .iter()
        .map(|(v, r)| (v.as_str(), r.key.as_str()))
        .collect();
    assert_eq!(
        vars,
        [
            ("SP_SECRET_REDIS_SECRET", "Redis_Secret"),
            ("SP_SECRET_TEAMS_KEY", "Teams_Key")
        ]
    );
    // The restart step's condition from DESIGN.md.
    assert_eq!(
        render_condition("{{ lt .Clients.connected_clients 1 }}", &c),
        Ok(true)
    );
}

#[test]
fn realistic_playbook_values() {
    let c = ctx();
    assert_eq!(
        render_env("https://app/execution/{{ .execution.id }}", &c)
            .unwrap()
            .text,
        "https://app/execution/exec-42"
    );
    assert_eq!(
        render_env("{{ .params.Namespace }}", &c).unwrap().text,
        "prod"
    );
    // A block scalar with a Python script: everything but the actions is verbatim,
    // including `{`, `$`, quotes and `}}`-looking dict literals.
    let script = r#"import json, os
data = json.loads('''{{ toJson .labels }}''')
cfg = {"ns": "{{ .params.Namespace }}", "n": {{ len .items }}}
print(f"{data['a']} ${HOME} {{ "{" }}}")
"#;
    let out = render_env(script, &c).unwrap().text;
    assert_eq!(
        out,
        r#"import json, os
data = json.loads('''{"a":"1","b":"2","c":"3"}''')
cfg = {"ns": "prod", "n": 2}
print(f"{data['a']} ${HOME} {}")
"#
    );
    // YAML folding leaves newlines and odd spacing inside actions.
    let folded = "{{ if eq\n  $.x.Items[0].State\n  \"healthy\"}}up{{ else }}down{{ end }}";
    assert_eq!(render(folded, &c).unwrap(), "up");
    assert_eq!(
        render_condition("{{\n  lt .Clients.connected_clients\n  1\n}}", &c),
        Ok(true)
    );
    // A `{` right before an action still renders (gtmpl would see `{{{`).
    assert_eq!(render("{ {{- \" x\" }}", &c).unwrap(), "{ x");
}
