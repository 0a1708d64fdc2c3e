#!/usr/bin/env bash
# Removes a site's Redis instance: stops and disables its unit, deletes its files. Prints
# what went.
# Arguments: the unit, then the instance's files (config, data, port record).
# Run as: bash -c "$SCRIPT" redis-remove ARGS...
set -u
unit="$1"; shift
if systemctl is-enabled -q "$unit" || systemctl is-active -q "$unit"; then
  systemctl disable --now --quiet "$unit" && echo "$unit"
fi
for path in "$@"; do
  if [ -e "$path" ]; then rm -f -- "$path" && echo "$path"; fi
done
true
