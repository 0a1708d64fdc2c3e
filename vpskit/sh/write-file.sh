#!/usr/bin/env bash
# Write stdin to a file atomically (temporary file, owner, mode, fsync, rename), and only when
# all of it came: a writer that dies mid-way (a killed operator) leaves the old file in place.
# Arguments: path, owner:group, mode, the content's sha256.
# Run as: bash -c "$SCRIPT" write-file ARGS...
set -e; umask 077; d=$(dirname "$1"); mkdir -p "$d"; t=$(mktemp "$d/.vpskit.XXXXXX")
trap 'rm -f "$t"' EXIT; cat > "$t"
sum=$(sha256sum < "$t"); [ "${sum%% *}" = "$4" ] || { echo "$1: incomplete content, not written" >&2; exit 1; }
chown "$2" "$t"; chmod "$3" "$t"; sync "$t"; mv -f "$t" "$1"; trap - EXIT
