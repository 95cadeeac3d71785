//! Everything rendered for a project at once: what the extension's pages get from
//! `renderProject` and what `aistudio-ssh render` writes.

use serde::Serialize;

use super::{
    host_alias, render_known_hosts, render_probe, render_provision, render_relay_setup,
    render_ssh_config, render_tunnel, PrivateKeys, RenderError, RenderKeys,
};
use crate::cells::{self, CellRole, CellScripts};
use crate::project_keys::ProjectKeys;
use crate::settings::Settings;

/// A project's scripts, cells, companion notebook and user files (camelCase across wasm).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectBundle {
    /// The provisioning script with the container's private keys.
    pub provision: String,
    pub tunnel: String,
    pub probe: String,
    pub relay_setup: String,
    pub ssh_config: String,
    pub known_hosts: String,
    /// What the user types: `ssh <host_alias>`.
    pub host_alias: String,
    /// The cells the extension runs, in order.
    pub cells: Vec<RenderedCell>,
    /// The cell that stops the tunnel.
    pub stop_tunnel: String,
    /// Where the companion notebook lives, relative to the Jupyter root.
    pub notebook_path: &'static str,
    /// The companion notebook (nbformat 4.5); its provisioning cell holds no private key.
    pub notebook: serde_json::Value,
    /// The digest the notebook carries in its metadata.
    pub notebook_digest: String,
}

/// One cell of [`ProjectBundle::cells`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedCell {
    pub step: CellRole,
    pub source: String,
}

/// Everything rendered for a project, from its settings and its keys as stored.
///
/// # Errors
/// What [`RenderKeys::from_project`] finds missing or invalid in `keys`.
pub fn project_bundle(
    settings: &Settings,
    keys: &ProjectKeys,
) -> Result<ProjectBundle, RenderError> {
    let keys = RenderKeys::from_project(keys)?;
    let provision = render_provision(settings, &keys, PrivateKeys::Included);
    let tunnel = render_tunnel(settings);
    let probe = render_probe(settings);
    let scripts = CellScripts {
        provision: &provision,
        tunnel: &tunnel,
        probe: &probe,
    };
    let cells = scripts
        .cells()
        .into_iter()
        .map(|(step, source)| RenderedCell { step, source })
        .collect();
    // The companion notebook lives in ~/work, which persists and is shared: no private key.
    let provision_from_container = render_provision(settings, &keys, PrivateKeys::InContainer);
    let notebook_scripts = CellScripts {
        provision: &provision_from_container,
        ..scripts
    };
    let notebook = cells::companion_notebook(&settings.project, &notebook_scripts);
    let notebook_digest = cells::notebook_digest(&notebook_scripts);
    Ok(ProjectBundle {
        relay_setup: render_relay_setup(settings, &keys),
        ssh_config: render_ssh_config(settings),
        known_hosts: render_known_hosts(settings, &keys),
        host_alias: host_alias(settings),
        cells,
        stop_tunnel: cells::stop_tunnel_source(&tunnel),
        notebook_path: cells::COMPANION_NOTEBOOK_PATH,
        notebook,
        notebook_digest,
        provision,
        tunnel,
        probe,
    })
}
