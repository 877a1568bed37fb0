//! Unified diffs between two versions of a config item.

use similar::TextDiff;

/// Lines of unchanged context around each change, as `diff -u` shows.
const CONTEXT_LINES: usize = 3;

/// A unified diff of `old` to `new` with `---`/`+++` headers naming them;
/// empty when the contents are equal.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .missing_newline_hint(true)
        .header(old_name, new_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_changed_lines_with_headers() {
        let diff = unified("a: 1\nb: 2\n", "a: 1\nb: 3\n", "v1", "v2");
        assert!(diff.starts_with("--- v1\n+++ v2\n"), "{diff}");
        assert!(diff.contains("\n-b: 2\n+b: 3\n"), "{diff}");
        assert!(diff.contains(" a: 1\n"), "{diff}");
    }

    #[test]
    fn equal_contents_have_no_diff() {
        assert_eq!(unified("x\n", "x\n", "v1", "v2"), "");
    }
}
