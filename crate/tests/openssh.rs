//! The rendered scripts against real OpenSSH on loopback: a relay sshd set up by the real
//! relay script, a "container" user without root running provisioning and the tunnel, and
//! the user's `ssh -F ssh_config aistudio-<project>` with strict host key checking.
//! Needs root (it creates two users and runs a root sshd as the relay).
#![cfg(not(target_arch = "wasm32"))]

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PROJECT: &str = "7892508";
const TUNNEL_USER: &str = "aistudio-ssh-relaytest";
const CONTAINER_USER: &str = "aistudio-ssh-ctest";
/// What the container user's .bashrc holds before we touch it; must survive every run.
const USER_BASHRC: &str = "# the user's own line\nalias ll='ls -l'\n";
const USER_AUTHORIZED_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEeLjlB+C7KxjA+eCCR2noVi0Q35q+LndIlvgrS0QFJm own";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn output(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("command runs")
}

fn ok(command: &mut Command) -> String {
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a script as the container user with a login environment, feeding it on stdin.
fn as_container(script: &Path, args: &[&str]) -> Output {
    let mut command = Command::new("runuser");
    command
        .args(["-l", CONTAINER_USER, "-s", "/bin/bash", "-c"])
        .arg(format!("bash -s -- {}", args.join(" ")))
        .stdin(fs::File::open(script).unwrap());
    command.output().unwrap()
}

fn remove_user(name: &str) {
    let _ = output(Command::new("pkill").args(["-KILL", "-u", name]));
    let _ = output(Command::new("userdel").args(["-r", "-f", name]));
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn kill(pid: i32, signal: &str) {
    let _ = output(Command::new("kill").args([signal, &pid.to_string()]));
}

struct Lab {
    dir: tempfile::TempDir,
    relay_port: u16,
    remote_port: u16,
    container_home: PathBuf,
}

impl Lab {
    fn relay_dir(&self) -> PathBuf {
        self.dir.path().join("relay")
    }
    fn client_dir(&self) -> PathBuf {
        self.dir.path().join("client")
    }
    fn relay_config(&self) -> PathBuf {
        self.relay_dir().join("sshd_config")
    }

    fn start_relay_sshd(&self) {
        fs::create_dir_all("/run/sshd").unwrap();
        ok(Command::new("/usr/sbin/sshd")
            .arg("-f")
            .arg(self.relay_config())
            .arg("-E")
            .arg(self.relay_dir().join("sshd.log")));
    }

    /// Stops the relay as a service restart does: the listener and every session.
    fn stop_relay_sshd(&self) {
        if let Some(pid) = read_pid(&self.relay_dir().join("sshd.pid")) {
            kill(pid, "-TERM");
        }
        let _ = output(Command::new("pkill").args(["-KILL", "-u", TUNNEL_USER]));
        let _ =
            output(Command::new("pkill").args(["-KILL", "-f", &format!("sshd: {TUNNEL_USER}")]));
        sleep(Duration::from_millis(300));
    }

    fn run_relay_setup(&self) -> String {
        self.run_relay_setup_from(&self.client_dir())
    }

    /// Runs a rendered relay-setup.sh against the test relay instead of /etc/ssh.
    fn run_relay_setup_from(&self, rendered: &Path) -> String {
        let pid_file = self.relay_dir().join("sshd.pid");
        ok(Command::new("bash")
            .arg(rendered.join("relay-setup.sh"))
            .env("AISTUDIO_SSH_SSHD_CONFIG", self.relay_config())
            .env(
                "AISTUDIO_SSH_SSHD_DROPIN_DIR",
                self.relay_dir().join("sshd_config.d"),
            )
            .env(
                "AISTUDIO_SSH_SSHD_RELOAD",
                format!("kill -HUP $(cat {})", pid_file.display()),
            ))
    }

    fn relay_authorized_keys(&self) -> String {
        let home = ok(Command::new("sh")
            .arg("-c")
            .arg(format!("getent passwd {TUNNEL_USER} | cut -d: -f6")));
        fs::read_to_string(format!("{}/.ssh/authorized_keys", home.trim())).unwrap()
    }

    fn provision(&self) -> String {
        let out = as_container(&self.client_dir().join("provision.sh"), &[]);
        assert!(
            out.status.success(),
            "provision failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn tunnel(&self, args: &[&str]) -> String {
        let out = as_container(&self.client_dir().join("tunnel.sh"), args);
        assert!(
            out.status.success(),
            "tunnel {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The user's command: `ssh -F <rendered ssh_config> aistudio-<project> <command>`.
    fn user_ssh(&self, command: &str) -> Output {
        output(
            Command::new("ssh")
                .arg("-F")
                .arg(self.client_dir().join("ssh_config"))
                .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"])
                .arg(format!("aistudio-{PROJECT}"))
                .arg(command),
        )
    }

    /// Waits (at most `limit`) until the user's ssh reaches the container again.
    fn wait_for_ssh(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let out = self.user_ssh("whoami");
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == CONTAINER_USER
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "no ssh after {limit:?}: {}\ntunnel: {}",
                String::from_utf8_lossy(&out.stderr),
                fs::read_to_string("/tmp/aistudio-ssh/tunnel.status").unwrap_or_default()
            );
            sleep(Duration::from_millis(500));
        }
    }

    /// A direct ssh to the relay as the tunnel user with one of the project's keys.
    fn relay_ssh(&self, key: &Path, args: &[&str]) -> Output {
        output(
            Command::new("ssh")
                .args([
                    "-F",
                    "/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "IdentitiesOnly=yes",
                ])
                .args([
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "ConnectTimeout=5",
                ])
                .arg("-i")
                .arg(key)
                .args(["-p", &self.relay_port.to_string(), "-l", TUNNEL_USER])
                .args(args),
        )
    }

    fn tunnel_ssh_pid(&self) -> Option<i32> {
        let out = output(Command::new("pgrep").args([
            "-u",
            CONTAINER_USER,
            "-f",
            "^ssh -F /dev/null -NT",
        ]));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(pid) = read_pid(Path::new("/tmp/aistudio-ssh/tunnel.pid")) {
            kill(-pid, "-TERM");
        }
        if let Some(pid) = read_pid(Path::new("/tmp/aistudio-ssh/sshd.pid")) {
            kill(pid, "-TERM");
        }
        self.stop_relay_sshd();
        remove_user(CONTAINER_USER);
        remove_user(TUNNEL_USER);
        let _ = fs::remove_dir_all("/tmp/aistudio-ssh");
    }
}

fn set_up() -> Lab {
    assert_eq!(
        current_uid(),
        0,
        "this test needs root: it creates users and runs a root sshd as the relay (npm test runs it as root in CI)"
    );
    remove_user(CONTAINER_USER);
    remove_user(TUNNEL_USER);
    let _ = fs::remove_dir_all("/tmp/aistudio-ssh");
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let lab = Lab {
        container_home: dir.path().join("home").join(CONTAINER_USER),
        dir,
        relay_port: free_port(),
        remote_port: free_port(),
    };

    // The container: a user without root, a persistent ~/work, a .bashrc and authorized_keys of its own.
    fs::create_dir_all(lab.container_home.parent().unwrap()).unwrap();
    ok(Command::new("useradd")
        .args(["--create-home", "--shell", "/bin/bash", "--home-dir"])
        .arg(&lab.container_home)
        .arg(CONTAINER_USER));
    let setup = format!(
        "mkdir -p ~/work ~/.ssh && printf %s {bashrc} > ~/.bashrc && printf '%s\\n' {key} > ~/.ssh/authorized_keys",
        bashrc = aistudio_ssh::shell::quote(USER_BASHRC),
        key = aistudio_ssh::shell::quote(USER_AUTHORIZED_KEY)
    );
    ok(Command::new("runuser").args(["-l", CONTAINER_USER, "-c", &setup]));

    // The relay: a root sshd on loopback with its own config, including a drop-in directory.
    let relay = lab.relay_dir();
    fs::create_dir_all(relay.join("sshd_config.d")).unwrap();
    let host_key = relay.join("ssh_host_ed25519_key");
    ok(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&host_key));
    fs::write(
        lab.relay_config(),
        format!(
            "Include {relay}/sshd_config.d/*.conf\nPort {port}\nListenAddress 127.0.0.1\nHostKey {key}\n\
             PidFile {relay}/sshd.pid\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             AuthorizedKeysFile .ssh/authorized_keys\nLogLevel VERBOSE\n",
            relay = relay.display(),
            port = lab.relay_port,
            key = host_key.display()
        ),
    )
    .unwrap();
    lab.start_relay_sshd();

    // The user's side: settings -> the CLI renders keys, scripts and config.
    let relay_host_key = fs::read_to_string(relay.join("ssh_host_ed25519_key.pub")).unwrap();
    let settings = serde_json::json!({
        "project": PROJECT,
        "relay": {"host": "127.0.0.1", "port": lab.relay_port, "user": TUNNEL_USER, "hostKey": relay_host_key.trim()},
        "remotePort": lab.remote_port,
        "containerSshdPort": free_port(),
        "containerUser": CONTAINER_USER,
        "sshDir": lab.client_dir(),
    });
    let settings_path = lab.dir.path().join("settings.json");
    fs::write(&settings_path, settings.to_string()).unwrap();
    render_with_cli(&settings_path, &lab.client_dir());
    lab
}

/// `aistudio-ssh render`, the command users run, as the test's way to make a project.
fn render_with_cli(settings: &Path, out: &Path) {
    ok(Command::new(env!("CARGO_BIN_EXE_aistudio-ssh"))
        .args(["render", "--settings"])
        .arg(settings)
        .arg("--out")
        .arg(out));
}

fn current_uid() -> u32 {
    let out = output(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|line| line.contains(needle)).count()
}

#[test]
fn ssh_reaches_the_container_through_the_relay_and_keeps_reaching_it() {
    let lab = set_up();

    // Set up the relay with the script the extension prints; it prints the relay host key.
    let printed = lab.run_relay_setup();
    let relay_key = fs::read_to_string(lab.relay_dir().join("ssh_host_ed25519_key.pub")).unwrap();
    let relay_key_fields: Vec<&str> = relay_key.split_whitespace().take(2).collect();
    assert!(
        printed.contains(&relay_key_fields.join(" ")),
        "relay key not printed:\n{printed}"
    );

    lab.provision();
    let tunnel = lab.tunnel(&[]);
    assert!(tunnel.contains("state=up"), "tunnel not up: {tunnel}");

    // The user's ssh, strict host key checking, pinned keys only.
    let out = lab.user_ssh("whoami; echo $HOME");
    assert!(
        out.status.success(),
        "ssh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().next(), Some(CONTAINER_USER));
    assert_eq!(
        stdout.lines().nth(1),
        Some(lab.container_home.to_str().unwrap())
    );

    // The pin is real: with another key pinned for the container, ssh refuses to connect.
    let known_hosts_path = lab.client_dir().join("known_hosts");
    let pinned = fs::read_to_string(&known_hosts_path).unwrap();
    let relay_line = pinned.lines().next().unwrap();
    let relay_key_only = relay_line.split_once(' ').unwrap().1;
    fs::write(
        &known_hosts_path,
        format!("{relay_line}\naistudio-{PROJECT} {relay_key_only}\n"),
    )
    .unwrap();
    let refused = lab.user_ssh("true");
    assert!(
        !refused.status.success(),
        "ssh accepted a host key that was not pinned"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Host key verification failed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    fs::write(&known_hosts_path, &pinned).unwrap();

    // The starter (runuser above) exited long ago; the supervisor runs in its own session.
    let supervisor = read_pid(Path::new("/tmp/aistudio-ssh/tunnel.pid")).expect("supervisor pid");
    let session = ok(Command::new("ps").args(["-o", "sid=", "-p", &supervisor.to_string()]));
    assert_eq!(
        session.trim(),
        supervisor.to_string(),
        "the supervisor leads its own session"
    );

    // Everything re-run 10 times: nothing duplicated, the user's lines intact, still working.
    for _ in 0..10 {
        lab.run_relay_setup();
        lab.provision();
        assert!(lab.tunnel(&[]).contains("already running"));
    }
    let home = &lab.container_home;
    let bashrc = fs::read_to_string(home.join(".bashrc")).unwrap();
    assert!(
        bashrc.ends_with(USER_BASHRC),
        "the user's .bashrc lines changed:\n{bashrc}"
    );
    assert_eq!(count_lines(&bashrc, ">>> aistudio-ssh environment"), 1);
    assert!(bashrc.contains("export PATH="));
    let authorized = fs::read_to_string(home.join(".ssh/authorized_keys")).unwrap();
    assert_eq!(
        authorized.lines().next(),
        Some(USER_AUTHORIZED_KEY),
        "the user's own key line moved or changed"
    );
    assert_eq!(
        count_lines(&authorized, "aistudio-7892508-client"),
        1,
        "{authorized}"
    );
    let relay_keys = lab.relay_authorized_keys();
    assert_eq!(
        count_lines(&relay_keys, "aistudio-7892508-relay"),
        1,
        "{relay_keys}"
    );
    assert_eq!(
        count_lines(&relay_keys, "aistudio-7892508-client"),
        1,
        "{relay_keys}"
    );
    let dropin =
        fs::read_to_string(lab.relay_dir().join("sshd_config.d/aistudio-ssh.conf")).unwrap();
    assert!(dropin.contains("ClientAliveInterval 15") && dropin.contains("ClientAliveCountMax 3"));
    lab.wait_for_ssh(Duration::from_secs(5));

    // The container's relay key: may listen on its port, nothing else.
    let relay_private = home.join("work/ssh/relay_ed25519");
    let run_command = lab.relay_ssh(&relay_private, &["127.0.0.1", "id"]);
    assert!(
        !String::from_utf8_lossy(&run_command.stdout).contains("uid="),
        "the relay key ran a command"
    );
    let other_port = free_port().to_string();
    let listen_elsewhere = lab.relay_ssh(
        &relay_private,
        &[
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            &format!("127.0.0.1:{other_port}:127.0.0.1:22"),
            "127.0.0.1",
        ],
    );
    assert!(
        !listen_elsewhere.status.success(),
        "the relay key listened on another port"
    );
    // The user's client key: may reach the project's port, has no shell and no other port.
    let client_private = lab.client_dir().join("id_aistudio");
    let shell = lab.relay_ssh(&client_private, &["127.0.0.1", "id"]);
    assert!(
        !String::from_utf8_lossy(&shell.stdout).contains("uid="),
        "the client key got a shell on the relay"
    );
    let elsewhere = lab.relay_ssh(
        &client_private,
        &["-W", &format!("127.0.0.1:{}", lab.relay_port), "127.0.0.1"],
    );
    assert!(
        !elsewhere.status.success(),
        "the client key opened another port on the relay"
    );

    // kill -9 of the tunnel's ssh: the supervisor brings it back.
    let ssh_pid = lab.tunnel_ssh_pid().expect("tunnel ssh runs");
    kill(ssh_pid, "-KILL");
    let back = lab.wait_for_ssh(Duration::from_secs(30));
    eprintln!("after kill -9 of the tunnel: back in {back:?}");

    // The relay's sshd restarted (listener and sessions gone): back within the backoff cap.
    lab.stop_relay_sshd();
    sleep(Duration::from_secs(2));
    lab.start_relay_sshd();
    let back = lab.wait_for_ssh(Duration::from_secs(45));
    eprintln!("after a relay sshd restart: back in {back:?}");

    // A stale listener holding the port on the relay: retries until it is gone.
    let ssh_pid = lab.tunnel_ssh_pid().expect("tunnel ssh runs");
    let squatter_script = format!(
        "import socket, time\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         deadline = time.time() + 10\nwhile True:\n    try:\n        s.bind(('127.0.0.1', {port})); break\n    \
         except OSError:\n        if time.time() > deadline: raise\n        time.sleep(0.05)\ns.listen(); print('bound', flush=True); time.sleep(8)\n",
        port = lab.remote_port
    );
    kill(ssh_pid, "-KILL");
    let mut squatter = Command::new("python3")
        .arg("-c")
        .arg(&squatter_script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_secs(4));
    let status = fs::read_to_string("/tmp/aistudio-ssh/tunnel.status").unwrap_or_default();
    assert!(
        status.contains("state=down") || status.contains("state=connecting"),
        "tunnel while the port is held: {status}"
    );
    let squatter_done = squatter.wait().unwrap();
    assert!(
        squatter_done.success(),
        "the stale listener could not hold the port"
    );
    let back = lab.wait_for_ssh(Duration::from_secs(45));
    eprintln!("after a stale listener went away: back in {back:?}");

    // The probe: one JSON line about the container. The tunnel reports "up" once ssh has
    // held the forward for 3 s, so give it that long after the reconnect above.
    let started = Instant::now();
    let probe = loop {
        let probe = as_container(&lab.client_dir().join("probe.sh"), &[]);
        assert!(
            probe.status.success(),
            "{}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let probe_text = String::from_utf8_lossy(&probe.stdout).into_owned();
        assert_eq!(probe_text.trim_end().lines().count(), 1, "{probe_text}");
        let probe: serde_json::Value = serde_json::from_str(&probe_text).unwrap();
        if probe["tunnel"]["state"] == "up" || started.elapsed() > Duration::from_secs(10) {
            break probe;
        }
        sleep(Duration::from_millis(500));
    };
    assert_eq!(probe["tunnel"]["state"], "up", "{probe}");
    assert_eq!(probe["sshd"]["mode"], "user");
    assert_eq!(probe["sshd"]["running"], true);
    assert!(probe["provisioned"].as_str().unwrap().starts_with(PROJECT));
    assert!(probe["initStarted"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(
        probe["accelerator"]["kind"], "none",
        "this machine has no GPU"
    );
    let host_key_pub = home.join("work/ssh/ssh_host_ed25519_key.pub");
    let listed = ok(Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(&host_key_pub));
    assert_eq!(
        probe["hostKeys"]["stable"],
        listed.split(' ').nth(1).unwrap()
    );

    // A second project on the same relay account: its own block and port; the first keeps working.
    let second_dir = lab.dir.path().join("second");
    let second_settings = lab.dir.path().join("second.json");
    let mut settings: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(lab.dir.path().join("settings.json")).unwrap())
            .unwrap();
    settings["project"] = "42".into();
    settings["remotePort"] = free_port().into();
    settings["sshDir"] = second_dir.to_str().unwrap().into();
    fs::write(&second_settings, settings.to_string()).unwrap();
    render_with_cli(&second_settings, &second_dir);
    lab.run_relay_setup_from(&second_dir);
    let relay_keys = lab.relay_authorized_keys();
    assert_eq!(
        count_lines(&relay_keys, ">>> aistudio-ssh project 7892508"),
        1,
        "{relay_keys}"
    );
    assert_eq!(
        count_lines(&relay_keys, ">>> aistudio-ssh project 42"),
        1,
        "{relay_keys}"
    );
    lab.wait_for_ssh(Duration::from_secs(5));

    // Another browser (its own keys) takes over the project while the container runs: the
    // relay script and provisioning from its files; the running sshd must serve its host key.
    let other_dir = lab.dir.path().join("other-browser");
    let other_settings = lab.dir.path().join("other-browser.json");
    let mut settings: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(lab.dir.path().join("settings.json")).unwrap())
            .unwrap();
    settings["sshDir"] = other_dir.to_str().unwrap().into();
    fs::write(&other_settings, settings.to_string()).unwrap();
    render_with_cli(&other_settings, &other_dir);
    lab.run_relay_setup_from(&other_dir);
    let out = as_container(&other_dir.join("provision.sh"), &[]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("reloaded with this browser's host key"),
        "{report}"
    );
    let other_ssh = ok(Command::new("ssh")
        .arg("-F")
        .arg(other_dir.join("ssh_config"))
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"])
        .arg(format!("aistudio-{PROJECT}"))
        .arg("whoami"));
    assert_eq!(
        other_ssh.trim(),
        CONTAINER_USER,
        "strict host key check against the new key"
    );

    // A clean stop.
    assert!(lab.tunnel(&["stop"]).contains("tunnel stopped"));
    assert!(
        lab.tunnel_ssh_pid().is_none(),
        "tunnel ssh still running after stop"
    );
    assert!(!lab.user_ssh("true").status.success());

    // No user-mode sshd possible (its port is taken): provisioning says so and falls back.
    if let Some(pid) = read_pid(Path::new("/tmp/aistudio-ssh/sshd.pid")) {
        kill(pid, "-TERM");
        sleep(Duration::from_millis(300));
    }
    let sshd_port = settings["containerSshdPort"].as_u64().unwrap() as u16;
    let _taken = TcpListener::bind(("127.0.0.1", sshd_port)).unwrap();
    let report = lab.provision();
    assert!(report.contains("cannot run a user-mode sshd"), "{report}");
    assert!(report.contains("(sshd: system)"), "{report}");
    assert_eq!(
        fs::read_to_string("/tmp/aistudio-ssh/sshd.mode")
            .unwrap()
            .trim(),
        "system"
    );
}
