#!/usr/bin/env bash
# AI Studio SSH: one JSON line about this container: identity, accelerator, host keys,
# sshd and the route's service (tunnel or bridge). Reads only; changes nothing.
keys_dir="$HOME/.ssh/aistudio-$project"
# The program: probe.py, put in this here-document when rendered.
exec python3 - "$state_dir" "$keys_dir" "$service" <<'AISTUDIO_SSH_PROBE'
AISTUDIO_SSH_PROBE
