//! The terminal channel, run for real: the frames typed into an interactive bash on a pty
//! (`script` gives it one, as terminado does), the output read back.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;
use std::process::{Command, Stdio};

use aistudio_ssh::cells::{cell_source, companion_notebook, CellRole, CellScripts};
use aistudio_ssh::terminal::{
    bash_body, read_terminal_output, terminal_input, terminal_input_saved_cell, TerminalLine,
    SAVED_CELL_UNREADABLE,
};

/// Types the frames into `shell` (`bash -i`) on a pseudo-terminal (`script` gives it one, as
/// terminado does), started in `dir` (Jupyter's root) with `HOME` at `home`; returns
/// everything it printed.
fn type_into_terminal_in(
    lines: &[TerminalLine],
    dir: &str,
    shell: &str,
    home: &std::path::Path,
) -> String {
    let mut child = Command::new("script")
        .args(["-qfc", shell, "/dev/null"])
        .current_dir(dir)
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
    let printed = type_into_terminal_in(&frames, ".", "bash --norc -i", home.path());
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

/// A Jupyter root holding the companion notebook for these scripts.
fn root_with_notebook(scripts: &CellScripts<'_>) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("work")).unwrap();
    let notebook = companion_notebook("7892508", scripts);
    std::fs::write(
        root.path().join("work/aistudio-ssh.ipynb"),
        serde_json::to_string_pretty(&notebook).unwrap(),
    )
    .unwrap();
    root
}

#[test]
fn a_saved_cell_runs_from_the_companion_notebook_with_one_typed_line() {
    let scripts = CellScripts {
        provision: "echo \"provision's $((2+3))\"\ncat\nexit 4",
        tunnel: "echo tunnel",
        probe: "echo probe",
    };
    let root = root_with_notebook(&scripts);
    let dir = root.path().to_str().unwrap();
    let lines = terminal_input_saved_cell(CellRole::Provision, "s4ved");
    assert_eq!(lines.len(), 2, "the start line and one run line");
    let printed = type_into_terminal_in(
        &lines,
        dir,
        "bash --norc -i",
        tempfile::tempdir().unwrap().path(),
    );
    let result = read_terminal_output(&printed, "s4ved")
        .unwrap_or_else(|| panic!("no end marker in:\n{printed}"));
    assert_eq!(
        (result.exit_code, result.output.as_str()),
        (4, "provision's 5\n")
    );

    let tunnel = terminal_input_saved_cell(CellRole::Tunnel, "n2");
    let result = read_terminal_output(
        &type_into_terminal_in(
            &tunnel,
            dir,
            "bash --norc -i",
            tempfile::tempdir().unwrap().path(),
        ),
        "n2",
    )
    .unwrap();
    assert_eq!((result.exit_code, result.output.as_str()), (0, "tunnel\n"));
}

#[test]
fn a_saved_cell_that_cannot_be_read_says_so_with_its_own_status() {
    let scripts = CellScripts {
        provision: "touch ran",
        tunnel: "touch ran",
        probe: "touch ran",
    };
    // No notebook in this root.
    let empty = tempfile::tempdir().unwrap();
    let lines = terminal_input_saved_cell(CellRole::Provision, "n0");
    let printed = type_into_terminal_in(
        &lines,
        empty.path().to_str().unwrap(),
        "bash --norc -i",
        tempfile::tempdir().unwrap().path(),
    );
    let result = read_terminal_output(&printed, "n0").unwrap();
    assert_eq!(result.exit_code, SAVED_CELL_UNREADABLE);
    assert!(
        result
            .output
            .contains("no saved cell aistudio-ssh-provision"),
        "{}",
        result.output
    );
    // No python3 on the PATH: nothing runs either.
    let root = root_with_notebook(&scripts);
    let printed = type_into_terminal_in(
        &lines,
        root.path().to_str().unwrap(),
        "env PATH=/nonexistent /bin/bash --norc -i",
        tempfile::tempdir().unwrap().path(),
    );
    let result = read_terminal_output(&printed, "n0").unwrap();
    assert_eq!(result.exit_code, SAVED_CELL_UNREADABLE);
    assert!(!root.path().join("ran").exists());
}
