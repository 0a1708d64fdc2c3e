#!/usr/bin/env bash
# Run under flock: record the holder, say LOCKED, hold until stdin closes.
# Arguments: lock path, holder description.
# Run as: bash -c "$SCRIPT" hold-lock ARGS...
printf "%s\n" "$2" > "$1.holder"; echo LOCKED; cat >/dev/null; rm -f "$1.holder"
