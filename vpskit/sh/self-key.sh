#!/usr/bin/env bash
# The resident vpskit's key (vpskit/resident.py): made once, root-only; its public half printed.
# Argument: the private key's path.
# Run as: bash -c "$SCRIPT" self-key KEY
set -eo pipefail
key="$1"
install -d -m 700 "$(dirname "$key")"
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C vpskit-self -f "$key"
cat "$key.pub"
