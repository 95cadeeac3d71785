//! The visible cells: run the way IPython's `%%bash` runs them (the cell body on bash's
//! stdin), and the companion notebook's shape.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;
use std::process::{Command, Stdio};

use aistudio_ssh::cells::{
    cell_source, companion_notebook, saved_cells_match, CellRole, CellScripts,
};

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
        tunnel: "echo t\n",
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
    let (code, out) = run_like_bash_magic(&aistudio_ssh::cells::stop_tunnel_source(script));
    assert_eq!((code, out.as_str()), (0, "stopping\n"));
    let (_, out) = run_like_bash_magic(&cell_source(CellRole::Tunnel, script));
    assert_eq!(out, "starting\n");
}

#[test]
fn the_notebook_digest_follows_the_cells_and_is_in_the_metadata() {
    let a = CellScripts {
        provision: "echo p\n",
        tunnel: "echo t\n",
        probe: "echo '{}'\n",
    };
    let b = CellScripts {
        provision: "echo p2\n",
        tunnel: "echo t\n",
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
fn saved_cells_match_only_when_every_cell_of_ours_is_there_unchanged() {
    let scripts = CellScripts {
        provision: "echo p",
        tunnel: "echo t",
        probe: "echo q",
    };
    let expected = companion_notebook("7892508", &scripts);
    assert!(saved_cells_match(&expected, &expected));
    // As the Contents API returns it: sources joined into one string, outputs from a hand run.
    let mut saved = expected.clone();
    for cell in saved["cells"].as_array_mut().unwrap() {
        let joined: String = cell["source"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        cell["source"] = serde_json::Value::String(joined);
        cell["outputs"] =
            serde_json::json!([{"output_type": "stream", "name": "stdout", "text": "x"}]);
    }
    assert!(saved_cells_match(&saved, &expected));
    // A cell of the user's own besides ours is fine.
    let mut extra = saved.clone();
    extra["cells"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"cell_type": "code", "id": "mine", "source": "1"}));
    assert!(saved_cells_match(&extra, &expected));

    // The user edited the tunnel cell: the file no longer holds our cells.
    let mut edited = saved.clone();
    edited["cells"][2]["source"] = serde_json::Value::String("%%bash\necho mine".into());
    assert!(!saved_cells_match(&edited, &expected));
    // A cell missing, twice, or from other settings; not a notebook at all.
    let mut missing = saved.clone();
    missing["cells"].as_array_mut().unwrap().remove(3);
    assert!(!saved_cells_match(&missing, &expected));
    let mut doubled = saved.clone();
    let copy = doubled["cells"][1].clone();
    doubled["cells"].as_array_mut().unwrap().push(copy);
    assert!(!saved_cells_match(&doubled, &expected));
    let other = companion_notebook(
        "7892508",
        &CellScripts {
            provision: "echo other",
            tunnel: "echo t",
            probe: "echo q",
        },
    );
    assert!(!saved_cells_match(&other, &expected));
    assert!(!saved_cells_match(
        &serde_json::json!({"cells": "x"}),
        &expected
    ));
    assert!(!saved_cells_match(&serde_json::json!(null), &expected));
}
