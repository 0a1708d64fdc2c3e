#!/usr/bin/env bash
# The host's key for logging into itself (vpskit/resident.py): made once, root-only, and
# authorized for logins from loopback only in the file sshd reads besides authorized_keys.
# Arguments: the private key's path, the authorized file's path, the key's options there.
# Run as: bash -c "$SCRIPT" self-key ARGS...
set -eo pipefail
key="$1" authorized="$2" options="$3"
install -d -m 700 "$(dirname "$key")"
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C vpskit-self -f "$key"
printf '%s %s\n' "$options" "$(cat "$key.pub")" > "$authorized.new"
chmod 644 "$authorized.new"; mv "$authorized.new" "$authorized"
