//! Why a key could not be read, and why one could not be made or written.

use core::fmt;

use strum::IntoStaticStr;

use super::{MAX_IMPORT_BCRYPT_ROUNDS, MAX_KEY_TEXT_BYTES, MIN_RSA_BITS};

/// Why pasted text is not a key we take. Each variant says what the text is and how to
/// turn it into what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, IntoStaticStr)]
#[non_exhaustive]
pub enum KeyImportError {
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
    /// A passphrase-protected key asks for more bcrypt rounds than we run.
    TooManyRounds { rounds: u32 },
    /// The key read could not be encoded again inside the crypto library.
    Crypto { detail: String },
}

impl fmt::Display for KeyImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ACCEPTED_PRIVATE: &str = "paste an OpenSSH private key (the text starting with \
             -----BEGIN OPENSSH PRIVATE KEY-----, as ssh-keygen writes it), Ed25519, RSA or ECDSA";
        const ACCEPTED_PUBLIC: &str = "paste one OpenSSH public key line such as \
             'ssh-ed25519 AAAA... you@laptop' (the contents of a .pub file), or an authorized_keys line";
        match self {
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
            Self::RsaTooSmall { bits } => rsa_too_small(f, *bits),
            Self::PassphraseRequired => {
                write!(f, "this key is protected by a passphrase; enter the passphrase")
            }
            Self::WrongPassphrase => write!(f, "the passphrase does not unlock this key"),
            Self::TooManyRounds { rounds } => write!(
                f,
                "this key's passphrase asks for {rounds} bcrypt rounds, more than the \
                 {MAX_IMPORT_BCRYPT_ROUNDS} we run (decrypting would take too long); lower them with \
                 'ssh-keygen -p -a 100 -f <file>', then paste it again"
            ),
            Self::Crypto { detail } => crypto(f, detail),
        }
    }
}

impl std::error::Error for KeyImportError {}

/// Why a key could not be made or written.
#[derive(Debug, Clone, PartialEq, Eq, IntoStaticStr)]
#[non_exhaustive]
pub enum KeyError {
    /// The requested algorithm name is not one we make.
    UnknownAlgorithm { name: String },
    /// An RSA key (from WebCrypto) below [`MIN_RSA_BITS`].
    RsaTooSmall { bits: usize },
    /// RSA numbers (from WebCrypto) that do not form a valid key.
    InvalidRsaComponents { detail: String },
    /// The browser's WebCrypto refused to make or export an RSA key.
    WebCrypto { detail: String },
    /// An empty passphrase was given to protect a key.
    EmptyPassphrase,
    /// Key generation or encoding failed inside the crypto library.
    Crypto { detail: String },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownAlgorithm { name } => write!(
                f,
                "key type '{name}' is not one we make; choose ed25519, rsa-2048, rsa-3072 or rsa-4096"
            ),
            Self::RsaTooSmall { bits } => rsa_too_small(f, *bits),
            Self::InvalidRsaComponents { detail } => {
                write!(f, "the browser produced an invalid RSA key ({detail})")
            }
            Self::WebCrypto { detail } => {
                write!(f, "the browser could not make an RSA key ({detail})")
            }
            Self::EmptyPassphrase => write!(
                f,
                "the passphrase is empty; enter one, or export the key without a passphrase"
            ),
            Self::Crypto { detail } => crypto(f, detail),
        }
    }
}

impl std::error::Error for KeyError {}

fn rsa_too_small(f: &mut fmt::Formatter<'_>, bits: usize) -> fmt::Result {
    write!(
        f,
        "this RSA key has {bits} bits; OpenSSH refuses RSA keys under {MIN_RSA_BITS} bits"
    )
}

fn crypto(f: &mut fmt::Formatter<'_>, detail: &str) -> fmt::Result {
    write!(f, "the key could not be made or written ({detail})")
}

/// A key just read is written again (stored as OpenSSH text), which fails only inside the
/// crypto library: the import reports that as its own `Crypto`, with the same text.
impl From<KeyError> for KeyImportError {
    fn from(error: KeyError) -> Self {
        Self::Crypto {
            detail: match error {
                KeyError::Crypto { detail } => detail,
                other => other.to_string(),
            },
        }
    }
}

/// A failure inside ssh-key while making or writing a key.
pub(super) fn crypto_error(error: ssh_key::Error) -> KeyError {
    KeyError::Crypto {
        detail: error.to_string(),
    }
}
