//! Everything rendered for a project at once: what the extension's pages get from
//! the `RenderedProject` handle and what `aistudio-ssh render` writes.

use serde::Serialize;

use super::user_files::{
    UserFile, COMPANION_NOTEBOOK_FILE, KNOWN_HOSTS_FILE, RELAY_SETUP_FILE, SSH_CONFIG_FILE,
};
use super::{
    host_alias, render_bridge, render_known_hosts, render_probe, render_provision,
    render_relay_setup, render_ssh_config, render_tunnel, PrivateKeys, RenderError, RenderKeys,
};
use crate::cells::{self, CellAction, CellRole, CellScripts};
use crate::project_keys::ProjectKeys;
use crate::settings::{Route, Settings};

/// A project's scripts, cells, companion notebook and user files (camelCase across wasm).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct ProjectBundle {
    /// How ssh reaches the container.
    pub route: Route,
    /// The provisioning script with the container's private keys.
    pub provision: String,
    /// The route's service in the container: the tunnel's cell (relay) or the bridge's
    /// (direct); `stop` as its argument stops it.
    pub service: String,
    pub probe: String,
    /// The relay's setup script (the relay route only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_setup: Option<String>,
    pub ssh_config: String,
    pub known_hosts: String,
    /// What the user types: `ssh <host_alias>`.
    pub host_alias: String,
    /// The cells the extension runs, in order.
    pub cells: Vec<RenderedCell>,
    /// The cell that stops the route's service.
    pub stop: String,
    /// Where the companion notebook lives, relative to the Jupyter root.
    pub notebook_path: &'static str,
    /// The companion notebook (nbformat 4.5); its provisioning cell holds no private key.
    #[cfg_attr(target_arch = "wasm32", tsify(type = "unknown"))]
    pub notebook: serde_json::Value,
    /// The digest the notebook carries in its metadata.
    pub notebook_digest: String,
}

/// One cell of [`ProjectBundle::cells`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct RenderedCell {
    pub step: CellRole,
    pub source: String,
}

/// The cells an action runs in the notebook's frame, in order; a connect also saves the
/// companion notebook first (skipped when the container's copy has the same digest).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct CellPlan {
    pub action: CellAction,
    pub cells: Vec<RenderedCell>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notebook_path: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(target_arch = "wasm32", tsify(type = "unknown"))]
    pub notebook: Option<serde_json::Value>,
    /// The notebook's `metadata.aistudio_ssh.digest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notebook_digest: Option<String>,
}

impl ProjectBundle {
    /// What `action` runs: a connect every cell (and the notebook), a disconnect the cell
    /// that stops the tunnel or the bridge and then a probe, a probe the probe alone.
    pub fn cell_plan(&self, action: CellAction) -> CellPlan {
        let probe = || {
            self.cells
                .iter()
                .filter(|cell| cell.step == CellRole::Probe)
                .cloned()
        };
        let cells = match action {
            CellAction::Connect => self.cells.clone(),
            CellAction::Disconnect => std::iter::once(RenderedCell {
                step: self.service_role(),
                source: self.stop.clone(),
            })
            .chain(probe())
            .collect(),
            CellAction::Probe => probe().collect(),
        };
        let connect = action == CellAction::Connect;
        CellPlan {
            action,
            cells,
            notebook_path: connect.then_some(self.notebook_path),
            notebook: connect.then(|| self.notebook.clone()),
            notebook_digest: connect.then(|| self.notebook_digest.clone()),
        }
    }

    /// The cell role of the route's service.
    pub fn service_role(&self) -> CellRole {
        service_role(self.route)
    }

    /// The files a user downloads to connect: ssh config, known_hosts, the client key's
    /// files (see [`super::client_key_files`]) and, on the relay route, the relay setup script.
    pub fn user_files(&self, client_key: Vec<UserFile>) -> Vec<UserFile> {
        let mut files = vec![
            UserFile::new(SSH_CONFIG_FILE, self.ssh_config.clone()),
            UserFile::new(KNOWN_HOSTS_FILE, self.known_hosts.clone()),
        ];
        files.extend(client_key);
        if let Some(relay_setup) = &self.relay_setup {
            files.push(UserFile::new(RELAY_SETUP_FILE, relay_setup.clone()));
        }
        files
    }

    /// The companion notebook as a file, for a container that refused it: indented JSON
    /// that JupyterLab opens as it is.
    pub fn notebook_file(&self) -> UserFile {
        let mut text = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut serializer = serde_json::Serializer::with_formatter(&mut text, formatter);
        self.notebook
            .serialize(&mut serializer)
            .expect("a JSON value serializes");
        text.push(b'\n');
        UserFile::new(
            COMPANION_NOTEBOOK_FILE,
            String::from_utf8(text).expect("serde_json writes UTF-8"),
        )
    }
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
    let route = settings.route();
    let provision = render_provision(settings, &keys, PrivateKeys::Included);
    let service = match &settings.relay {
        Some(relay) => render_tunnel(settings, relay),
        None => render_bridge(settings),
    };
    let probe = render_probe(settings);
    let scripts = CellScripts {
        provision: &provision,
        service: (service_role(route), &service),
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
        route,
        relay_setup: settings
            .relay
            .as_ref()
            .map(|relay| render_relay_setup(settings, relay, &keys)),
        ssh_config: render_ssh_config(settings),
        known_hosts: render_known_hosts(settings, &keys),
        host_alias: host_alias(settings),
        cells,
        stop: cells::stop_source(service_role(route), &service),
        notebook_path: cells::COMPANION_NOTEBOOK_PATH,
        notebook,
        notebook_digest,
        provision,
        service,
        probe,
    })
}

/// The cell role of `route`'s service in the container.
fn service_role(route: Route) -> CellRole {
    match route {
        Route::Relay => CellRole::Tunnel,
        Route::Direct => CellRole::Bridge,
    }
}
