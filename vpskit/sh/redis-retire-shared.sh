#!/usr/bin/env bash
# Stops and disables the distribution's shared redis-server, which no site uses any more, and
# takes vpskit's earlier overrides out of its config.
# Arguments: redis.conf, the include line to drop from it, then the files to delete.
# Run as: bash -c "$SCRIPT" redis-retire-shared ARGS...
set -eu
conf="$1" include="$2"; shift 2
systemctl disable --now --quiet redis-server
if [ -f "$conf" ]; then
  grep -vxF -- "$include" "$conf" >"$conf.vpskit-new" || true
  chown --reference="$conf" "$conf.vpskit-new"
  chmod --reference="$conf" "$conf.vpskit-new"
  mv -f "$conf.vpskit-new" "$conf"
fi
rm -rf -- "$@"
