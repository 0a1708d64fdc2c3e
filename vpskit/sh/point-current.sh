#!/usr/bin/env bash
# Point the site's `current` link at a release atomically; enable that web unit at boot, no other.
# Arguments: target, temporary link path, link path, web unit ('' on hosts without web).
# Run as: bash -c "$SCRIPT" point-current ARGS...
target="$1" tmp="$2" link="$3" unit="$4" wants=/etc/systemd/system/multi-user.target.wants
ln -sfn "$target" "$tmp" && mv -T "$tmp" "$link"
[ -n "$unit" ] || exit 0
for enabled in "$wants/${unit%%@*}"@*.service; do
  name=${enabled##*/}
  if [ -L "$enabled" ] && [ "$name" != "$unit" ]; then systemctl disable --no-reload -q "$name"; fi
done
systemctl enable --no-reload -q "$unit"
