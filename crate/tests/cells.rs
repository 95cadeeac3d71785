//! The visible cells: run the way IPython's `%%bash` runs them (the cell body on bash's
//! stdin), and the companion notebook's shape.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;
use std::process::{Command, Stdio};

use aistudio_ssh::cells::{cell_source, companion_notebook, CellRole, CellScripts};

/// What `%%bash` does: bash with the cell body (after the magic line) on its stdin.
fn run_like_bash_magic(source: &str) -> (i32, String) {
    let body = source.strip_prefix("%%bash\n").expect("a %%bash cell");
    let mut child = Command::new("bash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn a_command_reading_stdin_cannot_swallow_the_rest_of_the_cell() {
    // Without the brace group, `cat` would print the script's remaining lines and `after`
    // would never run.
    let script = "echo before\ncat\necho after";
    let (code, out) = run_like_bash_magic(&cell_source(CellRole::Provision, script));
    assert_eq!((code, out.as_str()), (0, "before\nafter\n"));
}

#[test]
fn exit_codes_heredocs_and_set_e_behave_as_in_a_script_file() {
    let script = "set -euo pipefail\ncat <<'EOF'\n}\n{ not code\nEOF\nfalse\necho unreachable";
    let (code, out) = run_like_bash_magic(&cell_source(CellRole::Tunnel, script));
    assert_eq!((code, out.as_str()), (1, "}\n{ not code\n"));
}

#[test]
fn the_companion_notebook_holds_the_three_cells_in_order_with_their_exact_sources() {
    let scripts = CellScripts {
        provision: "echo p\n",
        service: (CellRole::Tunnel, "echo t\n"),
        probe: "echo '{}'\n",
    };
    let notebook = companion_notebook("7892508", &scripts);
    assert_eq!(notebook["nbformat"], 4);
    assert_eq!(notebook["nbformat_minor"], 5);
    let cells = notebook["cells"].as_array().unwrap();
    let ids: Vec<&str> = cells.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "aistudio-ssh-intro",
            "aistudio-ssh-provision",
            "aistudio-ssh-tunnel",
            "aistudio-ssh-probe"
        ]
    );
    assert!(cells[0]["source"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l.as_str().unwrap().contains("ssh aistudio-7892508")));
    for (cell, (role, source)) in cells[1..].iter().zip(scripts.cells()) {
        let joined: String = cell["source"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert_eq!(joined, source, "{role:?}");
        assert_eq!(cell["outputs"], serde_json::json!([]));
        let (code, _) = run_like_bash_magic(&joined);
        assert_eq!(code, 0, "{role:?} runs");
    }
}

#[test]
fn the_stop_cell_runs_the_tunnel_script_with_stop() {
    let script = "case \"${1:-start}\" in stop) echo stopping ;; *) echo starting ;; esac";
    let (code, out) =
        run_like_bash_magic(&aistudio_ssh::cells::stop_source(CellRole::Tunnel, script));
    assert_eq!((code, out.as_str()), (0, "stopping\n"));
    let (_, out) = run_like_bash_magic(&cell_source(CellRole::Tunnel, script));
    assert_eq!(out, "starting\n");
}

#[test]
fn the_notebook_digest_follows_the_cells_and_is_in_the_metadata() {
    let a = CellScripts {
        provision: "echo p\n",
        service: (CellRole::Tunnel, "echo t\n"),
        probe: "echo '{}'\n",
    };
    let b = CellScripts {
        provision: "echo p2\n",
        service: (CellRole::Tunnel, "echo t\n"),
        probe: "echo '{}'\n",
    };
    let digest = aistudio_ssh::cells::notebook_digest(&a);
    assert_eq!(digest.len(), 64);
    assert_eq!(digest, aistudio_ssh::cells::notebook_digest(&a));
    assert_ne!(digest, aistudio_ssh::cells::notebook_digest(&b));
    assert_eq!(
        companion_notebook("1", &a)["metadata"]["aistudio_ssh"]["digest"],
        digest
    );
}

#[test]
fn the_companion_notebook_checkpoint_is_where_jupyterlab_keeps_it() {
    assert_eq!(
        aistudio_ssh::cells::checkpoint_path("work/aistudio-ssh.ipynb"),
        "work/.ipynb_checkpoints/aistudio-ssh-checkpoint.ipynb"
    );
    assert_eq!(
        aistudio_ssh::cells::checkpoint_path("a.ipynb"),
        ".ipynb_checkpoints/a-checkpoint.ipynb"
    );
}
