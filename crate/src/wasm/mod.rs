//! The JavaScript face of the core: value conversions only, no decisions.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tsify::Tsify;
use wasm_bindgen::prelude::*;

use crate::carrier;
use crate::cells::CellAction;
use crate::connection::{self, ConnectionEvent, ProjectStatus};
use crate::error_variant::ErrorVariant;
use crate::gateway::{self, Answer, AnswerSeen};
use crate::kernel;
use crate::native_host;
use crate::project_keys;
use crate::render;
use crate::self_hosted::{self, SelfHostedInput, SelfHostedJupyter};
use crate::settings::{FieldError, ProjectInput, RelayInput, SettingsInput};
use crate::terminal;

pub mod keys;
pub mod project;

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

/// A core error as a JS `Error`: named by its variant, with its text as the message.
fn core_error(error: impl ErrorVariant) -> JsValue {
    named_error(error.variant(), &error.to_string())
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
    to_js(&self_hosted::locate_page(page_url, &servers))
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
    crate::fields::is_project_id(id)
}

/// The comment a project's client key carries (`aistudio-<project>-client`).
#[wasm_bindgen(js_name = clientKeyComment)]
pub fn client_key_comment(project_id: &str) -> String {
    project_keys::KeyRole::Client.comment(project_id)
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

/// The lines (`{frame, waitFor}`) that run a cell in a fresh Jupyter terminal.
#[wasm_bindgen(js_name = terminalInput, unchecked_return_type = "TerminalLine[]")]
pub fn terminal_input(cell_source: &str, nonce: &str) -> Result<JsValue, JsValue> {
    to_js(&terminal::terminal_input(terminal::bash_body(cell_source), nonce).map_err(core_error)?)
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

/// The messages of one carrier attachment (see [`carrier::Attachment`]).
#[wasm_bindgen(js_name = carrierAttachment, unchecked_return_type = "Attachment")]
pub fn carrier_attachment(comm_id: &str, session: &str, date: &str) -> Result<JsValue, JsValue> {
    to_js(&carrier::Attachment::new(comm_id, session, date))
}

/// What a text frame from the carrier kernel's WebSocket means.
#[wasm_bindgen(js_name = readCarrierText, unchecked_return_type = "CarrierEvent")]
pub fn read_carrier_text(text: &str, comm_id: &str) -> Result<JsValue, JsValue> {
    to_js(&carrier::read_text(text, comm_id))
}

/// Where the bridge's bytes are in a binary frame from the carrier kernel's WebSocket:
/// `[start, end]`, or nothing if the frame carries none of the attachment's.
#[wasm_bindgen(js_name = carrierBytesIn)]
pub fn carrier_bytes_in(frame: &[u8], comm_id: &str) -> Option<Vec<u32>> {
    // Frames are far below 4 GiB (the browser's WebSocket and jupyter_server's limits).
    carrier::bytes_in_binary(frame, comm_id).map(|at| vec![at.start as u32, at.end as u32])
}

/// Whether a notebook page at `origin` can load the frame that hands its carrier's
/// MessagePort to the worker.
#[wasm_bindgen(js_name = loadsPortBroker)]
pub fn loads_port_broker(origin: &str) -> bool {
    crate::page::loads_port_broker(origin)
}

/// The header of a binary frame on the helper's lane for `project`'s bytes (the bytes
/// follow it; see `native_host::lane`).
#[wasm_bindgen(js_name = laneHeader)]
pub fn lane_header(project: &str) -> Result<Vec<u8>, JsValue> {
    // The extension's frames name no link: the helper knows which is up.
    native_host::lane::lane_header(project, 0).map_err(|error| named_error("Lane", &error))
}

/// Whose bytes a binary frame from the helper's lane carries, and where they start: pass
/// the frame's first `MAX_LANE_HEADER` bytes (the bytes need not cross into wasm).
#[wasm_bindgen(js_name = readLaneHeader, unchecked_return_type = "LaneHeader")]
pub fn read_lane_header(head: &[u8]) -> Result<JsValue, JsValue> {
    let header =
        native_host::lane::read_lane_header(head).map_err(|error| named_error("Lane", &error))?;
    to_js(&header)
}

/// The most of a lane frame [`read_lane_header`] needs.
#[wasm_bindgen(js_name = maxLaneHeader)]
pub fn max_lane_header() -> usize {
    native_host::lane::MAX_LANE_HEADER
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

/// After probe number `tries` of `action`: the milliseconds to wait before the next, or
/// `undefined` when that was the last.
#[wasm_bindgen(js_name = probeAgainAfterMs)]
pub fn probe_again_after_ms(
    #[wasm_bindgen(unchecked_param_type = "CellAction")] action: JsValue,
    #[wasm_bindgen(unchecked_param_type = "ProjectStatus")] status: JsValue,
    tries: u32,
) -> Result<Option<u32>, JsValue> {
    let action: CellAction = from_js(action, "cell action")?;
    let status: ProjectStatus = from_js(status, "project status")?;
    Ok(connection::probe_again_after_ms(action, &status, tries))
}

/// The auto-connect setting to store after `status` (`undefined`: leave it as it is).
#[wasm_bindgen(js_name = autoConnectAfter)]
pub fn auto_connect_after(
    #[wasm_bindgen(unchecked_param_type = "ProjectStatus")] status: JsValue,
    stored: Option<bool>,
) -> Result<Option<bool>, JsValue> {
    let status: ProjectStatus = from_js(status, "project status")?;
    Ok(connection::auto_connect_after(&status, stored))
}

/// What the popup shows of a project, from its stored settings (the shared relay if set,
/// its own part) and status.
#[wasm_bindgen(js_name = projectView, unchecked_return_type = "ProjectView")]
pub fn project_view(
    project_id: &str,
    #[wasm_bindgen(unchecked_param_type = "RelayInput | null")] relay: JsValue,
    #[wasm_bindgen(unchecked_param_type = "ProjectInput")] project: JsValue,
    #[wasm_bindgen(unchecked_param_type = "ProjectStatus | null")] status: JsValue,
) -> Result<JsValue, JsValue> {
    let relay: Option<RelayInput> = from_js(relay, "relay")?;
    let project: ProjectInput = from_js(project, "project settings")?;
    let status: Option<ProjectStatus> = from_js(status, "project status")?;
    let route = SettingsInput::from_parts(project_id, relay, project)
        .validate()
        .ok()
        .map(|settings| settings.route());
    to_js(&connection::ProjectView::new(project_id, route, status))
}
