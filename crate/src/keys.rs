//! SSH keys made in the browser: generation, the exact OpenSSH encodings, fingerprints and import.

use core::fmt;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

/// The largest key text we look at. An OpenSSH RSA-16384 private key is about 12 KB;
/// anything much larger is not a key, and parsing it would only waste the user's time.
pub const MAX_KEY_TEXT_BYTES: usize = 64 * 1024;

/// The smallest RSA key we make or accept: OpenSSH refuses smaller ones since 8.8.
pub const MIN_RSA_BITS: usize = 2048;

/// bcrypt-pbkdf rounds for passphrase-protected keys, as `ssh-keygen` uses by default.
pub const BCRYPT_ROUNDS: u32 = 16;

/// The most bcrypt-pbkdf rounds an imported key may ask for. Decrypting costs time linear
/// in the rounds (256 rounds: 1.7 s in native `ssh-keygen -y` here, several times that in
/// wasm); a crafted key asking for billions would hang the extension's worker. `ssh-keygen
/// -a` users pick 16 to 100, some a few hundred.
pub const MAX_IMPORT_BCRYPT_ROUNDS: u32 = 512;

const OPENSSH_PRIVATE_HEADER: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PUTTY_HEADER: &str = "PuTTY-User-Key-File-";
const SSH2_PUBLIC_HEADER: &str = "---- BEGIN SSH2 PUBLIC KEY ----";

/// A key type the extension can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
// The names of `KeyAlgorithm::name` (serde's kebab-case would write `rsa2048`).
pub enum KeyAlgorithm {
    /// `ssh-ed25519`: small and fast; the default for every key.
    #[serde(rename = "ed25519")]
    Ed25519,
    /// `ssh-rsa` with a 2048-bit modulus, for tools that know no Ed25519.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// `ssh-rsa` with a 3072-bit modulus, `ssh-keygen`'s RSA default.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// `ssh-rsa` with a 4096-bit modulus.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl KeyAlgorithm {
    /// Every algorithm, in the order the UI offers them.
    pub const ALL: [KeyAlgorithm; 4] = [Self::Ed25519, Self::Rsa2048, Self::Rsa3072, Self::Rsa4096];

    /// The RSA modulus size, or `None` for Ed25519.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            Self::Ed25519 => None,
            Self::Rsa2048 => Some(2048),
            Self::Rsa3072 => Some(3072),
            Self::Rsa4096 => Some(4096),
        }
    }

    /// The name used in settings and across the wasm boundary (`ed25519`, `rsa-3072`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for KeyAlgorithm {
    type Err = KeyError;

    /// Reads [`KeyAlgorithm::name`].
    ///
    /// # Errors
    /// [`KeyError::UnknownAlgorithm`] for any other name.
    fn from_str(name: &str) -> Result<Self, KeyError> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.name() == name)
            .ok_or_else(|| KeyError::UnknownAlgorithm {
                name: name.chars().take(40).collect(),
            })
    }
}

/// Why a key could not be made, read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The requested algorithm name is not one we make.
    UnknownAlgorithm { name: String },
    /// Nothing was pasted.
    Empty,
    /// The text is larger than any key could be.
    TooLarge { bytes: usize },
    /// A PuTTY `.ppk` file, which OpenSSH cannot read.
    PuttyFormat,
    /// A PEM or PKCS#8 private key (`BEGIN RSA PRIVATE KEY` and kin), not the OpenSSH format.
    LegacyPem { label: String },
    /// An RFC 4716 (`---- BEGIN SSH2 PUBLIC KEY ----`) public key.
    Ssh2PublicKey,
    /// A public key was given where a private key was expected.
    PublicKeyGiven,
    /// A private key was given where a public key was expected.
    PrivateKeyGiven,
    /// The OpenSSH private key text is cut off or damaged.
    Damaged { detail: String },
    /// The text is not an SSH key at all.
    NotAKey,
    /// A key type OpenSSH (or we) no longer accept, such as `ssh-dss`.
    UnsupportedAlgorithm { algorithm: String },
    /// An RSA key below [`MIN_RSA_BITS`].
    RsaTooSmall { bits: usize },
    /// The key is passphrase-protected and no passphrase was given.
    PassphraseRequired,
    /// The passphrase does not decrypt the key.
    WrongPassphrase,
    /// An empty passphrase was given to protect a key.
    EmptyPassphrase,
    /// RSA numbers (from WebCrypto) that do not form a valid key.
    InvalidRsaComponents { detail: String },
    /// A passphrase-protected key asks for more bcrypt rounds than we run.
    TooManyRounds { rounds: u32 },
    /// Key generation or encoding failed inside the crypto library.
    Crypto { detail: String },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ACCEPTED_PRIVATE: &str = "paste an OpenSSH private key (the text starting with \
             -----BEGIN OPENSSH PRIVATE KEY-----, as ssh-keygen writes it), Ed25519, RSA or ECDSA";
        const ACCEPTED_PUBLIC: &str = "paste one OpenSSH public key line such as \
             'ssh-ed25519 AAAA... you@laptop' (the contents of a .pub file), or an authorized_keys line";
        match self {
            Self::UnknownAlgorithm { name } => write!(
                f,
                "key type '{name}' is not one we make; choose ed25519, rsa-2048, rsa-3072 or rsa-4096"
            ),
            Self::Empty => write!(f, "the key is empty; {ACCEPTED_PRIVATE}"),
            Self::TooLarge { bytes } => write!(
                f,
                "the pasted text is {bytes} bytes, more than any SSH key ({MAX_KEY_TEXT_BYTES} bytes at most)"
            ),
            Self::PuttyFormat => write!(
                f,
                "this is a PuTTY .ppk key, which OpenSSH cannot read; in PuTTYgen load it and use \
                 Conversions > Export OpenSSH key, then paste that file"
            ),
            Self::LegacyPem { label } => write!(
                f,
                "this is a '{label}' key in the old PEM format; convert it with \
                 'ssh-keygen -p -f <file>' (which rewrites it in OpenSSH format), then paste it again"
            ),
            Self::Ssh2PublicKey => write!(
                f,
                "this is an RFC 4716 (SSH2) public key; convert it with 'ssh-keygen -i -f <file>' \
                 and paste the one-line result"
            ),
            Self::PublicKeyGiven => {
                write!(f, "this is a public key, but a private key is needed here; {ACCEPTED_PRIVATE}")
            }
            Self::PrivateKeyGiven => write!(
                f,
                "this is a private key; never paste it here. A public key is needed: {ACCEPTED_PUBLIC}"
            ),
            Self::Damaged { detail } => write!(
                f,
                "the OpenSSH private key is damaged or cut off ({detail}); copy the whole file, \
                 from -----BEGIN to the -----END line"
            ),
            Self::NotAKey => write!(
                f,
                "this is not an SSH key; {ACCEPTED_PRIVATE}, or for a public key {ACCEPTED_PUBLIC}"
            ),
            Self::UnsupportedAlgorithm { algorithm } => write!(
                f,
                "{algorithm} keys are not accepted (OpenSSH has dropped or never had them); \
                 use Ed25519, RSA (2048 bits or more) or ECDSA"
            ),
            Self::RsaTooSmall { bits } => write!(
                f,
                "this RSA key has {bits} bits; OpenSSH refuses RSA keys under {MIN_RSA_BITS} bits"
            ),
            Self::PassphraseRequired => {
                write!(f, "this key is protected by a passphrase; enter the passphrase")
            }
            Self::WrongPassphrase => write!(f, "the passphrase does not unlock this key"),
            Self::EmptyPassphrase => write!(
                f,
                "the passphrase is empty; enter one, or export the key without a passphrase"
            ),
            Self::InvalidRsaComponents { detail } => {
                write!(f, "the browser produced an invalid RSA key ({detail})")
            }
            Self::TooManyRounds { rounds } => write!(
                f,
                "this key's passphrase asks for {rounds} bcrypt rounds, more than the \
                 {MAX_IMPORT_BCRYPT_ROUNDS} we run (decrypting would take too long); lower them with \
                 'ssh-keygen -p -a 100 -f <file>', then paste it again"
            ),
            Self::Crypto { detail } => write!(f, "the key could not be made or written ({detail})"),
        }
    }
}

impl std::error::Error for KeyError {}

impl KeyError {
    /// A stable name for the variant, for the UI to switch on.
    pub fn variant(&self) -> &'static str {
        match self {
            Self::UnknownAlgorithm { .. } => "UnknownAlgorithm",
            Self::Empty => "Empty",
            Self::TooLarge { .. } => "TooLarge",
            Self::PuttyFormat => "PuttyFormat",
            Self::LegacyPem { .. } => "LegacyPem",
            Self::Ssh2PublicKey => "Ssh2PublicKey",
            Self::PublicKeyGiven => "PublicKeyGiven",
            Self::PrivateKeyGiven => "PrivateKeyGiven",
            Self::Damaged { .. } => "Damaged",
            Self::NotAKey => "NotAKey",
            Self::UnsupportedAlgorithm { .. } => "UnsupportedAlgorithm",
            Self::RsaTooSmall { .. } => "RsaTooSmall",
            Self::PassphraseRequired => "PassphraseRequired",
            Self::WrongPassphrase => "WrongPassphrase",
            Self::EmptyPassphrase => "EmptyPassphrase",
            Self::InvalidRsaComponents { .. } => "InvalidRsaComponents",
            Self::TooManyRounds { .. } => "TooManyRounds",
            Self::Crypto { .. } => "Crypto",
        }
    }
}

fn crypto_error(error: ssh_key::Error) -> KeyError {
    KeyError::Crypto {
        detail: error.to_string(),
    }
}

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
    fn of(public: &PublicKey) -> Result<Self, KeyError> {
        let comment = single_line_comment(public.comment());
        if comment != public.comment() {
            let mut public = public.clone();
            public.set_comment(comment);
            return Self::of(&public);
        }
        Ok(Self {
            line: public.to_openssh().map_err(crypto_error)?,
            fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
            algorithm: public.algorithm().as_str().to_owned(),
            bits: key_bits(public.key_data()),
            comment: public.comment().to_owned(),
        })
    }
}

fn key_bits(key: &ssh_key::public::KeyData) -> usize {
    use ssh_key::public::KeyData;
    match key {
        KeyData::Rsa(rsa) => mpint_bits(rsa.n.as_positive_bytes().unwrap_or_default()),
        KeyData::Ecdsa(ecdsa) => match ecdsa.curve() {
            ssh_key::EcdsaCurve::NistP256 => 256,
            ssh_key::EcdsaCurve::NistP384 => 384,
            ssh_key::EcdsaCurve::NistP521 => 521,
        },
        _ => 256,
    }
}

fn mpint_bits(big_endian: &[u8]) -> usize {
    match big_endian.iter().position(|&byte| byte != 0) {
        Some(first) => (big_endian.len() - first) * 8 - big_endian[first].leading_zeros() as usize,
        None => 0,
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
    /// Makes a new key with randomness from `rng`.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if the crypto library fails (it should not).
    pub fn generate(
        algorithm: KeyAlgorithm,
        comment: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, KeyError> {
        let data = match algorithm.rsa_bits() {
            None => KeypairData::from(ssh_key::private::Ed25519Keypair::random(rng)),
            Some(bits) => KeypairData::from(RsaKeypair::random(rng, bits).map_err(crypto_error)?),
        };
        Self::from_keypair_data(data, comment)
    }

    /// Wraps an RSA key made elsewhere (the browser's WebCrypto) after checking it:
    /// `p * q = n`, `d` inverts `e`, and the size is at least [`MIN_RSA_BITS`].
    /// All numbers are unsigned big-endian bytes, as a JWK carries them.
    ///
    /// # Errors
    /// [`KeyError::InvalidRsaComponents`] when the numbers do not form a key,
    /// [`KeyError::RsaTooSmall`] when it is too short.
    pub fn from_rsa_components(
        components: &RsaComponents,
        comment: &str,
    ) -> Result<Self, KeyError> {
        use rsa::traits::PublicKeyParts;
        let number = |bytes: &[u8]| rsa::BigUint::from_bytes_be(bytes);
        let key = rsa::RsaPrivateKey::from_components(
            number(&components.n),
            number(&components.e),
            number(&components.d),
            vec![number(&components.p), number(&components.q)],
        )
        .map_err(|error| KeyError::InvalidRsaComponents {
            detail: error.to_string(),
        })?;
        key.validate()
            .map_err(|error| KeyError::InvalidRsaComponents {
                detail: error.to_string(),
            })?;
        let bits = key.n().bits();
        if bits < MIN_RSA_BITS {
            return Err(KeyError::RsaTooSmall { bits });
        }
        let keypair = RsaKeypair::try_from(key).map_err(crypto_error)?;
        Self::from_keypair_data(KeypairData::from(keypair), comment)
    }

    fn from_keypair_data(data: KeypairData, comment: &str) -> Result<Self, KeyError> {
        let key = PrivateKey::new(data, comment).map_err(crypto_error)?;
        Ok(Self { key })
    }

    /// Reads a pasted OpenSSH private key, decrypting it with `passphrase` when it is protected.
    ///
    /// # Errors
    /// A specific [`KeyError`] for each kind of wrong input: PuTTY and PEM files, public
    /// keys, damaged text, DSA keys, a missing or wrong passphrase.
    pub fn import_openssh(text: &str, passphrase: Option<&str>) -> Result<Self, KeyError> {
        let text = check_size(text)?;
        if !text.starts_with(OPENSSH_PRIVATE_HEADER) {
            return Err(classify_foreign_private(text));
        }
        let parsed = PrivateKey::from_openssh(text).map_err(|error| match error {
            ssh_key::Error::AlgorithmUnknown => KeyError::UnsupportedAlgorithm {
                algorithm: "this key type".to_owned(),
            },
            ssh_key::Error::AlgorithmUnsupported { algorithm } => unsupported(&algorithm),
            other => KeyError::Damaged {
                detail: other.to_string(),
            },
        })?;
        let mut key = if parsed.is_encrypted() {
            if let ssh_key::Kdf::Bcrypt { rounds, .. } = parsed.kdf() {
                if *rounds > MAX_IMPORT_BCRYPT_ROUNDS {
                    return Err(KeyError::TooManyRounds { rounds: *rounds });
                }
            }
            let passphrase = passphrase
                .filter(|p| !p.is_empty())
                .ok_or(KeyError::PassphraseRequired)?;
            parsed.decrypt(passphrase).map_err(|error| match error {
                ssh_key::Error::Crypto => KeyError::WrongPassphrase,
                other => KeyError::Damaged {
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

    /// The OpenSSH private key file, unencrypted, with `\n` line endings.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if encoding fails (it should not).
    pub fn to_openssh(&self) -> Result<Zeroizing<String>, KeyError> {
        self.key.to_openssh(LineEnding::LF).map_err(crypto_error)
    }

    /// The OpenSSH private key file protected by `passphrase` (aes256-ctr, bcrypt-pbkdf
    /// with [`BCRYPT_ROUNDS`] rounds and a random salt), as `ssh-keygen -N` writes it.
    ///
    /// # Errors
    /// [`KeyError::EmptyPassphrase`] for an empty passphrase; [`KeyError::Crypto`] if encryption fails.
    pub fn to_openssh_encrypted(
        &self,
        passphrase: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Zeroizing<String>, KeyError> {
        if passphrase.is_empty() {
            return Err(KeyError::EmptyPassphrase);
        }
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let kdf = ssh_key::Kdf::Bcrypt {
            salt: salt.to_vec(),
            rounds: BCRYPT_ROUNDS,
        };
        self.key
            .encrypt_with(ssh_key::Cipher::Aes256Ctr, kdf, rng.next_u32(), passphrase)
            .and_then(|encrypted| encrypted.to_openssh(LineEnding::LF))
            .map_err(crypto_error)
    }

    /// The public half.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if encoding fails (it should not).
    pub fn public(&self) -> Result<PublicKeyInfo, KeyError> {
        PublicKeyInfo::of(self.key.public_key())
    }

    /// The key's comment.
    pub fn comment(&self) -> &str {
        self.key.comment()
    }
}

/// The numbers of an RSA private key, unsigned big-endian, as a JWK carries them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RsaComponents {
    /// Modulus.
    pub n: Vec<u8>,
    /// Public exponent.
    pub e: Vec<u8>,
    /// Private exponent.
    pub d: Vec<u8>,
    /// First prime.
    pub p: Vec<u8>,
    /// Second prime.
    pub q: Vec<u8>,
}

impl fmt::Debug for RsaComponents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaComponents")
            .field("n_len", &self.n.len())
            .finish_non_exhaustive()
    }
}

/// An RSA private key as `SubtleCrypto.exportKey("jwk", ...)` gives it: numbers in
/// unpadded base64url. The CRT values (`dp`, `dq`, `qi`) are recomputed, not trusted.
#[derive(Debug, Clone, Deserialize)]
pub struct RsaJwk {
    /// Key type; must be `RSA`.
    pub kty: String,
    /// Modulus.
    pub n: String,
    /// Public exponent.
    pub e: String,
    /// Private exponent.
    pub d: String,
    /// First prime.
    pub p: String,
    /// Second prime.
    pub q: String,
}

impl TryFrom<&RsaJwk> for RsaComponents {
    type Error = KeyError;

    fn try_from(jwk: &RsaJwk) -> Result<Self, KeyError> {
        use base64ct::{Base64UrlUnpadded, Encoding};
        if jwk.kty != "RSA" {
            return Err(KeyError::InvalidRsaComponents {
                detail: format!("JWK type {:?}, expected RSA", jwk.kty),
            });
        }
        let decode = |field: &str, value: &str| {
            Base64UrlUnpadded::decode_vec(value).map_err(|_| KeyError::InvalidRsaComponents {
                detail: format!("JWK field {field} is not base64url"),
            })
        };
        Ok(Self {
            n: decode("n", &jwk.n)?,
            e: decode("e", &jwk.e)?,
            d: decode("d", &jwk.d)?,
            p: decode("p", &jwk.p)?,
            q: decode("q", &jwk.q)?,
        })
    }
}

impl Drop for RsaComponents {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.d.zeroize();
        self.p.zeroize();
        self.q.zeroize();
    }
}

/// Reads a pasted public key: a `.pub` line, or an `authorized_keys` line whose options
/// are dropped (the extension writes its own).
///
/// # Errors
/// [`KeyError::PrivateKeyGiven`] for a private key, [`KeyError::Ssh2PublicKey`] for the
/// RFC 4716 format, [`KeyError::UnsupportedAlgorithm`] for DSA, [`KeyError::NotAKey`] otherwise.
pub fn import_public_key(text: &str) -> Result<PublicKeyInfo, KeyError> {
    let text = check_size(text)?;
    if text.contains("PRIVATE KEY") || text.starts_with(PUTTY_HEADER) {
        return Err(KeyError::PrivateKeyGiven);
    }
    if text.starts_with(SSH2_PUBLIC_HEADER) {
        return Err(KeyError::Ssh2PublicKey);
    }
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let line = lines.next().ok_or(KeyError::Empty)?;
    if lines.next().is_some() {
        return Err(KeyError::NotAKey);
    }
    if line.starts_with("ssh-dss ") {
        return Err(unsupported(&Algorithm::Dsa));
    }
    let public = PublicKey::from_openssh(line)
        .or_else(|_| PublicKey::from_openssh(after_authorized_keys_options(line)))
        .map_err(|_| KeyError::NotAKey)?;
    check_algorithm(&public)?;
    PublicKeyInfo::of(&public)
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

fn check_size(text: &str) -> Result<&str, KeyError> {
    if text.len() > MAX_KEY_TEXT_BYTES {
        return Err(KeyError::TooLarge { bytes: text.len() });
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(text)
}

/// Names what a pasted non-OpenSSH private key is, so the user learns how to convert it.
fn classify_foreign_private(text: &str) -> KeyError {
    if text.starts_with(PUTTY_HEADER) {
        return KeyError::PuttyFormat;
    }
    if let Some(label) = text
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .map(|(label, _)| label)
    {
        if label.contains("PUBLIC KEY") {
            return KeyError::PublicKeyGiven;
        }
        if label == "DSA PRIVATE KEY" {
            return unsupported(&Algorithm::Dsa);
        }
        if label.contains("PRIVATE KEY") {
            return KeyError::LegacyPem {
                label: label.chars().take(40).collect(),
            };
        }
    }
    if text.starts_with(SSH2_PUBLIC_HEADER) || PublicKey::from_openssh(text).is_ok() {
        return KeyError::PublicKeyGiven;
    }
    if text.contains(OPENSSH_PRIVATE_HEADER) {
        return KeyError::Damaged {
            detail: "text before the BEGIN line".to_owned(),
        };
    }
    KeyError::NotAKey
}

fn unsupported(algorithm: &Algorithm) -> KeyError {
    KeyError::UnsupportedAlgorithm {
        algorithm: match algorithm {
            Algorithm::Dsa => "DSA (ssh-dss)".to_owned(),
            other => other.as_str().to_owned(),
        },
    }
}

fn check_algorithm(public: &PublicKey) -> Result<(), KeyError> {
    match public.algorithm() {
        Algorithm::Ed25519
        | Algorithm::SkEd25519
        | Algorithm::Ecdsa { .. }
        | Algorithm::SkEcdsaSha2NistP256 => Ok(()),
        Algorithm::Rsa { .. } => match key_bits(public.key_data()) {
            bits if bits < MIN_RSA_BITS => Err(KeyError::RsaTooSmall { bits }),
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

    #[test]
    fn mpint_bits_counts_from_the_first_set_bit() {
        assert_eq!(mpint_bits(&[]), 0);
        assert_eq!(mpint_bits(&[0, 0x01]), 1);
        assert_eq!(mpint_bits(&[0x80, 0]), 16);
        assert_eq!(mpint_bits(&[0x00, 0x7f, 0xff]), 15);
    }

    #[test]
    fn every_algorithm_name_round_trips() {
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(algorithm.to_string().parse(), Ok(algorithm));
        }
        assert!(matches!(
            "dsa".parse::<KeyAlgorithm>(),
            Err(KeyError::UnknownAlgorithm { .. })
        ));
    }

    #[test]
    fn serde_writes_and_reads_the_algorithm_names() {
        for algorithm in KeyAlgorithm::ALL {
            let json = serde_json::to_value(algorithm).unwrap();
            assert_eq!(json, serde_json::Value::from(algorithm.name()));
            assert_eq!(
                serde_json::from_value::<KeyAlgorithm>(json).unwrap(),
                algorithm
            );
        }
    }
}
