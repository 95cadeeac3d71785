#!/usr/bin/env bash
# Keeps bridge.py listening on its Unix socket, with capped backoff; one instance (flock).
# $1: the Python to run it with (bridge.sh checked it).
set -u
python=$1
log="$state_dir/bridge.log"
socket="$state_dir/bridge.sock"
exec 9> "$state_dir/bridge.lock"
flock -n 9 || exit 0
echo $$ > "$state_dir/bridge.pid"
child=
status() {
  printf 'state=%s\nsince=%s\npid=%s\ndetail=%s\n' "$1" "$(date +%s)" "$$" "${2:-}" > "$state_dir/bridge.status.tmp"
  mv -f "$state_dir/bridge.status.tmp" "$state_dir/bridge.status"
}
trap 'status stopped; [ -n "$child" ] && kill "$child" 2>/dev/null; rm -f "$socket"; exit 0' TERM INT HUP
backoff=1
while :; do
  target_port=$sshd_port
  [ "$(cat "$state_dir/sshd.mode" 2>/dev/null)" = system ] && target_port=22
  # A bounded log: keep the last 32 KiB once it passes 64 KiB.
  if [ -f "$log" ] && [ "$(wc -c < "$log")" -gt 65536 ]; then tail -c 32768 "$log" > "$log.tmp" && mv -f "$log.tmp" "$log"; fi
  status starting "$socket -> sshd on 127.0.0.1:$target_port"
  # A socket left behind is not a sign of this bridge being up.
  rm -f "$socket"
  started=$(date +%s)
  # 9>&-: the bridge does not hold the lock, so a new supervisor can start after this one.
  "$python" "$state_dir/bridge.py" --listen "$socket" --sshd-port "$target_port" >> "$log" 2>&1 9>&- &
  child=$!
  # Up once the socket is bound (bridge.py binds it before it serves).
  ( for _ in $(seq 1 100); do
      kill -0 "$child" 2>/dev/null || exit 0
      if [ -S "$socket" ]; then status up "$socket -> sshd on 127.0.0.1:$target_port"; exit 0; fi
      sleep 0.1
    done ) 9>&- &
  watcher=$!
  wait "$child"
  code=$?
  kill "$watcher" 2>/dev/null
  child=
  ran=$(( $(date +%s) - started ))
  [ "$ran" -ge 30 ] && backoff=1
  status down "bridge.py exited with $code after ${ran}s: $(tail -n 1 "$log" 2>/dev/null); retrying in ${backoff}s"
  sleep "$backoff"
  backoff=$(( backoff * 2 ))
  [ "$backoff" -le 30 ] || backoff=30
done
