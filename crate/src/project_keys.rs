//! A project's three keys: the user's client key, the container's relay key and its stable host key.

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::keys::{
    import_public_key, KeyAlgorithm, KeyError, KeyImportError, KeyPair, PublicKeyInfo,
};

/// What a key of a project is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub enum KeyRole {
    /// The user's laptop -> the container (and through the relay, tunnel-only).
    Client,
    /// The container -> the relay, allowed only to listen on the project's port there.
    ContainerRelay,
    /// The host key of the container's user-mode sshd: pinned by the user's client
    /// before the container ever runs, the same after restarts and CPU/GPU switches.
    ContainerHost,
}

impl KeyRole {
    /// Every role, in the order they are made and shown.
    pub const ALL: [KeyRole; 3] = [Self::Client, Self::ContainerRelay, Self::ContainerHost];

    /// The key comment, which names the project and the role wherever the line ends up
    /// (authorized_keys files, known_hosts, `ssh-add -l`).
    pub fn comment(self, project_id: &str) -> String {
        let role = match self {
            Self::Client => "client",
            Self::ContainerRelay => "relay",
            Self::ContainerHost => "host",
        };
        format!("aistudio-{project_id}-{role}")
    }
}

/// A key as the extension keeps it in `chrome.storage.local`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct StoredKey {
    /// The OpenSSH private key text, or `None` for a client key whose public half the
    /// user pasted (the private half stays on their laptop).
    pub private_key: Option<String>,
    /// The public half and its fingerprint.
    pub public: PublicKeyInfo,
}

impl StoredKey {
    /// A client key the user pasted: a public key line (the private half stays on their
    /// computer) or an OpenSSH private key (kept, so it can be downloaded with the bundle).
    ///
    /// # Errors
    /// The [`KeyImportError`] that says what the text is and what is accepted instead.
    pub fn from_paste(text: &str, passphrase: Option<&str>) -> Result<Self, KeyImportError> {
        match import_public_key(text) {
            Ok(public) => Ok(Self {
                private_key: None,
                public,
            }),
            Err(KeyImportError::PrivateKeyGiven) => Ok(Self::from_pair(&KeyPair::import_openssh(
                text, passphrase,
            )?)?),
            Err(error) => Err(error),
        }
    }

    /// The stored form of a key pair: its unencrypted OpenSSH text and public half.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if encoding fails (it should not).
    pub fn from_pair(pair: &KeyPair) -> Result<Self, KeyError> {
        Ok(Self {
            private_key: Some(pair.to_openssh()?.to_string()),
            public: pair.public()?,
        })
    }
}

/// The keys of one project; a missing one has not been made yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase", default)]
pub struct ProjectKeys {
    /// See [`KeyRole::Client`].
    pub client: Option<StoredKey>,
    /// See [`KeyRole::ContainerRelay`].
    pub container_relay: Option<StoredKey>,
    /// See [`KeyRole::ContainerHost`].
    pub container_host: Option<StoredKey>,
}

impl ProjectKeys {
    fn slot(&mut self, role: KeyRole) -> &mut Option<StoredKey> {
        match role {
            KeyRole::Client => &mut self.client,
            KeyRole::ContainerRelay => &mut self.container_relay,
            KeyRole::ContainerHost => &mut self.container_host,
        }
    }
}

/// The project's keys with every missing one made (Ed25519); existing keys are never
/// replaced. Returns the roles that were made, so the caller stores only when needed.
///
/// # Errors
/// [`KeyError::Crypto`] if generation fails (it should not).
pub fn complete_project_keys(
    project_id: &str,
    mut keys: ProjectKeys,
    rng: &mut impl CryptoRngCore,
) -> Result<(ProjectKeys, Vec<KeyRole>), KeyError> {
    let mut made = Vec::new();
    for role in KeyRole::ALL {
        let slot = keys.slot(role);
        if slot.is_none() {
            let pair = KeyPair::generate(KeyAlgorithm::Ed25519, &role.comment(project_id), rng)?;
            *slot = Some(StoredKey::from_pair(&pair)?);
            made.push(role);
        }
    }
    Ok((keys, made))
}

/// What an extension page sees of a key: the public half and whether a private half is
/// kept, never the private half itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    #[serde(flatten)]
    pub public: PublicKeyInfo,
    pub has_private_key: bool,
}

/// What an extension page sees of a project's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct ProjectKeysView {
    pub project_id: String,
    pub client: Option<KeyView>,
    pub container_relay: Option<KeyView>,
    pub container_host: Option<KeyView>,
}

impl StoredKey {
    /// This key as a page may see it.
    pub fn view(&self) -> KeyView {
        KeyView {
            public: self.public.clone(),
            has_private_key: self
                .private_key
                .as_deref()
                .is_some_and(|key| !key.is_empty()),
        }
    }
}

impl ProjectKeys {
    /// The project's keys as a page may see them: public halves only.
    pub fn view(&self, project_id: &str) -> ProjectKeysView {
        ProjectKeysView {
            project_id: project_id.to_owned(),
            client: self.client.as_ref().map(StoredKey::view),
            container_relay: self.container_relay.as_ref().map(StoredKey::view),
            container_host: self.container_host.as_ref().map(StoredKey::view),
        }
    }
}
