//! Reading what users paste: OpenSSH private keys and public key lines, and naming every
//! other format so the user learns how to convert it.

use ssh_key::{Algorithm, PrivateKey, PublicKey};

use super::algorithm::key_bits;
use super::{single_line_comment, KeyImportError, KeyPair, PublicKeyInfo, MIN_RSA_BITS};

/// The largest key text we look at. An OpenSSH RSA-16384 private key is about 12 KB;
/// anything much larger is not a key, and parsing it would only waste the user's time.
pub const MAX_KEY_TEXT_BYTES: usize = 64 * 1024;

/// The most bcrypt-pbkdf rounds an imported key may ask for. Decrypting costs time linear
/// in the rounds (256 rounds: 1.7 s in native `ssh-keygen -y` here, several times that in
/// wasm); a crafted key asking for billions would hang the extension's worker. `ssh-keygen
/// -a` users pick 16 to 100, some a few hundred.
pub const MAX_IMPORT_BCRYPT_ROUNDS: u32 = 512;

const OPENSSH_PRIVATE_HEADER: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PUTTY_HEADER: &str = "PuTTY-User-Key-File-";
const SSH2_PUBLIC_HEADER: &str = "---- BEGIN SSH2 PUBLIC KEY ----";

impl KeyPair {
    /// Reads a pasted OpenSSH private key, decrypting it with `passphrase` when it is protected.
    ///
    /// # Errors
    /// A specific [`KeyImportError`] for each kind of wrong input: PuTTY and PEM files,
    /// public keys, damaged text, DSA keys, a missing or wrong passphrase.
    pub fn import_openssh(text: &str, passphrase: Option<&str>) -> Result<Self, KeyImportError> {
        let text = check_size(text)?;
        if !text.starts_with(OPENSSH_PRIVATE_HEADER) {
            return Err(classify_foreign_private(text));
        }
        let parsed = PrivateKey::from_openssh(text).map_err(|error| match error {
            ssh_key::Error::AlgorithmUnknown => KeyImportError::UnsupportedAlgorithm {
                algorithm: "this key type".to_owned(),
            },
            ssh_key::Error::AlgorithmUnsupported { algorithm } => unsupported(&algorithm),
            other => KeyImportError::Damaged {
                detail: other.to_string(),
            },
        })?;
        let mut key = if parsed.is_encrypted() {
            if let ssh_key::Kdf::Bcrypt { rounds, .. } = parsed.kdf() {
                if *rounds > MAX_IMPORT_BCRYPT_ROUNDS {
                    return Err(KeyImportError::TooManyRounds { rounds: *rounds });
                }
            }
            let passphrase = passphrase
                .filter(|p| !p.is_empty())
                .ok_or(KeyImportError::PassphraseRequired)?;
            parsed.decrypt(passphrase).map_err(|error| match error {
                ssh_key::Error::Crypto => KeyImportError::WrongPassphrase,
                other => KeyImportError::Damaged {
                    detail: other.to_string(),
                },
            })?
        } else {
            parsed
        };
        check_algorithm(key.public_key())?;
        // The comment travels into authorized_keys and the bundle's .pub file.
        let comment = single_line_comment(key.comment());
        if comment != key.comment() {
            key.set_comment(comment);
        }
        Ok(Self { key })
    }
}

/// Reads a pasted public key: a `.pub` line, or an `authorized_keys` line whose options
/// are dropped (the extension writes its own).
///
/// # Errors
/// [`KeyImportError::PrivateKeyGiven`] for a private key, [`KeyImportError::Ssh2PublicKey`]
/// for the RFC 4716 format, [`KeyImportError::UnsupportedAlgorithm`] for DSA,
/// [`KeyImportError::NotAKey`] otherwise.
pub fn import_public_key(text: &str) -> Result<PublicKeyInfo, KeyImportError> {
    let text = check_size(text)?;
    if text.contains("PRIVATE KEY") || text.starts_with(PUTTY_HEADER) {
        return Err(KeyImportError::PrivateKeyGiven);
    }
    if text.starts_with(SSH2_PUBLIC_HEADER) {
        return Err(KeyImportError::Ssh2PublicKey);
    }
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let line = lines.next().ok_or(KeyImportError::Empty)?;
    if lines.next().is_some() {
        return Err(KeyImportError::NotAKey);
    }
    if line.starts_with("ssh-dss ") {
        return Err(unsupported(&Algorithm::Dsa));
    }
    let public = PublicKey::from_openssh(line)
        .or_else(|_| PublicKey::from_openssh(after_authorized_keys_options(line)))
        .map_err(|_| KeyImportError::NotAKey)?;
    check_algorithm(&public)?;
    PublicKeyInfo::of(&public).map_err(|error| KeyImportError::Crypto {
        detail: error.to_string(),
    })
}

/// The rest of an `authorized_keys` line after its options field, which ends at the
/// first blank outside double quotes (`command="echo hi"` holds a blank).
fn after_authorized_keys_options(line: &str) -> &str {
    let mut in_quotes = false;
    let mut escaped = false;
    for (index, character) in line.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            ' ' | '\t' if !in_quotes => return line[index..].trim_start(),
            _ => {}
        }
    }
    ""
}

fn check_size(text: &str) -> Result<&str, KeyImportError> {
    if text.len() > MAX_KEY_TEXT_BYTES {
        return Err(KeyImportError::TooLarge { bytes: text.len() });
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(KeyImportError::Empty);
    }
    Ok(text)
}

/// Names what a pasted non-OpenSSH private key is, so the user learns how to convert it.
fn classify_foreign_private(text: &str) -> KeyImportError {
    if text.starts_with(PUTTY_HEADER) {
        return KeyImportError::PuttyFormat;
    }
    if let Some(label) = text
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .map(|(label, _)| label)
    {
        if label.contains("PUBLIC KEY") {
            return KeyImportError::PublicKeyGiven;
        }
        if label == "DSA PRIVATE KEY" {
            return unsupported(&Algorithm::Dsa);
        }
        if label.contains("PRIVATE KEY") {
            return KeyImportError::LegacyPem {
                label: label.chars().take(40).collect(),
            };
        }
    }
    if text.starts_with(SSH2_PUBLIC_HEADER) || PublicKey::from_openssh(text).is_ok() {
        return KeyImportError::PublicKeyGiven;
    }
    if text.contains(OPENSSH_PRIVATE_HEADER) {
        return KeyImportError::Damaged {
            detail: "text before the BEGIN line".to_owned(),
        };
    }
    KeyImportError::NotAKey
}

fn unsupported(algorithm: &Algorithm) -> KeyImportError {
    KeyImportError::UnsupportedAlgorithm {
        algorithm: match algorithm {
            Algorithm::Dsa => "DSA (ssh-dss)".to_owned(),
            other => other.as_str().to_owned(),
        },
    }
}

fn check_algorithm(public: &PublicKey) -> Result<(), KeyImportError> {
    match public.algorithm() {
        Algorithm::Ed25519
        | Algorithm::SkEd25519
        | Algorithm::Ecdsa { .. }
        | Algorithm::SkEcdsaSha2NistP256 => Ok(()),
        Algorithm::Rsa { .. } => match key_bits(public.key_data()) {
            bits if bits < MIN_RSA_BITS => Err(KeyImportError::RsaTooSmall { bits }),
            _ => Ok(()),
        },
        other => Err(unsupported(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_end_at_the_first_blank_outside_quotes() {
        assert_eq!(
            after_authorized_keys_options("restrict ssh-ed25519 A c"),
            "ssh-ed25519 A c"
        );
        assert_eq!(
            after_authorized_keys_options(r#"command="echo \"a b\"",restrict  ssh-rsa B"#),
            "ssh-rsa B"
        );
        assert_eq!(after_authorized_keys_options("no-blank-at-all"), "");
    }
}
