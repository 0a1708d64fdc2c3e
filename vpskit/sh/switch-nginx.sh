#!/usr/bin/env bash
# Test, reload gracefully (or start), then wait up to $1 s for the old workers to exit, so the
# new configuration is the one answering when this returns.
# Run as: bash -c "$SCRIPT" switch-nginx ARGS...
old=$(pgrep -d' ' -f '^nginx: worker process') || true
nginx -t -q || exit 3
systemctl reload-or-restart nginx || exit 4
for _ in $(seq $(( $1 * 10 ))); do
  alive=0; for p in $old; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && exit 0; sleep 0.1
done
