//! Crate-wide error plumbing: each layer has its own `thiserror` type; the CLI maps them to one line and exit 2.
//!
//! Messages echo what the user typed (names, paths, values). [`escape_control`] is the one function that keeps
//! such text on one line: the binary passes every message through it before printing, so a file name holding a
//! newline or an escape sequence can neither split an error into several lines nor drive the terminal.
use std::borrow::Cow;

/// True for the characters [`escape_control`] rewrites: Unicode control characters (C0, DEL, C1) and the two
/// Unicode line/paragraph separators, which some terminals and editors also break lines on.
fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// `s` with every control character written as a Rust-style escape (`\n`, `\r`, `\t`, `\0`, `\u{1b}`, ...),
/// everything else (backslashes, quotes, non-ASCII letters) unchanged. Borrowed when nothing needs escaping, so
/// ordinary messages cost nothing. The result never contains a line break, and escaping twice changes nothing.
///
/// ```
/// use accelsim::error::escape_control;
/// assert_eq!(escape_control("chip\n1\u{1b}[2J.sramprof"), "chip\\n1\\u{1b}[2J.sramprof");
/// assert_eq!(escape_control("models/a b.toml"), "models/a b.toml");
/// ```
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape_control`] applied to a path's display form (lossy for non-UTF-8 names, which then show U+FFFD).
pub fn escape_path(p: &std::path::Path) -> String {
    escape_control(&p.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_control_characters_only() {
        assert!(matches!(escape_control("plain"), Cow::Borrowed(_)));
        assert_eq!(escape_control("a\nb"), "a\\nb");
        assert_eq!(escape_control("a\r\n\tb"), "a\\r\\n\\tb");
        assert_eq!(escape_control("\0\u{7f}\u{85}"), "\\0\\u{7f}\\u{85}");
        assert_eq!(escape_control("x\u{2028}y"), "x\\u{2028}y");
        // Not control characters: left alone (a Windows path keeps its backslashes).
        assert_eq!(escape_control("C:\\dir\\\"é ü\""), "C:\\dir\\\"é ü\"");
    }

    proptest! {
        #[test]
        fn escaped_text_is_one_line_and_idempotent(s in any::<String>()) {
            let once = escape_control(&s).into_owned();
            prop_assert_eq!(once.lines().count() <= 1, true);
            prop_assert!(!once.chars().any(needs_escape));
            prop_assert_eq!(escape_control(&once).into_owned(), once.clone());
            // Text without control characters is returned unchanged.
            let clean: String = s.chars().filter(|c| !needs_escape(*c)).collect();
            prop_assert_eq!(escape_control(&clean).into_owned(), clean);
        }
    }
}
