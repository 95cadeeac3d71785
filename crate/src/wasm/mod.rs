//! The JavaScript face of the core: value conversions only, no decisions.

use rand_core::OsRng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tsify::Tsify;
use wasm_bindgen::prelude::*;

use crate::cells::{self, CellRole, CellScripts};
use crate::connection::{self, ConnectionEvent, ProjectStatus};
use crate::gateway::{self, Answer, AnswerSeen};
use crate::jupyter::{SelfHostedInput, SelfHostedJupyter};
use crate::kernel;
use crate::keys::{self, KeyAlgorithm, KeyError, KeyPair, PublicKeyInfo, RsaComponents, RsaJwk};
use crate::project_keys::{self, ProjectKeys, StoredKey};
use crate::render::{self, PrivateKeys, RenderKeys};
use crate::settings::{FieldError, Settings, SettingsError, SettingsInput};
use crate::terminal;

#[wasm_bindgen(start)]
fn start() {
    // A panic becomes a readable console error instead of "unreachable executed".
    console_error_panic_hook::set_once();
}

/// Plain JS objects and `null` (not `Map` and `undefined`) so results cross
/// `chrome.runtime` messaging unchanged.
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|error| named_error("Conversion", &error.to_string()))
}

fn from_js<T: DeserializeOwned>(value: JsValue, what: &str) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|error| named_error("Conversion", &format!("{what}: {error}")))
}

/// A JS `Error` whose `name` is a stable variant the UI can switch on.
fn named_error(name: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name(name);
    error.into()
}

fn key_error(error: KeyError) -> JsValue {
    named_error(error.variant(), &error.to_string())
}

fn stored(pair: &KeyPair) -> Result<JsValue, JsValue> {
    to_js(&StoredKey::from_pair(pair).map_err(key_error)?)
}

/// The core's version; equals the manifest version when the build is consistent.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    crate::VERSION.to_owned()
}

/// The `NotebookLocation` a page shows as a plain object (AI Studio, or under one of
/// `selfHosted`), or `null` when it shows none.
#[wasm_bindgen(js_name = locatePage, unchecked_return_type = "NotebookLocation | null")]
pub fn locate_page(
    page_url: &str,
    #[wasm_bindgen(unchecked_param_type = "SelfHostedJupyter[]")] self_hosted: JsValue,
) -> Result<JsValue, JsValue> {
    let servers: Vec<SelfHostedJupyter> = from_js(self_hosted, "self-hosted servers")?;
    to_js(&crate::jupyter::locate_page(page_url, &servers))
}

/// What the core says of a self-hosted server as typed.
#[derive(Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub enum SelfHostedCheck {
    /// Valid: the server the extension works with.
    Server(SelfHostedJupyter),
    /// Every invalid field.
    Errors(Vec<FieldError>),
}

/// A self-hosted server as typed: `{server}` when valid, `{errors: [{field, value, allowed}]}` otherwise.
#[wasm_bindgen(js_name = checkSelfHosted, unchecked_return_type = "SelfHostedCheck")]
pub fn check_self_hosted(
    #[wasm_bindgen(unchecked_param_type = "SelfHostedInput")] input: JsValue,
) -> Result<JsValue, JsValue> {
    let input: SelfHostedInput = from_js(input, "self-hosted server")?;
    to_js(&match input.validate() {
        Ok(server) => SelfHostedCheck::Server(server),
        Err(errors) => SelfHostedCheck::Errors(errors),
    })
}

/// `aistudio-<project>`: the ssh alias of a project, also before its settings are complete.
#[wasm_bindgen(js_name = hostAlias)]
pub fn host_alias(project_id: &str) -> String {
    render::host_alias_of(project_id)
}

/// Whether `id` can be an AI Studio project id.
#[wasm_bindgen(js_name = isProjectId)]
pub fn is_project_id(id: &str) -> bool {
    crate::jupyter::is_project_id(id)
}

/// The comment a project's client key carries (`aistudio-<project>-client`).
#[wasm_bindgen(js_name = clientKeyComment)]
pub fn client_key_comment(project_id: &str) -> String {
    project_keys::KeyRole::Client.comment(project_id)
}

/// A new key (`StoredKey`) made in Rust; `algorithm` is `ed25519` or `rsa-<bits>`.
#[wasm_bindgen(js_name = generateKeyPair)]
pub fn generate_key_pair(algorithm: &str, comment: &str) -> Result<JsValue, JsValue> {
    let algorithm = algorithm.parse::<KeyAlgorithm>().map_err(key_error)?;
    stored(&KeyPair::generate(algorithm, comment, &mut OsRng).map_err(key_error)?)
}

/// The RSA modulus size of an algorithm name, or `null` for Ed25519 (which WebCrypto
/// cannot be relied on to make in every browser, and Rust makes in well under a millisecond).
#[wasm_bindgen(js_name = rsaBits)]
pub fn rsa_bits(algorithm: &str) -> Result<Option<u32>, JsValue> {
    let algorithm = algorithm.parse::<KeyAlgorithm>().map_err(key_error)?;
    Ok(algorithm.rsa_bits().map(|bits| bits as u32))
}

/// A `StoredKey` from an RSA private key WebCrypto exported as a JWK.
#[wasm_bindgen(js_name = keyPairFromRsaJwk)]
pub fn key_pair_from_rsa_jwk(jwk: JsValue, comment: &str) -> Result<JsValue, JsValue> {
    let jwk: RsaJwk = from_js(jwk, "RSA JWK")?;
    let components = RsaComponents::try_from(&jwk).map_err(key_error)?;
    stored(&KeyPair::from_rsa_components(&components, comment).map_err(key_error)?)
}

/// A `StoredKey` from what the user pasted as their client key: a public key line, or an
/// OpenSSH private key (decrypted with `passphrase` when protected).
#[wasm_bindgen(js_name = importClientKey)]
pub fn import_client_key(text: &str, passphrase: Option<String>) -> Result<JsValue, JsValue> {
    to_js(&StoredKey::from_paste(text, passphrase.as_deref()).map_err(key_error)?)
}

/// `PublicKeyInfo` of a pasted public key or authorized_keys line.
#[wasm_bindgen(js_name = importPublicKey)]
pub fn import_public_key(text: &str) -> Result<JsValue, JsValue> {
    let info: PublicKeyInfo = keys::import_public_key(text).map_err(key_error)?;
    to_js(&info)
}

/// The OpenSSH private key text protected by `passphrase`, for the user's download.
#[wasm_bindgen(js_name = encryptPrivateKey)]
pub fn encrypt_private_key(private_key: &str, passphrase: &str) -> Result<String, JsValue> {
    let pair = KeyPair::import_openssh(private_key, None).map_err(key_error)?;
    let encrypted = pair
        .to_openssh_encrypted(passphrase, &mut OsRng)
        .map_err(key_error)?;
    Ok(encrypted.to_string())
}

/// `{ keys: ProjectKeys, made: KeyRole[] }`: the project's keys with the missing ones made.
#[wasm_bindgen(js_name = completeProjectKeys)]
pub fn complete_project_keys(project_id: &str, existing: JsValue) -> Result<JsValue, JsValue> {
    let existing: ProjectKeys = if existing.is_null() || existing.is_undefined() {
        ProjectKeys::default()
    } else {
        from_js(existing, "stored project keys")?
    };
    let (keys, made) =
        project_keys::complete_project_keys(project_id, existing, &mut OsRng).map_err(key_error)?;
    #[derive(Serialize)]
    struct Completed {
        keys: ProjectKeys,
        made: Vec<project_keys::KeyRole>,
    }
    to_js(&Completed { keys, made })
}

/// Every invalid field of `input` (settings as the user typed them) as
/// `{field, value, allowed}`; empty when the settings are valid. For inline validation.
#[wasm_bindgen(js_name = checkSettings, unchecked_return_type = "FieldError[]")]
pub fn check_settings(
    #[wasm_bindgen(unchecked_param_type = "SettingsInput")] input: JsValue,
) -> Result<JsValue, JsValue> {
    let input: SettingsInput = from_js(input, "settings")?;
    match input.validate() {
        Ok(_) => to_js(&Vec::<FieldError>::new()),
        Err(SettingsError::Invalid { fields }) => to_js(&fields),
        Err(other) => Err(named_error(other.variant(), &other.to_string())),
    }
}

fn validated(input: JsValue) -> Result<Settings, JsValue> {
    let input: SettingsInput = from_js(input, "settings")?;
    input
        .validate()
        .map_err(|error| named_error(error.variant(), &error.to_string()))
}

/// Everything rendered for a project (see [`render_project`]).
#[derive(Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct RenderedProject {
    provision: String,
    tunnel: String,
    probe: String,
    relay_setup: String,
    ssh_config: String,
    known_hosts: String,
    host_alias: String,
    cells: Vec<RenderedCell>,
    stop_tunnel: String,
    notebook_path: &'static str,
    /// The companion notebook's nbformat JSON.
    #[tsify(type = "unknown")]
    notebook: serde_json::Value,
    notebook_digest: String,
}

/// One cell to run, by the step it is.
#[derive(Serialize, Tsify)]
pub struct RenderedCell {
    step: CellRole,
    source: String,
}

/// Everything rendered for a project: `{provision, tunnel, probe, relaySetup, sshConfig,
/// knownHosts}`, from settings and the project's stored keys.
#[wasm_bindgen(js_name = renderProject, unchecked_return_type = "RenderedProject")]
pub fn render_project(
    #[wasm_bindgen(unchecked_param_type = "SettingsInput")] input: JsValue,
    #[wasm_bindgen(unchecked_param_type = "ProjectKeys")] keys: JsValue,
) -> Result<JsValue, JsValue> {
    let settings = validated(input)?;
    let keys: ProjectKeys = from_js(keys, "stored project keys")?;
    let keys = RenderKeys::from_project(&keys)
        .map_err(|error| named_error(error.variant(), &error.to_string()))?;
    let provision = render::render_provision(&settings, &keys, PrivateKeys::Included);
    let tunnel = render::render_tunnel(&settings);
    let probe = render::render_probe(&settings);
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
    let provision_from_container =
        render::render_provision(&settings, &keys, PrivateKeys::InContainer);
    let notebook_scripts = CellScripts {
        provision: &provision_from_container,
        ..scripts
    };
    let notebook = cells::companion_notebook(&settings.project, &notebook_scripts);
    let notebook_digest = cells::notebook_digest(&notebook_scripts);
    to_js(&RenderedProject {
        relay_setup: render::render_relay_setup(&settings, &keys),
        ssh_config: render::render_ssh_config(&settings),
        known_hosts: render::render_known_hosts(&settings, &keys),
        host_alias: render::host_alias(&settings),
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

/// After a terminal's WebSocket was cut and reopened: the index of the first line to send again.
#[wasm_bindgen(js_name = terminalResumeAt)]
pub fn terminal_resume_at(
    stdout: &str,
    #[wasm_bindgen(unchecked_param_type = "TerminalLine[]")] lines: JsValue,
) -> Result<usize, JsValue> {
    let lines: Vec<terminal::TerminalLine> = from_js(lines, "terminal lines")?;
    Ok(terminal::resume_at(stdout, &lines))
}

/// Where the companion notebook lives, relative to the Jupyter root.
#[wasm_bindgen(js_name = companionNotebookPath)]
pub fn companion_notebook_path() -> String {
    cells::COMPANION_NOTEBOOK_PATH.to_owned()
}

/// The lines (`{frame, waitFor}`) that run a cell in a fresh Jupyter terminal.
#[wasm_bindgen(js_name = terminalInput, unchecked_return_type = "TerminalLine[]")]
pub fn terminal_input(cell_source: &str, nonce: &str) -> Result<JsValue, JsValue> {
    if nonce.is_empty() || !nonce.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(named_error(
            "InvalidNonce",
            "the nonce must be letters and digits",
        ));
    }
    to_js(&terminal::terminal_input(
        terminal::bash_body(cell_source),
        nonce,
    ))
}

/// `{exitCode, output}` once the terminal printed the cell's end, else `null`.
#[wasm_bindgen(js_name = readTerminalOutput, unchecked_return_type = "TerminalResult | null")]
pub fn read_terminal_output(stdout: &str, nonce: &str) -> Result<JsValue, JsValue> {
    to_js(&terminal::read_terminal_output(stdout, nonce))
}

/// A kernel `execute_request` frame for the server's WebSocket, as JSON text.
#[wasm_bindgen(js_name = executeRequest)]
pub fn execute_request(msg_id: &str, session: &str, code: &str, date: &str) -> String {
    kernel::execute_request(msg_id, session, code, date).to_string()
}

/// What a kernel WebSocket frame means for the request `request_id`.
#[wasm_bindgen(js_name = readKernelMessage, unchecked_return_type = "KernelEvent")]
pub fn read_kernel_message(frame: &str, request_id: &str) -> Result<JsValue, JsValue> {
    to_js(&kernel::read_kernel_message(frame, request_id))
}

/// The project's status after an event (`null` status: a project seen for the first time).
#[wasm_bindgen(js_name = applyConnectionEvent, unchecked_return_type = "ProjectStatus")]
pub fn apply_connection_event(
    #[wasm_bindgen(unchecked_param_type = "ProjectStatus | null")] status: JsValue,
    #[wasm_bindgen(unchecked_param_type = "ConnectionEvent")] event: JsValue,
    host_fingerprint: &str,
) -> Result<JsValue, JsValue> {
    let status: Option<ProjectStatus> = from_js(status, "project status")?;
    let event: ConnectionEvent = from_js(event, "connection event")?;
    to_js(&status.unwrap_or_default().apply(event, host_fingerprint))
}

/// What the core made of an answer of the platform, and when to ask again (`null`: do not).
#[derive(Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct GatewayVerdict {
    answer: Answer,
    retry_after_ms: Option<u32>,
}

/// What an answer of the platform means (`{answer, retryAfterMs}`), before its body is read;
/// `attempt` answers like it in a row, the first `waited_ms` ago.
#[wasm_bindgen(js_name = classifyAnswer, unchecked_return_type = "GatewayVerdict")]
pub fn classify_answer(
    #[wasm_bindgen(unchecked_param_type = "AnswerSeen")] seen: JsValue,
    attempt: u32,
    waited_ms: f64,
) -> Result<JsValue, JsValue> {
    let seen: AnswerSeen = from_js(seen, "answer")?;
    let answer = gateway::classify_answer(&seen);
    to_js(&GatewayVerdict {
        answer,
        // Milliseconds from JS: whole, non-negative, far below u64's range.
        retry_after_ms: answer.retry_after_ms(attempt, waited_ms.max(0.0) as u64),
    })
}

/// The toolbar badge for a status.
#[wasm_bindgen(js_name = statusBadge, unchecked_return_type = "Badge")]
pub fn status_badge(
    #[wasm_bindgen(unchecked_param_type = "ProjectStatus")] status: JsValue,
) -> Result<JsValue, JsValue> {
    let status: ProjectStatus = from_js(status, "project status")?;
    to_js(&status.badge())
}

/// Whether a ready notebook is connected without a click.
#[wasm_bindgen(js_name = connectsByItself)]
pub fn connects_by_itself(
    #[wasm_bindgen(unchecked_param_type = "ProjectStatus | null")] status: JsValue,
    has_settings: bool,
    auto_connect: bool,
) -> Result<bool, JsValue> {
    let status: Option<ProjectStatus> = from_js(status, "project status")?;
    Ok(connection::connects_by_itself(
        &status.unwrap_or_default(),
        has_settings,
        auto_connect,
    ))
}
