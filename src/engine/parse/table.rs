//! The `table` parser: columns under a header row, as `kubectl get`, `docker ps`,
//! `helm list` or `ps aux` print them, to `{"output": [{"NAME": ..., ...}, ...]}`.
//!
//! Two layouts are told apart by the header:
//! - aligned (some header gap is 2+ spaces or a tab, as Go's tabwriter pads columns):
//!   columns sit where the header words start, so cells may hold single spaces
//!   (`RESTARTS` = `2 (3h ago)`, a `MESSAGE` sentence). Each word of a row goes to the
//!   column it overlaps most, which also places right-aligned numbers (`ps`, `df`) that
//!   start a little left of their header. Header words separated by one space are one
//!   name (`NOMINATED NODE`, `CONTAINER ID`) when no row has anything under the second
//!   word, and two columns otherwise (`PID %CPU` in `ps aux`).
//! - single-spaced (`NAME STATUS`, not aligned): words split on whitespace and the
//!   last column takes the rest of the row.
//!
//! Cells are strings, as printed; a row shorter than the header gets `""` for the
//! missing cells. Positions count characters, not bytes, as tabwriter does.

use serde_json::{Map, Value};

/// A whitespace-separated word of a line: character positions and byte offsets.
#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    byte_start: usize,
    byte_end: usize,
}

fn words(line: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut current: Option<Word> = None;
    for (chars, (byte, c)) in line.char_indices().enumerate() {
        if c.is_whitespace() {
            out.extend(current.take());
        } else {
            let w = current.get_or_insert(Word {
                start: chars,
                end: chars,
                byte_start: byte,
                byte_end: byte,
            });
            w.end = chars + 1;
            w.byte_end = byte + c.len_utf8();
        }
    }
    out.extend(current);
    out
}

/// A ruler under the header (`----  ------`) carries no data. Only the line right
/// after the header is checked, and its words must be 2+ characters, so a data row of
/// `-` cells is kept.
fn is_ruler(line: &str) -> bool {
    line.split_whitespace()
        .all(|w| w.len() >= 2 && w.chars().all(|c| matches!(c, '-' | '=' | '+' | '|')))
}

pub(super) fn parse_table(text: &str) -> Value {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    let Some(header) = lines.next() else {
        return super::wrap(Value::Array(Vec::new()));
    };
    lines.next_if(|l| is_ruler(l));
    let head = words(header);
    let rows: Vec<(&str, Vec<Word>)> = lines.map(|l| (l, words(l))).collect();
    let aligned = head.windows(2).any(|w| {
        let gap = &header[w[0].byte_end..w[1].byte_start];
        w[1].start - w[0].end >= 2 || gap.contains('\t')
    });
    let (names, cells) = if aligned {
        aligned_cells(header, &head, &rows)
    } else {
        let names = head
            .iter()
            .map(|w| &header[w.byte_start..w.byte_end])
            .map(String::from)
            .collect();
        let cells = rows
            .iter()
            .map(|(line, ws)| split_cells(line, ws, head.len()))
            .collect();
        (names, cells)
    };
    let names = unique(names);
    let objects = cells
        .into_iter()
        .map(|row| {
            let mut obj = Map::new();
            for (i, name) in names.iter().enumerate() {
                let cell = row.get(i).cloned().unwrap_or_default();
                obj.insert(name.clone(), Value::String(cell));
            }
            Value::Object(obj)
        })
        .collect();
    super::wrap(Value::Array(objects))
}

/// Single-spaced layout: one word per column, the last column takes the rest.
fn split_cells(line: &str, ws: &[Word], columns: usize) -> Vec<String> {
    let mut cells: Vec<String> = ws
        .iter()
        .take(columns.saturating_sub(1))
        .map(|w| line[w.byte_start..w.byte_end].to_string())
        .collect();
    if columns > 0
        && let (Some(first), Some(last)) = (ws.get(columns - 1), ws.last())
    {
        cells.push(line[first.byte_start..last.byte_end].to_string());
    }
    cells
}

/// A column of an aligned table: where its header starts, its name, and whether one
/// space (so possibly part of the same name) separates it from the previous header word.
struct Column {
    start: usize,
    name: String,
    single_space_before: bool,
}

fn aligned_cells(
    header: &str,
    head: &[Word],
    rows: &[(&str, Vec<Word>)],
) -> (Vec<String>, Vec<Vec<String>>) {
    let columns: Vec<Column> = head
        .iter()
        .enumerate()
        .map(|(i, w)| Column {
            start: w.start,
            name: header[w.byte_start..w.byte_end].to_string(),
            single_space_before: i > 0 && &header[head[i - 1].byte_end..w.byte_start] == " ",
        })
        .collect();
    // One-space header words nobody writes under join the word before them, so
    // `READINESS GATES` is one column (and `A B C` one name when B and C are empty).
    let used = used_columns(&columns, rows);
    let mut merged: Vec<Column> = Vec::with_capacity(columns.len());
    for (column, used) in columns.into_iter().zip(used) {
        match merged.last_mut() {
            Some(left) if column.single_space_before && !used => {
                left.name = format!("{} {}", left.name, column.name);
            }
            _ => merged.push(column),
        }
    }
    let columns = merged;
    let cells = rows
        .iter()
        .map(|(line, ws)| {
            let mut cells = vec![String::new(); columns.len()];
            // Words go to columns in order (see `column_of`), so a cell is the text
            // from its first word to its last, inner spacing kept.
            let mut span: Vec<Option<(usize, usize)>> = vec![None; columns.len()];
            for w in ws {
                let c = column_of(&columns, w);
                let s = span[c].get_or_insert((w.byte_start, w.byte_end));
                s.1 = w.byte_end;
            }
            for (cell, s) in cells.iter_mut().zip(span) {
                if let Some((a, b)) = s {
                    *cell = line[a..b].to_string();
                }
            }
            cells
        })
        .collect();
    (columns.into_iter().map(|c| c.name).collect(), cells)
}

fn used_columns(columns: &[Column], rows: &[(&str, Vec<Word>)]) -> Vec<bool> {
    let mut used = vec![false; columns.len()];
    for (_, ws) in rows {
        for w in ws {
            used[column_of(columns, w)] = true;
        }
    }
    used
}

/// The column a word overlaps most (ties to the left). Column `i` spans from its
/// header's start to the next header's start; the first reaches back to the line start
/// and the last to its end. A word's column never precedes an earlier word's, because
/// it starts after that word ends.
fn column_of(columns: &[Column], w: &Word) -> usize {
    let first = columns
        .partition_point(|c| c.start <= w.start)
        .saturating_sub(1);
    let mut best = (first, 0);
    for (i, col) in columns.iter().enumerate().skip(first) {
        if col.start >= w.end && i > first {
            break;
        }
        let from = if i == 0 { 0 } else { col.start };
        let to = columns.get(i + 1).map_or(usize::MAX, |n| n.start);
        let overlap = w.end.min(to).saturating_sub(w.start.max(from));
        if overlap > best.1 {
            best = (i, overlap);
        }
    }
    best.0
}

/// Repeated header names get `_2`, `_3`... so no cell is lost to a duplicate key.
fn unique(names: Vec<String>) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    let mut seen: HashSet<String> = HashSet::with_capacity(names.len());
    // The next suffix to try per name, so a thousand `B`s cost a thousand steps.
    let mut next: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut candidate = name.clone();
        while seen.contains(&candidate) {
            let n = next.entry(name.clone()).or_insert(1);
            *n += 1;
            candidate = format!("{name}_{n}");
        }
        seen.insert(candidate.clone());
        out.push(candidate);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(text: &str) -> Vec<Value> {
        parse_table(text)["output"].as_array().unwrap().clone()
    }

    #[test]
    fn kubectl_get_pods_wide() {
        let text = "\
NAME                            READY   STATUS             RESTARTS        AGE   IP            NODE     NOMINATED NODE   READINESS GATES
redis-master-0                  1/1     Running            0               5d    10.244.0.12   kind-1   <none>           <none>
redis-replicas-0                0/1     CrashLoopBackOff   7 (2m13s ago)   5d    10.244.0.13   kind-1   <none>           <none>
api-7d9c6b8f4-x2x9z             0/2     Init:0/1           0               12s   <none>        kind-2   <none>           <none>
";
        let r = rows(text);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[1],
            json!({"NAME": "redis-replicas-0", "READY": "0/1", "STATUS": "CrashLoopBackOff",
                   "RESTARTS": "7 (2m13s ago)", "AGE": "5d", "IP": "10.244.0.13", "NODE": "kind-1",
                   "NOMINATED NODE": "<none>", "READINESS GATES": "<none>"})
        );
        assert_eq!(r[2]["STATUS"], json!("Init:0/1"));
        assert_eq!(r[2]["IP"], json!("<none>"));
    }

    #[test]
    fn last_column_with_spaces_and_short_rows() {
        let text = "\
LAST SEEN   TYPE      REASON      OBJECT               MESSAGE
2m          Warning   BackOff     pod/redis-replicas-0   Back-off restarting failed container redis in pod redis-replicas-0
5m          Normal    Scheduled   pod/api-1
";
        let r = rows(text);
        assert_eq!(r[0]["LAST SEEN"], json!("2m"));
        assert_eq!(
            r[0]["MESSAGE"],
            json!("Back-off restarting failed container redis in pod redis-replicas-0")
        );
        assert_eq!(r[0]["OBJECT"], json!("pod/redis-replicas-0"));
        assert_eq!(r[1]["MESSAGE"], json!(""));
    }

    #[test]
    fn docker_and_helm_multi_word_headers() {
        let text = "\
CONTAINER ID   IMAGE          COMMAND                  CREATED        STATUS        PORTS      NAMES
3f4e8a9b2c1d   redis:7.2      \"docker-entrypoint.s…\"   2 hours ago    Up 2 hours    6379/tcp   cache
";
        let r = rows(text);
        assert_eq!(r[0]["CONTAINER ID"], json!("3f4e8a9b2c1d"));
        assert_eq!(r[0]["COMMAND"], json!("\"docker-entrypoint.s…\""));
        assert_eq!(r[0]["CREATED"], json!("2 hours ago"));
        assert_eq!(r[0]["NAMES"], json!("cache"));
        let helm = "NAME \tNAMESPACE\tREVISION\tSTATUS  \tCHART       \tAPP VERSION\nredis\tprod     \t3       \tdeployed\tredis-18.1.0\t7.2.1      \n";
        let r = rows(helm);
        assert_eq!(r[0]["APP VERSION"], json!("7.2.1"));
        assert_eq!(r[0]["CHART"], json!("redis-18.1.0"));
    }

    #[test]
    fn ps_right_aligned_numbers() {
        let text = "\
USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND
redis          1  0.3  0.1  52744 10240 ?        Ssl  10:01   0:12 redis-server *:6379
root        1234 12.0  0.0   4364  3400 pts/0    Ss   10:05   0:00 bash -c sleep 1
";
        let r = rows(text);
        assert_eq!(r[0]["PID"], json!("1"));
        assert_eq!(r[0]["%CPU"], json!("0.3"));
        assert_eq!(r[1]["%CPU"], json!("12.0"));
        assert_eq!(r[1]["PID"], json!("1234"));
        assert_eq!(r[0]["VSZ"], json!("52744"));
        assert_eq!(r[0]["COMMAND"], json!("redis-server *:6379"));
        assert_eq!(r[1]["STAT"], json!("Ss"));
    }

    #[test]
    fn single_spaced_and_edge_cases() {
        let r = rows("NAME STATUS NOTE\nredis-master-0 Running fine so far\nshort\n");
        assert_eq!(
            r[0],
            json!({"NAME": "redis-master-0", "STATUS": "Running", "NOTE": "fine so far"})
        );
        assert_eq!(r[1], json!({"NAME": "short", "STATUS": "", "NOTE": ""}));
        assert_eq!(parse_table(""), json!({"output": []}));
        assert_eq!(parse_table("\n  \n"), json!({"output": []}));
        assert_eq!(
            rows("NAME   NAME\na      b\n")[0],
            json!({"NAME": "a", "NAME_2": "b"})
        );
        assert_eq!(
            rows("A   A_2   A   A\n1   2     3   4\n")[0],
            json!({"A": "1", "A_2": "2", "A_3": "3", "A_4": "4"})
        );
        assert_eq!(rows("ONLY\none two\n")[0], json!({"ONLY": "one two"}));
        assert_eq!(
            rows("A   B\n----  --\n1   2\n"),
            vec![json!({"A": "1", "B": "2"})]
        );
        // Only the line under the header can be a ruler; `-` cells are data.
        assert_eq!(
            rows("A   B\n1   2\n-   -\n")[1],
            json!({"A": "-", "B": "-"})
        );
        // Multi-byte characters count as one column, as tabwriter counts them.
        assert_eq!(
            rows("NAME   CHECK\nnœud   ✓ ok\n")[0],
            json!({"NAME": "nœud", "CHECK": "✓ ok"})
        );
    }
}
