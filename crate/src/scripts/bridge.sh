#!/usr/bin/env bash
# AI Studio SSH: the bridge of direct mode (SSH through the notebook tab, no relay).
# `bash bridge.sh` starts it once (detached: kernel restarts and closed tabs do not stop it),
# `bash bridge.sh stop` stops it, `bash bridge.sh status` shows it. It listens on a Unix
# socket only this user may open; the extension's attach client connects it to the page.
set -euo pipefail
umask 077
program="$state_dir/bridge.py"
supervisor="$state_dir/bridge-supervisor.sh"
mkdir -p "$state_dir"
chmod 700 "$state_dir"
supervisor_running() { [ -f "$state_dir/bridge.pid" ] && kill -0 "$(cat "$state_dir/bridge.pid")" 2>/dev/null; }

case "${1:-start}" in
  start) ;;
  stop)
    if supervisor_running; then kill -TERM -- "-$(cat "$state_dir/bridge.pid")" 2>/dev/null || kill -TERM "$(cat "$state_dir/bridge.pid")"; fi
    for _ in $(seq 1 50); do supervisor_running || break; sleep 0.1; done
    rm -f "$state_dir/bridge.pid"
    say "bridge stopped"
    exit 0 ;;
  status) cat "$state_dir/bridge.status" 2>/dev/null || echo "state=stopped"; exit 0 ;;
  *) echo "usage: bridge.sh [start|stop|status]" >&2; exit 2 ;;
esac

# The bridge is Python 3.7 standard library: python3 on PATH, else python.
python=$(command -v python3 || command -v python || true)
if [ -z "$python" ]; then
  say "no python3 or python on PATH: the bridge needs Python 3.7 or later"
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 7))' 2>/dev/null; then
  say "$python is $("$python" -V 2>&1 | head -n 1): the bridge needs Python 3.7 or later"
  exit 1
fi

# bridge.py and the supervisor, put in these here-documents when rendered.
cat > "$program.tmp" <<'AISTUDIO_SSH_BRIDGE_PY'
AISTUDIO_SSH_BRIDGE_PY
if supervisor_running; then
  # A running bridge holds the SSH sessions: it is never replaced behind the user's back.
  if cmp -s "$program.tmp" "$program"; then
    say "bridge already running (supervisor $(cat "$state_dir/bridge.pid"))"
  else
    say "bridge already running (supervisor $(cat "$state_dir/bridge.pid")), an older version: 'bash bridge.sh stop' then run this again to update it (open SSH sessions end)"
  fi
  rm -f "$program.tmp"
  cat "$state_dir/bridge.status"
  exit 0
fi
mv -f "$program.tmp" "$program"
cat > "$supervisor.tmp" <<'AISTUDIO_SSH_BRIDGE_SUPERVISOR'
AISTUDIO_SSH_BRIDGE_SUPERVISOR
mv -f "$supervisor.tmp" "$supervisor"
rm -f "$state_dir/bridge.status"
# setsid: its own session, so the kernel or terminal that started it can end without it.
setsid bash "$supervisor" "$python" < /dev/null >> "$state_dir/bridge.log" 2>&1 &
for _ in $(seq 1 50); do
  grep -qx 'state=up' "$state_dir/bridge.status" 2>/dev/null && break
  sleep 0.1
done
cat "$state_dir/bridge.status" 2>/dev/null || say "the bridge supervisor did not start; see $state_dir/bridge.log"
