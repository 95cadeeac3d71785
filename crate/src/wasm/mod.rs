//! The JavaScript face of the core: value conversions only, no decisions.

use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
fn start() {
    // A panic becomes a readable console error instead of "unreachable executed".
    console_error_panic_hook::set_once();
}

/// Plain JS objects and `null` (not `Map` and `undefined`) so results cross
/// `chrome.runtime` messaging unchanged.
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    Ok(value.serialize(&serde_wasm_bindgen::Serializer::json_compatible())?)
}

/// The core's version; equals the manifest version when the build is consistent.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    crate::VERSION.to_owned()
}

/// `NotebookLocation` as a plain object, or `null` when the URL is not a notebook page.
#[wasm_bindgen(js_name = locateNotebook)]
pub fn locate_notebook(page_url: &str) -> Result<JsValue, JsError> {
    to_js(&crate::jupyter::locate_notebook(page_url))
}
