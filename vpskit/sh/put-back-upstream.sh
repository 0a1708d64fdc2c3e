#!/usr/bin/env bash
# The lb's upstream with every web host in rotation again, for a deploy that died with some
# out of it (its lock holder runs this; see vpskit/deploy/lock.py).
# Arguments: the upstream file's path, its content.
# Run as: bash -c "$SCRIPT" put-back-upstream ARGS...
printf "%s" "$2" > "$1.tmp" && mv -f "$1.tmp" "$1" && nginx -t -q && systemctl reload nginx
