//! Helpers for messages people read: edit distance for "did you mean" hints, and
//! cutting a message to the size a status field or an Event can hold.

/// Levenshtein distance in characters (one row of the table at a time).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The candidates close enough to `wrong` to be a typo of it (at most two edits, and
/// not more than a third of its length: `zz` is not a typo of `a`), closest first.
pub fn close_to<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut close: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (edit_distance(wrong, c), c))
        .filter(|(d, _)| *d <= 2 && d * 3 <= wrong.chars().count())
        .collect();
    close.sort();
    close.dedup();
    close.into_iter().map(|(_, c)| c).collect()
}

/// At most `max` bytes of `s`, cut at a character boundary and marked with `…`.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::{close_to, cut, edit_distance};

    #[test]
    fn cut_keeps_short_text_and_marks_a_cut_on_a_char_boundary() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("abcdefghij", 6), "abc…");
        let cut_utf8 = cut("ééééé", 6);
        assert!(cut_utf8.len() <= 6 && cut_utf8.ends_with('…'), "{cut_utf8}");
    }

    #[test]
    fn counts_inserts_deletes_and_substitutions() {
        assert_eq!(edit_distance("json", "json"), 0);
        assert_eq!(edit_distance("jsonn", "json"), 1);
        assert_eq!(edit_distance("jsno", "json"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kebabcase", "kebabCase"), 1);
        assert_eq!(edit_distance("ünï", "uni"), 2);
    }

    #[test]
    fn close_to_keeps_typos_closest_first() {
        let names = ["redis-restart", "redis-info", "disk-cleanup", "redis-inf"];
        assert_eq!(close_to("redis-inof", names), ["redis-inf", "redis-info"]);
        assert!(close_to("zz", ["a", "b"]).is_empty());
        assert!(
            close_to("x", ["y"]).is_empty(),
            "one edit of one letter is not a typo"
        );
    }
}
