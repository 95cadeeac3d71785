//! Making keys: Ed25519 from an injected RNG, RSA from the browser's WebCrypto (checked here).

use core::fmt;
use core::future::Future;

use rand_core::CryptoRngCore;
use serde::Deserialize;
use ssh_key::private::{Ed25519Keypair, KeypairData, RsaKeypair};

use super::error::crypto_error;
use super::{KeyAlgorithm, KeyError, KeyPair, MIN_RSA_BITS};

/// Makes RSA private keys. In the extension this is the browser's WebCrypto: native speed,
/// where RSA in wasm takes seconds. Host tests inject a double.
pub trait RsaKeyMaker {
    /// A new RSA private key with a `bits`-bit modulus, as WebCrypto exports it.
    ///
    /// # Errors
    /// [`KeyError::WebCrypto`] when the maker refuses.
    fn make_rsa_jwk(&self, bits: usize) -> impl Future<Output = Result<RsaJwk, KeyError>>;
}

/// A new key of `algorithm`: Ed25519 from `rng`, RSA from `rsa` (then checked and
/// wrapped by [`KeyPair::from_rsa_components`]). The one way the extension makes a key.
///
/// # Errors
/// What `rsa` or [`KeyPair::from_rsa_components`] report; [`KeyError::Crypto`] if the
/// crypto library fails (it should not).
pub async fn make_key_pair(
    algorithm: KeyAlgorithm,
    comment: &str,
    rng: &mut impl CryptoRngCore,
    rsa: &impl RsaKeyMaker,
) -> Result<KeyPair, KeyError> {
    match algorithm.rsa_bits() {
        None => KeyPair::generate(algorithm, comment, rng),
        Some(bits) => {
            let jwk = rsa.make_rsa_jwk(bits).await?;
            KeyPair::from_rsa_components(&RsaComponents::try_from(&jwk)?, comment)
        }
    }
}

impl KeyPair {
    /// Makes a new key with randomness from `rng`, RSA too (slow in wasm: the extension
    /// makes RSA keys through [`make_key_pair`]).
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if the crypto library fails (it should not).
    pub fn generate(
        algorithm: KeyAlgorithm,
        comment: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, KeyError> {
        let data = match algorithm.rsa_bits() {
            None => KeypairData::from(Ed25519Keypair::random(rng)),
            Some(bits) => KeypairData::from(RsaKeypair::random(rng, bits).map_err(crypto_error)?),
        };
        Self::from_keypair_data(data, comment).map_err(crypto_error)
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
        Self::from_keypair_data(KeypairData::from(keypair), comment).map_err(crypto_error)
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
