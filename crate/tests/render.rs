//! Rendered files: golden copies for fixed settings and seeded keys, shellcheck-clean
//! scripts, and the `aistudio-ssh render` command.
#![cfg(not(target_arch = "wasm32"))]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use aistudio_ssh::cells::{self, CellAction, CellRole};
use aistudio_ssh::error_variant::ErrorVariant;
use aistudio_ssh::keys::KeyPair;
use aistudio_ssh::project_keys::{complete_project_keys, ProjectKeys, StoredKey};
use aistudio_ssh::render::{self, PrivateKeys, ProbeReport, RenderError, RenderKeys};
use aistudio_ssh::settings::{RelaySettings, Settings, SettingsInput};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const SETTINGS: &str = r#"{"project": "7892508", "relay": {"host": "relay.example.com",
  "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEeLjlB+C7KxjA+eCCR2noVi0Q35q+LndIlvgrS0QFJm relay"}}"#;

/// The same project on the direct route: no relay at all.
const DIRECT_SETTINGS: &str = r#"{"project": "7892508"}"#;

fn settings() -> Settings {
    SettingsInput::from_json(SETTINGS)
        .unwrap()
        .validate()
        .unwrap()
}

fn direct_settings() -> Settings {
    SettingsInput::from_json(DIRECT_SETTINGS)
        .unwrap()
        .validate()
        .unwrap()
}

fn relay(settings: &Settings) -> &RelaySettings {
    settings.relay.as_ref().expect("the relay route")
}

const ROLES: [CellRole; 3] = [CellRole::Provision, CellRole::Tunnel, CellRole::Probe];

fn seeded_project_keys() -> ProjectKeys {
    let (keys, _) = complete_project_keys(
        "7892508",
        ProjectKeys::default(),
        &mut ChaCha20Rng::seed_from_u64(7),
    )
    .unwrap();
    keys
}

fn seeded_keys() -> RenderKeys {
    RenderKeys::from_project(&seeded_project_keys()).unwrap()
}

fn rendered() -> Vec<(&'static str, String)> {
    let (settings, direct, keys) = (settings(), direct_settings(), seeded_keys());
    vec![
        (
            "provision.sh",
            render::render_provision(&settings, &keys, PrivateKeys::Included),
        ),
        (
            "tunnel.sh",
            render::render_tunnel(&settings, relay(&settings)),
        ),
        ("bridge.sh", render::render_bridge(&settings)),
        ("attach.py", render::render_attach()),
        ("probe.sh", render::render_probe(&settings)),
        (
            "relay-setup.sh",
            render::render_relay_setup(&settings, relay(&settings), &keys),
        ),
        ("ssh_config", render::render_ssh_config(&settings)),
        ("known_hosts", render::render_known_hosts(&settings, &keys)),
        (
            "direct/provision.sh",
            render::render_provision(&direct, &keys, PrivateKeys::Included),
        ),
        ("direct/probe.sh", render::render_probe(&direct)),
        ("direct/ssh_config", render::render_ssh_config(&direct)),
        (
            "direct/known_hosts",
            render::render_known_hosts(&direct, &keys),
        ),
    ]
}

#[test]
fn renders_match_their_golden_files() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render");
    for (name, text) in rendered() {
        if std::env::var_os("BLESS").is_some() {
            // Rewrites the golden files after an intended change; review the diff.
            fs::write(fixtures.join(name), &text).unwrap();
        }
        let golden = fs::read_to_string(fixtures.join(name)).unwrap();
        assert_eq!(
            text, golden,
            "{name} differs from its golden file (BLESS=1 rewrites them)"
        );
    }
}

/// Runs a checker; its complaints (on stdout or stderr) fail the test.
fn passes(command: &mut Command, runs: &str) {
    let out = command.output().expect(runs);
    assert!(
        out.status.success(),
        "{command:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn shellcheck(path: &Path) {
    passes(
        Command::new("shellcheck")
            .args(["--severity=warning", "--shell=bash"])
            .arg(path),
        "shellcheck runs (Debian package shellcheck; npm test installs it)",
    );
}

#[test]
fn rendered_scripts_pass_shellcheck() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in rendered()
        .into_iter()
        .filter(|(name, _)| name.ends_with(".sh"))
    {
        let path = dir.path().join(name.replace('/', "-"));
        fs::write(&path, text).unwrap();
        shellcheck(&path);
    }
}

#[test]
fn the_ssh_config_pins_both_hosts_and_the_known_hosts_holds_both_keys() {
    let (settings, keys) = (settings(), seeded_keys());
    let config = render::render_ssh_config(&settings);
    assert_eq!(config.matches("StrictHostKeyChecking yes").count(), 2);
    assert!(config.contains("ProxyJump aistudio-7892508-relay"));
    assert!(!config.contains("UserKnownHostsFile /dev/null"));
    let known_hosts = render::render_known_hosts(&settings, &keys);
    let host_key = keys
        .container_host
        .1
        .line
        .split(' ')
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        known_hosts.contains(&format!("aistudio-7892508 {host_key}\n")),
        "{known_hosts}"
    );
    assert!(known_hosts
        .starts_with("aistudio-7892508-relay ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEeLjlB"));
}

#[test]
fn a_windows_style_ssh_dir_with_blanks_is_quoted_in_the_config() {
    let mut input = SettingsInput::from_json(SETTINGS).unwrap();
    input.ssh_dir = Some(r"C:\Users\Li Lei\.ssh\aistudio".into());
    let config = render::render_ssh_config(&input.validate().unwrap());
    assert!(
        config.contains(r#"IdentityFile "C:\Users\Li Lei\.ssh\aistudio\id_aistudio""#),
        "{config}"
    );
}

#[test]
fn the_cli_renders_reuses_its_keys_and_refuses_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let settings_path = dir.path().join("settings.json");
    fs::write(&settings_path, SETTINGS).unwrap();
    let out_dir = dir.path().join("out");
    let render = || {
        Command::new(env!("CARGO_BIN_EXE_aistudio-ssh"))
            .args(["render", "--settings"])
            .arg(&settings_path)
            .arg("--out")
            .arg(&out_dir)
            .output()
            .unwrap()
    };
    assert!(render().status.success());
    let files = [
        "provision.sh",
        "tunnel.sh",
        "probe.sh",
        "relay-setup.sh",
        "ssh_config",
        "known_hosts",
        "id_aistudio",
        "id_aistudio.pub",
    ];
    for file in files {
        assert!(out_dir.join(file).is_file(), "{file} missing");
    }
    let first_key = fs::read_to_string(out_dir.join("id_aistudio")).unwrap();
    assert!(render().status.success());
    assert_eq!(
        fs::read_to_string(out_dir.join("id_aistudio")).unwrap(),
        first_key,
        "keys were made again"
    );
    use std::os::unix::fs::PermissionsExt;
    for private in ["id_aistudio", "provision.sh"] {
        let mode = fs::metadata(out_dir.join(private))
            .unwrap()
            .permissions()
            .mode()
            & 0o077;
        assert_eq!(mode, 0, "{private} is readable by others");
    }

    fs::write(&settings_path, r#"{"project": "7892508", "relay": {"host": "relay.example.com", "port": 0, "hostKey": "x"}}"#).unwrap();
    let bad_out = dir.path().join("bad");
    let out = Command::new(env!("CARGO_BIN_EXE_aistudio-ssh"))
        .args(["render", "--settings"])
        .arg(&settings_path)
        .arg("--out")
        .arg(&bad_out)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("relay.port") && stderr.contains("relay.hostKey"),
        "{stderr}"
    );
    assert!(!bad_out.exists(), "invalid settings wrote files");
}

#[test]
fn stored_keys_are_read_again_before_any_render() {
    use aistudio_ssh::keys::KeyPair;
    use aistudio_ssh::project_keys::StoredKey;
    let (good, _) = complete_project_keys(
        "7892508",
        ProjectKeys::default(),
        &mut ChaCha20Rng::seed_from_u64(7),
    )
    .unwrap();

    // A public line rewritten in storage to carry a second line: refused, nothing rendered.
    let mut keys = good.clone();
    let client = keys.client.as_mut().unwrap();
    client.public.line = format!("{}\nrestrict ssh-ed25519 AAAA evil", client.public.line);
    let error = RenderKeys::from_project(&keys).unwrap_err();
    assert!(matches!(error, RenderError::InvalidKey { .. }), "{error}");
    assert_eq!(error.variant(), "InvalidKey");

    // A host key whose private half is another key: refused.
    let mut keys = good.clone();
    let other = KeyPair::import_openssh(
        keys.container_relay
            .as_ref()
            .unwrap()
            .private_key
            .as_ref()
            .unwrap(),
        None,
    )
    .unwrap();
    keys.container_host.as_mut().unwrap().private_key =
        Some(other.to_openssh().unwrap().to_string());
    assert!(matches!(
        RenderKeys::from_project(&keys),
        Err(RenderError::InvalidKey { .. })
    ));

    // A client key imported with a newline in its comment: one authorized_keys line each.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted");
    assert!(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "me\nssh-ed25519 AAAA planted",
            "-f"
        ])
        .arg(&path)
        .status()
        .unwrap()
        .success());
    let mut keys = good;
    keys.client = Some(StoredKey::from_paste(&fs::read_to_string(&path).unwrap(), None).unwrap());
    let render_keys = RenderKeys::from_project(&keys).unwrap();
    let script = render::render_relay_setup(&settings(), relay(&settings()), &render_keys);
    let key_lines = script
        .split_once("key_lines='")
        .and_then(|(_, rest)| rest.split_once("'\n"))
        .unwrap()
        .0;
    assert_eq!(key_lines.lines().count(), 2, "{key_lines}");
    assert!(!script.contains("\nssh-ed25519 AAAA planted"));
    let provision = render::render_provision(&settings(), &render_keys, PrivateKeys::Included);
    assert!(provision.contains("client_line='from=\"127.0.0.1,::1\" ssh-ed25519 "));
    assert!(!provision.contains("\nssh-ed25519 AAAA planted"));
}

/// The files under `crate/src/scripts/` whose names end with `extension`.
fn script_sources(extension: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, extension: &str, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, extension, found);
            } else if path.extension().is_some_and(|ext| ext == extension) {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts"),
        extension,
        &mut found,
    );
    found.sort();
    found
}

#[test]
fn script_sources_pass_shellcheck() {
    let sources = script_sources("sh");
    assert!(sources.len() >= 9, "{sources:?}");
    for path in sources {
        // crate/src/scripts/.shellcheckrc: the rendered header assigns the values.
        shellcheck(&path);
    }
}

#[test]
fn the_python_programs_pass_pyflakes_and_parse_as_python_3_7() {
    let mut sources = script_sources("py");
    assert!(sources.len() >= 3, "{sources:?}");
    // The attach client as rendered, its values assigned.
    let dir = tempfile::tempdir().unwrap();
    let attach = dir.path().join("attach.py");
    fs::write(&attach, render::render_attach()).unwrap();
    sources.push(attach);
    for path in sources {
        passes(
            Command::new("pyflakes3")
                .arg(&path)
                // The values a render assigns after a Python source's docstring.
                .env("PYFLAKES_BUILTINS", "bridge_socket,comm_target"),
            "pyflakes3 runs (Debian package pyflakes3; npm test installs it)",
        );
        // Containers may run an older Python than this machine: 3.7 is the floor the probe
        // already needs (subprocess.run with capture_output).
        passes(
            Command::new("python3")
                .args([
                    "-c",
                    "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1], feature_version=(3, 7))",
                ])
                .arg(&path),
            "python3 runs",
        );
    }
}

#[test]
fn the_probe_prints_one_line_that_its_contract_reads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.sh");
    fs::write(&path, render::render_probe(&settings())).unwrap();
    // Reads only: this machine's state directory and keys, as they are.
    let out = Command::new("bash")
        .arg(&path)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
    let report = ProbeReport::from_output(&format!("noise before it\n{text}"))
        .expect("the probe's line reads as a ProbeReport");
    assert_eq!(report.host_keys.stable, None, "no key in an empty home");
    // Every field the probe prints is in the contract, with the same value.
    let printed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_value(&report).unwrap(), printed);
}

#[test]
fn a_project_bundle_holds_the_renders_the_cells_and_a_notebook_without_keys() {
    let (settings, keys) = (settings(), seeded_project_keys());
    let render_keys = RenderKeys::from_project(&keys).unwrap();
    let bundle = render::project_bundle(&settings, &keys).unwrap();
    assert_eq!(
        bundle.provision,
        render::render_provision(&settings, &render_keys, PrivateKeys::Included)
    );
    assert_eq!(
        bundle.service,
        render::render_tunnel(&settings, relay(&settings))
    );
    assert_eq!(bundle.probe, render::render_probe(&settings));
    assert_eq!(
        bundle.relay_setup,
        Some(render::render_relay_setup(
            &settings,
            relay(&settings),
            &render_keys
        ))
    );
    assert_eq!(bundle.ssh_config, render::render_ssh_config(&settings));
    assert_eq!(
        bundle.known_hosts,
        render::render_known_hosts(&settings, &render_keys)
    );
    assert_eq!(bundle.host_alias, "aistudio-7892508");
    let steps: Vec<_> = bundle.cells.iter().map(|cell| cell.step).collect();
    assert_eq!(steps, ROLES);
    for cell in &bundle.cells {
        let script = match cell.step {
            CellRole::Provision => &bundle.provision,
            CellRole::Tunnel | CellRole::Bridge => &bundle.service,
            CellRole::Probe => &bundle.probe,
        };
        assert_eq!(cell.source, cells::cell_source(cell.step, script));
    }
    assert_eq!(
        bundle.stop,
        cells::stop_source(CellRole::Tunnel, &bundle.service)
    );
    assert!(bundle.provision.contains("PRIVATE KEY"));
    assert!(!bundle.notebook.to_string().contains("PRIVATE KEY"));
    assert_eq!(bundle.notebook_path, cells::COMPANION_NOTEBOOK_PATH);
    assert_eq!(
        bundle.notebook["metadata"]["aistudio_ssh"]["digest"],
        bundle.notebook_digest.as_str()
    );

    // What the wasm layer gives the extension (`RenderedProject.bundle()`): these camelCase names.
    let value = serde_json::to_value(&bundle).unwrap();
    let names: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
    let mut expected = [
        "route",
        "provision",
        "service",
        "probe",
        "relaySetup",
        "sshConfig",
        "knownHosts",
        "hostAlias",
        "cells",
        "stop",
        "notebookPath",
        "notebook",
        "notebookDigest",
    ];
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert_eq!(value["cells"][0]["step"], "provision");
    assert_eq!(
        value["cells"][0].as_object().unwrap().len(),
        2,
        "a cell is {{step, source}}"
    );

    let error = render::project_bundle(&settings, &ProjectKeys::default()).unwrap_err();
    assert!(matches!(error, RenderError::MissingKey { .. }), "{error}");
}

#[test]
fn the_cli_writes_the_project_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let settings_path = dir.path().join("settings.json");
    fs::write(&settings_path, SETTINGS).unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_aistudio-ssh"))
        .args(["render", "--settings"])
        .arg(&settings_path)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let keys: ProjectKeys =
        serde_json::from_str(&fs::read_to_string(out_dir.join("keys/project-keys.json")).unwrap())
            .unwrap();
    let bundle = render::project_bundle(&settings(), &keys).unwrap();
    for (file, text) in [
        ("provision.sh", &bundle.provision),
        ("tunnel.sh", &bundle.service),
        ("probe.sh", &bundle.probe),
        ("relay-setup.sh", bundle.relay_setup.as_ref().unwrap()),
        ("ssh_config", &bundle.ssh_config),
        ("known_hosts", &bundle.known_hosts),
    ] {
        assert_eq!(
            &fs::read_to_string(out_dir.join(file)).unwrap(),
            text,
            "{file}"
        );
    }
}

#[test]
fn each_action_runs_its_own_cells_and_only_a_connect_saves_the_notebook() {
    let bundle = render::project_bundle(&settings(), &seeded_project_keys()).unwrap();
    let steps = |plan: &render::CellPlan| plan.cells.iter().map(|c| c.step).collect::<Vec<_>>();

    let connect = bundle.cell_plan(CellAction::Connect);
    assert_eq!(steps(&connect), ROLES);
    assert_eq!(connect.cells, bundle.cells);
    assert_eq!(connect.notebook_path, Some(cells::COMPANION_NOTEBOOK_PATH));
    assert_eq!(connect.notebook.as_ref(), Some(&bundle.notebook));
    assert_eq!(
        connect.notebook_digest.as_ref(),
        Some(&bundle.notebook_digest)
    );

    let disconnect = bundle.cell_plan(CellAction::Disconnect);
    assert_eq!(steps(&disconnect), [CellRole::Tunnel, CellRole::Probe]);
    assert_eq!(disconnect.cells[0].source, bundle.stop);
    assert_eq!(disconnect.cells[1], bundle.cells[2]);
    assert_eq!(disconnect.notebook, None);

    let probe = bundle.cell_plan(CellAction::Probe);
    assert_eq!(probe.cells, [bundle.cells[2].clone()]);
    // Across wasm: no notebook fields at all unless the plan saves the notebook.
    let json = serde_json::to_value(&probe).unwrap();
    assert_eq!(json["action"], "probe");
    assert!(
        json.get("notebook").is_none() && json.get("notebookPath").is_none(),
        "{json}"
    );
}

#[test]
fn the_download_holds_config_known_hosts_key_and_relay_script_in_that_order() {
    let keys = seeded_project_keys();
    let bundle = render::project_bundle(&settings(), &keys).unwrap();
    let client = keys.client.as_ref().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);

    let plain = render::client_key_files(client, Some(""), &mut rng).unwrap();
    let files = bundle.user_files(plain.clone());
    let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ssh_config",
            "known_hosts",
            "id_aistudio",
            "id_aistudio.pub",
            "relay-setup.sh"
        ]
    );
    assert_eq!(files[0].text, bundle.ssh_config);
    assert_eq!(files[2].text, *client.private_key.as_ref().unwrap());
    assert_eq!(files[3].text, format!("{}\n", client.public.line));
    assert_eq!(Some(&files[4].text), bundle.relay_setup.as_ref());

    // A passphrase protects the private file; the key inside is the same.
    let protected = render::client_key_files(client, Some("correct horse"), &mut rng).unwrap();
    assert_ne!(protected[0].text, plain[0].text);
    assert!(KeyPair::import_openssh(&protected[0].text, None).is_err());
    let opened = KeyPair::import_openssh(&protected[0].text, Some("correct horse")).unwrap();
    assert_eq!(
        opened.public().unwrap().fingerprint,
        client.public.fingerprint
    );

    // A pasted public key: only the .pub file.
    let pasted = StoredKey::from_paste(&client.public.line, None).unwrap();
    let files = render::client_key_files(&pasted, Some("x"), &mut rng).unwrap();
    assert_eq!(
        files,
        [render::UserFile::new(
            "id_aistudio.pub",
            format!("{}\n", client.public.line)
        )]
    );
}

#[test]
fn the_notebook_download_is_the_same_notebook_as_indented_json() {
    let bundle = render::project_bundle(&settings(), &seeded_project_keys()).unwrap();
    let file = bundle.notebook_file();
    assert_eq!(file.name, "aistudio-ssh.ipynb");
    assert!(
        file.text.starts_with("{\n \"cells\": [\n  {\n"),
        "{}",
        &file.text[..40]
    );
    assert!(file.text.ends_with("}\n"));
    let read: serde_json::Value = serde_json::from_str(&file.text).unwrap();
    assert_eq!(read, bundle.notebook);
}

#[test]
fn a_direct_project_runs_the_bridge_and_downloads_no_relay_script() {
    let keys = seeded_project_keys();
    let bundle = render::project_bundle(&direct_settings(), &keys).unwrap();
    let steps: Vec<_> = bundle.cells.iter().map(|cell| cell.step).collect();
    assert_eq!(
        steps,
        [CellRole::Provision, CellRole::Bridge, CellRole::Probe]
    );
    assert_eq!(bundle.service, render::render_bridge(&direct_settings()));
    assert_eq!(bundle.relay_setup, None);
    // The container gets no relay key at all, and the probe reads the bridge's status.
    assert!(!bundle.provision.contains("relay_private='-----BEGIN"));
    assert!(bundle.probe.contains("\nservice='bridge'\n"));
    let disconnect = bundle.cell_plan(CellAction::Disconnect);
    assert_eq!(disconnect.cells[0].step, CellRole::Bridge);
    assert!(disconnect.cells[0].source.contains("set -- stop"));
    let client = keys.client.as_ref().unwrap();
    let key_files =
        render::client_key_files(client, None, &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
    let names: Vec<_> = bundle
        .user_files(key_files)
        .into_iter()
        .map(|file| file.name)
        .collect();
    assert_eq!(
        names,
        [
            "ssh_config",
            "known_hosts",
            "id_aistudio",
            "id_aistudio.pub"
        ]
    );
}
