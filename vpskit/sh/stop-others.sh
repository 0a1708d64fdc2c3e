#!/usr/bin/env bash
# Stop and disable the site's web instances other than the live one; print the release of each.
# Arguments: site, the unit to keep.
# Run as: bash -c "$SCRIPT" stop-others ARGS...
site="$1" keep="$2"
for unit in $(systemctl list-units --plain --no-legend "$site-web@*.service" | awk '{print $1}'); do
  if [ "$unit" != "$keep" ]; then
    systemctl disable --now --no-block --no-reload -q "$unit" && echo "${unit#*@}"
  fi
done
