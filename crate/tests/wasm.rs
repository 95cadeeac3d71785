//! The bindings in a real browser: values arrive as plain JS objects, errors as named JS
//! errors, and RSA keys made by the browser's WebCrypto become OpenSSH keys.
#![cfg(target_arch = "wasm32")]

use aistudio_ssh::error_variant::ErrorVariant;
use aistudio_ssh::keys::{KeyAlgorithm, KeyError, KeyPair, RsaJwk, RsaKeyMaker};
use aistudio_ssh::wasm::keys::{
    complete_project_keys, import_public_key, make_key_pair, WebCrypto,
};
use aistudio_ssh::wasm::project::{
    check_project_settings, check_relay, next_remote_port, project_keys_view, RenderedProject,
};
use aistudio_ssh::wasm::{check_self_hosted, core_version, locate_page};
use js_sys::{Array, Object, Reflect};
use rand_core::OsRng;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap()
}

fn text(object: &JsValue, path: &[&str]) -> String {
    let value = path
        .iter()
        .fold(object.clone(), |value, name| field(&value, name));
    value
        .as_string()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

#[wasm_bindgen_test]
fn core_version_is_the_crate_version() {
    assert_eq!(core_version(), env!("CARGO_PKG_VERSION"));
}

#[wasm_bindgen_test]
fn a_notebook_location_is_a_plain_object_with_camel_case_fields() {
    let found = locate_page(
        "https://aistudio.baidu.com/bd-cpu-01/user/9/77/home#codelab",
        Array::new().into(),
    )
    .expect("conversion");
    assert!(found.is_object());
    assert_eq!(text(&found, &["projectId"]), "77");
    assert_eq!(text(&found, &["page"]), "ideHome");
    assert_eq!(
        text(&found, &["baseUrl"]),
        "https://aistudio.baidu.com/bd-cpu-01/user/9/77/"
    );
}

#[wasm_bindgen_test]
fn a_page_that_is_no_notebook_is_null_not_undefined() {
    let found = locate_page(
        "https://aistudio.baidu.com/projectdetail/77",
        Array::new().into(),
    )
    .expect("conversion");
    assert!(found.is_null());
}

#[wasm_bindgen_test]
fn a_self_hosted_server_is_checked_and_then_locates_its_pages() {
    let input = |url: &str, name: &str| {
        let object = Object::new();
        for (key, value) in [("url", url), ("name", name), ("user", "jovyan")] {
            Reflect::set(&object, &key.into(), &value.into()).unwrap();
        }
        JsValue::from(object)
    };
    let refused = check_self_hosted(input("http://lab.example.org/", "mylab")).expect("conversion");
    let errors = Array::from(&field(&refused, "errors"));
    assert_eq!(errors.length(), 1);
    assert_eq!(text(&errors.get(0), &["field"]), "selfHosted.url");
    assert_eq!(text(&errors.get(0), &["rule"]), "selfHostedUrl");

    let checked = check_self_hosted(input("https://lab.example.org/user/a/lab", "mylab"))
        .expect("conversion");
    let server = field(&checked, "server");
    assert_eq!(
        text(&server, &["baseUrl"]),
        "https://lab.example.org/user/a/"
    );
    assert_eq!(
        text(&server, &["originPattern"]),
        "https://lab.example.org/*"
    );
    let servers = Array::of1(&server);
    let found = locate_page(
        "https://lab.example.org/user/a/lab/tree/x.ipynb",
        servers.into(),
    )
    .expect("conversion");
    assert_eq!(text(&found, &["projectId"]), "mylab");
    assert_eq!(text(&found, &["page"]), "lab");
}

#[wasm_bindgen_test]
async fn errors_cross_as_js_errors_named_by_variant() {
    let error = import_public_key("PuTTY-User-Key-File-3: ssh-ed25519").unwrap_err();
    let error: js_sys::Error = error.dyn_into().expect("a JS Error");
    assert_eq!(error.name(), "PrivateKeyGiven");
    assert!(String::from(error.message()).contains("public key"));
    let error: js_sys::Error = make_key_pair("dsa".into(), "x".into())
        .await
        .unwrap_err()
        .dyn_into()
        .unwrap();
    assert_eq!(error.name(), "UnknownAlgorithm");
}

#[wasm_bindgen_test]
async fn ed25519_keys_come_from_the_browser_rng_and_differ() {
    let first = make_key_pair("ed25519".into(), "a".into()).await.unwrap();
    let second = make_key_pair("ed25519".into(), "a".into()).await.unwrap();
    assert!(text(&first, &["privateKey"]).starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert_ne!(
        text(&first, &["public", "fingerprint"]),
        text(&second, &["public", "fingerprint"])
    );
}

#[wasm_bindgen_test]
async fn every_algorithm_makes_a_key_whose_halves_match() {
    for algorithm in KeyAlgorithm::ALL {
        let name = algorithm.to_string();
        let made = make_key_pair(name.clone(), "made-here".into())
            .await
            .unwrap_or_else(|error| panic!("{name}: {error:?}"));
        let line = text(&made, &["public", "line"]);
        let public = aistudio_ssh::keys::import_public_key(&line)
            .unwrap_or_else(|error| panic!("{name}: the public half does not parse: {error}"));
        let expected_bits = algorithm.rsa_bits().unwrap_or(256);
        assert_eq!(public.bits, expected_bits, "{name}");
        assert_eq!(text(&made, &["public", "fingerprint"]), public.fingerprint);
        assert!(line.ends_with(" made-here"), "{line}");
        let private = KeyPair::import_openssh(&text(&made, &["privateKey"]), None)
            .unwrap_or_else(|error| panic!("{name}: the private half does not parse: {error}"));
        assert_eq!(private.public().unwrap(), public, "{name}: halves differ");
    }
}

/// WebCrypto whose exported JWK was tampered with: the second prime is the first.
struct TamperedWebCrypto;

impl RsaKeyMaker for TamperedWebCrypto {
    async fn make_rsa_jwk(&self, bits: usize) -> Result<RsaJwk, KeyError> {
        let jwk = WebCrypto.make_rsa_jwk(bits).await?;
        Ok(RsaJwk {
            q: jwk.p.clone(),
            ..jwk
        })
    }
}

#[wasm_bindgen_test]
async fn an_rsa_key_made_by_webcrypto_becomes_an_openssh_key() {
    let key = make_key_pair("rsa-2048".into(), "webcrypto".into())
        .await
        .unwrap();
    assert!(text(&key, &["public", "line"]).starts_with("ssh-rsa AAAAB3NzaC1yc2E"));
    assert!(text(&key, &["public", "line"]).ends_with(" webcrypto"));
    assert_eq!(field(&field(&key, "public"), "bits").as_f64(), Some(2048.0));

    // A JWK whose primes were tampered with is refused, not wrapped.
    let error = aistudio_ssh::keys::make_key_pair(
        KeyAlgorithm::Rsa2048,
        "x",
        &mut OsRng,
        &TamperedWebCrypto,
    )
    .await
    .unwrap_err();
    assert_eq!(error.variant(), "InvalidRsaComponents");
}

fn json(text: &str) -> JsValue {
    js_sys::JSON::parse(text).unwrap()
}

#[wasm_bindgen_test]
fn settings_are_checked_field_by_field_and_rendered_with_the_project_keys() {
    let relay_key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEeLjlB+C7KxjA+eCCR2noVi0Q35q+LndIlvgrS0QFJm";
    let bad = json(r#"{"host": "a b", "port": 0, "hostKey": "x"}"#);
    let fields: Array = check_relay(bad.clone()).unwrap().dyn_into().unwrap();
    let names: Vec<String> = fields.iter().map(|f| text(&f, &["field"])).collect();
    assert_eq!(names, ["relay.host", "relay.port", "relay.hostKey"]);
    let error: js_sys::Error = RenderedProject::new("7892508", bad, json("{}"), JsValue::NULL)
        .err()
        .unwrap()
        .dyn_into()
        .unwrap();
    assert_eq!(error.name(), "InvalidSettings");

    let good = json(&format!(
        r#"{{"host": "relay.example.com", "hostKey": "{relay_key}"}}"#
    ));
    assert_eq!(Array::from(&check_relay(good.clone()).unwrap()).length(), 0);
    let keys = field(
        &complete_project_keys("7892508", JsValue::NULL).unwrap(),
        "keys",
    );
    let rendered = RenderedProject::new("7892508", good, json("{}"), keys)
        .unwrap()
        .bundle()
        .unwrap();
    assert!(text(&rendered, &["sshConfig"]).contains("Host aistudio-7892508\n"));
    assert!(text(&rendered, &["relaySetup"]).contains("permitlisten=\"127.0.0.1:7423\""));
    assert!(text(&rendered, &["provision"]).starts_with("#!/usr/bin/env bash"));
    // The cells the extension types carry the container's keys; the companion notebook,
    // which lives in the persistent and shareable ~/work, carries none.
    assert!(text(&rendered, &["provision"]).contains("PRIVATE KEY"));
    let notebook = js_sys::JSON::stringify(&field(&rendered, "notebook"))
        .unwrap()
        .as_string()
        .unwrap();
    assert!(notebook.contains("aistudio-ssh-provision"));
    assert!(!notebook.contains("PRIVATE KEY"), "{notebook}");
}

#[wasm_bindgen_test]
fn a_project_renders_once_from_its_stored_parts_and_plans_from_the_handle() {
    let relay_key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEeLjlB+C7KxjA+eCCR2noVi0Q35q+LndIlvgrS0QFJm";
    let relay = json(&format!(
        r#"{{"host": "relay.example.com", "hostKey": "{relay_key}"}}"#
    ));
    assert_eq!(
        Array::from(&check_relay(relay.clone()).unwrap()).length(),
        0
    );
    let bad_relay = json(r#"{"host": "a b", "hostKey": "x"}"#);
    assert_eq!(
        Array::from(&check_relay(bad_relay.clone()).unwrap()).length(),
        2
    );
    // Blank stored fields take the defaults; the relay is not needed to check them.
    let part = json(r#"{"remotePort": 7424, "containerUser": "", "sshDir": ""}"#);
    assert_eq!(
        Array::from(&check_project_settings("p1", part.clone()).unwrap()).length(),
        0
    );
    assert_eq!(next_remote_port(json("[7423, 7425]")).unwrap(), 7424.0);

    let keys = field(&complete_project_keys("p1", JsValue::NULL).unwrap(), "keys");
    let error: js_sys::Error = RenderedProject::new("p1", bad_relay, part.clone(), keys.clone())
        .err()
        .unwrap()
        .dyn_into()
        .unwrap();
    assert_eq!(error.name(), "InvalidSettings");

    let project = RenderedProject::new("p1", relay, part, keys.clone()).unwrap();
    assert!(text(&project.bundle().unwrap(), &["sshConfig"]).contains("Port 7424\n"));
    let plan = project.cell_plan(JsValue::from_str("disconnect")).unwrap();
    assert_eq!(text(&plan, &["action"]), "disconnect");
    assert_eq!(Array::from(&field(&plan, "cells")).length(), 2);
    assert!(field(&plan, "notebook").is_undefined());
    let files = Array::from(&project.user_files(Some("secret".into())).unwrap());
    let names: Vec<String> = files.iter().map(|f| text(&f, &["name"])).collect();
    assert_eq!(
        names,
        [
            "ssh_config",
            "known_hosts",
            "id_aistudio",
            "id_aistudio.pub",
            "relay-setup.sh"
        ]
    );
    assert!(text(&files.get(2), &["text"]).contains("BEGIN OPENSSH PRIVATE KEY"));
    assert_eq!(
        text(&project.notebook_file().unwrap(), &["name"]),
        "aistudio-ssh.ipynb"
    );

    // Pages see public halves only.
    let view = js_sys::JSON::stringify(&project_keys_view("p1", keys).unwrap())
        .unwrap()
        .as_string()
        .unwrap();
    assert!(
        view.contains("\"hasPrivateKey\":true") && !view.contains("PRIVATE KEY"),
        "{view}"
    );
}
