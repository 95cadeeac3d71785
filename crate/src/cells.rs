//! The visible cells: the provisioning, tunnel and probe scripts as `%%bash` cells, alone
//! (what the extension runs in a terminal or kernel of its own) and as the companion notebook
//! `~/work/aistudio-ssh.ipynb` the user can open and re-run by hand.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Where the companion notebook lives, relative to the Jupyter root (the container's HOME).
pub const COMPANION_NOTEBOOK_PATH: &str = "work/aistudio-ssh.ipynb";

/// Where JupyterLab keeps the checkpoint of the notebook at `path` (relative to its root):
/// `.ipynb_checkpoints/<name>-checkpoint.ipynb` beside it.
pub fn checkpoint_path(path: &str) -> String {
    let (dir, file) = path.rsplit_once('/').map_or(("", path), |(d, f)| (d, f));
    let stem = file.strip_suffix(".ipynb").unwrap_or(file);
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    format!("{prefix}.ipynb_checkpoints/{stem}-checkpoint.ipynb")
}

/// What the user or the extension asks of a notebook; each runs its own cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub enum CellAction {
    /// Provision, start the tunnel, probe until it is up (and save the companion notebook).
    Connect,
    /// Stop the tunnel, then probe once.
    Disconnect,
    /// Probe once.
    Probe,
}

/// The cells the extension runs, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub enum CellRole {
    /// Keys, sshd, authorized_keys; safe to re-run.
    Provision,
    /// The reverse tunnel's supervisor (started once; a re-run reports it): the relay route.
    Tunnel,
    /// The bridge's supervisor (started once; a re-run reports it): the direct route.
    Bridge,
    /// One JSON line about the container; reads only.
    Probe,
}

impl CellRole {
    /// A stable cell id (nbformat 4.5 wants one), also the step name the UI shows.
    pub fn id(self) -> &'static str {
        match self {
            Self::Provision => "aistudio-ssh-provision",
            Self::Tunnel => "aistudio-ssh-tunnel",
            Self::Bridge => "aistudio-ssh-bridge",
            Self::Probe => "aistudio-ssh-probe",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Provision => "1. Provisioning: the container's keys in ~/.ssh, sshd on the container's loopback, authorized_keys (safe to re-run)",
            Self::Tunnel => "2. Tunnel: keeps `ssh -R` to the relay up in the background (re-run after a restart)",
            Self::Bridge => "2. Bridge: serves SSH through the notebook tab, in the background (re-run after a restart)",
            Self::Probe => "3. Probe: one line of JSON about this container (reads only)",
        }
    }
}

/// One cell's source: `%%bash`, then the script inside a brace group. Bash reads a whole
/// compound command before running it and the group's stdin is /dev/null, so nothing in
/// the script can swallow the rest of the cell, which IPython feeds to bash on stdin.
pub fn cell_source(role: CellRole, script: &str) -> String {
    format!(
        "%%bash\n# AI Studio SSH · {title}\n{{\n{script}\n}} < /dev/null\n",
        title = role.title(),
        script = script.trim_end_matches('\n'),
    )
}

/// The cell that stops the route's service (its script's `stop`): Disconnect runs it.
pub fn stop_source(role: CellRole, script: &str) -> String {
    let what = match role {
        CellRole::Bridge => "the bridge",
        _ => "the tunnel",
    };
    format!(
        "%%bash\n# AI Studio SSH · stop {what}\n{{\nset -- stop\n{script}\n}} < /dev/null\n",
        script = script.trim_end_matches('\n'),
    )
}

/// The scripts of one project, as rendered for its settings and keys.
pub struct CellScripts<'a> {
    pub provision: &'a str,
    /// The route's service in the container: [`CellRole::Tunnel`] or [`CellRole::Bridge`].
    pub service: (CellRole, &'a str),
    pub probe: &'a str,
}

impl CellScripts<'_> {
    /// The cells in the order they run.
    pub fn cells(&self) -> Vec<(CellRole, String)> {
        let (service, script) = self.service;
        [
            (CellRole::Provision, self.provision),
            (service, script),
            (CellRole::Probe, self.probe),
        ]
        .into_iter()
        .map(|(role, script)| (role, cell_source(role, script)))
        .collect()
    }
}

/// Splits a source into nbformat's list of lines, each keeping its newline.
fn source_lines(source: &str) -> Vec<&str> {
    source.split_inclusive('\n').collect()
}

/// A digest of the notebook's cells, kept in its metadata (`aistudio_ssh.digest`): when the
/// notebook in the container carries the same one, it is not written again (rewriting a
/// notebook open in the lab makes JupyterLab ask the user which version to keep).
pub fn notebook_digest(scripts: &CellScripts<'_>) -> String {
    let mut hasher = Sha256::new();
    for (_, source) in scripts.cells() {
        hasher.update((source.len() as u64).to_le_bytes());
        hasher.update(source.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The companion notebook (nbformat 4.5) for `project`: a note on what it is, then the cells.
pub fn companion_notebook(project: &str, scripts: &CellScripts<'_>) -> Value {
    let intro = format!(
        "# AI Studio SSH · project {project}\n\n\
         Written by the AI Studio SSH browser extension, which runs these cells for you in a terminal \
         (or kernel) of its own when you open this project. The extension rewrites this notebook on each connect, so keep your own cells elsewhere. \
         These cells hold no private key: the provisioning cell uses the container's keys that the extension \
         put in `~/.ssh/aistudio-{project}/` since this environment started (a restart clears them, as \
         `~/work`, which persists and is copied with the project, must never hold them). Run the cells by hand \
         (top to bottom) after a kernel restart to get the same tunnel or bridge; after an environment restart, connect \
         from the extension once (or run `provision.sh` from `aistudio-ssh render`), then `ssh aistudio-{project}` on your computer.\n\n\
         由 AI Studio SSH 浏览器扩展写入；打开项目时扩展会在自己的终端（或内核）中运行这些单元。\
         这些单元不含私钥：配置单元使用扩展在本次环境启动后放入 `~/.ssh/aistudio-{project}/` 的容器密钥\
         （重启环境会清除它们；会被保存并随项目复制的 `~/work` 中绝不存放私钥）。内核重启后可按顺序手动运行；\
         环境重启后请先用扩展连接一次（或运行 `aistudio-ssh render` 生成的 `provision.sh`），之后在本机执行 `ssh aistudio-{project}`。\n"
    );
    let mut cells = vec![json!({
        "cell_type": "markdown",
        "id": "aistudio-ssh-intro",
        "metadata": {},
        "source": source_lines(&intro),
    })];
    for (role, source) in scripts.cells() {
        cells.push(json!({
            "cell_type": "code",
            "id": role.id(),
            "metadata": {"tags": ["aistudio-ssh"]},
            "execution_count": null,
            "outputs": [],
            "source": source_lines(&source),
        }));
    }
    json!({
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "aistudio_ssh": {"digest": notebook_digest(scripts)},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    })
}
