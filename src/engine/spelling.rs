//! Edit distance, for "did you mean" hints in lint and template errors.

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

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn counts_inserts_deletes_and_substitutions() {
        assert_eq!(edit_distance("json", "json"), 0);
        assert_eq!(edit_distance("jsonn", "json"), 1);
        assert_eq!(edit_distance("jsno", "json"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kebabcase", "kebabCase"), 1);
        assert_eq!(edit_distance("ünï", "uni"), 2);
    }
}
