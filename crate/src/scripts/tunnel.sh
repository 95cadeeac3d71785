#!/usr/bin/env bash
# AI Studio SSH: the reverse tunnel of one project to its relay.
# `bash tunnel.sh` starts it once (detached: kernel restarts and closed tabs do not stop it),
# `bash tunnel.sh stop` stops it, `bash tunnel.sh status` shows it.
set -euo pipefail
supervisor="$state_dir/tunnel-supervisor.sh"
mkdir -p "$state_dir"
chmod 700 "$state_dir"
supervisor_running() { [ -f "$state_dir/tunnel.pid" ] && kill -0 "$(cat "$state_dir/tunnel.pid")" 2>/dev/null; }

case "${1:-start}" in
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

# The supervisor: tunnel-supervisor.sh with its values, put in this here-document when rendered.
cat > "$supervisor.tmp" <<'AISTUDIO_SSH_SUPERVISOR'
AISTUDIO_SSH_SUPERVISOR
mv -f "$supervisor.tmp" "$supervisor"
# setsid: its own session, so the kernel or terminal that started it can end without it.
setsid bash "$supervisor" < /dev/null >> "$state_dir/tunnel.log" 2>&1 &
for _ in $(seq 1 100); do
  grep -qx 'state=up' "$state_dir/tunnel.status" 2>/dev/null && break
  sleep 0.2
done
cat "$state_dir/tunnel.status" 2>/dev/null || say "the tunnel supervisor did not start; see $state_dir/tunnel.log"
