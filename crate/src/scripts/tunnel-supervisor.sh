#!/usr/bin/env bash
# Keeps ssh -R to the relay up, with capped backoff; one instance (flock).
set -u
keys_dir="$HOME/.ssh/aistudio-$project"
log="$state_dir/tunnel.log"
exec 9> "$state_dir/tunnel.lock"
flock -n 9 || exit 0
echo $$ > "$state_dir/tunnel.pid"
child=
status() {
  printf 'state=%s\nsince=%s\npid=%s\ndetail=%s\n' "$1" "$(date +%s)" "$$" "${2:-}" > "$state_dir/tunnel.status.tmp"
  mv -f "$state_dir/tunnel.status.tmp" "$state_dir/tunnel.status"
}
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
    -o GlobalKnownHostsFile=/dev/null -o HostKeyAlias="$relay_alias" -o UpdateHostKeys=no \
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
  status down "ssh exited with $code after ${ran}s: $(tail -n 1 "$log" 2>/dev/null); retrying in ${backoff}s"
  sleep "$backoff"
  backoff=$(( backoff * 2 ))
  [ "$backoff" -le 30 ] || backoff=30
done
