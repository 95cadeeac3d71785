//! Keys against real OpenSSH: everything we write, `ssh-keygen` reads; everything it writes, we read.
#![cfg(not(target_arch = "wasm32"))]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use aistudio_ssh::error_variant::ErrorVariant;
use aistudio_ssh::keys::{
    import_public_key, KeyAlgorithm, KeyError, KeyImportError, KeyPair, MAX_KEY_TEXT_BYTES,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const COMMENT: &str = "aistudio-ssh test";

fn seeded(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Runs ssh-keygen; returns stdout, or the failure's stderr as Err.
fn ssh_keygen(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ssh-keygen")
        .args(args)
        .output()
        .expect("ssh-keygen runs (Debian package openssh-client)");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// An Ed25519 key file `name` in `dir` made by ssh-keygen: `passphrase` ("" for none),
/// `rounds` of bcrypt-pbkdf, `comment`; returns the private key's text.
fn ssh_keygen_ed25519(
    dir: &Path,
    name: &str,
    passphrase: &str,
    rounds: u32,
    comment: &str,
) -> String {
    let path = dir.join(name);
    let rounds = rounds.to_string();
    ssh_keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        passphrase,
        "-a",
        &rounds,
        "-C",
        comment,
        "-f",
        path.to_str().unwrap(),
    ])
    .unwrap();
    fs::read_to_string(path).unwrap()
}

fn write_private(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    // ssh-keygen refuses private keys others can read.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The key type and base64 of a public key line: ssh-keygen -y may or may not print the comment.
fn key_part(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn seeded_ed25519_key_matches_its_golden_files() {
    let key = KeyPair::generate(KeyAlgorithm::Ed25519, COMMENT, &mut seeded(1)).unwrap();
    let public = key.public().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    if std::env::var_os("BLESS").is_some() {
        // Rewrites the golden files after an intended change; review the diff.
        fs::write(
            fixtures.join("ed25519-seed-1.pub"),
            format!("{}\n", public.line),
        )
        .unwrap();
        fs::write(
            fixtures.join("ed25519-seed-1"),
            key.to_openssh().unwrap().as_str(),
        )
        .unwrap();
    }
    assert_eq!(
        public.line,
        fs::read_to_string(fixtures.join("ed25519-seed-1.pub"))
            .unwrap()
            .trim_end()
    );
    assert_eq!(
        key.to_openssh().unwrap().as_str(),
        fs::read_to_string(fixtures.join("ed25519-seed-1")).unwrap()
    );
    assert_eq!(public.bits, 256);
    assert_eq!(public.algorithm, "ssh-ed25519");
    // The same seed, the same key; another seed, another key.
    let again = KeyPair::generate(KeyAlgorithm::Ed25519, COMMENT, &mut seeded(1)).unwrap();
    assert_eq!(again.public().unwrap(), public);
    let other = KeyPair::generate(KeyAlgorithm::Ed25519, COMMENT, &mut seeded(2)).unwrap();
    assert_ne!(other.public().unwrap().line, public.line);
}

#[test]
fn every_key_we_write_is_read_by_ssh_keygen_plain_and_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, algorithm) in [
        (10, KeyAlgorithm::Ed25519),
        (11, KeyAlgorithm::Rsa2048),
        (12, KeyAlgorithm::Rsa3072),
    ] {
        let key = KeyPair::generate(algorithm, COMMENT, &mut seeded(seed)).unwrap();
        let public = key.public().unwrap();
        let name = algorithm.name();

        let plain = write_private(dir.path(), name, &key.to_openssh().unwrap());
        let derived = ssh_keygen(&["-y", "-f", plain.to_str().unwrap()]).unwrap();
        assert_eq!(
            key_part(&derived),
            key_part(&public.line),
            "{name}: ssh-keygen -y"
        );

        let pub_file = dir.path().join(format!("{name}.pub"));
        fs::write(&pub_file, format!("{}\n", public.line)).unwrap();
        let listed = ssh_keygen(&["-l", "-f", pub_file.to_str().unwrap()]).unwrap();
        let fields: Vec<&str> = listed.split_whitespace().collect();
        assert_eq!(
            fields[1], public.fingerprint,
            "{name}: ssh-keygen -l fingerprint"
        );
        assert_eq!(
            fields[0],
            public.bits.to_string(),
            "{name}: ssh-keygen -l bits"
        );

        let secret = "correct horse 电池 staple";
        let encrypted_text = key
            .to_openssh_encrypted(secret, &mut seeded(seed + 100))
            .unwrap();
        let encrypted = write_private(dir.path(), &format!("{name}-enc"), &encrypted_text);
        let path = encrypted.to_str().unwrap();
        let derived = ssh_keygen(&["-y", "-P", secret, "-f", path]).unwrap();
        assert_eq!(
            key_part(&derived),
            key_part(&public.line),
            "{name}: encrypted, ssh-keygen -y"
        );
        assert!(
            ssh_keygen(&["-y", "-P", "wrong", "-f", path]).is_err(),
            "{name}: wrong passphrase accepted"
        );
        // And we read our own encrypted file back, only with the passphrase.
        let back = KeyPair::import_openssh(&encrypted_text, Some(secret)).unwrap();
        assert_eq!(back.public().unwrap(), public);
        assert_eq!(
            KeyPair::import_openssh(&encrypted_text, Some("wrong")).unwrap_err(),
            KeyImportError::WrongPassphrase
        );
    }
}

#[test]
fn encrypted_keys_use_aes256_ctr_and_16_bcrypt_rounds_like_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(KeyAlgorithm::Ed25519, COMMENT, &mut seeded(20)).unwrap();
    let ours = key.to_openssh_encrypted("pass", &mut seeded(21)).unwrap();
    let theirs_path = dir.path().join("theirs");
    let path = theirs_path.to_str().unwrap();
    ssh_keygen(&["-q", "-t", "ed25519", "-N", "pass", "-C", "", "-f", path]).unwrap();
    let theirs = fs::read_to_string(&theirs_path).unwrap();
    // The header of the blob: magic, cipher, kdf name, then the kdf options (salt, rounds).
    let header = |text: &str| {
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let bytes = base64_decode(&body);
        let rounds_at = 15 + (4 + 10) + (4 + 6) + 4 + (4 + 16);
        (
            bytes[..rounds_at].to_vec(),
            u32::from_be_bytes(bytes[rounds_at..rounds_at + 4].try_into().unwrap()),
        )
    };
    let (our_header, our_rounds) = header(&ours);
    let (their_header, their_rounds) = header(&theirs);
    assert_eq!(our_rounds, 16);
    assert_eq!(our_rounds, their_rounds);
    assert_eq!(
        &our_header[..43],
        &their_header[..43],
        "magic, aes256-ctr, bcrypt"
    );
}

#[test]
fn keys_made_by_ssh_keygen_import_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], Option<&str>); 5] = [
        ("ed25519", &["-t", "ed25519"], None),
        ("rsa3072", &["-t", "rsa", "-b", "3072"], None),
        ("ecdsa", &["-t", "ecdsa"], None),
        ("ed25519-enc", &["-t", "ed25519"], Some("s3cret")),
        ("rsa-enc", &["-t", "rsa", "-b", "2048"], Some("s3cret")),
    ];
    for (name, type_args, passphrase) in cases {
        let path = dir.path().join(name);
        let path_str = path.to_str().unwrap();
        let mut args = vec![
            "-q",
            "-C",
            "made-by-ssh-keygen",
            "-N",
            passphrase.unwrap_or(""),
            "-f",
            path_str,
        ];
        args.extend_from_slice(type_args);
        ssh_keygen(&args).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let expected_public = fs::read_to_string(dir.path().join(format!("{name}.pub"))).unwrap();

        if passphrase.is_some() {
            assert_eq!(
                KeyPair::import_openssh(&text, None).unwrap_err(),
                KeyImportError::PassphraseRequired
            );
        }
        let key = KeyPair::import_openssh(&text, passphrase).unwrap();
        assert_eq!(
            key.public().unwrap().line,
            expected_public.trim_end(),
            "{name}"
        );
        assert_eq!(key.comment(), "made-by-ssh-keygen");
        assert_eq!(
            import_public_key(&expected_public).unwrap().line,
            expected_public.trim_end()
        );

        // Written back out by us, read by ssh-keygen.
        let rewritten = write_private(
            dir.path(),
            &format!("{name}-ours"),
            &key.to_openssh().unwrap(),
        );
        let derived = ssh_keygen(&["-y", "-f", rewritten.to_str().unwrap()]).unwrap();
        assert_eq!(
            key_part(&derived),
            key_part(&expected_public),
            "{name}: round trip"
        );
    }
}

#[test]
fn public_keys_import_from_pub_files_and_authorized_keys_lines() {
    let key = KeyPair::generate(KeyAlgorithm::Ed25519, "me@laptop", &mut seeded(30)).unwrap();
    let line = key.public().unwrap().line;
    let with_options = format!("restrict,from=\"10.0.0.1\",command=\"echo hi\" {line}");
    for text in [line.clone(), format!("\n  {line}  \r\n"), with_options] {
        let imported = import_public_key(&text).unwrap();
        assert_eq!(imported.line, line);
        assert_eq!(imported.comment, "me@laptop");
    }
}

#[test]
fn bad_input_gets_an_error_that_names_what_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, args: &[&str]| {
        let path = dir.path().join(name);
        let mut all = vec!["-q", "-N", "", "-f", path.to_str().unwrap()];
        all.extend_from_slice(args);
        ssh_keygen(&all).unwrap();
        (
            fs::read_to_string(&path).unwrap(),
            fs::read_to_string(dir.path().join(format!("{name}.pub"))).unwrap(),
        )
    };
    let (ours_private, ours_public) = make("ed", &["-t", "ed25519"]);
    let (pem_private, _) = make("pem", &["-t", "rsa", "-b", "2048", "-m", "PEM"]);
    let (pkcs8_private, _) = make("pkcs8", &["-t", "rsa", "-b", "2048", "-m", "PKCS8"]);
    let (_, small_public) = make("small", &["-t", "rsa", "-b", "1024"]);
    let (small_private, _) = make("small2", &["-t", "rsa", "-b", "1024"]);
    let dsa = make("dsa", &["-t", "dsa"]);
    let truncated = ours_private[..ours_private.len() / 2].to_owned();
    let putty =
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: x\nPublic-Lines: 2\n";
    let huge = "A".repeat(1024 * 1024);

    let private_cases: Vec<(&str, String, KeyImportError)> = vec![
        ("empty", "  \n".into(), KeyImportError::Empty),
        ("garbage", "hello world".into(), KeyImportError::NotAKey),
        (
            "1 MB of text",
            huge.clone(),
            KeyImportError::TooLarge { bytes: huge.len() },
        ),
        ("PuTTY file", putty.into(), KeyImportError::PuttyFormat),
        (
            "PEM RSA",
            pem_private,
            KeyImportError::LegacyPem {
                label: "RSA PRIVATE KEY".into(),
            },
        ),
        (
            "PKCS#8",
            pkcs8_private,
            KeyImportError::LegacyPem {
                label: "PRIVATE KEY".into(),
            },
        ),
        (
            "public key",
            ours_public.clone(),
            KeyImportError::PublicKeyGiven,
        ),
        (
            "RSA-1024",
            small_private,
            KeyImportError::RsaTooSmall { bits: 1024 },
        ),
    ];
    for (what, text, expected) in private_cases {
        assert_eq!(
            KeyPair::import_openssh(&text, None).unwrap_err(),
            expected,
            "{what}"
        );
    }
    match KeyPair::import_openssh(&truncated, None).unwrap_err() {
        KeyImportError::Damaged { .. } => {}
        other => panic!("truncated key: {other:?}"),
    }
    match KeyPair::import_openssh(&dsa.0, None).unwrap_err() {
        KeyImportError::UnsupportedAlgorithm { algorithm } => {
            assert!(algorithm.contains("DSA"), "{algorithm}")
        }
        other => panic!("DSA private key: {other:?}"),
    }

    let public_cases: Vec<(&str, String, KeyImportError)> = vec![
        ("empty", String::new(), KeyImportError::Empty),
        (
            "garbage",
            "ssh-ed25519 not-base64!".into(),
            KeyImportError::NotAKey,
        ),
        (
            "two keys",
            format!("{ours_public}{ours_public}"),
            KeyImportError::NotAKey,
        ),
        (
            "private key",
            ours_private.clone(),
            KeyImportError::PrivateKeyGiven,
        ),
        ("PuTTY file", putty.into(), KeyImportError::PrivateKeyGiven),
        (
            "RFC 4716",
            "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----".into(),
            KeyImportError::Ssh2PublicKey,
        ),
        (
            "RSA-1024",
            small_public,
            KeyImportError::RsaTooSmall { bits: 1024 },
        ),
        (
            "1 MB of text",
            huge.clone(),
            KeyImportError::TooLarge { bytes: huge.len() },
        ),
    ];
    for (what, text, expected) in public_cases {
        assert_eq!(import_public_key(&text).unwrap_err(), expected, "{what}");
    }
    match import_public_key(&dsa.1).unwrap_err() {
        KeyImportError::UnsupportedAlgorithm { algorithm } => assert!(algorithm.contains("DSA")),
        other => panic!("DSA public key: {other:?}"),
    }
}

#[test]
fn error_messages_name_the_problem_and_what_is_accepted() {
    let message = KeyImportError::PuttyFormat.to_string();
    assert!(
        message.contains("PuTTYgen") && message.contains("Export OpenSSH key"),
        "{message}"
    );
    let message = KeyImportError::TooLarge { bytes: 1_048_576 }.to_string();
    assert!(
        message.contains("1048576") && message.contains(&MAX_KEY_TEXT_BYTES.to_string()),
        "{message}"
    );
    let message = KeyImportError::NotAKey.to_string();
    assert!(
        message.contains("BEGIN OPENSSH PRIVATE KEY") && message.contains("ssh-ed25519"),
        "{message}"
    );
    assert_eq!(KeyImportError::WrongPassphrase.variant(), "WrongPassphrase");
}

/// Standard base64 (with padding) to bytes; enough for reading key file headers in tests.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|c| *c == byte).expect("base64") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[test]
fn an_rsa_key_from_jwk_numbers_is_checked_and_read_by_ssh_keygen() {
    use aistudio_ssh::keys::{RsaComponents, RsaJwk};
    let native = rsa::RsaPrivateKey::new(&mut seeded(40), 2048).unwrap();
    let jwk = jwk_of(&native);
    let key =
        KeyPair::from_rsa_components(&RsaComponents::try_from(&jwk).unwrap(), COMMENT).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_private(dir.path(), "jwk", &key.to_openssh().unwrap());
    let derived = ssh_keygen(&["-y", "-f", path.to_str().unwrap()]).unwrap();
    assert_eq!(key_part(&derived), key_part(&key.public().unwrap().line));
    assert_eq!(key.public().unwrap().bits, 2048);

    let wrong_prime = RsaJwk {
        q: jwk.p.clone(),
        ..jwk.clone()
    };
    let error =
        KeyPair::from_rsa_components(&RsaComponents::try_from(&wrong_prime).unwrap(), COMMENT)
            .unwrap_err();
    assert!(
        matches!(error, KeyError::InvalidRsaComponents { .. }),
        "{error:?}"
    );
    let not_base64 = RsaJwk {
        n: "!!".into(),
        ..jwk.clone()
    };
    assert!(matches!(
        RsaComponents::try_from(&not_base64),
        Err(KeyError::InvalidRsaComponents { .. })
    ));
    let not_rsa = RsaJwk {
        kty: "EC".into(),
        ..jwk
    };
    assert!(matches!(
        RsaComponents::try_from(&not_rsa),
        Err(KeyError::InvalidRsaComponents { .. })
    ));
}

/// An RSA key from the rsa crate as WebCrypto exports it (`exportKey('jwk')`).
fn jwk_of(native: &rsa::RsaPrivateKey) -> aistudio_ssh::keys::RsaJwk {
    use base64ct::{Base64UrlUnpadded, Encoding};
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let b64 = |n: &rsa::BigUint| Base64UrlUnpadded::encode_string(&n.to_bytes_be());
    aistudio_ssh::keys::RsaJwk {
        kty: "RSA".into(),
        n: b64(native.n()),
        e: b64(native.e()),
        d: b64(native.d()),
        p: b64(&native.primes()[0]),
        q: b64(&native.primes()[1]),
    }
}

#[test]
fn a_comment_with_a_newline_stays_on_its_line() {
    // A crafted key (ssh-keygen takes any comment) whose comment would add a line to an
    // authorized_keys file; the line we write must stay one line.
    let dir = tempfile::tempdir().unwrap();
    let comment = "me\nrestrict,command=\"id\" ssh-ed25519 AAAA\r\t x";
    let text = ssh_keygen_ed25519(dir.path(), "crafted", "", 16, comment);
    let key = KeyPair::import_openssh(&text, None).unwrap();
    let public = key.public().unwrap();
    assert_eq!(public.line.lines().count(), 1, "{:?}", public.line);
    assert!(
        !public.line.chars().any(char::is_control),
        "{:?}",
        public.line
    );
    assert!(!key.comment().chars().any(char::is_control));
    assert!(
        public.comment.starts_with("me restrict,command="),
        "{:?}",
        public.comment
    );
    // The key written back out carries the same one-line comment.
    let rewritten = KeyPair::import_openssh(&key.to_openssh().unwrap(), None).unwrap();
    assert_eq!(rewritten.public().unwrap().line, public.line);
}

#[test]
fn a_key_asking_for_absurd_bcrypt_rounds_is_refused_at_once() {
    use base64ct::{Base64, Encoding};
    let dir = tempfile::tempdir().unwrap();
    let text = ssh_keygen_ed25519(dir.path(), "rounds", "pw", 16, "");
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut blob = Base64::decode_vec(&body).unwrap();
    // openssh-key-v1\0, "aes256-ctr", "bcrypt", then the KDF options: a 16-byte salt, the rounds.
    let rounds_at = 15 + (4 + 10) + (4 + 6) + 4 + (4 + 16);
    assert_eq!(&blob[rounds_at..rounds_at + 4], &16u32.to_be_bytes());
    blob[rounds_at..rounds_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let encoded = Base64::encode_string(&blob);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(70)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let crafted = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let error = KeyPair::import_openssh(&crafted, Some("pw")).unwrap_err();
    assert_eq!(error, KeyImportError::TooManyRounds { rounds: u32::MAX });
    assert!(
        error.to_string().contains("ssh-keygen -p -a 100"),
        "{error}"
    );
    // What ssh-keygen users pick still works.
    let a100 = ssh_keygen_ed25519(dir.path(), "a100", "pw", 100, "");
    assert!(KeyPair::import_openssh(&a100, Some("pw")).is_ok());
}

/// Runs a future that never waits (the makers below answer at once) to its end.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
    fn no_waker() -> RawWaker {
        const VTABLE: RawWakerVTable = RawWakerVTable::new(|_| no_waker(), |_| {}, |_| {}, |_| {});
        RawWaker::new(std::ptr::null(), &VTABLE)
    }
    // SAFETY: the vtable's functions ignore the (null) data pointer.
    let waker = unsafe { Waker::from_raw(no_waker()) };
    match std::pin::pin!(future).poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future waited"),
    }
}

/// WebCrypto's stand-in: an RSA key from the rsa crate, exported as WebCrypto exports it.
struct JwkFromRsaCrate {
    rng: std::cell::RefCell<ChaCha20Rng>,
    asked: std::cell::Cell<Option<usize>>,
}

impl aistudio_ssh::keys::RsaKeyMaker for JwkFromRsaCrate {
    async fn make_rsa_jwk(&self, bits: usize) -> Result<aistudio_ssh::keys::RsaJwk, KeyError> {
        self.asked.set(Some(bits));
        let native = rsa::RsaPrivateKey::new(&mut *self.rng.borrow_mut(), bits).unwrap();
        Ok(jwk_of(&native))
    }
}

/// A browser whose WebCrypto refuses.
struct RefusingWebCrypto;

impl aistudio_ssh::keys::RsaKeyMaker for RefusingWebCrypto {
    async fn make_rsa_jwk(&self, _bits: usize) -> Result<aistudio_ssh::keys::RsaJwk, KeyError> {
        Err(KeyError::WebCrypto {
            detail: "OperationError".into(),
        })
    }
}

#[test]
fn key_making_takes_ed25519_from_the_rng_and_rsa_from_the_maker() {
    use aistudio_ssh::keys::make_key_pair;
    let maker = JwkFromRsaCrate {
        rng: std::cell::RefCell::new(seeded(41)),
        asked: std::cell::Cell::new(None),
    };
    let ed25519 = ready(make_key_pair(
        KeyAlgorithm::Ed25519,
        COMMENT,
        &mut seeded(42),
        &maker,
    ))
    .unwrap();
    assert_eq!(
        maker.asked.get(),
        None,
        "Ed25519 does not ask the RSA maker"
    );
    let expected = KeyPair::generate(KeyAlgorithm::Ed25519, COMMENT, &mut seeded(42)).unwrap();
    assert_eq!(ed25519.public().unwrap(), expected.public().unwrap());

    let rsa = ready(make_key_pair(
        KeyAlgorithm::Rsa2048,
        COMMENT,
        &mut seeded(43),
        &maker,
    ))
    .unwrap();
    assert_eq!(maker.asked.get(), Some(2048));
    let public = rsa.public().unwrap();
    assert_eq!((public.algorithm.as_str(), public.bits), ("ssh-rsa", 2048));
    assert!(public.line.ends_with(COMMENT), "{}", public.line);
    let dir = tempfile::tempdir().unwrap();
    let path = write_private(dir.path(), "made", &rsa.to_openssh().unwrap());
    let derived = ssh_keygen(&["-y", "-f", path.to_str().unwrap()]).unwrap();
    assert_eq!(key_part(&derived), key_part(&public.line));

    let refused = ready(make_key_pair(
        KeyAlgorithm::Rsa3072,
        COMMENT,
        &mut seeded(44),
        &RefusingWebCrypto,
    ))
    .unwrap_err();
    assert_eq!(refused.variant(), "WebCrypto");
    assert!(refused.to_string().contains("OperationError"), "{refused}");
}

#[test]
fn error_variant_names_are_the_variants_own() {
    assert_eq!(
        KeyImportError::PassphraseRequired.variant(),
        "PassphraseRequired"
    );
    assert_eq!(
        KeyImportError::TooManyRounds { rounds: 1 }.variant(),
        "TooManyRounds"
    );
    assert_eq!(
        "dsa".parse::<KeyAlgorithm>().unwrap_err().variant(),
        "UnknownAlgorithm"
    );
    assert_eq!(
        KeyError::InvalidRsaComponents {
            detail: String::new()
        }
        .variant(),
        "InvalidRsaComponents"
    );
}
