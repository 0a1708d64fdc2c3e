#!/usr/bin/env bash
# Make a new release of an existing one's files, hard-linked (release files are read-only, so
# nothing is shared that changes), with stdin as its metadata. It is built under a hidden name
# (release listings skip it) and renamed into place last: a cut leaves no half release.
# Arguments: releases dir, source release id, new release id.
# Run as: bash -c "$SCRIPT" clone-release ARGS...
set -euo pipefail
dir="$1" from="$2" to="$3"
rm -rf -- "$dir"/.clone-*
tmp="$dir/.clone-$to"
cp -a -l -- "$dir/$from" "$tmp"
rm -f -- "$tmp/.vpskit-release.json" "$tmp/.vpskit-release.log"
(umask 022; cat > "$tmp/.vpskit-release.json")
mv -T -- "$tmp" "$dir/$to"
