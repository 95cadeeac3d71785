use aistudio_ssh::error_variant::ErrorVariant;
use aistudio_ssh::settings::{
    next_remote_port, FieldError, ProjectInput, RelayInput, Route, SettingsError, SettingsInput,
};

const RELAY_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEeLjlB+C7KxjA+eCCR2noVi0Q35q+LndIlvgrS0QFJm relay";

fn input(json: &str) -> SettingsInput {
    SettingsInput::from_json(json).unwrap()
}

fn minimal() -> String {
    format!(
        r#"{{"project": "7892508", "relay": {{"host": "relay.example.com", "hostKey": "{RELAY_KEY}"}}}}"#
    )
}

/// The invalid fields' names, in order.
fn invalid_fields(settings: &SettingsInput) -> Vec<&'static str> {
    match settings.validate() {
        Err(SettingsError::Invalid { fields }) => fields.iter().map(|f| f.field).collect(),
        other => panic!("expected invalid settings, got {other:?}"),
    }
}

#[test]
fn defaults_fill_everything_but_project_host_and_host_key() {
    let settings = input(&minimal()).validate().unwrap();
    let relay = settings.relay.as_ref().unwrap();
    assert_eq!(relay.port, 443);
    assert_eq!(relay.user, "aistudio-tunnel");
    assert_eq!(relay.remote_port, 7423);
    assert_eq!(settings.container_sshd_port, 2222);
    assert_eq!(settings.container_user, "aistudio");
    assert_eq!(settings.ssh_dir, "~/.ssh/aistudio-7892508");
    assert_eq!(relay.host_keys.len(), 1);
}

#[test]
fn hosts_may_be_names_ipv4_or_ipv6() {
    for (host, normalized) in [
        ("Relay.Example.COM", "relay.example.com"),
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::7", "2001:db8::7"),
        ("[2001:DB8::7]", "2001:db8::7"),
        ("::1", "::1"),
    ] {
        let mut settings = input(&minimal());
        settings.relay.as_mut().unwrap().host = host.into();
        assert_eq!(
            settings.validate().unwrap().relay.unwrap().host,
            normalized,
            "{host}"
        );
    }
    for bad in [
        "",
        "relay example.com",
        "256.1.1.1",
        "1.2.3",
        "01.2.3.4",
        "[1.2.3.4]",
        "fe80::1%eth0",
        "a;b",
        "relay.example.com:22",
        "-oProxyCommand=x",
    ] {
        let mut settings = input(&minimal());
        settings.relay.as_mut().unwrap().host = bad.into();
        assert_eq!(invalid_fields(&settings), ["relay.host"], "{bad}");
    }
}

#[test]
fn every_bad_field_is_named_with_its_value_and_what_is_allowed() {
    let json = r#"{"project": "78 92", "relay": {"host": "relay.example.com", "port": 70000,
        "user": "Root", "hostKey": "not a key"}, "remotePort": 80, "containerSshdPort": 0,
        "containerUser": "", "sshDir": "~/.ssh/$(x)"}"#;
    let error = input(json).validate().unwrap_err();
    let SettingsError::Invalid { fields } = &error else {
        panic!("{error:?}")
    };
    let names: Vec<_> = fields.iter().map(|f| f.field).collect();
    assert_eq!(
        names,
        [
            "project",
            "relay.port",
            "relay.user",
            "relay.hostKey",
            "remotePort",
            "containerSshdPort",
            "containerUser",
            "sshDir"
        ]
    );
    let text = error.to_string();
    assert!(
        text.contains(
            r#"relay.port: "70000" is not allowed; a port is a whole number from 1 to 65535"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"remotePort: "80" is not allowed; a whole number from 1024 to 65535"#),
        "{text}"
    );
    assert!(
        text.contains("relay.user: \"Root\" is not allowed; a user name"),
        "{text}"
    );
}

#[test]
fn the_relay_account_is_never_root() {
    let mut settings = input(&minimal());
    settings.relay.as_mut().unwrap().user = "root".into();
    let error = settings.validate().unwrap_err();
    let SettingsError::Invalid { fields } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        (fields[0].field, fields[0].rule),
        ("relay.user", "relayUser")
    );
    assert!(fields[0].allowed.contains("other than root"), "{error}");
    // root stays possible in the container (a self-hosted Jupyter may run as root).
    let mut settings = input(&minimal());
    settings.container_user = "root".into();
    assert!(settings.validate().is_ok());
}

#[test]
fn the_host_key_may_be_ssh_keyscan_output_with_several_keys() {
    let mut settings = input(&minimal());
    settings.relay.as_mut().unwrap().host_key = format!(
        "# relay.example.com:443 SSH-2.0-OpenSSH_9.2\n[relay.example.com]:443 {RELAY_KEY}\nrelay.example.com {RELAY_KEY}\n"
    );
    assert_eq!(
        settings.validate().unwrap().relay.unwrap().host_keys.len(),
        2
    );
    settings.relay.as_mut().unwrap().host_key = "# only a comment".into();
    assert_eq!(invalid_fields(&settings), ["relay.hostKey"]);
}

#[test]
fn json_that_is_not_settings_is_refused_with_the_reason() {
    let error = SettingsInput::from_json(r#"{"relay": {}}"#).unwrap_err();
    assert!(matches!(error, SettingsError::Json { .. }));
    // The names the UI sees, kept from before they were derived.
    assert_eq!(error.variant(), "SettingsJson");
    let invalid = SettingsError::Invalid { fields: Vec::new() };
    assert_eq!(invalid.variant(), "InvalidSettings");
    assert!(
        error.to_string().contains("missing field `host`"),
        "{error}"
    );
    assert!(SettingsInput::from_json(
        r#"{"project": "1", "relay": {"host": "h", "hostKey": "k", "port": "22"}}"#
    )
    .is_err());
}

#[test]
fn every_rule_has_its_own_id_and_a_chinese_translation() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../www/_locales/zh_CN/messages.json"
    );
    let messages: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("zh_CN messages"))
            .expect("JSON");
    let mut ids = std::collections::BTreeSet::new();
    for rule in aistudio_ssh::settings::RULES {
        assert!(ids.insert(rule.id), "rule id {} used twice", rule.id);
        let translated = messages[format!("rule_{}", rule.id)]["message"].as_str();
        assert!(
            translated.is_some_and(|text| !text.is_empty() && text != rule.text),
            "no zh_CN translation rule_{} of {:?}",
            rule.id,
            rule.text
        );
    }
}

fn relay(json: &str) -> RelayInput {
    serde_json::from_str(json).unwrap()
}

fn fields(errors: &[FieldError]) -> Vec<&'static str> {
    errors.iter().map(|error| error.field).collect()
}

#[test]
fn the_relay_is_checked_on_its_own_before_any_project_exists() {
    let good = relay(&format!(
        r#"{{"host": "relay.example.com", "hostKey": "{RELAY_KEY}"}}"#
    ));
    assert!(good.check().is_empty());
    let bad = relay(r#"{"host": "relay example", "port": 0, "user": "root", "hostKey": "x"}"#);
    assert_eq!(
        fields(&bad.check()),
        ["relay.host", "relay.port", "relay.user", "relay.hostKey"]
    );
}

#[test]
fn a_project_part_is_checked_without_a_relay() {
    let part: ProjectInput = serde_json::from_str(r#"{"remotePort": 7424}"#).unwrap();
    assert!(part.check("7892508").is_empty());
    // One length rule for every project id, wherever it is checked.
    assert_eq!(fields(&part.check(&"p".repeat(65))), ["project"]);
    assert!(aistudio_ssh::fields::is_project_id(&"p".repeat(64)));
    assert!(!aistudio_ssh::fields::is_project_id(&"p".repeat(65)));
    let bad: ProjectInput = serde_json::from_str(
        r#"{"remotePort": 22, "containerSshdPort": 70000, "containerUser": "Bad User", "sshDir": "~/a;b"}"#,
    )
    .unwrap();
    assert_eq!(
        fields(&bad.check("../x")),
        [
            "project",
            "remotePort",
            "containerSshdPort",
            "containerUser",
            "sshDir"
        ]
    );
}

#[test]
fn blank_project_fields_take_the_defaults() {
    let part: ProjectInput =
        serde_json::from_str(r#"{"remotePort": 7425, "containerUser": " ", "sshDir": ""}"#)
            .unwrap();
    assert!(part.check("p1").is_empty());
    let relay = relay(&format!(
        r#"{{"host": "relay.example.com", "hostKey": "{RELAY_KEY}"}}"#
    ));
    let settings = SettingsInput::from_parts("p1", Some(relay), part)
        .validate()
        .unwrap();
    assert_eq!(settings.container_user, "aistudio");
    assert_eq!(settings.ssh_dir, "~/.ssh/aistudio-p1");
    assert_eq!(settings.relay.unwrap().remote_port, 7425);
    assert_eq!(settings.container_sshd_port, 2222);
}

#[test]
fn each_new_project_takes_the_lowest_free_relay_port() {
    assert_eq!(next_remote_port(&[]), 7423);
    assert_eq!(next_remote_port(&[7423, 7424, 7426]), 7425);
    assert_eq!(next_remote_port(&[7424, 9000]), 7423);
}

#[test]
fn without_a_relay_the_route_is_direct_and_needs_no_relay_field() {
    let direct = input(r#"{"project": "7892508"}"#).validate().unwrap();
    assert_eq!(direct.route(), Route::Direct);
    assert_eq!(direct.relay, None);
    // A relay stored for other projects is not this project's business on the direct route,
    // even an invalid one.
    let mut settings = input(&minimal());
    settings.route = Some(Route::Direct);
    settings.relay.as_mut().unwrap().host = "bad host".into();
    assert_eq!(settings.validate().unwrap().route(), Route::Direct);
    // The relay route without a relay names the field.
    let mut settings = input(r#"{"project": "7892508"}"#);
    settings.route = Some(Route::Relay);
    assert_eq!(invalid_fields(&settings), ["relay"]);
    // A project part stored before routes existed: the relay when the user set one.
    let part: ProjectInput = serde_json::from_str(r#"{"remotePort": 7425}"#).unwrap();
    let with_relay = SettingsInput::from_parts(
        "p1",
        Some(relay(&format!(
            r#"{{"host": "relay.example.com", "hostKey": "{RELAY_KEY}"}}"#
        ))),
        part.clone(),
    );
    assert_eq!(with_relay.validate().unwrap().route(), Route::Relay);
    let without = SettingsInput::from_parts("p1", None, part);
    assert_eq!(without.validate().unwrap().route(), Route::Direct);
}
