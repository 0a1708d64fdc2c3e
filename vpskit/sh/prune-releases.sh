#!/usr/bin/env bash
# Remove the given releases and every virtualenv no release links to any more.
# Arguments: site root, then release ids.
# Run as: bash -c "$SCRIPT" prune-releases ARGS...
root="$1"; shift
for id in "$@"; do rm -rf "$root/releases/$id"; done
keep=$(for d in "$root"/releases/*/.venv; do readlink "$d"; done | sort -u)
for v in "$root"/venvs/*/; do v=${v%/}; echo "$keep" | grep -qxF "$v" || rm -rf "$v"; done
