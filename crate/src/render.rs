//! What the extension renders for a project: the container cells, the relay setup script,
//! and the user's ssh config and known_hosts. Pure functions of settings and keys.

use core::fmt;

use crate::cells;
use crate::keys::{import_public_key, KeyPair, PublicKeyInfo};
use crate::project_keys::{KeyRole, ProjectKeys, StoredKey};
use crate::settings::Settings;
use crate::shell::quote;

/// Where the container keeps its keys: under `~/.ssh`, which a restart clears (the
/// extension sends the keys with every provisioning), never under `~/work`, which persists
/// and is copied with forks, versions and published projects. `{project}` is replaced.
const CONTAINER_KEYS_DIR: &str = "$HOME/.ssh/aistudio-{project}";
/// Where earlier versions kept the container's keys; provisioning removes them from there.
const LEGACY_CONTAINER_KEYS_DIR: &str = "$HOME/work/ssh";
/// Where the container keeps what belongs to one container start (`/tmp` is fresh after one).
const CONTAINER_STATE_DIR: &str = "/tmp/aistudio-ssh";
/// The relay's name in the container's own known_hosts file.
const CONTAINER_RELAY_ALIAS: &str = "aistudio-relay";

/// Whether a provisioning script carries the container's private keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateKeys {
    /// In the script: what the extension types into its own terminal, and `provision.sh`.
    Included,
    /// Left out: the companion notebook, which lives in `~/work`, uses the keys a
    /// provisioning with [`PrivateKeys::Included`] put in the container since it started.
    InContainer,
}

/// The container's key directory for `project` (a shell word: `$HOME` expands).
fn container_keys_dir(project: &str) -> String {
    CONTAINER_KEYS_DIR.replace("{project}", project)
}

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

impl RenderError {
    /// A stable name for the variant, for the UI to switch on.
    pub fn variant(&self) -> &'static str {
        match self {
            Self::MissingKey { .. } => "MissingKey",
            Self::InvalidKey { .. } => "InvalidKey",
        }
    }
}

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
/// two marker lines (or adds it at the top or bottom), leaving every other line as it was.
/// It refuses a file whose markers are not one BEGIN followed by one END (nothing changes),
/// and edits a symlinked file where it points, so the link stays a link.
const REPLACE_BLOCK_FUNCTION: &str = r##"# replace_block FILE BEGIN END CONTENT top|bottom
replace_block() {
  local file=$1 begin=$2 end=$3 content=$4 where=$5 target tmp order
  target=$file
  if [ -L "$file" ]; then target=$(readlink -f -- "$file"); fi
  [ -e "$target" ] || : > "$target"
  order=$(awk -v b="$begin" -v e="$end" '$0 == b { s = s "B" } $0 == e { s = s "E" } END { print s }' "$target")
  if [ -n "$order" ] && [ "$order" != BE ]; then
    say "the AI Studio SSH block in $file is damaged (its marker lines are repeated or out of order); fix it by hand, nothing was changed"
    return 1
  fi
  tmp=$(mktemp "$target.XXXXXX")
  {
    if [ "$where" = top ]; then printf '%s\n%s\n%s\n' "$begin" "$content" "$end"; fi
    awk -v b="$begin" -v e="$end" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' "$target"
    if [ "$where" = bottom ]; then printf '%s\n%s\n%s\n' "$begin" "$content" "$end"; fi
  } > "$tmp"
  chmod --reference="$target" "$tmp" 2>/dev/null || true
  chown --reference="$target" "$tmp" 2>/dev/null || true
  mv -f "$tmp" "$target"
}
"##;

const SAY_FUNCTION: &str = "say() { printf 'aistudio-ssh: %s\\n' \"$*\"; }\n";

/// The provisioning cell: run by the notebook user in the container on every start.
/// With [`PrivateKeys::InContainer`] it carries no private key and uses those already in
/// the container's key directory (or says how to get them there).
pub fn render_provision(settings: &Settings, keys: &RenderKeys, private: PrivateKeys) -> String {
    let client_line = authorized_keys_line("from=\"127.0.0.1,::1\"", &keys.client);
    let relay_known_hosts = known_hosts_lines(CONTAINER_RELAY_ALIAS, &settings.relay_host_keys);
    let (auth_begin, auth_end) =
        block_markers(&format!("aistudio-ssh project {}", settings.project));
    let (rc_begin, rc_end) = block_markers("aistudio-ssh environment");
    let (relay_private, host_private) = match private {
        PrivateKeys::Included => (
            keys.container_relay.0.as_str(),
            keys.container_host.0.as_str(),
        ),
        PrivateKeys::InContainer => ("", ""),
    };
    let values = assignments(&[
        ("project", &settings.project),
        ("sshd_port", &settings.container_sshd_port.to_string()),
        ("client_line", &client_line),
        ("relay_private", relay_private),
        ("relay_public", &keys.container_relay.1.line),
        ("host_private", host_private),
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
{values}keys_dir="{keys_dir}"
legacy_dir="{LEGACY_CONTAINER_KEYS_DIR}"
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

# Earlier versions kept the container's keys in ~/work/ssh, which persists and travels with
# forks and published projects: remove the files of ours there (they name aistudio-, in
# plain text or inside the key's base64), and nothing else.
if [ -d "$legacy_dir" ]; then
  for file in "$legacy_dir"/relay_ed25519* "$legacy_dir"/ssh_host_ed25519_key* "$legacy_dir"/relay_known_hosts* "$legacy_dir"/sshd_config*; do
    [ -f "$file" ] && [ ! -L "$file" ] || continue
    if {{ cat "$file"; sed '1d;$d' "$file" | base64 -d 2>/dev/null; }} | grep -qa 'aistudio-'; then
      rm -f "$file"
      say "removed $file (an earlier version kept the container's keys under ~/work)"
    fi
  done
  rmdir "$legacy_dir" 2>/dev/null || true
fi
# So did the companion notebook of earlier versions, and JupyterLab's checkpoint of it (the
# extension writes the notebook anew, without keys, before this runs). The pattern is spelled
# so that this script, which the new notebook holds, does not match it.
for file in "$HOME/{notebook}" "$HOME/{checkpoint}"; do
  if [ -f "$file" ] && grep -qE 'PRIVATE[ ]KEY' "$file"; then
    rm -f "$file"
    say "removed $file (an earlier version's notebook held the container's keys)"
  fi
done

mkdir -p "$keys_dir" "$state_dir" "$HOME/.ssh"
chmod 700 "$keys_dir" "$state_dir" "$HOME/.ssh"
served_host_key=$(cat "$keys_dir/ssh_host_ed25519_key.pub" 2>/dev/null || true)
if [ -n "$relay_private" ]; then
  install_file "$keys_dir/relay_ed25519" "$relay_private" 600
  install_file "$keys_dir/ssh_host_ed25519_key" "$host_private" 600
elif [ ! -f "$keys_dir/relay_ed25519" ] || [ ! -f "$keys_dir/ssh_host_ed25519_key" ] \
    || [ "$(cat "$keys_dir/ssh_host_ed25519_key.pub" 2>/dev/null)" != "$host_public" ]; then
  # This copy of the cell carries no private key (it lives in ~/work); a restart clears them.
  say "the container's keys for project $project are not in $keys_dir (a restart clears them): open the project's notebook with the AI Studio SSH extension and press Connect, or run provision.sh from 'aistudio-ssh render'"
  exit 1
fi
install_file "$keys_dir/relay_ed25519.pub" "$relay_public" 644
install_file "$keys_dir/ssh_host_ed25519_key.pub" "$host_public" 644
install_file "$keys_dir/relay_known_hosts" "$relay_known_hosts" 644

replace_block "$HOME/.ssh/authorized_keys" "$auth_begin" "$auth_end" "$client_line" bottom
chmod 600 "$HOME/.ssh/authorized_keys"

# The image may name a locale it does not have (AI Studio sets LANG=en_US.UTF-8 and ships
# only C, C.UTF-8 and POSIX): SSH sessions would warn and mangle non-ASCII file names.
usable_locale() {{
  local wanted=$1 normalized installed
  normalized=$(printf '%s' "$wanted" | tr '[:upper:]' '[:lower:]' | sed 's/utf-8/utf8/')
  installed=$(locale -a 2>/dev/null | tr '[:upper:]' '[:lower:]' | sed 's/utf-8/utf8/')
  if [ -z "$wanted" ] || [ "$wanted" = C ] || [ "$wanted" = POSIX ] \
      || printf '%s\n' "$installed" | grep -qxF -- "$normalized"; then
    printf '%s' "$wanted"
  elif printf '%s\n' "$installed" | grep -qxF c.utf8; then
    printf 'C.UTF-8'
  else
    printf 'C'
  fi
}}

# SSH sessions see what the notebook sees (conda, CUDA). At the top of ~/.bashrc, before
# any "not interactive: return" line, so `ssh host command` and VS Code get it too.
environment=$(for name in PATH LD_LIBRARY_PATH LIBRARY_PATH CPATH PYTHONPATH CUDA_HOME CUDA_PATH CUDA_VERSION \
    CUDNN_VERSION NVIDIA_VISIBLE_DEVICES NVIDIA_DRIVER_CAPABILITIES CONDA_DEFAULT_ENV CONDA_PREFIX CONDA_EXE \
    CONDA_PYTHON_EXE CONDA_SHLVL LANG LC_ALL LC_CTYPE; do
  [ -n "${{!name+set}}" ] || continue
  value=${{!name}}
  case $name in LANG | LC_*) value=$(usable_locale "$value") ;; esac
  printf 'export %s=%q\n' "$name" "$value"
done)
# A damaged block leaves ~/.bashrc as it is: SSH works without the notebook's environment.
replace_block "$HOME/.bashrc" "$rc_begin" "$rc_end" "$environment" top \
  || say "SSH sessions will not get the notebook's environment until ~/.bashrc is fixed"

# A user-mode sshd with the host key the user's client pinned: the same host identity after
# restarts and CPU/GPU switches (the extension brings the key back each time).
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
  # Another browser's keys were here: SIGHUP makes sshd re-read its config and host key.
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
        keys_dir = container_keys_dir(&settings.project),
        notebook = cells::COMPANION_NOTEBOOK_PATH,
        checkpoint = cells::checkpoint_path(cells::COMPANION_NOTEBOOK_PATH),
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
keys_dir="{keys_dir}"
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
        keys_dir = container_keys_dir(&settings.project),
    )
}

/// The probe cell: prints one JSON line describing the container and the connection.
pub fn render_probe(settings: &Settings) -> String {
    format!(
        r##"#!/usr/bin/env bash
# AI Studio SSH: one JSON line about this container: identity, accelerator, host keys,
# sshd and tunnel. Reads only; changes nothing.
exec python3 - <<'AISTUDIO_SSH_PROBE'
import json, os, socket, subprocess

STATE = "{CONTAINER_STATE_DIR}"
KEYS = os.path.expanduser("~/.ssh/aistudio-{project}")

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
    # Sugon/Hygon DCU (AMD-like): hy-smi, or rocm-smi, prints "DCU[0] : Card series: <name>"
    # lines (format from ROCm's rocm-smi; hy-smi's is a guess).
    dcu = run("hy-smi", "--showproductname") or run("rocm-smi", "--showproductname")
    if dcu:
        names = [line.split("Card series:", 1)[1].strip() for line in dcu.splitlines() if "Card series:" in line]
        return {{"kind": "dcu", "devices": names or ["DCU"]}}
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
"##,
        project = settings.project,
    )
}

/// A forwarding target no request can use. OpenSSH has no per-key "none" for `permitopen`
/// and `permitlisten`, and a direction without a per-key list is open; a `.invalid` name
/// (RFC 6761) never resolves, so a list holding only it allows nothing.
const FORWARD_NOWHERE: &str = "nowhere.invalid:9";

/// `authorized_keys` options of the container's relay key: it may only listen on the
/// project's port (`-R`), open nothing (`-W`/`-L`/`-D`), run nothing, get no terminal.
fn relay_key_options(remote_port: u16) -> String {
    format!(
        "restrict,port-forwarding,command=\"/bin/false\",permitlisten=\"127.0.0.1:{remote_port}\",permitopen=\"{FORWARD_NOWHERE}\""
    )
}

/// `authorized_keys` options of the user's client key on the relay: it may only reach the
/// project's port (ProxyJump's `-W`), listen on nothing (`-R`), run nothing.
fn client_key_options(remote_port: u16) -> String {
    format!(
        "restrict,port-forwarding,command=\"/bin/false\",permitopen=\"127.0.0.1:{remote_port}\",permitlisten=\"{FORWARD_NOWHERE}\""
    )
}

/// The GECOS comment of the tunnel account the relay script creates; with the `nologin`
/// shell and the `*` password (which only root can set) it also recognises accounts that
/// earlier versions of the script created.
const TUNNEL_ACCOUNT_COMMENT: &str = "AI Studio SSH tunnels";

/// The relay setup script, run once as root on the relay (and again for each project;
/// harmless to repeat). Paths can be redirected for tests and unusual layouts with
/// `AISTUDIO_SSH_SSHD_CONFIG`, `AISTUDIO_SSH_SSHD_DROPIN_DIR`, `AISTUDIO_SSH_RELAY_KEYS_DIR`
/// and `AISTUDIO_SSH_SSHD_RELOAD`.
pub fn render_relay_setup(settings: &Settings, keys: &RenderKeys) -> String {
    let (begin, end) = block_markers(&format!("aistudio-ssh project {}", settings.project));
    let key_lines = format!(
        "{}\n{}",
        authorized_keys_line(
            &relay_key_options(settings.remote_port),
            &keys.container_relay.1
        ),
        authorized_keys_line(&client_key_options(settings.remote_port), &keys.client),
    );
    let values = assignments(&[
        ("project", &settings.project),
        ("tunnel_user", &settings.relay_user),
        ("relay_port", &settings.relay_port.to_string()),
        ("remote_port", &settings.remote_port.to_string()),
        ("key_lines", &key_lines),
        ("block_begin", &begin),
        ("block_end", &end),
        ("account_comment", TUNNEL_ACCOUNT_COMMENT),
    ]);
    format!(
        r##"#!/usr/bin/env bash
# AI Studio SSH: relay setup for project {project}. Run as root on the relay:
#   sudo bash relay-setup.sh
# It creates (once) the tunnel-only account, lets this project's keys forward one port and
# nothing else, keeps dead tunnels from holding the port, and prints the relay host key.
# It never takes over an account it did not create; on any failure everything it changed
# is put back. Running it again is harmless.
set -euo pipefail
umask 022
{values}sshd_config=${{AISTUDIO_SSH_SSHD_CONFIG:-/etc/ssh/sshd_config}}
dropin_dir=${{AISTUDIO_SSH_SSHD_DROPIN_DIR:-/etc/ssh/sshd_config.d}}
# Root-owned: root never writes through a path another user could replace with a symlink,
# and sshd reads the tunnel account's keys from here, not from that account's home.
keys_dir=${{AISTUDIO_SSH_RELAY_KEYS_DIR:-/etc/ssh/aistudio-ssh}}
reload_command=${{AISTUDIO_SSH_SSHD_RELOAD:-}}
{SAY_FUNCTION}{REPLACE_BLOCK_FUNCTION}refuse() {{ say "$*; nothing was changed"; exit 1; }}

[ "$(id -u)" -eq 0 ] || {{ say "run this as root: sudo bash $0"; exit 1; }}
sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$sshd_bin" ] || refuse "no sshd here; install the openssh-server package first"
command -v flock > /dev/null || refuse "flock is missing; install the util-linux package first"
[ "$tunnel_user" != root ] || refuse "the tunnel user must not be root; keep aistudio-tunnel in the extension's relay settings"

# A directory root may write in: a real directory owned by root that no one else can write.
root_owned_dir() {{ [ -d "$1" ] && [ ! -L "$1" ] && [ "$(stat -c %u "$1")" = 0 ] && [ $(( 0$(stat -c %a "$1") & 022 )) -eq 0 ]; }}
[ -e "$keys_dir" ] || mkdir -m 755 "$keys_dir"
[ -e "$dropin_dir" ] || mkdir -m 755 "$dropin_dir"
for dir in "$keys_dir" "$dropin_dir"; do
  root_owned_dir "$dir" || refuse "$dir must be a directory owned by root that only root can write"
done
# One run at a time: two at once must not interleave their edits.
exec 9> "$keys_dir/.lock"
flock -w 120 9 || refuse "another relay-setup.sh has been running for 2 minutes"

registry="$keys_dir/accounts"
keys_file="$keys_dir/$tunnel_user.keys"
dropin="$dropin_dir/aistudio-ssh.conf"

# The account: made by this script, or refused. Never root, never an account of someone else.
created=
legacy_keys=
if entry=$(getent passwd "$tunnel_user"); then
  IFS=: read -r _ _ uid _ gecos home shell <<< "$entry"
  [ "$uid" != 0 ] || refuse "the account $tunnel_user has uid 0 (root); choose another tunnel user"
  if ! grep -qxF -- "$tunnel_user" "$registry" 2> /dev/null; then
    password=$(getent shadow "$tunnel_user" | cut -d: -f2)
    if [ "$gecos" = "$account_comment" ] && [ "$shell" = /usr/sbin/nologin ] && [ "$password" = '*' ]; then
      # Made by an earlier version of this script, which kept the keys in the account's home.
      legacy_keys="$home/.ssh/authorized_keys"
    else
      refuse "the account $tunnel_user already exists and was not made by this script; choose another tunnel user in the extension's relay settings, or remove that account"
    fi
  fi
else
  created=yes
fi

# The other projects' lines: this project's block is ours to replace.
others() {{ awk -v b="$block_begin" -v e="$block_end" '$0 == b {{ skip = 1; next }} $0 == e {{ skip = 0; next }} !skip' "$@"; }}
for file in "$keys_dir"/*.keys; do
  [ -f "$file" ] || continue
  if others "$file" | grep -qF "permitlisten=\"127.0.0.1:$remote_port\""; then
    refuse "port $remote_port is already given to another project in $file; choose another port on the relay for this project"
  fi
done

# From here on every change is undone unless the run completes.
done_ok=
keys_backup=$(mktemp "$keys_dir/.keys.XXXXXX")
dropin_backup=$(mktemp "$keys_dir/.dropin.XXXXXX")
registry_backup=$(mktemp "$keys_dir/.accounts.XXXXXX")
had_keys=; had_dropin=; had_registry=
[ -f "$keys_file" ] && had_keys=yes && cp -p "$keys_file" "$keys_backup"
[ -f "$dropin" ] && had_dropin=yes && cp -p "$dropin" "$dropin_backup"
[ -f "$registry" ] && had_registry=yes && cp -p "$registry" "$registry_backup"
restore() {{
  if [ -n "$2" ]; then mv -f "$1" "$3"; else rm -f "$3" "$1"; fi
}}
finish() {{
  if [ -z "$done_ok" ]; then
    restore "$keys_backup" "$had_keys" "$keys_file"
    restore "$dropin_backup" "$had_dropin" "$dropin"
    restore "$registry_backup" "$had_registry" "$registry"
    [ -z "$created" ] || userdel "$tunnel_user" 2> /dev/null || true
    say "failed; everything this run changed was put back"
  else
    rm -f "$keys_backup" "$dropin_backup" "$registry_backup"
  fi
}}
trap finish EXIT

if [ -n "$created" ]; then
  # No password, no shell, no home; not locked either ('*'), as sshd refuses locked accounts.
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "$account_comment" --password '*' "$tunnel_user"
  say "created user $tunnel_user"
fi
grep -qxF -- "$tunnel_user" "$registry" 2> /dev/null || printf '%s\n' "$tunnel_user" >> "$registry"
chmod 644 "$registry"

if [ ! -e "$keys_file" ] && [ -n "$legacy_keys" ] && [ -f "$legacy_keys" ] && [ ! -L "$legacy_keys" ] \
    && [ "$(stat -c %U "$legacy_keys")" = "$tunnel_user" ]; then
  # Earlier projects keep working: their blocks move here (read only; that home is not written).
  awk '/^# >>> aistudio-ssh project / {{ keep = 1 }} keep {{ print }} /^# <<< aistudio-ssh project / {{ keep = 0 }}' "$legacy_keys" > "$keys_file"
  say "moved the earlier projects' keys from $legacy_keys to $keys_file; run their relay scripts again to tighten them"
fi
replace_block "$keys_file" "$block_begin" "$block_end" "$key_lines" bottom
chown root:root "$keys_file"
chmod 644 "$keys_file"

# sshd: the tunnel accounts (a Match block, last in its own file: OpenSSH ends it there)
# get their keys from $keys_dir, no terminal, agent, X11, tunnel device or Unix-socket
# forwarding, and lose dead sessions within 45 s so a reconnecting container gets its port
# back. The relay port is served too (a Port line replaces the default 22, so every port
# sshd serves now is kept).
check_spec() {{ printf 'user=%s,host=aistudio-ssh-check,addr=127.0.0.1' "$1"; }}
match_users=$(paste -sd, "$registry")
# write_dropin [full] [PORT...]: without "full", only the header (sshd's view without us).
write_dropin() {{
  local tmp full=${{1:-}}
  shift || true
  tmp=$(mktemp "$keys_dir/.dropin-new.XXXXXX")
  {{
    echo "# Managed by AI Studio SSH (relay-setup.sh); rewritten on every run."
    for port in "$@"; do echo "Port $port"; done
    if [ -n "$full" ]; then
      echo "Match User $match_users"
      echo "    AuthorizedKeysFile $keys_dir/%u.keys"
      echo "    AllowTcpForwarding yes"
      echo "    AllowStreamLocalForwarding no"
      echo "    AllowAgentForwarding no"
      echo "    X11Forwarding no"
      echo "    PermitTunnel no"
      echo "    PermitTTY no"
      echo "    PermitUserRC no"
      echo "    GatewayPorts no"
      echo "    ForceCommand /bin/false"
      echo "    ClientAliveInterval 15"
      echo "    ClientAliveCountMax 3"
    fi
  }} > "$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$dropin"
}}
# sshd's settings for everyone else, and its ports, without anything of ours.
write_dropin
everyone_before=$("$sshd_bin" -T -f "$sshd_config" -C "$(check_spec root)" 2> /dev/null | grep -v '^port ' | sort || true)
ports=$("$sshd_bin" -T -f "$sshd_config" -C "$(check_spec root)" 2> /dev/null | awk '$1 == "port" {{ print $2 }}' | sort -un)
port_added=
if printf '%s\n' "$ports" | grep -qx "$relay_port"; then ports=; else port_added=yes; fi
# shellcheck disable=SC2086 # one port per word
write_dropin full $ports ${{port_added:+"$relay_port"}}
"$sshd_bin" -t -f "$sshd_config" || refuse "sshd rejected the new configuration"
# What sshd will really apply: the restrictions for the tunnel account, nothing new for others.
tunnel_view=$("$sshd_bin" -T -f "$sshd_config" -C "$(check_spec "$tunnel_user")")
for want in "authorizedkeysfile $keys_dir/%u.keys" "allowstreamlocalforwarding no" "allowagentforwarding no" \
    "x11forwarding no" "permittunnel no" "permittty no" "clientaliveinterval 15" "forcecommand /bin/false"; do
  grep -qxF -- "$want" <<< "$tunnel_view" \
    || refuse "sshd does not apply '$want' to $tunnel_user; $sshd_config must include $dropin_dir/*.conf near its top (Include $dropin_dir/*.conf)"
done
everyone_after=$("$sshd_bin" -T -f "$sshd_config" -C "$(check_spec root)" | grep -v '^port ' | sort)
[ -z "$everyone_before" ] || [ "$everyone_before" = "$everyone_after" ] \
  || refuse "the new sshd configuration would change settings for accounts other than $tunnel_user"

if [ -n "$reload_command" ]; then
  sh -c "$reload_command"
elif command -v systemctl > /dev/null 2>&1 && systemctl is-active --quiet ssh.socket 2> /dev/null; then
  # Socket-activated sshd (Ubuntu 22.10+): systemd, not sshd, listens; its generator turns
  # sshd's Port lines into the socket's ListenStream on daemon-reload.
  if [ -n "$port_added" ]; then systemctl daemon-reload && systemctl restart ssh.socket; fi
  systemctl reload ssh 2> /dev/null || true
  if [ -n "$port_added" ] && command -v ss > /dev/null && [ -z "$(ss -Hltn "sport = :$relay_port")" ]; then
    say "warning: ssh.socket does not listen on port $relay_port; run: systemctl edit ssh.socket, add the lines"
    say "  [Socket]"
    say "  ListenStream=$relay_port"
    say "then: systemctl restart ssh.socket"
  fi
elif command -v systemctl > /dev/null 2>&1 && systemctl is-active --quiet ssh 2> /dev/null; then
  systemctl reload ssh
elif command -v systemctl > /dev/null 2>&1 && systemctl is-active --quiet sshd 2> /dev/null; then
  systemctl reload sshd
elif [ -f /run/sshd.pid ]; then
  kill -HUP "$(cat /run/sshd.pid)"
else
  say "reload sshd yourself to apply the changes"
fi
done_ok=yes

say "project $project: tunnel user $tunnel_user, relay port $relay_port, container port 127.0.0.1:$remote_port"
say "paste this relay host key into the extension (relay host key):"
"$sshd_bin" -T -f "$sshd_config" -C "$(check_spec root)" 2> /dev/null | awk '$1 == "hostkey" {{ print $2 }}' | while read -r key; do
  if [ -f "$key.pub" ]; then cut -d' ' -f1,2 "$key.pub"; fi
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
/// known_hosts; neither is lent the user's agent or X display (a container is shared
/// with the platform, and `Host *` lines later in the user's config cannot turn them on). Plain OpenSSH syntax that works on Linux, macOS and Windows 10+.
pub fn render_ssh_config(settings: &Settings) -> String {
    let identity = config_path(settings, CLIENT_KEY_FILE);
    let known_hosts = config_path(settings, KNOWN_HOSTS_FILE);
    let relay = relay_alias(settings);
    let container = host_alias(settings);
    let common = format!(
        "    IdentityFile {identity}\n    IdentitiesOnly yes\n    UserKnownHostsFile {known_hosts}\n    \
         StrictHostKeyChecking yes\n    UpdateHostKeys no\n    ForwardAgent no\n    ForwardX11 no\n    \
         ServerAliveInterval 30\n    ServerAliveCountMax 3\n"
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
