//! Writing keys out: the OpenSSH private key file, plain or passphrase-protected, and the public half.

use rand_core::CryptoRngCore;
use ssh_key::LineEnding;
use zeroize::Zeroizing;

use super::error::crypto_error;
use super::{KeyError, KeyPair, PublicKeyInfo};

/// bcrypt-pbkdf rounds for passphrase-protected keys, as `ssh-keygen` uses by default.
pub const BCRYPT_ROUNDS: u32 = 16;

impl KeyPair {
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
        PublicKeyInfo::of(self.key.public_key()).map_err(crypto_error)
    }
}
