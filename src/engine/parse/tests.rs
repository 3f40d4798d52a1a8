//! Tests of the parsers' public face (`kind`, `validate`, `parse_output`) on
//! real-looking step logs, and the totality checks: garbage, huge and empty input
//! through every parser never panic and stay fast. Per-parser details live next to
//! each parser.

use super::fixtures::REDIS7_INFO;
use super::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn parser(name: &str) -> OutputParser {
    OutputParser {
        name: name.into(),
        jq: None,
        pattern: None,
        separator: None,
    }
}

fn with_jq(name: &str, jq: &str) -> OutputParser {
    OutputParser {
        jq: Some(jq.into()),
        ..parser(name)
    }
}

fn message(r: Result<Value, ParseError>) -> String {
    r.expect_err("expected an error").message
}

#[test]
fn kinds() {
    for b in Builtin::ALL {
        assert_eq!(kind(&parser(b.name())), ParserKind::Builtin(b));
    }
    for (image, b) in [
        (
            "us-docker.pkg.dev/stackpulse/public/json-parser",
            Builtin::Json,
        ),
        (
            "us-docker.pkg.dev/stackpulse/public/json-parser:v1.2.0",
            Builtin::Json,
        ),
        (
            "registry:5000/sp/raw-output-parser@sha256:0123abcd",
            Builtin::Raw,
        ),
        ("ghcr.io/x/raw-output-parser:1@sha256:0123", Builtin::Raw),
        ("json-parser", Builtin::Json),
    ] {
        assert_eq!(kind(&parser(image)), ParserKind::Builtin(b), "{image}");
    }
    let img = "ghcr.io/acme/json-parser-v2:1.0";
    assert_eq!(kind(&parser(img)), ParserKind::Image(img.into()));
    assert_eq!(kind(&parser("jsonn")), ParserKind::Image("jsonn".into()));
}

#[test]
fn validation_messages() {
    let err = |p: OutputParser| validate(&p).unwrap_err().message;
    assert_eq!(
        err(parser("jsonn")),
        "outputParser 'jsonn' is unknown (known: json, raw, yaml, kv, redis-info, regex, lines, table, or an image reference such as registry.example/parsers/name:1): did you mean 'json'?"
    );
    assert!(err(parser("")).contains("'' is unknown"));
    assert!(err(parser("JSON")).ends_with("is unknown (known: json, raw, yaml, kv, redis-info, regex, lines, table, or an image reference such as registry.example/parsers/name:1): did you mean 'json'?"));
    assert!(err(parser("jsn")).ends_with("did you mean 'json'?"));
    assert!(err(parser("redisinfo")).ends_with("did you mean 'redis-info'?"));
    assert!(!err(parser("parse-helm")).contains("did you mean"));
    assert!(validate(&parser("registry.example/parsers/uptime:1")).is_ok());
    assert!(err(parser("my image:1")).contains("is unknown"));
    assert!(validate(&parser("ghcr.io/acme/parse-helm-status:1.0")).is_ok());
    assert!(validate(&parser("localhost:5000/p")).is_ok());
    for b in Builtin::ALL.into_iter().filter(|b| *b != Builtin::Regex) {
        assert!(validate(&parser(b.name())).is_ok(), "{b:?}");
    }
    assert_eq!(
        err(with_jq("table", ".")),
        "outputParser 'table' does not use 'jq' (only json and yaml use it)"
    );
    assert_eq!(
        err(OutputParser {
            separator: Some(":".into()),
            ..parser("json")
        }),
        "outputParser 'json' does not use 'separator' (only kv use it)"
    );
    assert!(
        err(with_jq("ghcr.io/acme/p:1", ".")).contains("is an image parser and does not use 'jq'")
    );
    assert!(
        err(with_jq("json", ".items["))
            .starts_with("outputParser 'json': jq filter '.items[' does not compile: ")
    );
    assert_eq!(
        err(with_jq("yaml", ".a | nope")),
        "outputParser 'yaml': jq filter '.a | nope' does not compile: undefined filter 'nope'"
    );
    assert!(err(with_jq("json", "  ")).contains("jq filter is empty"));
    assert!(
        validate(&with_jq(
            "us-docker.pkg.dev/stackpulse/public/json-parser",
            ".items"
        ))
        .is_ok()
    );

    let regex = |pattern: &str| OutputParser {
        pattern: Some(pattern.into()),
        ..parser("regex")
    };
    assert!(err(parser("regex")).contains("pattern is required"));
    assert!(err(regex("(?P<x>")).contains("pattern '(?P<x>' does not compile"));
    assert!(err(regex(r"(\d+) pods")).contains("has no named groups"));
    assert!(validate(&regex(r"(?P<pods>\d+) pods")).is_ok());
    let kv = |sep: &str| OutputParser {
        separator: Some(sep.into()),
        ..parser("kv")
    };
    assert!(err(kv("")).contains("separator must not be empty"));
    assert!(err(kv("\n")).contains("line break"));
    assert!(validate(&kv(": ")).is_ok());
}

#[test]
fn image_parsers_are_not_run_here() {
    let m = message(parse_output(&parser("ghcr.io/acme/p:1"), "{}", None));
    assert_eq!(
        m,
        "outputParser 'ghcr.io/acme/p:1' is an image: image parsers run as Jobs, not in the controller"
    );
    assert!(message(parse_output(&parser("jsonn"), "{}", None)).contains("is unknown"));
}

/// What a StackPulse step's log looks like: progress lines (some with brackets and
/// braces), the marker, then the JSON object.
const STEP_LOG: &str = "\
2024-05-01T10:00:00.123Z [INFO] fetching configmap {namespace: prod}
2024-05-01T10:00:00.456Z [INFO] got 3 keys
<-- END -->
{\"configmap\": {\"maxmemory\": \"2gb\", \"replicas\": 3}, \"keys\": [\"a\", \"b\", \"c\"]}
";

#[test]
fn json_after_the_marker() {
    let v = parse_output(&parser("json"), STEP_LOG, None).unwrap();
    assert_eq!(v["configmap"]["replicas"], json!(3));
    // The last marker wins: an echoed marker in the logs does not confuse it.
    let log = format!("echo '<-- END -->' is printed below\n{STEP_LOG}");
    assert_eq!(parse_output(&parser("json"), &log, None).unwrap(), v);
    // Without a marker, the SDK search over the whole output.
    let v2 = parse_output(
        &parser("json"),
        &STEP_LOG.replace("<-- END -->\n", ""),
        None,
    )
    .unwrap();
    assert_eq!(v2, v);
    // The JSON.parser image alias behaves the same.
    let img = parser("us-docker.pkg.dev/stackpulse/public/json-parser");
    assert_eq!(parse_output(&img, STEP_LOG, None).unwrap(), v);
}

#[test]
fn sp_end_marker_override() {
    let log = "starting\n=== OUTPUT ===\n[{\"pod\": \"redis-0\"}]\n";
    let v = parse_output(&parser("json"), log, Some("=== OUTPUT ===")).unwrap();
    assert_eq!(v, json!({"output": [{"pod": "redis-0"}]}));
    // The default marker is ignored when the step set its own.
    let log = "<-- END -->\n{\"a\": 1}\n### done\n{\"b\": 2}";
    assert_eq!(
        parse_output(&parser("json"), log, Some("### done")).unwrap(),
        json!({"b": 2})
    );
    // An empty SP_END_MARKER means the default, as in the SDK.
    assert_eq!(
        parse_output(&parser("json"), log, Some("")).unwrap(),
        json!({"a": 1})
    );
}

#[test]
fn json_wrapping() {
    let p = parser("json");
    assert_eq!(
        parse_output(&p, "[1, 2]", None).unwrap(),
        json!({"output": [1, 2]})
    );
    assert_eq!(
        parse_output(&p, "<-- END -->\n[]", None).unwrap(),
        json!({"output": []})
    );
    assert_eq!(parse_output(&p, "{}", None).unwrap(), json!({}));
}

#[test]
fn json_errors_say_what_to_print() {
    let p = parser("json");
    assert_eq!(
        message(parse_output(&p, "all good, nothing to report\n", None)),
        "no JSON found in step output (print one JSON object after the line '<-- END -->')"
    );
    assert_eq!(
        message(parse_output(&p, "log\n<-- END -->\nok\n", None)),
        "no JSON found after the end marker '<-- END -->' (print one JSON object after the line '<-- END -->')"
    );
    // A log cut short (limitBytes): the error names the line where the JSON began.
    let m = message(parse_output(
        &p,
        "log 1\nlog 2\n<-- END -->\n{\"items\": [\n{\"a\": 1},\n",
        None,
    ));
    assert_eq!(
        m,
        "no JSON found after the end marker '<-- END -->'; the JSON starting on line 4 is not valid: the output ends inside it (was the log cut short?) (print one JSON object after the line '<-- END -->')"
    );
    let m = message(parse_output(&p, "x", Some("@@")));
    assert!(m.ends_with("after the line '@@')"), "{m}");
}

#[test]
fn jq_filters() {
    let v = parse_output(&with_jq("json", ".configmap"), STEP_LOG, None).unwrap();
    assert_eq!(v, json!({"maxmemory": "2gb", "replicas": 3}));
    let v = parse_output(&with_jq("json", ".keys | length"), STEP_LOG, None).unwrap();
    assert_eq!(v, json!({"output": 3}));
    let v = parse_output(&with_jq("json", ".keys[]"), STEP_LOG, None).unwrap();
    assert_eq!(v, json!({"output": ["a", "b", "c"]}));
    let v = parse_output(
        &with_jq("json", ".keys[] | select(. == \"z\")"),
        STEP_LOG,
        None,
    )
    .unwrap();
    assert_eq!(v, json!({"output": []}));
    // jq sees the parsed value, not the {"output": ...} wrapper.
    let v = parse_output(&with_jq("json", "map(.name)"), "[{\"name\": \"a\"}]", None).unwrap();
    assert_eq!(v, json!({"output": ["a"]}));
    let m = message(parse_output(&with_jq("json", ".keys.x"), STEP_LOG, None));
    assert!(
        m.starts_with("outputParser 'json': the jq filter failed on the step output: cannot"),
        "{m}"
    );
}

#[test]
fn yaml_after_the_marker() {
    let log = "applying\n<-- END -->\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: redis\ndata:\n  maxmemory: 2gb\n";
    let v = parse_output(&parser("yaml"), log, None).unwrap();
    assert_eq!(v["data"]["maxmemory"], json!("2gb"));
    let v = parse_output(&with_jq("yaml", ".metadata.name"), log, None).unwrap();
    assert_eq!(v, json!({"output": "redis"}));
    let v = parse_output(&parser("yaml"), "- a\n- b\n", None).unwrap();
    assert_eq!(v, json!({"output": ["a", "b"]}));
    let m = message(parse_output(&parser("yaml"), "<-- END -->\na: [\n", None));
    assert!(
        m.starts_with("invalid YAML") && m.ends_with("after the line '<-- END -->')"),
        "{m}"
    );
}

#[test]
fn raw_keeps_all_of_stdout() {
    let v = parse_output(&parser("raw"), STEP_LOG, None).unwrap();
    assert_eq!(v, json!({"output": STEP_LOG}));
    let img = parser("us-docker.pkg.dev/stackpulse/public/raw-output-parser:latest");
    assert_eq!(parse_output(&img, "", None).unwrap(), json!({"output": ""}));
}

#[test]
fn line_parsers_read_after_the_marker() {
    let log = "checking\n<-- END -->\nrole=master\nconnected_slaves=2\n";
    let v = parse_output(&parser("kv"), log, None).unwrap();
    assert_eq!(v, json!({"role": "master", "connected_slaves": 2}));
    // Line numbers count from the top of the log.
    let m = message(parse_output(
        &parser("kv"),
        "a\n<-- END -->\nx=1\noops\n",
        None,
    ));
    assert_eq!(
        m,
        "line 4 has no '=' between a key and a value: 'oops' (the step should print key=value lines after the line '<-- END -->')"
    );
    let m = message(parse_output(&parser("kv"), "oops\n", None));
    assert!(
        m.ends_with("(print key=value lines after the line '<-- END -->')"),
        "{m}"
    );
    let v = parse_output(
        &parser("lines"),
        "log\r\n<-- END --> \r\nredis-0\r\nredis-1\r\n",
        None,
    )
    .unwrap();
    assert_eq!(v, json!({"output": ["redis-0", "redis-1"]}));
    let v = parse_output(&parser("lines"), "log\n<-- END -->redis-0\n", None).unwrap();
    assert_eq!(v, json!({"output": ["redis-0"]}));
    let re = OutputParser {
        pattern: Some(r"(?m)^used_memory:(?P<bytes>\d+)".into()),
        ..parser("regex")
    };
    let v = parse_output(&re, "# Memory\r\nused_memory:1069264\r\n", None).unwrap();
    assert_eq!(v, json!({"bytes": "1069264"}));
    let m = message(parse_output(&re, "nothing", None));
    assert!(m.contains("does not match"), "{m}");
}

#[test]
fn redis_info_through_parse_output() {
    let log = format!(
        "connecting to redis-master:6379\n<-- END -->\n{}",
        REDIS7_INFO.replace('\n', "\r\n")
    );
    let v = parse_output(&parser("redis-info"), &log, None).unwrap();
    assert_eq!(v["Clients"]["connected_clients"], json!(1));
    assert_eq!(v["info"]["Clients"]["connected_clients"], json!(1));
    let m = message(parse_output(
        &parser("redis-info"),
        "Could not connect to Redis at redis:6379: Connection refused",
        None,
    ));
    assert!(
        m.starts_with("no redis INFO fields in step output, which starts with 'Could not connect"),
        "{m}"
    );
}

#[test]
fn table_through_parse_output() {
    let log = "$ kubectl get pods -n prod\n<-- END -->\nNAME      READY   STATUS    RESTARTS   AGE\nredis-0   1/1     Running   0          5d\n";
    let v = parse_output(&parser("table"), log, None).unwrap();
    assert_eq!(
        v,
        json!({"output": [{"NAME": "redis-0", "READY": "1/1", "STATUS": "Running", "RESTARTS": "0", "AGE": "5d"}]})
    );
}

/// Inputs meant to break parsers: empty, binary-ish (already decoded lossily),
/// unbalanced brackets, markers in odd places, deep nesting, YAML bombs.
fn garbage() -> Vec<String> {
    let mut g: Vec<String> = [
        "",
        " ",
        "\n",
        "\r\n",
        "\0",
        "\u{FFFD}\u{FFFD}\u{FFFD}",
        "{",
        "[",
        "}",
        "]",
        "{[",
        "[{]}",
        "\"",
        "{\"a\":",
        "[1,",
        "<-- END -->",
        "<-- END --><-- END -->",
        "x<-- END -->",
        "<-- END -->\n",
        "#",
        "# Server",
        ":",
        "::",
        "=",
        "==",
        "a=b=c",
        "\t\t\t",
        "-",
        "---",
        "--- !tag",
        "a: &x [*x]",
        "*x",
        "!!binary Zm9v",
        "? [a]\n: b",
        "{a: 1, a: 2}",
        "key: \"unterminated",
        "%YAML 1.2\n---",
        "\u{feff}{\"bom\": 1}",
        "💣=🧨",
        "NAME\n\n\n",
        "A  B\n\u{0}\u{1}  x",
        "db0:keys=,=,",
        "cmdstat_x:calls=1,usec",
        "# \n:\n",
        "1e999",
        "[1e999]",
        "{\"a\": -0}",
        "[\"\\ud800\"]",
        "\u{1b}[31mred\u{1b}[0m",
        "   {   }   ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    g.push("[".repeat(10_000));
    g.push("{\"a\":".repeat(10_000));
    g.push(format!("{}{}", "[".repeat(200), "]".repeat(200)));
    g.push("- ".repeat(1000) + "x");
    g.push("a: ".to_string() + &"[".repeat(5_000));
    g.push("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n".into());
    g.push(
        String::from_utf8_lossy(&(0u8..=255).cycle().take(4096).collect::<Vec<u8>>()).into_owned(),
    );
    g
}

fn all_parsers() -> Vec<OutputParser> {
    let mut ps: Vec<OutputParser> = Builtin::ALL
        .into_iter()
        .filter(|b| *b != Builtin::Regex)
        .map(|b| parser(b.name()))
        .collect();
    ps.push(with_jq("json", ".[]?"));
    ps.push(with_jq("yaml", "..|numbers"));
    ps.push(OutputParser {
        pattern: Some(r"(?s)(?P<all>.*)".into()),
        ..parser("regex")
    });
    ps.push(OutputParser {
        pattern: Some(r"(?P<a>x)|(?P<b>\{)".into()),
        ..parser("regex")
    });
    ps.push(OutputParser {
        separator: Some(":".into()),
        ..parser("kv")
    });
    ps.push(OutputParser {
        separator: Some("💣".into()),
        ..parser("kv")
    });
    ps
}

#[test]
fn every_parser_is_total_on_garbage() {
    for p in all_parsers() {
        for input in garbage() {
            for marker in [None, Some("<-- END -->"), Some("{"), Some("\n")] {
                if let Ok(v) = parse_output(&p, &input, marker) {
                    assert!(v.is_object(), "{} on {input:?}: {v}", p.name);
                }
            }
        }
    }
}

/// Random soup of the characters the parsers care about, through every parser.
#[test]
fn every_parser_is_total_on_random_text() {
    let alphabet = [
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        ":",
        "=",
        ",",
        "#",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "-",
        "<-- END -->",
        "a",
        "B",
        "1",
        "0.5",
        "true",
        "é",
        "💣",
        "\\",
        "|",
        "&a",
        "*a",
        "!",
        "?",
        "%",
    ];
    let texts = super::fixtures::random_texts(42, 500, 40, &alphabet);
    for p in all_parsers() {
        for text in &texts {
            if let Ok(v) = parse_output(&p, text, None) {
                assert!(v.is_object(), "{} on {text:?}: {v}", p.name);
            }
        }
    }
}

/// A 1 MiB input of each shape, through each parser, well under a second in release
/// (the bound here is loose for debug builds): nothing is quadratic.
#[test]
fn huge_inputs_are_bounded() {
    let mib = 1 << 20;
    let log_line = "2024-05-01T10:00:00Z [INFO] probing {redis} [attempt 1] key=value\n";
    let logs = log_line.repeat(mib / log_line.len());
    let inputs = [
        format!("{logs}<-- END -->\n{{\"ok\": true}}"),
        format!("{logs}{{\"ok\": true}}"),
        logs.clone(),
        "[".repeat(mib),
        "{".repeat(mib),
        "[\"".repeat(mib / 2),
        "[1,".repeat(mib / 3),
        "{\"a\":[".repeat(mib / 6),
        "x".repeat(mib),
        "a".repeat(mib) + "=" + &"b".repeat(mib),
        "NAME   VALUE\n".to_string() + &"v   w\n".repeat(mib / 6),
        "A B\n".to_string() + &"x ".repeat(mib / 2),
        "A  B\n".to_string() + &"x ".repeat(mib / 2),
        "# S\n".to_string() + &"k:a=1,".repeat(mib / 6),
    ];
    // `(?s).*` over a megabyte costs a quarter second a run in debug builds and shows
    // nothing new: linear-time matching is the regex crate's guarantee.
    let parsers: Vec<OutputParser> = all_parsers()
        .into_iter()
        .filter(|p| p.pattern.as_deref() != Some(r"(?s)(?P<all>.*)"))
        .collect();
    for input in &inputs {
        for p in &parsers {
            let t = Instant::now();
            let r = parse_output(p, input, None);
            let took = t.elapsed();
            assert!(
                took < Duration::from_secs(5),
                "{} took {took:?} on {:?}…",
                p.name,
                &input[..40]
            );
            if let Ok(v) = r {
                assert!(v.is_object());
            }
        }
    }
    let v = parse_output(&parser("json"), &inputs[0], None).unwrap();
    assert_eq!(v, json!({"ok": true}));
    let v = parse_output(&parser("json"), &inputs[1], None).unwrap();
    assert_eq!(v, json!({"ok": true}));
}

#[test]
fn the_default_parser_takes_json_or_falls_back_to_the_text() {
    use super::parse_default;
    let json = parse_default("log line\n<-- END -->\n{\"a\": 1}\n", None).expect("json");
    assert_eq!(json, serde_json::json!({"a": 1}));
    let list = parse_default("[1, 2]", None).expect("array");
    assert_eq!(list, serde_json::json!({"output": [1, 2]}));
    let text = parse_default("restarted 3 pods\n", None).expect("text");
    assert_eq!(text, serde_json::json!({"output": "restarted 3 pods"}));
    let after = parse_default("noise\n@@\ndone\n", Some("@@")).expect("text after marker");
    assert_eq!(after, serde_json::json!({"output": "done"}));
    let cut = parse_default("<-- END -->\n{\"a\": [1, 2", None).expect_err("cut JSON");
    assert!(cut.message.contains("cut short"), "{}", cut.message);
}

#[test]
fn an_image_parser_must_print_one_json_value() {
    const IMAGE: &str = "registry.example/parsers/uptime:1";
    assert_eq!(
        parse_image_output(IMAGE, "  {\"up\": 3}\n").ok(),
        Some(json!({"up": 3}))
    );
    // Wrapped like a built-in parser's result.
    assert_eq!(
        parse_image_output(IMAGE, "[1, 2]").ok(),
        Some(json!({"output": [1, 2]}))
    );
    let err = parse_image_output(IMAGE, "parsing...\n{\"up\": 3}")
        .unwrap_err()
        .message;
    assert!(
        err.starts_with(&format!(
            "output parser image '{IMAGE}' did not print JSON ("
        )) && err.contains("it printed 'parsing...\\n{\\\"up\\\": 3}'")
            && err.ends_with("fix the parser image or use a built-in parser"),
        "{err}"
    );
    let long = "x".repeat(500);
    let err = parse_image_output(IMAGE, &long).unwrap_err().message;
    assert!(err.contains(&format!("'{}…'", "x".repeat(60))), "{err}");
    let err = parse_image_output(IMAGE, " \n").unwrap_err().message;
    assert!(err.contains("printed nothing"), "{err}");
}
