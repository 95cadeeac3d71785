use aistudio_ssh::keys::{import_public_key, KeyPair};
use aistudio_ssh::project_keys::{complete_project_keys, KeyRole, ProjectKeys, StoredKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[test]
fn a_new_project_gets_three_distinct_ed25519_keys_named_after_it() {
    let (keys, made) = complete_project_keys(
        "7892508",
        ProjectKeys::default(),
        &mut ChaCha20Rng::seed_from_u64(1),
    )
    .unwrap();
    assert_eq!(made, KeyRole::ALL.to_vec());
    let all =
        [&keys.client, &keys.container_relay, &keys.container_host].map(|k| k.clone().unwrap());
    let comments: Vec<_> = all.iter().map(|k| k.public.comment.as_str()).collect();
    assert_eq!(
        comments,
        [
            "aistudio-7892508-client",
            "aistudio-7892508-relay",
            "aistudio-7892508-host"
        ]
    );
    assert_ne!(all[0].public.fingerprint, all[1].public.fingerprint);
    assert_ne!(all[1].public.fingerprint, all[2].public.fingerprint);
    for key in &all {
        assert_eq!(key.public.algorithm, "ssh-ed25519");
        let private = KeyPair::import_openssh(key.private_key.as_deref().unwrap(), None).unwrap();
        assert_eq!(private.public().unwrap(), key.public);
    }
}

#[test]
fn existing_keys_are_never_replaced_and_nothing_is_made_twice() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let (first, _) = complete_project_keys("1", ProjectKeys::default(), &mut rng).unwrap();
    let (second, made) = complete_project_keys("1", first.clone(), &mut rng).unwrap();
    assert!(made.is_empty());
    assert_eq!(second, first);

    // A client key the user pasted (public only) stays; only the missing container keys are made.
    let pasted = KeyPair::generate(
        aistudio_ssh::keys::KeyAlgorithm::Ed25519,
        "me@laptop",
        &mut rng,
    )
    .unwrap();
    let user_client = StoredKey {
        private_key: None,
        public: import_public_key(&pasted.public().unwrap().line).unwrap(),
    };
    let partial = ProjectKeys {
        client: Some(user_client.clone()),
        ..Default::default()
    };
    let (completed, made) = complete_project_keys("1", partial, &mut rng).unwrap();
    assert_eq!(made, [KeyRole::ContainerRelay, KeyRole::ContainerHost]);
    assert_eq!(completed.client, Some(user_client));
}

#[test]
fn stored_keys_round_trip_through_json_in_camel_case() {
    let (keys, _) = complete_project_keys(
        "9",
        ProjectKeys::default(),
        &mut ChaCha20Rng::seed_from_u64(3),
    )
    .unwrap();
    let json = serde_json::to_string(&keys).unwrap();
    assert!(
        json.contains("\"containerRelay\"")
            && json.contains("\"privateKey\"")
            && json.contains("\"fingerprint\"")
    );
    assert_eq!(serde_json::from_str::<ProjectKeys>(&json).unwrap(), keys);
    // What older or partial storage holds still reads.
    assert_eq!(
        serde_json::from_str::<ProjectKeys>("{}").unwrap(),
        ProjectKeys::default()
    );
}

#[test]
fn a_pasted_client_key_is_kept_public_only_or_with_its_private_half() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let pair = KeyPair::generate(
        aistudio_ssh::keys::KeyAlgorithm::Ed25519,
        "me@laptop",
        &mut rng,
    )
    .unwrap();
    let public_line = pair.public().unwrap().line;

    let from_public = StoredKey::from_paste(&format!("{public_line}\n"), None).unwrap();
    assert_eq!(from_public.private_key, None);
    assert_eq!(from_public.public.line, public_line);

    let encrypted = pair.to_openssh_encrypted("pw", &mut rng).unwrap();
    assert_eq!(
        StoredKey::from_paste(&encrypted, None).unwrap_err(),
        aistudio_ssh::keys::KeyError::PassphraseRequired
    );
    let from_private = StoredKey::from_paste(&encrypted, Some("pw")).unwrap();
    assert_eq!(from_private.public.line, public_line);
    assert!(from_private
        .private_key
        .unwrap()
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));

    let putty = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n";
    assert_eq!(
        StoredKey::from_paste(putty, None).unwrap_err(),
        aistudio_ssh::keys::KeyError::PuttyFormat
    );
}

#[test]
fn a_page_sees_public_halves_and_whether_a_private_half_is_kept() {
    let (mut keys, _) = complete_project_keys(
        "p1",
        ProjectKeys::default(),
        &mut ChaCha20Rng::seed_from_u64(7),
    )
    .unwrap();
    let pasted = keys.client.as_ref().unwrap().public.line.clone();
    keys.client = Some(StoredKey::from_paste(&pasted, None).unwrap());
    keys.container_relay = None;
    let view = serde_json::to_value(keys.view("p1")).unwrap();
    let text = view.to_string();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert!(!text.contains("privateKey"), "{text}");
    assert_eq!(view["projectId"], "p1");
    assert_eq!(view["client"]["hasPrivateKey"], false);
    assert_eq!(view["client"]["line"], pasted.as_str());
    assert_eq!(view["containerRelay"], serde_json::Value::Null);
    let host = keys.container_host.as_ref().unwrap();
    assert_eq!(view["containerHost"]["hasPrivateKey"], true);
    assert_eq!(
        view["containerHost"]["fingerprint"],
        host.public.fingerprint.as_str()
    );
}
