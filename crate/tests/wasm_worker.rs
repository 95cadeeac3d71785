//! Key making where the extension does it: in a service worker, which has no `window`.
#![cfg(target_arch = "wasm32")]

use aistudio_ssh::wasm::keys::make_key_pair;
use js_sys::Reflect;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_service_worker);

fn public_line(key: &JsValue) -> String {
    let public = Reflect::get(key, &"public".into()).unwrap();
    Reflect::get(&public, &"line".into())
        .unwrap()
        .as_string()
        .unwrap()
}

#[wasm_bindgen_test]
async fn keys_are_made_in_a_service_worker() {
    let rsa = make_key_pair("rsa-2048".into(), "worker".into())
        .await
        .unwrap();
    assert!(public_line(&rsa).starts_with("ssh-rsa "));
    let ed25519 = make_key_pair("ed25519".into(), "worker".into())
        .await
        .unwrap();
    assert!(public_line(&ed25519).starts_with("ssh-ed25519 "));
}
