//! The terminal channel, run for real: the frames typed into an interactive bash on a pty
//! (`script` gives it one, as terminado does), the output read back.
#![cfg(not(target_arch = "wasm32"))]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aistudio_ssh::cells::{cell_source, CellRole};
use aistudio_ssh::terminal::{
    bash_body, read_terminal_output, resume_at, terminal_input, TerminalError, TerminalLine,
};

/// Types the frames into `shell` (an interactive shell) on a pseudo-terminal (`script` gives
/// it one, as terminado does) with `HOME` at `home`, each line only once the terminal printed
/// the previous line's `wait_for` (as the content script does); returns everything printed.
fn type_into_terminal(shell: &str, lines: &[TerminalLine], home: &Path) -> String {
    let mut child = Command::new("script")
        .args(["-qfc", shell, "/dev/null"])
        .env("HOME", home)
        .env_remove("HISTFILE")
        .env_remove("PROMPT_COMMAND")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let printed = Arc::clone(&printed);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read) = stdout.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                printed
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        })
    };
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        let [kind, text]: [String; 2] = serde_json::from_str(&line.frame).unwrap();
        assert_eq!(kind, "stdin");
        stdin.write_all(text.as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !printed
            .lock()
            .unwrap()
            .replace('\r', "")
            .contains(&line.wait_for)
        {
            assert!(
                Instant::now() < deadline,
                "no {:?} after {text:?}:\n{}",
                line.wait_for,
                printed.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    stdin.write_all(b"exit\r").unwrap();
    drop(stdin);
    child.wait().unwrap();
    reader.join().unwrap();
    let text = printed.lock().unwrap().clone();
    text
}

#[test]
fn a_cell_runs_in_an_interactive_terminal_with_its_output_and_exit_status() {
    // Quotes, `!`, tabs, $, a heredoc, a command reading stdin, a big body, a failing end.
    let mut script =
        String::from("set -u\necho \"it's !here\t$((1+1))\"\ncat <<'EOF'\n}\n!!\nEOF\ncat\n");
    for i in 0..400 {
        script.push_str(&format!("x{i}='{}'\n", "k".repeat(40)));
    }
    script.push_str("echo last; exit 3\n");
    let source = cell_source(CellRole::Provision, &script);
    let frames = terminal_input(bash_body(&source), "n0nce").unwrap();
    let home = tempfile::tempdir().unwrap();
    let printed = type_into_terminal("bash --norc -i", &frames, home.path());
    let result = read_terminal_output(&printed, "n0nce")
        .unwrap_or_else(|| panic!("no end marker in:\n{printed}"));
    assert_eq!(result.exit_code, 3);
    assert_eq!(result.output, "it's !here\t2\n}\n!!\nlast\n");
    // The shell kept no history of the typed lines (they carry the container's keys).
    let history = home.path().join(".bash_history");
    assert!(
        !history.exists(),
        "{}",
        std::fs::read_to_string(&history).unwrap_or_default()
    );
}

/// A `.bashrc` with the hooks history tools install: a DEBUG trap logging every command
/// (bash-preexec, atuin) and a prompt hook appending each line to the history file.
const HOOKED_BASHRC: &str = r#"HISTFILE=~/.bash_history
shopt -s histappend
PROMPT_COMMAND='history -a'
trap 'printf "%s\n" "$BASH_COMMAND" >> ~/commands.log' DEBUG
"#;

#[test]
fn the_users_shell_hooks_see_none_of_the_typed_secret_lines() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".bashrc"), HOOKED_BASHRC).unwrap();
    let secret = "-----BEGIN OPENSSH PRIVATE KEY----- not-a-real-key";
    let script = format!("relay_private='{secret}'\necho ran\n");
    let frames = terminal_input(&script, "h00ks").unwrap();
    let printed = type_into_terminal("bash -i", &frames, home.path());
    let result = read_terminal_output(&printed, "h00ks")
        .unwrap_or_else(|| panic!("no end marker in:\n{printed}"));
    assert_eq!((result.exit_code, result.output.as_str()), (0, "ran\n"));

    let logged = std::fs::read_to_string(home.path().join("commands.log")).unwrap_or_default();
    let history = std::fs::read_to_string(home.path().join(".bash_history")).unwrap_or_default();
    // The hooks ran: the first line, which carries nothing, went through the DEBUG trap ...
    assert!(
        logged.contains("exec env"),
        "the DEBUG trap saw nothing at all:\n{logged}"
    );
    for (what, text) in [("the DEBUG trap", &logged), ("the history file", &history)] {
        // ... and no line after it did: no chunk of the cell, no marker, no run line.
        for line in &frames[1..] {
            let [_, typed]: [String; 2] = serde_json::from_str(&line.frame).unwrap();
            let typed = typed.trim_end_matches('\r');
            assert!(
                !text.contains(typed),
                "{what} recorded a typed line:\n{text}"
            );
        }
        assert!(!text.contains("aistudio_ssh_cell+="), "{what}:\n{text}");
    }
}

#[test]
fn output_is_not_read_before_the_end_marker_and_status_arrived() {
    assert_eq!(
        read_terminal_output("AISTUDIO-SSH-BEGIN-n\r\nhalf", "n"),
        None
    );
    assert_eq!(
        read_terminal_output("AISTUDIO-SSH-BEGIN-n\r\nx\r\nAISTUDIO-SSH-END-n 0", "n"),
        None
    );
    let done = read_terminal_output(
        "junk AISTUDIO-SSH-BEGIN-n\r\nx\r\nAISTUDIO-SSH-END-n 0\r\n$ ",
        "n",
    )
    .unwrap();
    assert_eq!((done.exit_code, done.output.as_str()), (0, "x"));
    // The typed command line (if echoed) holds only split markers.
    // The nonce reaches markers the shell prints: only letters and digits, never empty.
    for bad in ["", "a b", "n'", "n;x"] {
        assert_eq!(
            terminal_input("true", bad),
            Err(TerminalError::InvalidNonce)
        );
    }
    let lines = terminal_input(&"x".repeat(9000), "n").unwrap();
    assert_eq!(
        lines.len(),
        1 + 4 + 1,
        "a start line, 12000 base64 characters in 4 lines, the run line"
    );
    for line in &lines {
        assert!(
            !line.frame.contains("AISTUDIO-SSH-") || line.frame.contains("'AISTUDIO-SS"),
            "split markers only"
        );
        assert!(line.frame.len() < 4000, "below the tty's line limit");
    }
    assert_eq!(lines[1].wait_for, "AISTUDIO-SSH-ACK-n-0\n");
    assert_eq!(lines.last().unwrap().wait_for, "AISTUDIO-SSH-ACK-n-run\n");
}

#[test]
fn lines_sent_again_after_a_cut_run_the_cell_once_and_whole() {
    // A WebSocket cut: some lines reached the shell, some acknowledgements did not come back,
    // and the page sends again from where the replayed output says (resume_at), here one line
    // early, and the run line twice. The cell runs once, with its whole text.
    let home = tempfile::tempdir().unwrap();
    let counter = home.path().join("runs");
    let mut script = format!("echo run >> '{}'\n", counter.display());
    for i in 0..300 {
        script.push_str(&format!("x{i}='{}'\n", "k".repeat(40)));
    }
    script.push_str("echo \"$x299\" | wc -c; exit 4\n");
    let lines = terminal_input(&script, "cut1").unwrap();
    assert!(lines.len() >= 6, "several chunks: {}", lines.len());
    let chunk = 2;
    let mut typed: Vec<TerminalLine> = lines[..=chunk].to_vec();
    // What the replay would show after the cut: acknowledgements up to `chunk`.
    let replay: String = lines[..=chunk].iter().map(|l| l.wait_for.clone()).collect();
    assert_eq!(resume_at(&replay, &lines), chunk + 1);
    assert_eq!(resume_at("", &lines), 0);
    // Sent again one line early (its acknowledgement was lost), then the rest, the run line twice.
    typed.extend_from_slice(&lines[chunk..]);
    typed.push(lines.last().unwrap().clone());
    let printed = type_into_terminal("bash --norc -i", &typed, home.path());
    let result = read_terminal_output(&printed, "cut1")
        .unwrap_or_else(|| panic!("no end marker in:\n{printed}"));
    assert_eq!((result.exit_code, result.output.as_str()), (4, "41\n"));
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        "run\n",
        "the cell ran more than once"
    );
    assert_eq!(resume_at(&printed, &lines), lines.len());
}
