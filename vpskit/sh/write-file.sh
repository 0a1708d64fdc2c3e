#!/usr/bin/env bash
# Write stdin to a file atomically (temporary file, owner, mode, fsync, rename).
# Arguments: path, owner:group, mode.
# Run as: bash -c "$SCRIPT" write-file ARGS...
set -e; umask 077; d=$(dirname "$1"); mkdir -p "$d"; t=$(mktemp "$d/.vpskit.XXXXXX"); trap 'rm -f "$t"' EXIT; cat > "$t"; chown "$2" "$t"; chmod "$3" "$t"; sync "$t"; mv -f "$t" "$1"; trap - EXIT
