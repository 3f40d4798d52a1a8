//! The `redis-info` parser: `redis-cli INFO` output to nested maps.
//!
//! `# Server` headers open sections; `key:value` lines are split at the first `:` only
//! (`executable:/usr/bin/redis-server`, `config_file:`); numbers are typed; values made
//! of `k=v,k=v` pairs (`db0`, `slave0`, `cmdstat_*`, `errorstat_*`,
//! `latency_percentiles_usec_*`, `module`) become maps of typed values.
//!
//! The result holds the sections twice: at the top level, so the StackPulse-style
//! merged root reads `.Clients.connected_clients`, and under `info`, the shape of
//! StackPulse's redis-info step (`$.'redis-info'.info.Clients.connected_clients`).

use super::{excerpt, integer};
use serde_json::{Map, Value};

/// Parses INFO text. Lines that are not fields (a redis-cli warning about `-a` on the
/// command line, logs before the output) are skipped, because the container log mixes
/// stderr into stdout; text with no field at all is an error quoting its first line,
/// which is usually redis-cli's own complaint (`Could not connect to Redis at ...`).
pub(super) fn parse_info(text: &str) -> Result<Value, String> {
    let mut top = Map::new();
    let mut sections: Vec<(String, Map<String, Value>)> = Vec::new();
    let mut current: Option<usize> = None;
    let mut fields = 0usize;
    let mut first_other: Option<&str> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('#') {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            // A repeated header (INFO printed twice) continues that section.
            current = Some(match sections.iter().position(|(n, _)| n == name) {
                Some(at) => at,
                None => {
                    sections.push((name.to_string(), Map::new()));
                    sections.len() - 1
                }
            });
            continue;
        }
        let Some((key, value)) = field(line) else {
            first_other.get_or_insert(line);
            continue;
        };
        fields += 1;
        let target = match current {
            Some(at) => &mut sections[at].1,
            // Fields before any header (Redis before 2.6 printed no headers).
            None => &mut top,
        };
        target.insert(key.to_string(), value);
    }
    if fields == 0 {
        return Err(match first_other {
            Some(line) => format!(
                "no redis INFO fields in step output, which starts with {}",
                excerpt(line)
            ),
            None => "the step output is empty, not redis INFO".to_string(),
        });
    }
    let mut info = top;
    for (name, map) in sections {
        info.insert(name, Value::Object(map));
    }
    let mut out = info.clone();
    out.insert("info".into(), Value::Object(info));
    Ok(Value::Object(out))
}

/// `key:value` with a key as Redis writes them: no spaces, quotes or brackets
/// (`cmdstat_client|list`, `cmdstat_json.get`, `errorstat_ERR` are fine). Neither
/// `Could not connect to Redis at host:6379: ...` nor a JSON line is a field.
fn field(line: &str) -> Option<(&str, Value)> {
    let (key, value) = line.split_once(':')?;
    let bad = |c: char| c.is_whitespace() || matches!(c, '{' | '}' | '[' | ']' | '"' | '\'' | ',');
    if key.is_empty() || key.chars().any(bad) {
        return None;
    }
    Some((key, info_value(value)))
}

fn info_value(v: &str) -> Value {
    if let Some(map) = pairs(v) {
        return Value::Object(map);
    }
    scalar(v)
}

/// `keys=1,expires=0,avg_ttl=0` -> map; `None` unless every part is `k=v`. A key given
/// twice keeps every value, in a list (`listener0:name=tcp,bind=*,bind=-::*,port=6379`).
fn pairs(v: &str) -> Option<Map<String, Value>> {
    if !v.contains('=') {
        return None;
    }
    let mut map = Map::new();
    for part in v.split(',') {
        let (k, x) = part.split_once('=')?;
        let key_ok = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !key_ok {
            return None;
        }
        let x = scalar(x);
        match map.get_mut(k) {
            None => {
                map.insert(k.to_string(), x);
            }
            Some(Value::Array(list)) => list.push(x),
            Some(first) => *first = Value::Array(vec![first.take(), x]),
        }
    }
    Some(map)
}

/// Integers and decimals (`used_cpu_sys:0.123`, `mem_fragmentation_ratio:3.07`) are
/// numbers; anything else (`7.2.4`, `1.02M`, `00000000`, `100.00%`) stays a string.
fn scalar(v: &str) -> Value {
    if let Some(i) = integer(v) {
        return Value::from(i);
    }
    if let Some((int, frac)) = v.split_once('.') {
        let frac_ok = !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit());
        let int_digits = int.strip_prefix('-').unwrap_or(int);
        let int_ok = int_digits == "0" || integer(int_digits).is_some();
        if frac_ok
            && int_ok
            && let Some(n) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
        {
            return Value::Number(n);
        }
    }
    Value::String(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::parse::fixtures::REDIS7_INFO;
    use serde_json::json;

    #[test]
    fn full_redis7_dump() {
        let v = parse_info(REDIS7_INFO).unwrap();
        for root in [&v, &v["info"]] {
            assert_eq!(root["Server"]["redis_version"], json!("7.2.4"));
            assert_eq!(root["Server"]["redis_git_sha1"], json!("00000000"));
            assert_eq!(
                root["Server"]["executable"],
                json!("/usr/local/bin/redis-server")
            );
            assert_eq!(root["Server"]["config_file"], json!(""));
            assert_eq!(root["Server"]["tcp_port"], json!(6379));
            assert_eq!(root["Clients"]["connected_clients"], json!(1));
            assert_eq!(root["Memory"]["mem_fragmentation_ratio"], json!(3.07));
            assert_eq!(root["Memory"]["used_memory_human"], json!("1.02M"));
            assert_eq!(root["Memory"]["used_memory_peak_perc"], json!("100.00%"));
            assert_eq!(root["Persistence"]["rdb_last_bgsave_status"], json!("ok"));
            assert_eq!(root["Replication"]["master_repl_offset"], json!(2346));
            assert_eq!(
                root["Replication"]["master_replid2"],
                json!("0000000000000000000000000000000000000000")
            );
            assert_eq!(
                root["Server"]["listener0"],
                json!({"name": "tcp", "bind": ["*", "-::*"], "port": 6379})
            );
            assert_eq!(
                root["Replication"]["slave0"],
                json!({"ip": "10.244.0.12", "port": 6379, "state": "online", "offset": 2346, "lag": 1})
            );
            assert_eq!(root["CPU"]["used_cpu_sys"], json!(0.123));
            assert_eq!(root["Modules"], json!({}));
            assert_eq!(root["Errorstats"]["errorstat_ERR"], json!({"count": 2}));
            assert_eq!(
                root["Commandstats"]["cmdstat_client|list"]["usec_per_call"],
                json!(12.5)
            );
            assert_eq!(
                root["Latencystats"]["latency_percentiles_usec_info"]["p99.9"],
                json!(31.103)
            );
            assert_eq!(root["Cluster"]["cluster_enabled"], json!(0));
            assert_eq!(
                root["Keyspace"]["db0"],
                json!({"keys": 12, "expires": 3, "avg_ttl": 86300144})
            );
        }
        assert_eq!(v.as_object().unwrap().len(), 14, "13 sections and info");
    }

    #[test]
    fn lf_and_crlf_agree() {
        // redis-cli passes the server's CRLF line endings through when piped.
        let crlf = REDIS7_INFO.replace('\n', "\r\n");
        assert_eq!(parse_info(&crlf), parse_info(REDIS7_INFO));
    }

    #[test]
    fn typing_rules() {
        assert_eq!(scalar("-1"), json!(-1));
        assert_eq!(scalar("0.00"), json!(0.0));
        assert_eq!(scalar("7.2.4"), json!("7.2.4"));
        assert_eq!(scalar("01.5"), json!("01.5"));
        assert_eq!(scalar("1."), json!("1."));
        assert_eq!(scalar(".5"), json!(".5"));
        assert_eq!(scalar("-0.5"), json!(-0.5));
        assert_eq!(info_value("a=1,b"), json!("a=1,b"));
        assert_eq!(
            info_value("name=search,ver=21005,usedby=[],options=[handle-io-errors]"),
            json!({"name": "search", "ver": 21005, "usedby": "[]", "options": "[handle-io-errors]"})
        );
    }

    #[test]
    fn noise_is_skipped_and_failures_are_quoted() {
        let text = "Warning: Using a password with '-a' or '-u' option on the command line interface may not be safe.\r\n# Clients\r\nconnected_clients:3\r\n";
        let v = parse_info(text).unwrap();
        assert_eq!(v["Clients"]["connected_clients"], json!(3));
        let err = parse_info("Could not connect to Redis at 10.0.0.7:6379: Connection refused\n")
            .unwrap_err();
        assert!(err.contains("'Could not connect to Redis"), "{err}");
        assert_eq!(
            parse_info(" \n"),
            Err("the step output is empty, not redis INFO".into())
        );
        // A step that already prints JSON needs the json parser, not this one.
        let err = parse_info("{\"Clients\": {\"connected_clients\": 1}}").unwrap_err();
        assert!(err.starts_with("no redis INFO fields"), "{err}");
    }

    #[test]
    fn headerless_fields_and_repeated_sections() {
        let v = parse_info("redis_version:2.4.17\nconnected_clients:5\n").unwrap();
        assert_eq!(v["connected_clients"], json!(5));
        assert_eq!(v["info"]["redis_version"], json!("2.4.17"));
        let v = parse_info("# Clients\na:1\n# Memory\nb:2\n# Clients\nc:3\n").unwrap();
        assert_eq!(v["Clients"], json!({"a": 1, "c": 3}));
    }
}
