//! A project's settings, rendered files and views: the relay and a project's part checked
//! apart, one handle that renders a project once, and what pages may see of it.

use rand_core::OsRng;
use wasm_bindgen::prelude::*;

use super::{core_error, from_js, named_error, to_js};
use crate::cells::CellAction;
use crate::project_keys::{ProjectKeys, StoredKey};
use crate::render::{self, ProjectBundle};
use crate::settings::{self, ProjectInput, RelayInput, SettingsInput};

/// Every invalid relay field; empty when the relay is valid.
#[wasm_bindgen(js_name = checkRelay, unchecked_return_type = "FieldError[]")]
pub fn check_relay(
    #[wasm_bindgen(unchecked_param_type = "RelayInput")] relay: JsValue,
) -> Result<JsValue, JsValue> {
    let relay: RelayInput = from_js(relay, "relay")?;
    to_js(&relay.check())
}

/// Every invalid field of a project's own settings; empty when they are valid.
#[wasm_bindgen(js_name = checkProjectSettings, unchecked_return_type = "FieldError[]")]
pub fn check_project_settings(
    project_id: &str,
    #[wasm_bindgen(unchecked_param_type = "ProjectInput")] project: JsValue,
) -> Result<JsValue, JsValue> {
    let project: ProjectInput = from_js(project, "project settings")?;
    to_js(&project.check(project_id))
}

/// The relay port for a new project, given the ports the others use.
#[wasm_bindgen(js_name = nextRemotePort)]
pub fn next_remote_port(
    #[wasm_bindgen(unchecked_param_type = "unknown[]")] taken: JsValue,
) -> Result<f64, JsValue> {
    // Stored values that are not whole numbers are no ports: they take none.
    let taken: Vec<serde_json::Value> = from_js(taken, "relay ports")?;
    let taken: Vec<i64> = taken.iter().filter_map(serde_json::Value::as_i64).collect();
    // A port fits a JS number exactly.
    Ok(settings::next_remote_port(&taken) as f64)
}

/// A project rendered once from its stored parts (the shared relay, its own settings, its
/// keys), validated on the way in; its plans and files are read from this handle.
#[wasm_bindgen]
pub struct RenderedProject {
    bundle: ProjectBundle,
    client: Option<StoredKey>,
}

#[wasm_bindgen]
impl RenderedProject {
    #[wasm_bindgen(constructor)]
    pub fn new(
        project_id: &str,
        #[wasm_bindgen(unchecked_param_type = "RelayInput | null")] relay: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ProjectInput")] project: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ProjectKeys")] keys: JsValue,
    ) -> Result<RenderedProject, JsValue> {
        let relay: Option<RelayInput> = from_js(relay, "relay")?;
        let project: ProjectInput = from_js(project, "project settings")?;
        let settings = SettingsInput::from_parts(project_id, relay, project)
            .validate()
            .map_err(core_error)?;
        let keys: ProjectKeys = from_js(keys, "stored project keys")?;
        let bundle = render::project_bundle(&settings, &keys).map_err(core_error)?;
        Ok(Self {
            bundle,
            client: keys.client,
        })
    }

    /// Everything rendered.
    #[wasm_bindgen(unchecked_return_type = "ProjectBundle")]
    pub fn bundle(&self) -> Result<JsValue, JsValue> {
        to_js(&self.bundle)
    }

    /// The cells `action` runs in the notebook's frame.
    #[wasm_bindgen(js_name = cellPlan, unchecked_return_type = "CellPlan")]
    pub fn cell_plan(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CellAction")] action: JsValue,
    ) -> Result<JsValue, JsValue> {
        let action: CellAction = from_js(action, "cell action")?;
        to_js(&self.bundle.cell_plan(action))
    }

    /// The files a user downloads to connect; the private key protected by `passphrase`
    /// when one is given.
    #[wasm_bindgen(js_name = userFiles, unchecked_return_type = "UserFile[]")]
    pub fn user_files(&self, passphrase: Option<String>) -> Result<JsValue, JsValue> {
        let key_files = key_files(self.client.as_ref(), passphrase.as_deref())?;
        to_js(&self.bundle.user_files(key_files))
    }

    /// The companion notebook as a file.
    #[wasm_bindgen(js_name = notebookFile, unchecked_return_type = "UserFile")]
    pub fn notebook_file(&self) -> Result<JsValue, JsValue> {
        to_js(&self.bundle.notebook_file())
    }

    /// How ssh reaches the project.
    #[wasm_bindgen(getter, unchecked_return_type = "Route")]
    pub fn route(&self) -> Result<JsValue, JsValue> {
        to_js(&self.bundle.route)
    }

    /// The code the carrier's kernel runs before its comm opens (direct route).
    #[wasm_bindgen(getter, js_name = attachCode)]
    pub fn attach_code(&self) -> String {
        render::render_attach()
    }

    /// The relay setup script (the relay route only).
    #[wasm_bindgen(getter, js_name = relaySetup)]
    pub fn relay_setup(&self) -> Option<String> {
        self.bundle.relay_setup.clone()
    }
}

/// The client key's files, or `NoClientKey` before the project has one.
fn key_files(
    client: Option<&StoredKey>,
    passphrase: Option<&str>,
) -> Result<Vec<render::UserFile>, JsValue> {
    let client =
        client.ok_or_else(|| named_error("NoClientKey", "the project has no client key yet"))?;
    render::client_key_files(client, passphrase, &mut OsRng).map_err(core_error)
}

/// The client key's files; the private one protected by `passphrase` when one is given.
#[wasm_bindgen(js_name = clientKeyFiles, unchecked_return_type = "UserFile[]")]
pub fn client_key_files(
    #[wasm_bindgen(unchecked_param_type = "StoredKey | null | undefined")] client: JsValue,
    passphrase: Option<String>,
) -> Result<JsValue, JsValue> {
    let client: Option<StoredKey> = from_js(client, "client key")?;
    to_js(&key_files(client.as_ref(), passphrase.as_deref())?)
}

/// What an extension page sees of a project's keys: public halves only.
#[wasm_bindgen(js_name = projectKeysView, unchecked_return_type = "ProjectKeysView")]
pub fn project_keys_view(
    project_id: &str,
    #[wasm_bindgen(unchecked_param_type = "ProjectKeys")] keys: JsValue,
) -> Result<JsValue, JsValue> {
    let keys: ProjectKeys = from_js(keys, "stored project keys")?;
    to_js(&keys.view(project_id))
}
