//! The rendered scripts against real OpenSSH on loopback: a relay sshd set up by the real
//! relay script, a "container" user without root running provisioning and the tunnel, and
//! the user's `ssh -F ssh_config aistudio-<project>` with strict host key checking.
//! Needs root (it creates users and runs a root sshd as the relay). Every account it makes is
//! removed again, and the relay's folders live in temporary folders (under `/run`, which
//! only root can write: sshd refuses keys files below a world-writable folder such as /tmp).
#![cfg(not(target_arch = "wasm32"))]

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use aistudio_ssh::project_keys::{complete_project_keys, ProjectKeys};
use aistudio_ssh::render::{self, ProbeReport, RenderKeys};
use aistudio_ssh::settings::SettingsInput;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const PROJECT: &str = "7892508";
const TUNNEL_USER: &str = "aistudio-ssh-relaytest";
const CONTAINER_USER: &str = "aistudio-ssh-ctest";
/// What the container user's .bashrc holds before we touch it; must survive every run.
const USER_BASHRC: &str = "# the user's own line\nalias ll='ls -l'\n";
const USER_AUTHORIZED_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEeLjlB+C7KxjA+eCCR2noVi0Q35q+LndIlvgrS0QFJm own";
/// The container's key folder, relative to its home.
const CONTAINER_KEYS: &str = ".ssh/aistudio-7892508";

/// The tests here create accounts (useradd locks /etc/passwd) and share /tmp/aistudio-ssh:
/// one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

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

/// The stdout of a command that must have succeeded.
fn succeeded(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a script as the container user with a login environment, feeding it on stdin.
fn as_container(script: &Path, args: &[&str]) -> Output {
    as_container_with(script, "", args)
}

/// [`as_container`] with `env` (`NAME=value ...`, already quoted) added to the environment.
fn as_container_with(script: &Path, env: &str, args: &[&str]) -> Output {
    let mut command = Command::new("runuser");
    command
        .args(["-l", CONTAINER_USER, "-s", "/bin/bash", "-c"])
        .arg(format!("env {env} bash -s -- {}", args.join(" ")))
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

/// A relay's sshd configuration: `sshd_config` (with an Include of `sshd_config.d`), a
/// host key, and the folder the relay script keeps the tunnel accounts' keys in, all in a
/// root-owned temporary folder; the relay script runs against it instead of /etc/ssh.
struct RelayConfig {
    dir: tempfile::TempDir,
    port: u16,
}

impl RelayConfig {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("aistudio-ssh-relay-")
            .tempdir_in("/run")
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let relay = Self {
            dir,
            port: free_port(),
        };
        fs::create_dir_all(relay.dropin_dir()).unwrap();
        let host_key = relay.path("ssh_host_ed25519_key");
        ok(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key));
        fs::write(
            relay.config(),
            format!(
                "Include {dropins}/*.conf\nPort {port}\nListenAddress 127.0.0.1\nHostKey {key}\n\
                 PidFile {pid}\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 AuthorizedKeysFile .ssh/authorized_keys\nLogLevel VERBOSE\nSubsystem sftp internal-sftp\n",
                dropins = relay.dropin_dir().display(),
                port = relay.port,
                key = host_key.display(),
                pid = relay.pid_file().display(),
            ),
        )
        .unwrap();
        relay
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn config(&self) -> PathBuf {
        self.path("sshd_config")
    }
    fn dropin_dir(&self) -> PathBuf {
        self.path("sshd_config.d")
    }
    fn dropin(&self) -> PathBuf {
        self.dropin_dir().join("aistudio-ssh.conf")
    }
    fn keys_dir(&self) -> PathBuf {
        self.path("aistudio-ssh")
    }
    fn keys_file(&self, user: &str) -> PathBuf {
        self.keys_dir().join(format!("{user}.keys"))
    }
    fn pid_file(&self) -> PathBuf {
        self.path("sshd.pid")
    }

    /// The rendered relay-setup.sh in `rendered`, as its user runs it (as root), against
    /// this relay's folders instead of /etc/ssh.
    fn setup_command(&self, rendered: &Path) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(rendered.join("relay-setup.sh"))
            .env("AISTUDIO_SSH_SSHD_CONFIG", self.config())
            .env("AISTUDIO_SSH_SSHD_DROPIN_DIR", self.dropin_dir())
            .env("AISTUDIO_SSH_RELAY_KEYS_DIR", self.keys_dir())
            .env(
                "AISTUDIO_SSH_SSHD_RELOAD",
                format!(
                    "kill -HUP $(cat {}) 2>/dev/null || true",
                    self.pid_file().display()
                ),
            )
            .stdin(Stdio::null());
        command
    }

    /// [`RelayConfig::setup_command`], run to its end.
    fn setup(&self, rendered: &Path) -> Output {
        output(&mut self.setup_command(rendered))
    }

    /// What sshd applies to a connection of `user` (`sshd -T -C`).
    fn effective(&self, user: &str) -> String {
        ok(Command::new("/usr/sbin/sshd")
            .arg("-T")
            .arg("-f")
            .arg(self.config())
            .arg("-C")
            .arg(format!("user={user},host=test,addr=127.0.0.1")))
    }
}

struct Lab {
    dir: tempfile::TempDir,
    relay: RelayConfig,
    remote_port: u16,
    container_home: PathBuf,
    /// Released last, after the lab's accounts and processes are gone.
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl Lab {
    fn client_dir(&self) -> PathBuf {
        self.dir.path().join("client")
    }
    fn container_keys(&self) -> PathBuf {
        self.container_home.join(CONTAINER_KEYS)
    }

    fn start_relay_sshd(&self) {
        fs::create_dir_all("/run/sshd").unwrap();
        ok(Command::new("/usr/sbin/sshd")
            .arg("-f")
            .arg(self.relay.config())
            .arg("-E")
            .arg(self.relay.path("sshd.log")));
    }

    /// Stops the relay as a service restart does: the listener and every session.
    fn stop_relay_sshd(&self) {
        if let Some(pid) = read_pid(&self.relay.pid_file()) {
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
        succeeded(self.relay.setup(rendered))
    }

    fn relay_authorized_keys(&self) -> String {
        fs::read_to_string(self.relay.keys_file(TUNNEL_USER)).unwrap()
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

    /// `ssh` to the relay as the tunnel user with one of the project's keys, then `args`.
    fn relay_ssh_command(&self, key: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("ssh");
        command
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
            ])
            .args(["-o", "ConnectTimeout=5", "-i"])
            .arg(key)
            .args(["-p", &self.relay.port.to_string(), "-l", TUNNEL_USER])
            .args(args);
        command
    }

    /// A direct ssh to the relay as the tunnel user with one of the project's keys.
    fn relay_ssh(&self, key: &Path, args: &[&str]) -> Output {
        output(&mut self.relay_ssh_command(key, args))
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

impl Lab {
    /// Whether `key` forwards a local port to a Unix socket on the relay (`ssh -L
    /// port:/path`): a server there answers the first connection with a word.
    fn reaches_unix_socket(&self, key: &Path) -> bool {
        let socket = self.relay.path("secret.sock");
        let _ = fs::remove_file(&socket);
        let mut server = Command::new("python3")
            .arg("-c")
            .arg(
                "import os, socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\n\
                 os.chmod(sys.argv[1], 0o777)\ns.listen()\ns.settimeout(10)\nprint('ready', flush=True)\n\
                 try:\n    c, _ = s.accept(); c.sendall(b'unix-socket-reached\\n'); c.close()\nexcept OSError: pass\n",
            )
            .arg(&socket)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = [0u8; 6];
        std::io::Read::read_exact(server.stdout.as_mut().unwrap(), &mut ready).unwrap();
        let local = free_port();
        let forward_spec = format!("127.0.0.1:{local}:{}", socket.display());
        let mut forward = self
            .relay_ssh_command(key, &["-N", "-L", &forward_spec, "127.0.0.1"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut answer = String::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", local)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(3)))
                    .unwrap();
                let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
                break;
            }
            sleep(Duration::from_millis(100));
        }
        let _ = forward.kill();
        let _ = forward.wait();
        let _ = server.kill();
        let _ = server.wait();
        answer.contains("unix-socket-reached")
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

fn needs_root() {
    assert_eq!(
        current_uid(),
        0,
        "this test needs root: it creates users and runs a root sshd as the relay (npm test runs it as root in CI)"
    );
}

fn set_up() -> Lab {
    needs_root();
    let serial = one_at_a_time();
    remove_user(CONTAINER_USER);
    remove_user(TUNNEL_USER);
    let _ = fs::remove_dir_all("/tmp/aistudio-ssh");
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let lab = Lab {
        container_home: dir.path().join("home").join(CONTAINER_USER),
        dir,
        relay: RelayConfig::new(),
        remote_port: free_port(),
        _one_at_a_time: serial,
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
    lab.start_relay_sshd();

    // The user's side: settings -> the CLI renders keys, scripts and config.
    let relay_host_key = fs::read_to_string(lab.relay.path("ssh_host_ed25519_key.pub")).unwrap();
    let settings = serde_json::json!({
        "project": PROJECT,
        "relay": {"host": "127.0.0.1", "port": lab.relay.port, "user": TUNNEL_USER, "hostKey": relay_host_key.trim()},
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
    let relay_key = fs::read_to_string(lab.relay.path("ssh_host_ed25519_key.pub")).unwrap();
    let relay_key_fields: Vec<&str> = relay_key.split_whitespace().take(2).collect();
    assert!(
        printed.contains(&relay_key_fields.join(" ")),
        "relay key not printed:\n{printed}"
    );

    // What an earlier version left in the persistent ~/work/ssh: the container's keys (and a
    // backup of one), beside a key of the user's own that must stay.
    let legacy = lab.container_home.join("work/ssh");
    for (file, comment) in [
        ("relay_ed25519", "aistudio-7892508-relay"),
        (
            "ssh_host_ed25519_key.replaced-20250101-000000",
            "aistudio-7892508-host",
        ),
        ("id_rsa", "me@laptop"),
    ] {
        let path = legacy.join(file);
        ok(Command::new("runuser")
            .args(["-u", CONTAINER_USER, "--", "sh", "-c"])
            .arg(format!(
                "mkdir -p {dir} && ssh-keygen -q -t ed25519 -N '' -C {comment} -f {path}",
                dir = legacy.display(),
                path = path.display()
            )));
    }
    let provisioned = lab.provision();
    assert!(provisioned.contains("removed"), "{provisioned}");
    assert!(!legacy.join("relay_ed25519").exists() && !legacy.join("relay_ed25519.pub").exists());
    assert!(!legacy
        .join("ssh_host_ed25519_key.replaced-20250101-000000")
        .exists());
    assert!(
        legacy.join("id_rsa").exists(),
        "the user's own key was removed"
    );
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
    // A locale the image names but does not have (AI Studio's en_US.UTF-8 where only C,
    // C.UTF-8 and POSIX exist): SSH sessions get C.UTF-8; one it has is kept.
    let provision = lab.client_dir().join("provision.sh");
    for (lang, exported) in [
        ("C.UTF-8", "C.UTF-8"),
        ("POSIX", "POSIX"),
        ("en_US.UTF-8", "C.UTF-8"),
    ] {
        let out = as_container_with(&provision, &format!("LANG={lang}"), &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bashrc = fs::read_to_string(home.join(".bashrc")).unwrap();
        assert!(
            bashrc
                .lines()
                .any(|line| line == format!("export LANG={exported}")),
            "LANG={lang}:\n{bashrc}"
        );
    }
    let in_ssh = lab.user_ssh("locale 2>&1 >/dev/null; echo \"LANG=$LANG\"");
    assert_eq!(
        String::from_utf8_lossy(&in_ssh.stdout).trim(),
        "LANG=C.UTF-8",
        "{}",
        String::from_utf8_lossy(&in_ssh.stderr)
    );

    // A .bashrc that is a symlink (a dotfiles checkout) stays one; its target gets the block.
    let dotfiles = home.join("dotfiles");
    let linked = format!(
        "mkdir -p {dir} && mv ~/.bashrc {dir}/bashrc && ln -s {dir}/bashrc ~/.bashrc",
        dir = dotfiles.display()
    );
    ok(Command::new("runuser").args(["-l", CONTAINER_USER, "-c", &linked]));
    lab.provision();
    assert!(fs::symlink_metadata(home.join(".bashrc"))
        .unwrap()
        .file_type()
        .is_symlink());
    let target = fs::read_to_string(dotfiles.join("bashrc")).unwrap();
    assert!(target.ends_with(USER_BASHRC), "{target}");
    assert_eq!(count_lines(&target, ">>> aistudio-ssh environment"), 1);
    // Its markers out of order (END before BEGIN): left byte for byte; provisioning goes on.
    let (begin, end) = (
        "# >>> aistudio-ssh environment (managed by AI Studio SSH; edits inside are replaced) >>>",
        "# <<< aistudio-ssh environment <<<",
    );
    let damaged = format!("{end}\nexport MINE=1\n{begin}\n{USER_BASHRC}");
    fs::write(dotfiles.join("bashrc"), &damaged).unwrap();
    let report = lab.provision();
    assert!(report.contains("out of order"), "{report}");
    assert_eq!(
        fs::read_to_string(dotfiles.join("bashrc")).unwrap(),
        damaged
    );
    fs::write(dotfiles.join("bashrc"), &target).unwrap();
    let dropin = fs::read_to_string(lab.relay.dropin()).unwrap();
    assert!(dropin.contains("ClientAliveInterval 15") && dropin.contains("ClientAliveCountMax 3"));
    lab.wait_for_ssh(Duration::from_secs(5));

    // The container's relay key: may listen on its port, nothing else.
    let relay_private = lab.container_keys().join("relay_ed25519");
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
        &["-W", &format!("127.0.0.1:{}", lab.relay.port), "127.0.0.1"],
    );
    assert!(
        !elsewhere.status.success(),
        "the client key opened another port on the relay"
    );
    // The relay key opens nothing at all, not even its own project's port.
    for port in [lab.remote_port, lab.relay.port, 22] {
        let opened = lab.relay_ssh(
            &relay_private,
            &["-W", &format!("127.0.0.1:{port}"), "127.0.0.1"],
        );
        assert!(
            !opened.status.success(),
            "the relay key opened 127.0.0.1:{port}"
        );
    }
    assert!(
        !lab.reaches_unix_socket(&relay_private),
        "the relay key forwarded to a Unix socket"
    );
    // The client key listens on nothing.
    let client_listens = lab.relay_ssh(
        &client_private,
        &[
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            &format!("127.0.0.1:{}:127.0.0.1:22", free_port()),
            "127.0.0.1",
        ],
    );
    assert!(
        !client_listens.status.success(),
        "the client key listened on the relay"
    );
    // What sshd applies: the restrictions for the tunnel account only.
    let tunnel_view = lab.relay.effective(TUNNEL_USER);
    for line in [
        "allowstreamlocalforwarding no",
        "allowagentforwarding no",
        "x11forwarding no",
        "permittunnel no",
        "permittty no",
        "clientaliveinterval 15",
    ] {
        assert!(
            tunnel_view.lines().any(|l| l == line),
            "{line}:\n{tunnel_view}"
        );
    }
    let others = lab.relay.effective("root");
    assert!(
        others.lines().any(|l| l == "clientaliveinterval 0")
            && others.lines().any(|l| l == "permittty yes"),
        "the tunnel account's settings reached other accounts:\n{others}"
    );
    // No private key rests in the persistent ~/work (the user's own key aside).
    let leaked = output(
        Command::new("grep")
            .args(["-rl", "--exclude=id_rsa", "PRIVATE KEY"])
            .arg(home.join("work")),
    );
    assert!(
        leaked.stdout.is_empty(),
        "private keys under ~/work: {}",
        String::from_utf8_lossy(&leaked.stdout)
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
        if probe["service"]["state"] == "up" || started.elapsed() > Duration::from_secs(10) {
            break probe;
        }
        sleep(Duration::from_millis(500));
    };
    assert_eq!(probe["service"]["state"], "up", "{probe}");
    assert_eq!(probe["sshd"]["mode"], "user");
    assert_eq!(probe["sshd"]["running"], true);
    assert!(probe["provisioned"].as_str().unwrap().starts_with(PROJECT));
    assert!(probe["initStarted"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(
        probe["accelerator"]["kind"], "none",
        "this machine has no GPU"
    );
    let host_key_pub = lab.container_keys().join("ssh_host_ed25519_key.pub");
    let listed = ok(Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(&host_key_pub));
    assert_eq!(
        probe["hostKeys"]["stable"],
        listed.split(' ').nth(1).unwrap()
    );
    // The probe's contract reads the line whole: every field it prints, with the same value.
    let report = ProbeReport::from_output(&probe.to_string()).unwrap();
    assert_eq!(serde_json::to_value(&report).unwrap(), probe);

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
    // With the project's port free, the client key still cannot listen on it.
    let client_private = lab.client_dir().join("id_aistudio");
    let takes_port = lab.relay_ssh(
        &client_private,
        &[
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            &format!("127.0.0.1:{}:127.0.0.1:22", lab.remote_port),
            "127.0.0.1",
        ],
    );
    assert!(
        !takes_port.status.success(),
        "the client key listened on the project's port"
    );

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

/// A relay setup script for `project` on `relay` with `user` as the tunnel account (not
/// validated: the script's own refusals are under test), written into `dir`.
fn relay_script(dir: &Path, relay: &RelayConfig, project: &str, user: &str, remote_port: u16) {
    let relay_host_key = fs::read_to_string(relay.path("ssh_host_ed25519_key.pub")).unwrap();
    let input = serde_json::json!({
        "project": project,
        "relay": {"host": "127.0.0.1", "port": relay.port, "hostKey": relay_host_key.trim()},
        "remotePort": remote_port,
    });
    let mut settings = SettingsInput::from_json(&input.to_string())
        .unwrap()
        .validate()
        .unwrap();
    let relay_settings = settings.relay.as_mut().expect("the relay route");
    relay_settings.user = user.to_owned();
    let relay_settings = relay_settings.clone();
    let seed = project.bytes().map(u64::from).sum();
    let (keys, _) = complete_project_keys(
        project,
        ProjectKeys::default(),
        &mut ChaCha20Rng::seed_from_u64(seed),
    )
    .unwrap();
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("relay-setup.sh"),
        render::render_relay_setup(
            &settings,
            &relay_settings,
            &RenderKeys::from_project(&keys).unwrap(),
        ),
    )
    .unwrap();
}

/// The machine's account files, to show a refused run changed none of them.
fn accounts() -> Vec<Vec<u8>> {
    ["/etc/passwd", "/etc/shadow", "/etc/group"]
        .iter()
        .map(|path| fs::read(path).unwrap())
        .collect()
}

fn stdout_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_relay_script_takes_over_no_account_and_writes_through_no_symlink() {
    needs_root();
    let _serial = one_at_a_time();
    const OWN: &str = "aistudio-ssh-own";
    const LEGACY: &str = "aistudio-ssh-legacy";
    remove_user(OWN);
    remove_user(LEGACY);
    let relay = RelayConfig::new();
    let scripts = tempfile::tempdir().unwrap();

    // root, and an account somebody already has: refused before anything changes.
    ok(Command::new("useradd").args(["--no-create-home", "--shell", "/bin/bash", OWN]));
    for (user, says) in [
        ("root", "must not be root"),
        (OWN, "was not made by this script"),
    ] {
        let dir = scripts.path().join(user);
        relay_script(&dir, &relay, "7892508", user, 7423);
        let before = accounts();
        let out = relay.setup(&dir);
        assert!(!out.status.success(), "{user} was taken over");
        assert!(stdout_of(&out).contains(says), "{}", stdout_of(&out));
        assert!(before == accounts(), "the account files changed for {user}");
        assert!(
            !relay.dropin().exists(),
            "sshd's drop-in was written for {user}"
        );
        assert!(!relay.keys_file(user).exists());
    }
    remove_user(OWN);

    // An account an earlier version made (its comment, nologin, '*'), whose home holds an
    // authorized_keys that is a symlink to a file of root's: adopted, the link not followed.
    let home = relay.path("legacy-home");
    ok(Command::new("useradd")
        .args(["--system", "--create-home", "--shell", "/usr/sbin/nologin"])
        .args([
            "--comment",
            "AI Studio SSH tunnels",
            "--password",
            "*",
            "--home-dir",
        ])
        .arg(&home)
        .arg(LEGACY));
    let roots = relay.path("roots-file");
    fs::write(&roots, "root's own line\n").unwrap();
    fs::create_dir_all(home.join(".ssh")).unwrap();
    std::os::unix::fs::symlink(&roots, home.join(".ssh/authorized_keys")).unwrap();
    ok(Command::new("chown")
        .args(["-R", &format!("{LEGACY}:")])
        .arg(&home));
    let dir = scripts.path().join(LEGACY);
    relay_script(&dir, &relay, "7892508", LEGACY, 7423);
    succeeded(relay.setup(&dir));
    assert_eq!(fs::read_to_string(&roots).unwrap(), "root's own line\n");
    assert!(fs::symlink_metadata(home.join(".ssh/authorized_keys"))
        .unwrap()
        .file_type()
        .is_symlink());
    let keys = fs::read_to_string(relay.keys_file(LEGACY)).unwrap();
    assert!(!keys.contains("root's own line"), "{keys}");
    assert_eq!(count_lines(&keys, "aistudio-7892508-"), 2, "{keys}");
    remove_user(LEGACY);

    // A key folder that is a symlink (to a folder root did not choose): refused.
    let elsewhere = tempfile::Builder::new().tempdir_in("/run").unwrap();
    let linked = RelayConfig::new();
    std::os::unix::fs::symlink(elsewhere.path(), linked.keys_dir()).unwrap();
    let dir = scripts.path().join("linked");
    relay_script(&dir, &linked, "7892508", "aistudio-ssh-linked", 7423);
    let out = linked.setup(&dir);
    assert!(!out.status.success(), "{}", stdout_of(&out));
    assert!(
        stdout_of(&out).contains("owned by root"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    remove_user("aistudio-ssh-linked");
}

#[test]
fn relay_runs_at_once_and_look_alike_projects_keep_their_ports_or_change_nothing() {
    needs_root();
    let _serial = one_at_a_time();
    const USER: &str = "aistudio-ssh-rt3";
    remove_user(USER);
    let relay = RelayConfig::new();
    let scripts = tempfile::tempdir().unwrap();
    let (port_a, port_ab) = (free_port(), free_port());
    let script = |project: &str, port: u16| {
        let dir = scripts.path().join(format!("{project}-{port}"));
        relay_script(&dir, &relay, project, USER, port);
        dir
    };
    let (a, ab) = (script("a", port_a), script("a-b", port_ab));
    succeeded(relay.setup(&ab));
    succeeded(relay.setup(&a));

    // Project a asking for a-b's port: refused (a is a prefix of a-b), nothing changed.
    let keys_before = fs::read(relay.keys_file(USER)).unwrap();
    let out = relay.setup(&script("a", port_ab));
    assert!(!out.status.success(), "a took a-b's port");
    assert!(
        stdout_of(&out).contains("already given"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(fs::read(relay.keys_file(USER)).unwrap(), keys_before);

    // Runs at once: each waits its turn, no block lost or doubled.
    let runs: Vec<_> = [&a, &ab, &a, &ab, &a, &ab]
        .iter()
        .map(|dir| {
            relay
                .setup_command(dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        succeeded(run.wait_with_output().unwrap());
    }
    let keys = fs::read_to_string(relay.keys_file(USER)).unwrap();
    assert_eq!(
        count_lines(&keys, ">>> aistudio-ssh project a "),
        1,
        "{keys}"
    );
    assert_eq!(
        count_lines(&keys, ">>> aistudio-ssh project a-b "),
        1,
        "{keys}"
    );
    for project in ["a", "a-b"] {
        let of_project = keys
            .lines()
            .filter(|line| {
                line.ends_with(&format!(" aistudio-{project}-relay"))
                    || line.ends_with(&format!(" aistudio-{project}-client"))
            })
            .count();
        assert_eq!(of_project, 2, "{project}:\n{keys}");
    }
    assert_eq!(keys.lines().count(), 2 * 4, "{keys}");

    // sshd refusing the result (here: a config broken by someone else): everything put back.
    let files = [
        relay.keys_file(USER),
        relay.dropin(),
        relay.keys_dir().join("accounts"),
    ];
    let before: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).unwrap()).collect();
    let config = fs::read_to_string(relay.config()).unwrap();
    fs::write(relay.config(), format!("{config}NoSuchKeyword yes\n")).unwrap();
    let out = relay.setup(&script("c", free_port()));
    fs::write(relay.config(), config).unwrap();
    assert!(!out.status.success(), "{}", stdout_of(&out));
    assert!(stdout_of(&out).contains("put back"), "{}", stdout_of(&out));
    let after: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).unwrap()).collect();
    assert!(before == after, "a failed run left changes");
    let leftovers: Vec<_> = fs::read_dir(relay.keys_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 3, "temporary files left: {leftovers:?}");
    remove_user(USER);
}
