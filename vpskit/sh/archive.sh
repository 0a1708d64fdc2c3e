#!/usr/bin/env bash
# Write a dump or media archive into the backup dir under a temporary name, checking room first.
# Arguments: backup dir, file name, kind (dump|media), source (database or directory).
# Run as: bash -c "$SCRIPT" archive ARGS...
set -eo pipefail; umask 077
dir="$1" name="$2" kind="$3" source="$4"
tmp="$dir/.$name.partial"
trap 'rm -f "$tmp"' EXIT
mkdir -p "$dir"; chmod 700 "$dir"
if [ "$kind" = dump ]; then  # room for the last dump and a fifth more, or the whole database
  last=$(find "$dir" -maxdepth 1 -name '*.dump' -printf '%T@ %s\n' | sort -n | tail -1)
  if [ -n "$last" ]; then need=$(( ${last#* } * 12 / 10 ))
  else need=$(runuser -u postgres -- psql -XAtc 'SELECT pg_database_size(current_database())' \
                -d "$source"); fi
  free=$(df --output=avail -B1 "$dir" | tail -1)
  if [ "$free" -lt "$need" ]; then echo "NOSPACE $need $free"; exit 28; fi
fi
if [ "$kind" = dump ]; then  # checksummed on the way to disk, not read back for it
  sum=$(runuser -u postgres -- pg_dump --format=custom "$source" | tee "$tmp" | sha256sum)
  pg_restore --list "$tmp" > /dev/null
else
  sum=$(tar -C "$(dirname "$source")" -cz "$(basename "$source")" | tee "$tmp" | sha256sum)
  tar -tzf "$tmp" > /dev/null
fi
sync "$tmp"; mv "$tmp" "$dir/$name"; sync "$dir"
trap - EXIT
echo "$(stat -c %s "$dir/$name") ${sum%% *}"
