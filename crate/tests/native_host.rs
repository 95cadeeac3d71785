//! The helper as browsers see it: its id derivation, its host manifests, native messaging's
//! framing, and the real binary's `install`, `uninstall` and `native-host`.
#![cfg(not(target_arch = "wasm32"))]

use std::io::{Cursor, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use aistudio_ssh::error_variant::ErrorVariant;
use aistudio_ssh::native_host::{
    self, chromium_extension_id, host_manifest, is_extension_id, read_message, write_message,
    BrowserFamily, CHROMIUM_EXTENSION_ID, GECKO_EXTENSION_ID, HOST_NAME, MAX_MESSAGE_TO_BROWSER,
};
use base64ct::{Base64, Encoding};
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_aistudio-ssh");

/// The `key` of www/manifest.json5, the one place the unpacked build's id comes from.
fn manifest_key() -> Vec<u8> {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/manifest.json5"),
    )
    .unwrap();
    let line = manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("key: '"))
        .expect("www/manifest.json5 has a key");
    Base64::decode_vec(line.trim_end_matches("',")).unwrap()
}

#[test]
fn the_unpacked_build_id_follows_from_the_manifest_key() {
    assert_eq!(
        chromium_extension_id(&manifest_key()),
        CHROMIUM_EXTENSION_ID
    );
    // Chromium's own example: the id of an all-zero digest prefix is all 'a'.
    let id = chromium_extension_id(b"");
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| (b'a'..=b'p').contains(&b)), "{id}");
}

#[test]
fn manifests_name_the_binary_and_only_our_extensions() {
    let extra = vec!["abcdefghijklmnopabcdefghijklmnop".to_owned()];
    let chromium = host_manifest(BrowserFamily::Chromium, "/opt/aistudio-ssh", &extra);
    assert_eq!(chromium["name"], HOST_NAME);
    assert_eq!(chromium["type"], "stdio");
    assert_eq!(chromium["path"], "/opt/aistudio-ssh");
    assert_eq!(
        chromium["allowed_origins"],
        json!([
            format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/"),
            "chrome-extension://abcdefghijklmnopabcdefghijklmnop/"
        ])
    );
    assert!(chromium.get("allowed_extensions").is_none());
    let firefox = host_manifest(BrowserFamily::Firefox, "/opt/aistudio-ssh", &[]);
    assert_eq!(firefox["allowed_extensions"], json!([GECKO_EXTENSION_ID]));
    assert!(firefox.get("allowed_origins").is_none());

    assert!(is_extension_id(CHROMIUM_EXTENSION_ID));
    assert!(is_extension_id(GECKO_EXTENSION_ID));
    assert!(is_extension_id("{12345678-1234-1234-1234-123456789abc}"));
    for bad in [
        "",
        "abc",
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        "a\"@b",
        "x@y/../",
        "*",
    ] {
        assert!(!is_extension_id(bad), "{bad:?}");
    }
}

#[test]
fn messages_are_framed_by_a_native_endian_length_and_bounded() {
    let mut wire = Vec::new();
    write_message(&mut wire, &json!({"kind": "hello"})).unwrap();
    write_message(&mut wire, &json!([1, "二"])).unwrap();
    assert_eq!(&wire[..4], &16u32.to_ne_bytes());
    let mut reader = Cursor::new(wire.clone());
    assert_eq!(
        read_message(&mut reader).unwrap(),
        Some(json!({"kind": "hello"}))
    );
    assert_eq!(read_message(&mut reader).unwrap(), Some(json!([1, "二"])));
    assert_eq!(read_message(&mut reader).unwrap(), None);

    let name = |result: Result<Option<Value>, native_host::NativeMessageError>| {
        result.unwrap_err().variant()
    };
    assert_eq!(
        name(read_message(&mut Cursor::new(&wire[..2]))),
        "Truncated"
    );
    assert_eq!(
        name(read_message(&mut Cursor::new(&wire[..10]))),
        "Truncated"
    );
    let huge = (64u32 * 1024 * 1024 + 1).to_ne_bytes();
    assert_eq!(name(read_message(&mut Cursor::new(&huge[..]))), "TooLarge");
    let mut not_json = 3u32.to_ne_bytes().to_vec();
    not_json.extend_from_slice(b"{x}");
    assert_eq!(name(read_message(&mut Cursor::new(not_json))), "Json");

    let mut out = Vec::new();
    let big = json!("x".repeat(MAX_MESSAGE_TO_BROWSER));
    assert_eq!(
        write_message(&mut out, &big).unwrap_err().variant(),
        "TooLarge"
    );
    assert!(out.is_empty(), "nothing of a refused message is written");
}

#[test]
fn install_writes_one_manifest_uninstall_removes_exactly_it() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("profile/NativeMessagingHosts");
    let file = hosts.join(native_host::manifest_file_name());
    let run = |args: &[&str]| Command::new(BINARY).args(args).output().unwrap();

    let out = run(&["install", "--dir", hosts.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&file.display().to_string()));
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let binary = std::fs::canonicalize(BINARY).unwrap();
    assert_eq!(written["path"], binary.to_str().unwrap());
    assert_eq!(
        written["allowed_origins"],
        json!([format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/")])
    );
    // Again: the same file, nothing else in the folder.
    assert!(run(&["install", "--dir", hosts.to_str().unwrap()])
        .status
        .success());
    assert_eq!(std::fs::read_dir(&hosts).unwrap().count(), 1);

    // A bad id: refused with what is allowed, nothing written.
    let other = dir.path().join("other");
    let refused = run(&[
        "install",
        "--dir",
        other.to_str().unwrap(),
        "--extension-id",
        "x\"y",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("32 letters a to p"));
    assert!(!other.exists());

    // Uninstall removes our manifest, and leaves a file of the same name that is not ours.
    let user_file = dir.path().join("user/NativeMessagingHosts");
    std::fs::create_dir_all(&user_file).unwrap();
    let theirs = user_file.join(native_host::manifest_file_name());
    std::fs::write(&theirs, r#"{"name": "something.else"}"#).unwrap();
    let out = run(&["uninstall", "--dir", hosts.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(!file.exists());
    assert!(run(&["uninstall", "--dir", user_file.to_str().unwrap()])
        .status
        .success());
    assert!(theirs.exists());
}

#[test]
fn the_binary_answers_as_a_host_when_a_browser_starts_it() {
    let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    assert!(native_host::started_by_browser(&args(&[
        "chrome-extension://abc/"
    ])));
    let manifest = format!("/home/u/.mozilla/native-messaging-hosts/{HOST_NAME}.json");
    assert!(native_host::started_by_browser(&args(&[
        &manifest,
        GECKO_EXTENSION_ID
    ])));
    assert!(!native_host::started_by_browser(&args(&[
        "render",
        "--settings",
        "s.json"
    ])));
    assert!(!native_host::started_by_browser(&[]));
    // As Chromium starts it: the caller's origin as the only argument. Its proxy socket
    // goes in a folder of the test's, not the user's.
    let runtime = tempfile::tempdir().unwrap();
    let mut host = Command::new(BINARY)
        .arg(format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/"))
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = host.stdin.take().unwrap();
    let mut wire = Vec::new();
    write_message(&mut wire, &json!({"kind": "hello"})).unwrap();
    write_message(&mut wire, &json!({"kind": "what"})).unwrap();
    input.write_all(&wire).unwrap();
    let mut replies = host.stdout.take().unwrap();
    let hello = read_message(&mut replies).unwrap().unwrap();
    assert_eq!(hello["kind"], "hello");
    assert_eq!(hello["host"], HOST_NAME);
    assert_eq!(hello["version"], env!("CARGO_PKG_VERSION"));
    let error = read_message(&mut replies).unwrap().unwrap();
    assert_eq!(error["kind"], "error");
    assert!(
        error["error"].as_str().unwrap().contains("'what'"),
        "{error}"
    );
    drop(input); // the browser closing the port: the host ends
    assert!(host.wait().unwrap().success());
    assert_eq!(read_message(&mut replies).unwrap(), None);
    // The keeper it started leaves a second later (nothing needs it), with its socket.
    let socket = runtime.path().join("aistudio-ssh/helper.sock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while socket.exists() {
        assert!(std::time::Instant::now() < deadline, "the keeper leaves");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
