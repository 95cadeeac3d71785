//! The key bindings: making, importing and exporting keys, and the browser's WebCrypto as
//! the core's RSA key maker.

use js_sys::{Array, Object, Reflect, Uint8Array};
use rand_core::OsRng;
use serde::Serialize;
use tsify::Tsify;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Crypto, CryptoKeyPair};

use super::{core_error, from_js, to_js};
use crate::keys::{KeyAlgorithm, KeyError, KeyPair, RsaJwk, RsaKeyMaker};
use crate::project_keys::{self, ProjectKeys, StoredKey};

#[wasm_bindgen]
extern "C" {
    /// The global scope's `crypto`: a page's and a service worker's alike (a worker has
    /// no `window`).
    #[wasm_bindgen(thread_local_v2, js_name = crypto)]
    static CRYPTO: Crypto;
}

/// RSA keys from the browser's `crypto.subtle`, at native speed.
pub struct WebCrypto;

impl RsaKeyMaker for WebCrypto {
    async fn make_rsa_jwk(&self, bits: usize) -> Result<RsaJwk, KeyError> {
        let subtle = CRYPTO.with(Crypto::subtle);
        // Only the key material is used: the signature scheme and hash named here do not
        // change it, and OpenSSH picks its own when it signs.
        let params = Object::new();
        for (name, value) in [
            ("name", JsValue::from_str("RSASSA-PKCS1-v1_5")),
            ("modulusLength", JsValue::from(bits as u32)),
            ("publicExponent", Uint8Array::from(&[1u8, 0, 1][..]).into()),
            ("hash", JsValue::from_str("SHA-256")),
        ] {
            Reflect::set(&params, &name.into(), &value).map_err(web_crypto_error)?;
        }
        let usages = Array::of2(&"sign".into(), &"verify".into());
        // Extractable, or the private half could not be exported below.
        let made = subtle
            .generate_key_with_object(&params, true, &usages)
            .map_err(web_crypto_error)?;
        let pair: CryptoKeyPair = JsFuture::from(made)
            .await
            .map_err(web_crypto_error)?
            .unchecked_into();
        let exported = subtle
            .export_key("jwk", &pair.get_private_key())
            .map_err(web_crypto_error)?;
        let jwk = JsFuture::from(exported).await.map_err(web_crypto_error)?;
        serde_wasm_bindgen::from_value(jwk).map_err(|error| KeyError::WebCrypto {
            detail: format!("the exported JWK: {error}"),
        })
    }
}

/// What a rejected WebCrypto promise carries (a `DOMException` such as `OperationError`).
fn web_crypto_error(error: JsValue) -> KeyError {
    let detail = match error.dyn_ref::<js_sys::Error>() {
        Some(error) => format!("{}: {}", error.name(), error.message()),
        None => format!("{error:?}"),
    };
    KeyError::WebCrypto { detail }
}

fn stored(pair: &KeyPair) -> Result<JsValue, JsValue> {
    to_js(&StoredKey::from_pair(pair).map_err(core_error)?)
}

/// A new key (`StoredKey`); `algorithm` is `ed25519` or `rsa-<bits>`. Ed25519 comes from
/// the browser's RNG through Rust, RSA from WebCrypto, checked and wrapped by Rust.
#[wasm_bindgen(js_name = makeKeyPair, unchecked_return_type = "StoredKey")]
pub async fn make_key_pair(
    #[wasm_bindgen(unchecked_param_type = "KeyAlgorithm")] algorithm: String,
    comment: String,
) -> Result<JsValue, JsValue> {
    let algorithm = algorithm.parse::<KeyAlgorithm>().map_err(core_error)?;
    let pair = crate::keys::make_key_pair(algorithm, &comment, &mut OsRng, &WebCrypto)
        .await
        .map_err(core_error)?;
    stored(&pair)
}

/// A `StoredKey` from what the user pasted as their client key: a public key line, or an
/// OpenSSH private key (decrypted with `passphrase` when protected).
#[wasm_bindgen(js_name = importClientKey, unchecked_return_type = "StoredKey")]
pub fn import_client_key(text: &str, passphrase: Option<String>) -> Result<JsValue, JsValue> {
    to_js(&StoredKey::from_paste(text, passphrase.as_deref()).map_err(core_error)?)
}

/// `PublicKeyInfo` of a pasted public key or authorized_keys line.
#[wasm_bindgen(js_name = importPublicKey, unchecked_return_type = "PublicKeyInfo")]
pub fn import_public_key(text: &str) -> Result<JsValue, JsValue> {
    to_js(&crate::keys::import_public_key(text).map_err(core_error)?)
}

/// A project's keys with the missing ones made, and which were made.
#[derive(Serialize, Tsify)]
pub struct CompletedKeys {
    keys: ProjectKeys,
    made: Vec<project_keys::KeyRole>,
}

/// The project's keys with the missing ones made.
#[wasm_bindgen(js_name = completeProjectKeys, unchecked_return_type = "CompletedKeys")]
pub fn complete_project_keys(
    project_id: &str,
    #[wasm_bindgen(unchecked_param_type = "ProjectKeys | null")] existing: JsValue,
) -> Result<JsValue, JsValue> {
    let existing: Option<ProjectKeys> = from_js(existing, "stored project keys")?;
    let (keys, made) =
        project_keys::complete_project_keys(project_id, existing.unwrap_or_default(), &mut OsRng)
            .map_err(core_error)?;
    to_js(&CompletedKeys { keys, made })
}
