#!/usr/bin/env bash
# AI Studio SSH: provisioning for one project. Safe to re-run: it changes only the
# files it owns and the marked blocks it owns in ~/.ssh/authorized_keys and ~/.bashrc.
set -euo pipefail
umask 077
# Where the container keeps its keys: under ~/.ssh, which a restart clears (the extension
# sends the keys with every provisioning), never under ~/work, which persists and is copied
# with forks, versions and published projects.
keys_dir="$HOME/.ssh/aistudio-$project"
# Where earlier versions kept the container's keys; provisioning removes them from there.
legacy_dir="$HOME/work/ssh"

# install_file PATH CONTENT MODE: writes PATH only when it differs; a different existing
# file is kept beside it, never silently replaced.
install_file() {
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
}

# AI Studio restores the persistent home after each start (the page shows "syncing" and
# "Unzipping files"); writing meanwhile makes conflicts. Guess: the restore is over once
# ~/work exists and no unzip of ours runs. Waits at most 10 minutes.
for _ in $(seq 1 300); do
  if [ -d "$HOME/work" ] && ! pgrep -u "$(id -u)" -x unzip >/dev/null 2>&1; then break; fi
  sleep 2
done
[ -d "$HOME/work" ] || { say "$HOME/work does not exist after 10 minutes; is this an AI Studio container?"; exit 1; }

# Earlier versions kept the container's keys in ~/work/ssh, which persists and travels with
# forks and published projects: remove the files of ours there (they name aistudio-, in
# plain text or inside the key's base64), and nothing else.
if [ -d "$legacy_dir" ]; then
  for file in "$legacy_dir"/relay_ed25519* "$legacy_dir"/ssh_host_ed25519_key* "$legacy_dir"/relay_known_hosts* "$legacy_dir"/sshd_config*; do
    [ -f "$file" ] && [ ! -L "$file" ] || continue
    if { cat "$file"; sed '1d;$d' "$file" | base64 -d 2>/dev/null; } | grep -qa 'aistudio-'; then
      rm -f "$file"
      say "removed $file (an earlier version kept the container's keys under ~/work)"
    fi
  done
  rmdir "$legacy_dir" 2>/dev/null || true
fi
# So did the companion notebook of earlier versions, and JupyterLab's checkpoint of it (the
# extension writes the notebook anew, without keys, before this runs). The pattern is spelled
# so that this script, which the new notebook holds, does not match it.
for file in "$HOME/$notebook" "$HOME/$notebook_checkpoint"; do
  if [ -f "$file" ] && grep -qE 'PRIVATE[ ]KEY' "$file"; then
    rm -f "$file"
    say "removed $file (an earlier version's notebook held the container's keys)"
  fi
done

mkdir -p "$keys_dir" "$state_dir" "$HOME/.ssh"
chmod 700 "$keys_dir" "$state_dir" "$HOME/.ssh"
served_host_key=$(cat "$keys_dir/ssh_host_ed25519_key.pub" 2>/dev/null || true)
# The relay key exists only where the route is the relay (it can open the tunnel and nothing
# else); the direct route needs no key to leave the container.
if [ -n "$host_private" ]; then
  [ -z "$relay_private" ] || install_file "$keys_dir/relay_ed25519" "$relay_private" 600
  install_file "$keys_dir/ssh_host_ed25519_key" "$host_private" 600
elif { [ -n "$relay_public" ] && [ ! -f "$keys_dir/relay_ed25519" ]; } || [ ! -f "$keys_dir/ssh_host_ed25519_key" ] \
    || [ "$(cat "$keys_dir/ssh_host_ed25519_key.pub" 2>/dev/null)" != "$host_public" ]; then
  # This copy of the cell carries no private key (it lives in ~/work); a restart clears them.
  say "the container's keys for project $project are not in $keys_dir (a restart clears them): open the project's notebook with the AI Studio SSH extension and press Connect, or run provision.sh from 'aistudio-ssh render'"
  exit 1
fi
install_file "$keys_dir/ssh_host_ed25519_key.pub" "$host_public" 644
# The other route's service stops: a route the user left keeps nothing open.
stop_service() {
  local name=$1 pid
  pid=$(cat "$state_dir/$name.pid" 2>/dev/null) || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" && say "stopped the $name: project $project now connects $2"
}
if [ -n "$relay_public" ]; then
  install_file "$keys_dir/relay_ed25519.pub" "$relay_public" 644
  install_file "$keys_dir/relay_known_hosts" "$relay_known_hosts" 644
  stop_service bridge "through the relay"
else
  stop_service tunnel "directly, through the notebook tab"
  if [ -e "$keys_dir/relay_ed25519" ]; then
    rm -f "$keys_dir/relay_ed25519" "$keys_dir/relay_ed25519.pub" "$keys_dir/relay_known_hosts"
    say "removed the relay key from $keys_dir: project $project now connects directly, through the notebook tab"
  fi
fi

replace_block "$HOME/.ssh/authorized_keys" "$auth_begin" "$auth_end" "$client_line" bottom
chmod 600 "$HOME/.ssh/authorized_keys"

# The image may name a locale it does not have (AI Studio sets LANG=en_US.UTF-8 and ships
# only C, C.UTF-8 and POSIX): SSH sessions would warn and mangle non-ASCII file names.
usable_locale() {
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
}

# SSH sessions see what the notebook sees (conda, CUDA). At the top of ~/.bashrc, before
# any "not interactive: return" line, so `ssh host command` and VS Code get it too.
environment=$(for name in PATH LD_LIBRARY_PATH LIBRARY_PATH CPATH PYTHONPATH CUDA_HOME CUDA_PATH CUDA_VERSION \
    CUDNN_VERSION NVIDIA_VISIBLE_DEVICES NVIDIA_DRIVER_CAPABILITIES CONDA_DEFAULT_ENV CONDA_PREFIX CONDA_EXE \
    CONDA_PYTHON_EXE CONDA_SHLVL LANG LC_ALL LC_CTYPE; do
  [ -n "${!name+set}" ] || continue
  value=${!name}
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
sshd_running() { [ -f "$state_dir/sshd.pid" ] && kill -0 "$(cat "$state_dir/sshd.pid")" 2>/dev/null; }
# sshd exits 0 even when it then fails to bind (it reports that in its log), so success is
# its pid file naming a live process.
sshd_started() { for _ in $(seq 1 50); do sshd_running && return 0; sleep 0.1; done; return 1; }
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
