//! The one audited way a value reaches a shell: POSIX single-quoting.

/// Quotes `word` so that any POSIX shell (bash, dash, busybox sh) reads it back as exactly
/// one word with exactly these bytes, whatever it holds: `$`, backquotes, `\`, newlines,
/// quotes, globs, non-ASCII.
///
/// Inside single quotes nothing is special except the closing quote, so each `'` becomes
/// `'\''` (close, an escaped quote, reopen). A NUL byte cannot be carried by any shell
/// word; settings validation rejects control characters before anything is rendered, and
/// here a NUL is dropped rather than allowed to end the script text early.
pub fn quote(word: &str) -> String {
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('\'');
    for character in word.chars() {
        match character {
            '\'' => quoted.push_str("'\\''"),
            '\0' => {}
            other => quoted.push(other),
        }
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_are_closed_escaped_and_reopened() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(quote("a\0b"), "'ab'");
    }
}
