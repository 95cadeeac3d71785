//! SSH keys made in the browser: generation, the exact OpenSSH encodings, fingerprints and import.
//!
//! One file per concern, as bitwarden-ssh and ssh-key keep theirs: [`KeyAlgorithm`] and key
//! sizes, making keys, reading pasted ones, writing them out, and the two error types
//! (reading pasted text apart from making and writing).

mod algorithm;
mod error;
mod export;
mod generate;
mod import;

use core::fmt;

use serde::{Deserialize, Serialize};
use ssh_key::private::KeypairData;
use ssh_key::{HashAlg, PrivateKey, PublicKey};

pub use algorithm::{KeyAlgorithm, MIN_RSA_BITS};
pub use error::{KeyError, KeyImportError};
pub use export::BCRYPT_ROUNDS;
pub use generate::{make_key_pair, RsaComponents, RsaJwk, RsaKeyMaker};
pub use import::{import_public_key, MAX_IMPORT_BCRYPT_ROUNDS, MAX_KEY_TEXT_BYTES};

/// What anyone may see of a key: the `authorized_keys` line and the fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyInfo {
    /// `<algorithm> <base64> <comment>`, the line of a `.pub` file.
    pub line: String,
    /// `SHA256:<base64>` exactly as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The OpenSSH algorithm name, such as `ssh-ed25519` or `ssh-rsa`.
    pub algorithm: String,
    /// Key size in bits, as `ssh-keygen -l` prints it (256 for Ed25519).
    pub bits: usize,
    /// The comment, often `user@host`; may be empty.
    pub comment: String,
}

/// A comment that stays on its line: every control character (a newline in a crafted key
/// would start a new `authorized_keys` line) becomes a blank.
fn single_line_comment(comment: &str) -> String {
    comment
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

impl PublicKeyInfo {
    fn of(public: &PublicKey) -> Result<Self, ssh_key::Error> {
        let comment = single_line_comment(public.comment());
        if comment != public.comment() {
            let mut public = public.clone();
            public.set_comment(comment);
            return Self::of(&public);
        }
        Ok(Self {
            line: public.to_openssh()?,
            fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
            algorithm: public.algorithm().as_str().to_owned(),
            bits: algorithm::key_bits(public.key_data()),
            comment: public.comment().to_owned(),
        })
    }
}

/// An unencrypted private key held in memory. Its text form leaves only through
/// [`KeyPair::to_openssh`] and [`KeyPair::to_openssh_encrypted`].
#[derive(Clone)]
pub struct KeyPair {
    key: PrivateKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private half, even in logs.
        f.debug_struct("KeyPair")
            .field("public", &self.key.public_key().to_openssh().ok())
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    fn from_keypair_data(data: KeypairData, comment: &str) -> Result<Self, ssh_key::Error> {
        Ok(Self {
            key: PrivateKey::new(data, comment)?,
        })
    }

    /// The key's comment.
    pub fn comment(&self) -> &str {
        self.key.comment()
    }
}
