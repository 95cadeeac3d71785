//! What the extension renders for a project, by audience: the container's cells
//! ([`container`], [`probe`]), the relay's setup script ([`relay`]), and the user's ssh config
//! and known_hosts ([`user_files`]); [`bundle`] is all of it at once. Pure functions of
//! settings and keys.
//!
//! The scripts are files under `crate/src/scripts/`, read with `include_str!`. A rendered
//! script is the source's opening lines (the shebang, the comment lines after it, then its
//! `set` and `umask` lines), the values as assignments each quoted by [`quote`], the shared
//! functions the script uses, then the rest of the source. No value is put anywhere else.
//! A Python program run as a kernel's code has its values right after its docstring, each a
//! JSON string literal (which Python reads as the same string).

use core::fmt;

use crate::keys::{import_public_key, KeyPair, PublicKeyInfo};
use crate::project_keys::{KeyRole, ProjectKeys, StoredKey};
use crate::shell::quote;

pub mod bridge;
pub mod bundle;
pub mod container;
pub mod probe;
pub mod relay;
pub mod user_files;

pub use bridge::{render_attach, render_bridge, ATTACH_COMM_TARGET, BRIDGE_PY, BRIDGE_SOCKET};
pub use bundle::{project_bundle, CellPlan, ProjectBundle, RenderedCell};
pub use container::{render_provision, render_tunnel, PrivateKeys};
pub use probe::{render_probe, ProbeReport};
pub use relay::render_relay_setup;
pub use user_files::{
    client_key_files, host_alias, host_alias_of, render_known_hosts, render_ssh_config, UserFile,
    CLIENT_KEY_FILE, COMPANION_NOTEBOOK_FILE, KNOWN_HOSTS_FILE, RELAY_SETUP_FILE, SSH_CONFIG_FILE,
};

/// The keys a render needs: the client's public half, both container key pairs.
#[derive(Debug, Clone)]
pub struct RenderKeys {
    /// The user's client public key.
    pub client: PublicKeyInfo,
    /// The container's relay key pair (private key text and public half).
    pub container_relay: (String, PublicKeyInfo),
    /// The container's stable host key pair.
    pub container_host: (String, PublicKeyInfo),
}

/// Why a render could not be made.
#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr)]
#[non_exhaustive]
pub enum RenderError {
    /// A key the render needs has not been made yet (or lacks its private half).
    MissingKey { role: KeyRole },
    /// A stored key does not read back as a key, or its halves do not belong together.
    InvalidKey { role: KeyRole, detail: String },
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingKey { role } => write!(
                f,
                "the project's {role:?} key is missing; open the options page to make the project's keys"
            ),
            Self::InvalidKey { role, detail } => write!(
                f,
                "the project's stored {role:?} key is not valid ({detail}); nothing was rendered. \
                 Replace the key on the options page"
            ),
        }
    }
}

impl std::error::Error for RenderError {}

/// A stored public key read again by the core's parser: what reaches a script or an
/// `authorized_keys` line is always the parser's own one-line encoding, never stored text
/// (storage is outside the core's control).
fn checked_public(role: KeyRole, stored: &PublicKeyInfo) -> Result<PublicKeyInfo, RenderError> {
    let invalid = |detail: String| RenderError::InvalidKey { role, detail };
    if stored.line.chars().any(char::is_control) {
        return Err(invalid("its public line holds a control character".into()));
    }
    import_public_key(&stored.line).map_err(|error| invalid(error.to_string()))
}

/// A stored key pair, checked: the private key reads back and its public half is `public`.
fn checked_pair(role: KeyRole, key: &StoredKey) -> Result<(String, PublicKeyInfo), RenderError> {
    let public = checked_public(role, &key.public)?;
    let private = key
        .private_key
        .as_ref()
        .ok_or(RenderError::MissingKey { role })?;
    let invalid = |detail: String| RenderError::InvalidKey { role, detail };
    let pair =
        KeyPair::import_openssh(private, None).map_err(|error| invalid(error.to_string()))?;
    let pair_public = pair.public().map_err(|error| invalid(error.to_string()))?;
    if pair_public.fingerprint != public.fingerprint {
        return Err(invalid(
            "its private and public halves are different keys".into(),
        ));
    }
    Ok((private.clone(), public))
}

impl RenderKeys {
    /// The keys of a project as stored, each read again by the core's parsers.
    ///
    /// # Errors
    /// [`RenderError::MissingKey`] when a key, or a container key's private half, is missing;
    /// [`RenderError::InvalidKey`] when a stored key does not read back or its halves differ.
    pub fn from_project(keys: &ProjectKeys) -> Result<Self, RenderError> {
        let pair = |key: &Option<StoredKey>, role| match key {
            Some(key) => checked_pair(role, key),
            None => Err(RenderError::MissingKey { role }),
        };
        let client = keys.client.as_ref().ok_or(RenderError::MissingKey {
            role: KeyRole::Client,
        })?;
        Ok(Self {
            client: checked_public(KeyRole::Client, &client.public)?,
            container_relay: pair(&keys.container_relay, KeyRole::ContainerRelay)?,
            container_host: pair(&keys.container_host, KeyRole::ContainerHost)?,
        })
    }
}

/// One line of an `authorized_keys` file: options, then a key line the parser wrote.
fn authorized_keys_line(options: &str, key: &PublicKeyInfo) -> String {
    let line = format!("{options} {}", key.line);
    assert!(
        !line.chars().any(char::is_control),
        "an authorized_keys line must stay one line"
    );
    line
}

/// Markers of a block the extension owns in someone else's file.
fn block_markers(owner: &str) -> (String, String) {
    (
        format!("# >>> {owner} (managed by AI Studio SSH; edits inside are replaced) >>>"),
        format!("# <<< {owner} <<<"),
    )
}

/// `ALIAS KEY` lines for a known_hosts file.
fn known_hosts_lines(alias: &str, keys: &[PublicKeyInfo]) -> String {
    keys.iter()
        .map(|key| {
            let mut fields = key.line.split(' ');
            let (kind, blob) = (
                fields.next().unwrap_or_default(),
                fields.next().unwrap_or_default(),
            );
            format!("{alias} {kind} {blob}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `say MESSAGE...`: a line on stdout that names who speaks (container and relay scripts).
const SAY_FUNCTION: &str = include_str!("../scripts/shared/say.sh");

/// `replace_block FILE BEGIN END CONTENT top|bottom` (container and relay scripts): replaces
/// the block between two marker lines (or adds it at the top or bottom), leaving every other
/// line as it was. It refuses a file whose markers are not one BEGIN followed by one END
/// (nothing changes), and edits a symlinked file where it points, so the link stays a link.
const REPLACE_BLOCK_FUNCTION: &str = include_str!("../scripts/shared/replace_block.sh");

/// A script from its source (see the module's documentation): the opening lines, then
/// `values` as `name='value'` lines, then `functions`, then the rest of `source`.
fn script(source: &str, values: &[(&str, &str)], functions: &[&str]) -> String {
    let (opening, rest) = source.split_at(opening_len(source));
    let mut script = String::from(opening);
    for (name, value) in values {
        script.push_str(&format!("{name}={}\n", quote(value)));
    }
    for function in functions {
        script.push_str(function);
    }
    script.push_str(rest);
    script
}

/// A Python program from its source: the module docstring, then `values` as
/// `name = "value"` lines, then the rest of `source`.
fn python_script(source: &str, values: &[(&str, &str)]) -> String {
    let (opening, rest) = source.split_at(docstring_len(source));
    let mut program = String::from(opening);
    for (name, value) in values {
        // A JSON string literal is a Python one: the same escapes, and serde_json writes
        // characters past ASCII as they are (never as surrogate pairs).
        let literal = serde_json::to_string(value).unwrap_or_default();
        program.push_str(&format!("{name} = {literal}\n"));
    }
    program.push_str(rest);
    program
}

/// The length of a Python source's module docstring (`"""` lines), its newline included.
fn docstring_len(source: &str) -> usize {
    assert!(
        source.starts_with("\"\"\""),
        "a Python source opens with its docstring"
    );
    let end = source[3..]
        .find("\"\"\"\n")
        .expect("the docstring ends a line");
    3 + end + 4
}

/// The length of a source's opening lines: the shebang and the comment lines after it,
/// then the lines that set shell options (`set`, `umask`).
fn opening_len(source: &str) -> usize {
    let mut lines = source.split_inclusive('\n').peekable();
    let mut len = 0;
    for opening in [
        (|line: &str| line.starts_with('#')) as fn(&str) -> bool,
        |line| line.starts_with("set ") || line.starts_with("umask "),
    ] {
        while let Some(line) = lines.next_if(|line| opening(line)) {
            len += line.len();
        }
    }
    len
}

/// `script` with `content` as the text of its empty here-document `<<'DELIMITER'`: a source
/// that runs another file's text (the tunnel supervisor, the probe's Python) stays a
/// complete script of its own, and the other file stays a file a linter reads.
fn fill_here_document(script: &str, delimiter: &str, content: &str) -> String {
    let empty = format!("<<'{delimiter}'\n{delimiter}\n");
    assert_eq!(
        script.matches(&empty).count(),
        1,
        "the source holds one empty here-document {delimiter}"
    );
    assert!(
        !content.lines().any(|line| line == delimiter),
        "a here-document's text must not end it early"
    );
    script.replacen(
        &empty,
        &format!("<<'{delimiter}'\n{content}{delimiter}\n"),
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::{fill_here_document, python_script, script};

    #[test]
    fn python_values_go_after_the_docstring_as_string_literals() {
        assert_eq!(
            python_script(
                "\"\"\"What.\n\nMore.\n\"\"\"\nimport os\n",
                &[("path", "a\"b\\c\n'd\u{7}é")]
            ),
            "\"\"\"What.\n\nMore.\n\"\"\"\npath = \"a\\\"b\\\\c\\n'd\\u0007é\"\nimport os\n"
        );
    }

    #[test]
    fn values_and_functions_go_after_the_opening_lines() {
        let source = "#!/usr/bin/env bash\n# what it is\nset -eu\numask 077\n# why\nrun\n";
        assert_eq!(
            script(source, &[("name", "it's")], &["say() { :; }\n"]),
            "#!/usr/bin/env bash\n# what it is\nset -eu\numask 077\nname='it'\\''s'\n\
             say() { :; }\n# why\nrun\n"
        );
        assert_eq!(
            script("#!/bin/sh\n# only\n", &[("a", "1")], &[]),
            "#!/bin/sh\n# only\na='1'\n"
        );
    }

    #[test]
    fn a_here_document_is_filled_once() {
        assert_eq!(
            fill_here_document("cat <<'END'\nEND\ndone\n", "END", "text\n"),
            "cat <<'END'\ntext\nEND\ndone\n"
        );
    }

    #[test]
    #[should_panic(expected = "must not end it early")]
    fn a_here_document_text_cannot_end_it() {
        fill_here_document("cat <<'END'\nEND\n", "END", "END\n");
    }
}
