//! The bindings in a real browser: values arrive as plain JS objects.
#![cfg(target_arch = "wasm32")]

use aistudio_ssh::wasm::{core_version, locate_notebook};
use js_sys::Reflect;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn core_version_is_the_crate_version() {
    assert_eq!(core_version(), env!("CARGO_PKG_VERSION"));
}

#[wasm_bindgen_test]
fn a_notebook_location_is_a_plain_object_with_camel_case_fields() {
    let found = locate_notebook("https://aistudio.baidu.com/bd-cpu-01/user/9/77/home#codelab")
        .expect("conversion");
    assert!(found.is_object());
    let field = |name: &str| Reflect::get(&found, &JsValue::from_str(name)).unwrap();
    assert_eq!(field("projectId"), "77");
    assert_eq!(field("page"), "ideHome");
    assert_eq!(
        field("baseUrl"),
        "https://aistudio.baidu.com/bd-cpu-01/user/9/77/"
    );
}

#[wasm_bindgen_test]
fn a_page_that_is_no_notebook_is_null_not_undefined() {
    let found = locate_notebook("https://aistudio.baidu.com/projectdetail/77").expect("conversion");
    assert!(found.is_null());
}
