//! The key types we make, their names, and the size of a key.

use core::fmt;

use serde::{Deserialize, Serialize};
use ssh_key::public::KeyData;

use super::KeyError;

/// The smallest RSA key we make or accept: OpenSSH refuses smaller ones since 8.8.
pub const MIN_RSA_BITS: usize = 2048;

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

/// Key size in bits, as `ssh-keygen -l` prints it (256 for Ed25519).
pub(super) fn key_bits(key: &KeyData) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

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
