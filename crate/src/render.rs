//! What the extension renders for a project: the container cells, the relay setup script,
//! and the user's ssh config and known_hosts. Pure functions of settings and keys.

use core::fmt;

use crate::keys::PublicKeyInfo;
use crate::project_keys::{KeyRole, ProjectKeys, StoredKey};
use crate::settings::Settings;
use crate::shell::quote;

/// Where the container keeps what must survive restarts (only `~/work` does).
const CONTAINER_KEYS_DIR: &str = "$HOME/work/ssh";
/// Where the container keeps what belongs to one container start (`/tmp` is fresh after one).
const CONTAINER_STATE_DIR: &str = "/tmp/aistudio-ssh";
/// The relay's name in the container's own known_hosts file.
const CONTAINER_RELAY_ALIAS: &str = "aistudio-relay";

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
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenderError {
    /// A key the render needs has not been made yet (or lacks its private half).
    MissingKey { role: KeyRole },
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingKey { role } => write!(
                f,
                "the project's {role:?} key is missing; open the options page to make the project's keys"
            ),
        }
    }
}

impl std::error::Error for RenderError {}

impl RenderKeys {
    /// The keys of a project as stored.
    ///
    /// # Errors
    /// [`RenderError::MissingKey`] when a key, or a container key's private half, is missing.
    pub fn from_project(keys: &ProjectKeys) -> Result<Self, RenderError> {
        let pair = |key: &Option<StoredKey>, role| match key {
            Some(StoredKey {
                private_key: Some(private),
                public,
            }) => Ok((private.clone(), public.clone())),
            _ => Err(RenderError::MissingKey { role }),
        };
        Ok(Self {
            client: keys.client.as_ref().map(|key| key.public.clone()).ok_or(
                RenderError::MissingKey {
                    role: KeyRole::Client,
                },
            )?,
            container_relay: pair(&keys.container_relay, KeyRole::ContainerRelay)?,
            container_host: pair(&keys.container_host, KeyRole::ContainerHost)?,
        })
    }
}

/// `KEY=VALUE` shell assignments, each value quoted by [`quote`].
fn assignments(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}\n", quote(value)))
        .collect()
}

/// Markers of a block the extension owns in someone else's file.
fn block_markers(owner: &str) -> (String, String) {
    (
        format!("# >>> {owner} (managed by AI Studio SSH; edits inside are replaced) >>>"),
        format!("# <<< {owner} <<<"),
    )
}

/// A bash function shared by the container and relay scripts: replaces the block between
/// two marker lines (or adds it at the top or bottom), leaving every other line as it was,
/// and refuses to touch a file whose markers are unbalanced.
const REPLACE_BLOCK_FUNCTION: &str = r##"# replace_block FILE BEGIN END CONTENT top|bottom
replace_block() {
  local file=$1 begin=$2 end=$3 content=$4 where=$5 tmp begins ends
  [ -e "$file" ] || : > "$file"
  begins=$(grep -cxF -- "$begin" "$file" || true)
  ends=$(grep -cxF -- "$end" "$file" || true)
  if [ "$begins" != "$ends" ] || [ "$begins" -gt 1 ]; then
    say "the AI Studio SSH block in $file is damaged (markers unbalanced); fix it by hand, nothing was changed"
    return 1
  fi
  tmp=$(mktemp "$file.XXXXXX")
  {
    if [ "$where" = top ]; then printf '%s\n%s\n%s\n' "$begin" "$content" "$end"; fi
    awk -v b="$begin" -v e="$end" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' "$file"
    if [ "$where" = bottom ]; then printf '%s\n%s\n%s\n' "$begin" "$content" "$end"; fi
  } > "$tmp"
  chmod --reference="$file" "$tmp" 2>/dev/null || true
  chown --reference="$file" "$tmp" 2>/dev/null || true
  mv -f "$tmp" "$file"
}
"##;

const SAY_FUNCTION: &str = "say() { printf 'aistudio-ssh: %s\\n' \"$*\"; }\n";

/// The provisioning cell: run by the notebook user in the container on every start.
pub fn render_provision(settings: &Settings, keys: &RenderKeys) -> String {
    let client_line = format!("from=\"127.0.0.1,::1\" {}", keys.client.line);
    let relay_known_hosts = known_hosts_lines(CONTAINER_RELAY_ALIAS, &settings.relay_host_keys);
    let (auth_begin, auth_end) =
        block_markers(&format!("aistudio-ssh project {}", settings.project));
    let (rc_begin, rc_end) = block_markers("aistudio-ssh environment");
    let values = assignments(&[
        ("project", &settings.project),
        ("sshd_port", &settings.container_sshd_port.to_string()),
        ("client_line", &client_line),
        ("relay_private", &keys.container_relay.0),
        ("relay_public", &keys.container_relay.1.line),
        ("host_private", &keys.container_host.0),
        ("host_public", &keys.container_host.1.line),
        ("relay_known_hosts", &relay_known_hosts),
        ("auth_begin", &auth_begin),
        ("auth_end", &auth_end),
        ("rc_begin", &rc_begin),
        ("rc_end", &rc_end),
    ]);
    format!(
        r##"#!/usr/bin/env bash
# AI Studio SSH: provisioning for project {project}. Safe to re-run: it changes only the
# files it owns and the marked blocks it owns in ~/.ssh/authorized_keys and ~/.bashrc.
set -euo pipefail
umask 077
{values}keys_dir="{CONTAINER_KEYS_DIR}"
state_dir={CONTAINER_STATE_DIR}
{SAY_FUNCTION}{REPLACE_BLOCK_FUNCTION}
# install_file PATH CONTENT MODE: writes PATH only when it differs; a different existing
# file is kept beside it, never silently replaced.
install_file() {{
  local path=$1 content=$2 mode=$3 backup tmp
  if [ -f "$path" ] && printf '%s\n' "$content" | cmp -s - "$path"; then chmod "$mode" "$path"; return 0; fi
  if [ -e "$path" ]; then
    backup="$path.replaced-$(date +%Y%m%d-%H%M%S)"
    mv -f "$path" "$backup"
    say "$path held a different key; kept it as $backup"
  fi
  tmp=$(mktemp "$path.XXXXXX")
  printf '%s\n' "$content" > "$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
}}

# AI Studio restores the persistent home after each start (the page shows "syncing" and
# "Unzipping files"); writing meanwhile makes conflicts. Guess: the restore is over once
# ~/work exists and no unzip of ours runs. Waits at most 10 minutes.
for _ in $(seq 1 300); do
  if [ -d "$HOME/work" ] && ! pgrep -u "$(id -u)" -x unzip >/dev/null 2>&1; then break; fi
  sleep 2
done
[ -d "$HOME/work" ] || {{ say "$HOME/work does not exist after 10 minutes; is this an AI Studio container?"; exit 1; }}

mkdir -p "$keys_dir" "$state_dir" "$HOME/.ssh"
chmod 700 "$keys_dir" "$state_dir" "$HOME/.ssh"
install_file "$keys_dir/relay_ed25519" "$relay_private" 600
install_file "$keys_dir/relay_ed25519.pub" "$relay_public" 644
served_host_key=$(cat "$keys_dir/ssh_host_ed25519_key.pub" 2>/dev/null || true)
install_file "$keys_dir/ssh_host_ed25519_key" "$host_private" 600
install_file "$keys_dir/ssh_host_ed25519_key.pub" "$host_public" 644
install_file "$keys_dir/relay_known_hosts" "$relay_known_hosts" 644

replace_block "$HOME/.ssh/authorized_keys" "$auth_begin" "$auth_end" "$client_line" bottom
chmod 600 "$HOME/.ssh/authorized_keys"

# SSH sessions see what the notebook sees (conda, CUDA). At the top of ~/.bashrc, before
# any "not interactive: return" line, so `ssh host command` and VS Code get it too.
environment=$(for name in PATH LD_LIBRARY_PATH LIBRARY_PATH CPATH PYTHONPATH CUDA_HOME CUDA_PATH CUDA_VERSION \
    CUDNN_VERSION NVIDIA_VISIBLE_DEVICES NVIDIA_DRIVER_CAPABILITIES CONDA_DEFAULT_ENV CONDA_PREFIX CONDA_EXE \
    CONDA_PYTHON_EXE CONDA_SHLVL LANG LC_ALL; do
  if [ -n "${{!name+set}}" ]; then printf 'export %s=%q\n' "$name" "${{!name}}"; fi
done)
replace_block "$HOME/.bashrc" "$rc_begin" "$rc_end" "$environment" top

# A user-mode sshd with the stable host key from ~/work/ssh: the host identity the user's
# client pinned survives restarts and CPU/GPU switches.
install_file "$keys_dir/sshd_config" "Port $sshd_port
ListenAddress 127.0.0.1
HostKey \"$keys_dir/ssh_host_ed25519_key\"
PidFile \"$state_dir/sshd.pid\"
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
# It serves only the user it runs as; AI Studio's home permissions are not ours to fix.
StrictModes no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp" 644

sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
sshd_running() {{ [ -f "$state_dir/sshd.pid" ] && kill -0 "$(cat "$state_dir/sshd.pid")" 2>/dev/null; }}
# sshd exits 0 even when it then fails to bind (it reports that in its log), so success is
# its pid file naming a live process.
sshd_started() {{ for _ in $(seq 1 50); do sshd_running && return 0; sleep 0.1; done; return 1; }}
mode=user
rm -f "$state_dir/sshd.log"
if sshd_running && [ "$served_host_key" != "$host_public" ]; then
  # Another browser's keys were in ~/work/ssh: SIGHUP makes sshd re-read its host key.
  kill -HUP "$(cat "$state_dir/sshd.pid")"
  sshd_started
  say "user-mode sshd on 127.0.0.1:$sshd_port reloaded with this browser's host key"
elif sshd_running; then
  say "user-mode sshd already running on 127.0.0.1:$sshd_port"
elif [ -x "$sshd_bin" ] && "$sshd_bin" -t -f "$keys_dir/sshd_config" > "$state_dir/sshd.log" 2>&1 \
    && "$sshd_bin" -f "$keys_dir/sshd_config" -E "$state_dir/sshd.log" && sshd_started; then
  say "started user-mode sshd on 127.0.0.1:$sshd_port"
else
  mode=system
  say "cannot run a user-mode sshd ($(tail -n 1 "$state_dir/sshd.log" 2>/dev/null)); the tunnel uses the system sshd on port 22, whose host key changes with the container"
fi
printf '%s\n' "$mode" > "$state_dir/sshd.mode"
printf '%s %s\n' "$project" "$(date +%s)" > "$state_dir/provisioned"
say "provisioned project $project (sshd: $mode)"
"##,
        project = settings.project,
    )
}

/// The tunnel cell: starts (once) a detached supervisor that keeps `ssh -R` to the relay up;
/// `stop` stops it, `status` prints its status file.
pub fn render_tunnel(settings: &Settings) -> String {
    let values = assignments(&[
        ("relay_host", &settings.relay_host),
        ("relay_port", &settings.relay_port.to_string()),
        ("relay_user", &settings.relay_user),
        ("remote_port", &settings.remote_port.to_string()),
        ("sshd_port", &settings.container_sshd_port.to_string()),
    ]);
    format!(
        r##"#!/usr/bin/env bash
# AI Studio SSH: the reverse tunnel of project {project} to its relay.
# `bash tunnel.sh` starts it once (detached: kernel restarts and closed tabs do not stop it),
# `bash tunnel.sh stop` stops it, `bash tunnel.sh status` shows it.
set -euo pipefail
state_dir={CONTAINER_STATE_DIR}
supervisor="$state_dir/tunnel-supervisor.sh"
{SAY_FUNCTION}mkdir -p "$state_dir"
chmod 700 "$state_dir"
supervisor_running() {{ [ -f "$state_dir/tunnel.pid" ] && kill -0 "$(cat "$state_dir/tunnel.pid")" 2>/dev/null; }}

case "${{1:-start}}" in
  start) ;;
  stop)
    if supervisor_running; then kill -TERM -- "-$(cat "$state_dir/tunnel.pid")" 2>/dev/null || kill -TERM "$(cat "$state_dir/tunnel.pid")"; fi
    for _ in $(seq 1 50); do supervisor_running || break; sleep 0.1; done
    rm -f "$state_dir/tunnel.pid"
    say "tunnel stopped"
    exit 0 ;;
  status) cat "$state_dir/tunnel.status" 2>/dev/null || echo "state=stopped"; exit 0 ;;
  *) echo "usage: tunnel.sh [start|stop|status]" >&2; exit 2 ;;
esac

if supervisor_running; then
  say "tunnel already running (supervisor $(cat "$state_dir/tunnel.pid"))"
  cat "$state_dir/tunnel.status"
  exit 0
fi

cat > "$supervisor.tmp" <<'AISTUDIO_SSH_SUPERVISOR'
#!/usr/bin/env bash
# Keeps ssh -R to the relay up, with capped backoff; one instance (flock).
set -u
{values}state_dir={CONTAINER_STATE_DIR}
keys_dir="{CONTAINER_KEYS_DIR}"
log="$state_dir/tunnel.log"
exec 9> "$state_dir/tunnel.lock"
flock -n 9 || exit 0
echo $$ > "$state_dir/tunnel.pid"
child=
status() {{
  printf 'state=%s\nsince=%s\npid=%s\ndetail=%s\n' "$1" "$(date +%s)" "$$" "${{2:-}}" > "$state_dir/tunnel.status.tmp"
  mv -f "$state_dir/tunnel.status.tmp" "$state_dir/tunnel.status"
}}
trap 'status stopped; [ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT HUP
backoff=1
while :; do
  target_port=$sshd_port
  [ "$(cat "$state_dir/sshd.mode" 2>/dev/null)" = system ] && target_port=22
  # A bounded log: keep the last 32 KiB once it passes 64 KiB.
  if [ -f "$log" ] && [ "$(wc -c < "$log")" -gt 65536 ]; then tail -c 32768 "$log" > "$log.tmp" && mv -f "$log.tmp" "$log"; fi
  status connecting "relay $relay_host:$relay_port"
  started=$(date +%s)
  ssh -F /dev/null -NT -p "$relay_port" -l "$relay_user" \
    -i "$keys_dir/relay_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$keys_dir/relay_known_hosts" \
    -o GlobalKnownHostsFile=/dev/null -o HostKeyAlias={CONTAINER_RELAY_ALIAS} -o UpdateHostKeys=no \
    -o ExitOnForwardFailure=yes -o ServerAliveInterval=15 -o ServerAliveCountMax=3 -o ConnectTimeout=20 \
    -o LogLevel=ERROR -R "127.0.0.1:$remote_port:127.0.0.1:$target_port" -- "$relay_host" >> "$log" 2>&1 &
  child=$!
  # With ExitOnForwardFailure, an ssh still running after 3 s holds the forward.
  ( sleep 3; kill -0 "$child" 2>/dev/null && status up "relay $relay_host:$relay_port, 127.0.0.1:$remote_port" ) &
  watcher=$!
  wait "$child"
  code=$?
  kill "$watcher" 2>/dev/null
  child=
  ran=$(( $(date +%s) - started ))
  [ "$ran" -ge 30 ] && backoff=1
  status down "ssh exited with $code after ${{ran}}s: $(tail -n 1 "$log" 2>/dev/null); retrying in ${{backoff}}s"
  sleep "$backoff"
  backoff=$(( backoff * 2 ))
  [ "$backoff" -le 30 ] || backoff=30
done
AISTUDIO_SSH_SUPERVISOR
mv -f "$supervisor.tmp" "$supervisor"
# setsid: its own session, so the kernel or terminal that started it can end without it.
setsid bash "$supervisor" < /dev/null >> "$state_dir/tunnel.log" 2>&1 &
for _ in $(seq 1 100); do
  grep -qx 'state=up' "$state_dir/tunnel.status" 2>/dev/null && break
  sleep 0.2
done
cat "$state_dir/tunnel.status" 2>/dev/null || say "the tunnel supervisor did not start; see $state_dir/tunnel.log"
"##,
        project = settings.project,
    )
}

/// The probe cell: prints one JSON line describing the container and the connection.
pub fn render_probe() -> String {
    format!(
        r##"#!/usr/bin/env bash
# AI Studio SSH: one JSON line about this container: identity, accelerator, host keys,
# sshd and tunnel. Reads only; changes nothing.
exec python3 - <<'AISTUDIO_SSH_PROBE'
import json, os, socket, subprocess

STATE = "{CONTAINER_STATE_DIR}"
KEYS = os.path.expanduser("~/work/ssh")

def run(*command):
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None

def read(path):
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None

def alive(pid_file):
    pid = read(pid_file)
    try:
        os.kill(int(pid), 0)
        return True
    except (TypeError, ValueError, OSError):
        return False

def fingerprint(public_key_file):
    listed = run("ssh-keygen", "-l", "-f", public_key_file)
    return listed.split()[1] if listed else None

def init_started():
    # Seconds since the epoch when PID 1 started: boot time plus its start in clock ticks.
    try:
        boot = next(int(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime "))
        ticks = int(read("/proc/1/stat").rsplit(")", 1)[1].split()[19])
        return boot + ticks // os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, AttributeError, IndexError):
        return None

def accelerator():
    nvidia = run("nvidia-smi", "-L")
    if nvidia:
        return {{"kind": "nvidia", "devices": nvidia.splitlines()}}
    iluvatar = run("ixsmi", "-L")  # Iluvatar BI-V150S cards; output format is a guess
    if iluvatar:
        return {{"kind": "iluvatar", "devices": iluvatar.splitlines()}}
    return {{"kind": "none", "devices": []}}

tunnel = dict(line.split("=", 1) for line in (read(STATE + "/tunnel.status") or "").splitlines() if "=" in line)
print(json.dumps({{
    "hostname": socket.gethostname(),
    "initStarted": init_started(),
    "provisioned": read(STATE + "/provisioned"),
    "accelerator": accelerator(),
    "hostKeys": {{
        "system": fingerprint("/etc/ssh/ssh_host_ed25519_key.pub"),
        "stable": fingerprint(KEYS + "/ssh_host_ed25519_key.pub"),
    }},
    "sshd": {{"mode": read(STATE + "/sshd.mode"), "running": alive(STATE + "/sshd.pid")}},
    "tunnel": {{
        "state": tunnel.get("state", "stopped") if alive(STATE + "/tunnel.pid") else "stopped",
        "detail": tunnel.get("detail"),
    }},
}}, ensure_ascii=False))
AISTUDIO_SSH_PROBE
"##
    )
}

/// `authorized_keys` options of the container's relay key: it may only listen on the
/// project's port, run nothing, and get no terminal.
fn relay_key_options(remote_port: u16) -> String {
    format!(
        "restrict,port-forwarding,permitlisten=\"127.0.0.1:{remote_port}\",command=\"/bin/false\""
    )
}

/// `authorized_keys` options of the user's client key on the relay: it may only reach the
/// project's port (ProxyJump), so the user needs no shell account there.
fn client_key_options(remote_port: u16) -> String {
    format!(
        "restrict,port-forwarding,permitopen=\"127.0.0.1:{remote_port}\",command=\"/bin/false\""
    )
}

/// The relay setup script, run once as root on the relay (and again for each project;
/// harmless to repeat). Paths can be redirected for tests and unusual layouts with
/// `AISTUDIO_SSH_SSHD_CONFIG`, `AISTUDIO_SSH_SSHD_DROPIN_DIR` and `AISTUDIO_SSH_SSHD_RELOAD`.
pub fn render_relay_setup(settings: &Settings, keys: &RenderKeys) -> String {
    let (begin, end) = block_markers(&format!("aistudio-ssh project {}", settings.project));
    let key_lines = format!(
        "{} {}\n{} {}",
        relay_key_options(settings.remote_port),
        keys.container_relay.1.line,
        client_key_options(settings.remote_port),
        keys.client.line
    );
    let values = assignments(&[
        ("project", &settings.project),
        ("tunnel_user", &settings.relay_user),
        ("relay_port", &settings.relay_port.to_string()),
        ("remote_port", &settings.remote_port.to_string()),
        ("key_lines", &key_lines),
        ("block_begin", &begin),
        ("block_end", &end),
    ]);
    format!(
        r##"#!/usr/bin/env bash
# AI Studio SSH: relay setup for project {project}. Run as root on the relay:
#   sudo bash relay-setup.sh
# It creates (once) the tunnel-only account, lets this project's keys forward one port and
# nothing else, keeps dead tunnels from holding the port, and prints the relay host key.
set -euo pipefail
{values}sshd_config=${{AISTUDIO_SSH_SSHD_CONFIG:-/etc/ssh/sshd_config}}
dropin_dir=${{AISTUDIO_SSH_SSHD_DROPIN_DIR:-/etc/ssh/sshd_config.d}}
reload_command=${{AISTUDIO_SSH_SSHD_RELOAD:-}}
{SAY_FUNCTION}{REPLACE_BLOCK_FUNCTION}
[ "$(id -u)" -eq 0 ] || {{ say "run this as root: sudo bash $0"; exit 1; }}
sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$sshd_bin" ] || {{ say "no sshd here; install the openssh-server package first"; exit 1; }}

# The account: no password, no shell, but not locked (sshd refuses locked accounts).
if ! id "$tunnel_user" > /dev/null 2>&1; then
  useradd --create-home --shell /usr/sbin/nologin --comment "AI Studio SSH tunnels" "$tunnel_user"
  say "created user $tunnel_user"
fi
usermod -p '*' "$tunnel_user"
home=$(getent passwd "$tunnel_user" | cut -d: -f6)
group=$(id -gn "$tunnel_user")
install -d -m 700 -o "$tunnel_user" -g "$group" "$home/.ssh"
keys_file="$home/.ssh/authorized_keys"
[ -e "$keys_file" ] || install -m 600 -o "$tunnel_user" -g "$group" /dev/null "$keys_file"
if grep -F "permitlisten=\"127.0.0.1:$remote_port\"" "$keys_file" | grep -vqF -- "aistudio-$project-"; then
  say "port $remote_port is already given to another key in $keys_file; choose another remote port"
  exit 1
fi
replace_block "$keys_file" "$block_begin" "$block_end" "$key_lines" bottom
chown "$tunnel_user:$group" "$keys_file"
chmod 600 "$keys_file"

# sshd: dead tunnels are dropped within 45 s so a reconnecting container gets its port
# back; and the relay port is served (a Port line replaces the default 22, so every port
# sshd serves now is kept).
dropin="$dropin_dir/aistudio-ssh.conf"
mkdir -p "$dropin_dir"
backup=$(mktemp)
[ -e "$dropin" ] && cp -p "$dropin" "$backup"
base="# Managed by AI Studio SSH.
ClientAliveInterval 15
ClientAliveCountMax 3"
printf '%s\n' "$base" > "$dropin"
ports=$("$sshd_bin" -T -f "$sshd_config" 2> /dev/null | awk '$1 == "port" {{ print $2 }}' | sort -un)
if ! printf '%s\n' "$ports" | grep -qx "$relay_port"; then
  {{ printf '%s\n' "$base"; for port in $ports $relay_port; do echo "Port $port"; done; }} > "$dropin"
fi
if ! grep -qiE "^[[:space:]]*Include[[:space:]].*sshd_config\.d" "$sshd_config" && [ "$dropin_dir" = /etc/ssh/sshd_config.d ]; then
  say "warning: $sshd_config does not include $dropin_dir; add: Include $dropin_dir/*.conf"
fi
if ! "$sshd_bin" -t -f "$sshd_config"; then
  if [ -s "$backup" ]; then cp -p "$backup" "$dropin"; else rm -f "$dropin"; fi
  say "sshd rejected the new configuration; restored the previous one"
  exit 1
fi
rm -f "$backup"
if [ -n "$reload_command" ]; then
  sh -c "$reload_command"
elif command -v systemctl > /dev/null 2>&1 && systemctl is-active --quiet ssh 2> /dev/null; then
  systemctl reload ssh
elif command -v systemctl > /dev/null 2>&1 && systemctl is-active --quiet sshd 2> /dev/null; then
  systemctl reload sshd
elif [ -f /run/sshd.pid ]; then
  kill -HUP "$(cat /run/sshd.pid)"
else
  say "reload sshd yourself to apply the changes"
fi

say "project $project: tunnel user $tunnel_user, relay port $relay_port, container port 127.0.0.1:$remote_port"
say "paste this relay host key into the extension (relay host key):"
"$sshd_bin" -T -f "$sshd_config" 2> /dev/null | awk '$1 == "hostkey" {{ print $2 }}' | while read -r key; do
  [ -f "$key.pub" ] && cut -d' ' -f1,2 "$key.pub"
done
"##,
        project = settings.project,
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

/// The host alias the user types: `ssh aistudio-<project>`.
pub fn host_alias(settings: &Settings) -> String {
    host_alias_of(&settings.project)
}

/// The `Host` alias a project goes by in the user's ssh config: `aistudio-<project>`.
pub fn host_alias_of(project: &str) -> String {
    format!("aistudio-{project}")
}

fn relay_alias(settings: &Settings) -> String {
    format!("aistudio-{}-relay", settings.project)
}

/// A path for ssh_config: quoted when it holds a blank (validated paths hold no quotes).
fn config_path(settings: &Settings, file: &str) -> String {
    let separator = if settings.ssh_dir.contains('\\') && !settings.ssh_dir.contains('/') {
        '\\'
    } else {
        '/'
    };
    let path = format!("{}{separator}{file}", settings.ssh_dir);
    if path.contains(' ') {
        format!("\"{path}\"")
    } else {
        path
    }
}

/// The name of the known_hosts file in the user's project directory.
pub const KNOWN_HOSTS_FILE: &str = "known_hosts";
/// The name of the client private key file (the `.pub` beside it).
pub const CLIENT_KEY_FILE: &str = "id_aistudio";

/// The user's ssh config for the project: the relay as a jump host (tunnel-only account)
/// and the container behind it, both pinned through `HostKeyAlias` to the project's own
/// known_hosts. Plain OpenSSH syntax that works on Linux, macOS and Windows 10+.
pub fn render_ssh_config(settings: &Settings) -> String {
    let identity = config_path(settings, CLIENT_KEY_FILE);
    let known_hosts = config_path(settings, KNOWN_HOSTS_FILE);
    let relay = relay_alias(settings);
    let container = host_alias(settings);
    let common = format!(
        "    IdentityFile {identity}\n    IdentitiesOnly yes\n    UserKnownHostsFile {known_hosts}\n    \
         StrictHostKeyChecking yes\n    UpdateHostKeys no\n    ServerAliveInterval 30\n    ServerAliveCountMax 3\n"
    );
    format!(
        "# AI Studio SSH: project {project}. Connect with: ssh {container}\n\
         Host {relay}\n    HostName {relay_host}\n    Port {relay_port}\n    User {relay_user}\n    \
         HostKeyAlias {relay}\n{common}\n\
         Host {container}\n    HostName 127.0.0.1\n    Port {remote_port}\n    User {container_user}\n    \
         ProxyJump {relay}\n    HostKeyAlias {container}\n{common}",
        project = settings.project,
        relay_host = settings.relay_host,
        relay_port = settings.relay_port,
        relay_user = settings.relay_user,
        remote_port = settings.remote_port,
        container_user = settings.container_user,
    )
}

/// The project's known_hosts: the relay's keys and the container's stable host key, under
/// the aliases of [`render_ssh_config`].
pub fn render_known_hosts(settings: &Settings, keys: &RenderKeys) -> String {
    format!(
        "{}\n{}\n",
        known_hosts_lines(&relay_alias(settings), &settings.relay_host_keys),
        known_hosts_lines(
            &host_alias(settings),
            std::slice::from_ref(&keys.container_host.1)
        )
    )
}
