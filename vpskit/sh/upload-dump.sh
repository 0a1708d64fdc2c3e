#!/usr/bin/env bash
# Receive a dump on stdin, check its sha256 and that pg_restore reads it, then keep it.
# Arguments: backup dir, file name, sha256.
# Run as: bash -c "$SCRIPT" upload-dump ARGS...
set -eo pipefail; umask 077
dir="$1" name="$2" want="$3"
tmp="$dir/.$name.partial"
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
sum=$(sha256sum < "$tmp")
if [ "${sum%% *}" != "$want" ]; then
  echo "sha256 after upload differs from the local file's" >&2; exit 1
fi
pg_restore --file=/dev/null "$tmp"  # reads every block: a damaged copy never stops the app
if [ -e "$dir/$name" ] && ! cmp -s "$tmp" "$dir/$name"; then
  echo "a different $name is already on the server; rename the local file" >&2; exit 1
fi
sync "$tmp"; mv "$tmp" "$dir/$name"; sync "$dir"
trap - EXIT
