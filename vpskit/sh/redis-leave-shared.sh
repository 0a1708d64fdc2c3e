#!/usr/bin/env bash
# Takes a site off the shared redis-server of vpskit's earlier versions: flushes its database
# there and forgets it. Prints what it did.
# Arguments: site, the shared registry directory (<site>: its database number), the shared
# instance's config (holding its requirepass).
# Run as: bash -c "$SCRIPT" redis-leave-shared ARGS...
set -u
site="$1" registry="$2" conf="$3"
[ -f "$registry/$site" ] || exit 0
n=$(cat "$registry/$site")
if systemctl is-active -q redis-server; then
  REDISCLI_AUTH="$(sed -n 's/^requirepass //p' "$conf")"
  export REDISCLI_AUTH  # the password never in argv
  redis-cli -n "$n" flushdb >/dev/null
fi
rm -f "$registry/$site" && echo "shared redis database $n"
