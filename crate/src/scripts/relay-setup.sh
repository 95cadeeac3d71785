#!/usr/bin/env bash
# AI Studio SSH: relay setup for one project. Run as root on the relay:
#   sudo bash relay-setup.sh
# It creates (once) the tunnel-only account, lets this project's keys forward one port and
# nothing else, keeps dead tunnels from holding the port, and prints the relay host key.
# It never takes over an account it did not create; on any failure everything it changed
# is put back. Running it again is harmless.
set -euo pipefail
umask 022
sshd_config=${AISTUDIO_SSH_SSHD_CONFIG:-/etc/ssh/sshd_config}
dropin_dir=${AISTUDIO_SSH_SSHD_DROPIN_DIR:-/etc/ssh/sshd_config.d}
# Root-owned: root never writes through a path another user could replace with a symlink,
# and sshd reads the tunnel account's keys from here, not from that account's home.
keys_dir=${AISTUDIO_SSH_RELAY_KEYS_DIR:-/etc/ssh/aistudio-ssh}
reload_command=${AISTUDIO_SSH_SSHD_RELOAD:-}
refuse() { say "$*; nothing was changed"; exit 1; }

[ "$(id -u)" -eq 0 ] || { say "run this as root: sudo bash $0"; exit 1; }
sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$sshd_bin" ] || refuse "no sshd here; install the openssh-server package first"
command -v flock > /dev/null || refuse "flock is missing; install the util-linux package first"
[ "$tunnel_user" != root ] || refuse "the tunnel user must not be root; keep aistudio-tunnel in the extension's relay settings"

# A directory root may write in: a real directory owned by root that no one else can write.
root_owned_dir() { [ -d "$1" ] && [ ! -L "$1" ] && [ "$(stat -c %u "$1")" = 0 ] && [ $(( 0$(stat -c %a "$1") & 022 )) -eq 0 ]; }
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
others() { awk -v b="$block_begin" -v e="$block_end" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' "$@"; }
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
restore() {
  if [ -n "$2" ]; then mv -f "$1" "$3"; else rm -f "$3" "$1"; fi
}
finish() {
  if [ -z "$done_ok" ]; then
    restore "$keys_backup" "$had_keys" "$keys_file"
    restore "$dropin_backup" "$had_dropin" "$dropin"
    restore "$registry_backup" "$had_registry" "$registry"
    [ -z "$created" ] || userdel "$tunnel_user" 2> /dev/null || true
    say "failed; everything this run changed was put back"
  else
    rm -f "$keys_backup" "$dropin_backup" "$registry_backup"
  fi
}
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
  awk '/^# >>> aistudio-ssh project / { keep = 1 } keep { print } /^# <<< aistudio-ssh project / { keep = 0 }' "$legacy_keys" > "$keys_file"
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
check_spec() { printf 'user=%s,host=aistudio-ssh-check,addr=127.0.0.1' "$1"; }
match_users=$(paste -sd, "$registry")
# write_dropin [full] [PORT...]: without "full", only the header (sshd's view without us).
write_dropin() {
  local tmp full=${1:-}
  shift || true
  tmp=$(mktemp "$keys_dir/.dropin-new.XXXXXX")
  {
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
  } > "$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$dropin"
}
# sshd's settings for everyone else, and its ports, without anything of ours.
write_dropin
everyone_before=$("$sshd_bin" -T -f "$sshd_config" -C "$(check_spec root)" 2> /dev/null | grep -v '^port ' | sort || true)
ports=$("$sshd_bin" -T -f "$sshd_config" -C "$(check_spec root)" 2> /dev/null | awk '$1 == "port" { print $2 }' | sort -un)
port_added=
if printf '%s\n' "$ports" | grep -qx "$relay_port"; then ports=; else port_added=yes; fi
# shellcheck disable=SC2086 # one port per word
write_dropin full $ports ${port_added:+"$relay_port"}
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
"$sshd_bin" -T -f "$sshd_config" -C "$(check_spec root)" 2> /dev/null | awk '$1 == "hostkey" { print $2 }' | while read -r key; do
  if [ -f "$key.pub" ]; then cut -d' ' -f1,2 "$key.pub"; fi
done
