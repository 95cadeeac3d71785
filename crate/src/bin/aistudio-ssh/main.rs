//! `aistudio-ssh`: the extension's core from a terminal. Renders a project's scripts,
//! ssh config and keys from a settings JSON file; registers itself with the user's browsers
//! and serves them as their native messaging host, and is ssh's `ProxyCommand` through it
//! (direct mode).

// The helper's I/O: Linux, macOS and Windows (the crate's tests also build this binary
// for wasm32, where it only renders).
#[cfg(any(unix, windows))]
mod host;
#[cfg(any(unix, windows))]
mod lane;
#[cfg(any(unix, windows))]
mod local;
mod native;
#[cfg(any(unix, windows))]
mod proxy;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aistudio_ssh::native_host;
use aistudio_ssh::project_keys::{complete_project_keys, ProjectKeys};
use aistudio_ssh::render::{
    self, CLIENT_KEY_FILE, KNOWN_HOSTS_FILE, RELAY_SETUP_FILE, SSH_CONFIG_FILE,
};
use aistudio_ssh::settings::{Route, SettingsInput};
use rand_core::OsRng;

const USAGE: &str = "usage: aistudio-ssh render --settings SETTINGS.json --out DIR

Writes into DIR: provision.sh, tunnel.sh, probe.sh, relay-setup.sh, ssh_config,
known_hosts, id_aistudio, id_aistudio.pub; the project's keys are kept in
DIR/keys/project-keys.json and reused on every later run.
Settings (camelCase JSON): {\"project\": \"7892508\", \"relay\": {\"host\": \"relay.example.com\",
\"port\": 443, \"user\": \"aistudio-tunnel\", \"hostKey\": \"ssh-ed25519 AAAA...\"},
\"remotePort\": 7423, \"containerSshdPort\": 2222}";

/// Exit codes: 0 done, 1 could not read or write files, 2 bad usage or invalid settings.
fn main() -> ExitCode {
    // The arguments after the program name.
    let args: Vec<String> = std::env::args().collect();
    let args = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("install") => return native::install(&args[1..]),
        Some("uninstall") => return native::uninstall(&args[1..]),
        Some("native-host") => return native::native_host(),
        Some("keeper") => return native::keeper(),
        Some("proxy") => return proxy(&args[1..]),
        _ if native_host::started_by_browser(args) => return native::native_host(),
        _ => {}
    }
    let (settings_path, out_dir) = match parse_args(args) {
        Some(paths) => paths,
        None => {
            eprintln!("{USAGE}\n{}", native::USAGE);
            return ExitCode::from(2);
        }
    };
    let text = match fs::read_to_string(&settings_path) {
        Ok(text) => text,
        Err(error) => {
            eprintln!(
                "aistudio-ssh: cannot read {}: {error}",
                settings_path.display()
            );
            return ExitCode::from(1);
        }
    };
    let settings = match SettingsInput::from_json(&text).and_then(|input| input.validate()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("aistudio-ssh: {error}");
            return ExitCode::from(2);
        }
    };
    match write_project(&settings, &out_dir) {
        Ok(()) => {
            println!(
                "wrote {}; connect with: ssh -F {}/ssh_config {}",
                out_dir.display(),
                out_dir.display(),
                render::host_alias(&settings)
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("aistudio-ssh: {error}");
            ExitCode::from(1)
        }
    }
}

#[cfg(any(unix, windows))]
fn proxy(args: &[String]) -> ExitCode {
    proxy::proxy(args)
}

#[cfg(not(any(unix, windows)))]
fn proxy(_args: &[String]) -> ExitCode {
    eprintln!("aistudio-ssh: {}", native::UNSUPPORTED);
    ExitCode::from(255)
}

fn parse_args(args: &[String]) -> Option<(PathBuf, PathBuf)> {
    let [command, rest @ ..] = args else {
        return None;
    };
    if command != "render" {
        return None;
    }
    let (mut settings, mut out) = (None, None);
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--settings" => settings = Some(PathBuf::from(rest.next()?)),
            "--out" => out = Some(PathBuf::from(rest.next()?)),
            _ => return None,
        }
    }
    Some((settings?, out?))
}

fn write_project(
    settings: &aistudio_ssh::settings::Settings,
    out: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let keys_dir = out.join("keys");
    fs::create_dir_all(&keys_dir)?;
    let keys_path = keys_dir.join("project-keys.json");
    let existing: ProjectKeys = match fs::read_to_string(&keys_path) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", keys_path.display()))?
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => ProjectKeys::default(),
        Err(error) => return Err(error.into()),
    };
    let (keys, made) = complete_project_keys(&settings.project, existing, &mut OsRng)?;
    if !made.is_empty() {
        write_private(&keys_path, &serde_json::to_string_pretty(&keys)?)?;
    }
    let bundle = render::project_bundle(settings, &keys)?;

    // Holds the container's private keys: the user's eyes only.
    write_with_mode(&out.join("provision.sh"), &bundle.provision, 0o700)?;
    let service = match bundle.route {
        Route::Relay => "tunnel.sh",
        Route::Direct => "bridge.sh",
    };
    write_executable(&out.join(service), &bundle.service)?;
    write_executable(&out.join("probe.sh"), &bundle.probe)?;
    if let Some(relay_setup) = &bundle.relay_setup {
        write_executable(&out.join(RELAY_SETUP_FILE), relay_setup)?;
    }
    fs::write(out.join(SSH_CONFIG_FILE), &bundle.ssh_config)?;
    fs::write(out.join(KNOWN_HOSTS_FILE), &bundle.known_hosts)?;
    if let Some(client) = &keys.client {
        if let Some(private) = &client.private_key {
            write_private(&out.join(CLIENT_KEY_FILE), private)?;
        }
        fs::write(
            out.join(format!("{CLIENT_KEY_FILE}.pub")),
            format!("{}\n", client.public.line),
        )?;
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    write_with_mode(path, text, 0o600)
}

fn write_executable(path: &Path, text: &str) -> std::io::Result<()> {
    write_with_mode(path, text, 0o755)
}

/// Writes `text` so that at no moment do others see it with wider permissions than `mode`.
#[cfg(unix)]
fn write_with_mode(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if path.exists() {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn write_with_mode(path: &Path, text: &str, _mode: u32) -> std::io::Result<()> {
    fs::write(path, text)
}
