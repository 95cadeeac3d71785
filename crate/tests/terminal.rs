//! The terminal channel, run for real: the frames typed into an interactive bash on a pty
//! (`script` gives it one, as terminado does), the output read back.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;
use std::process::{Command, Stdio};

use aistudio_ssh::cells::{cell_source, CellRole};
use aistudio_ssh::terminal::{bash_body, read_terminal_output, terminal_input, TerminalLine};

/// Types the frames into `bash -i` on a pseudo-terminal (`script` gives it one, as terminado
/// does) with `HOME` at `home`, and returns everything it printed.
fn type_into_terminal(lines: &[TerminalLine], home: &std::path::Path) -> String {
    let mut child = Command::new("script")
        .args(["-qfc", "bash --norc -i", "/dev/null"])
        .env("HOME", home)
        .env_remove("HISTFILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        let [kind, text]: [String; 2] = serde_json::from_str(&line.frame).unwrap();
        assert_eq!(kind, "stdin");
        stdin.write_all(text.as_bytes()).unwrap();
        // Stands in for waiting on `wait_for` (this test reads the output only at the end).
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stdin.write_all(b"exit\r").unwrap();
    drop(stdin);
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
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
    let frames = terminal_input(bash_body(&source), "n0nce");
    let home = tempfile::tempdir().unwrap();
    let printed = type_into_terminal(&frames, home.path());
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
    let lines = terminal_input(&"x".repeat(9000), "n");
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
    assert_eq!(lines.last().unwrap().wait_for, "");
}
