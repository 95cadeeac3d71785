//! Property test of `shell::quote` against real shells: whatever the value, the shell reads
//! back exactly that value as one word, and nothing else runs.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;
use std::process::{Command, Stdio};

use aistudio_ssh::shell::quote;
use proptest::prelude::*;

/// Values in batches so 100,000 cases take a few shell runs, not 100,000.
const BATCHES: u32 = 20;
const BATCH_SIZE: usize = 5_000;

/// Strings biased towards what breaks quoting: shell metacharacters, quotes, newlines, and
/// any other character (NUL excluded: no shell word can hold it; see `quote`).
fn hostile_string() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '\'', '"', '\\', '$', '`', '(', ')', '{', '}', ';', '&', '|', '<', '>', '*', '?', '[', ']',
        '~', '#', '!', ' ', '\t', '\n', '\r', '=', '%', '\u{7f}', 'é', '隧', '\u{1b}',
    ]);
    let any = any::<char>().prop_filter("no NUL", |c| *c != '\0');
    prop::collection::vec(prop_oneof![3 => special, 2 => any], 0..24)
        .prop_map(|chars| chars.into_iter().collect())
}

/// Runs `shell` on a script that prints each quoted value followed by a NUL; returns what came back.
fn round_trip(shell: &str, values: &[String]) -> Vec<String> {
    let mut script = String::from("set -e\n");
    for value in values {
        script.push_str("printf '%s\\0' ");
        script.push_str(&quote(value));
        script.push('\n');
    }
    let mut child = Command::new(shell)
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .spawn()
        .expect("shell runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{shell} failed");
    let text = String::from_utf8(output.stdout).expect("utf-8 back");
    let mut words: Vec<String> = text.split('\0').map(str::to_owned).collect();
    assert_eq!(words.pop().as_deref(), Some(""), "output ends with a NUL");
    words
}

proptest! {
    #![proptest_config(ProptestConfig { cases: BATCHES, ..ProptestConfig::default() })]

    #[test]
    fn bash_and_dash_read_back_every_value_exactly(
        values in prop::collection::vec(hostile_string(), BATCH_SIZE)
    ) {
        for shell in ["bash", "dash"] {
            let back = round_trip(shell, &values);
            prop_assert_eq!(back.len(), values.len(), "{} split or joined words", shell);
            for (got, want) in back.iter().zip(&values) {
                prop_assert_eq!(got, want, "{}", shell);
            }
        }
    }
}

#[test]
fn a_quoted_value_cannot_run_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("ran");
    let canary = canary.to_str().unwrap();
    for attack in [
        format!("'; touch {canary}; '"),
        format!("$(touch {canary})"),
        format!("`touch {canary}`"),
        format!("\n touch {canary}\n"),
        format!("'\\''; touch {canary} #"),
    ] {
        let status = Command::new("bash")
            .arg("-c")
            .arg(format!("echo {} >/dev/null", quote(&attack)))
            .status()
            .unwrap();
        assert!(status.success());
        assert!(
            !std::path::Path::new(canary).exists(),
            "{attack:?} ran a command"
        );
    }
}
