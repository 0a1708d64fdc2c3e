#!/usr/bin/env bash
# Prints one line per thing removed. The lock file stays: this run holds it.
# Arguments: site, certificate directory, how many Nginx paths follow, those, the other paths.
# Run as: bash -c "$SCRIPT" remove-site ARGS...
set -u
site="$1" cert_dir="$2" n="$3"; shift 3
nginx_paths=("${@:1:$n}"); other_paths=("${@:$((n + 1))}")
for unit in $(systemctl list-units --all --plain --no-legend "$site-*" | awk '{print $1}'); do
  systemctl disable --now --quiet "$unit" 2>/dev/null || systemctl stop "$unit"
  echo "unit $unit"
done
mapfile -t found < <(find /etc/systemd/system -name "$site-*")
if [ ${#found[@]} -gt 0 ]; then
  rm -rf "${found[@]}"; systemctl daemon-reload; systemctl reset-failed "$site-*" 2>/dev/null
  echo "unit files $site-*"
fi
if [ -d "$cert_dir" ] && command -v certbot >/dev/null; then
  certbot delete --non-interactive --cert-name "$site" >/dev/null 2>&1 && echo "certificate $site"
fi
nginx=0
for path in "${nginx_paths[@]}"; do
  [ -e "$path" ] && { rm -rf "$path"; echo "$path"; nginx=1; }
done
[ $nginx = 1 ] && nginx -t -q && systemctl reload nginx
for path in "${other_paths[@]}"; do
  [ -e "$path" ] && { rm -rf "$path"; echo "$path"; }
done
id "$site" >/dev/null 2>&1 && userdel "$site" && echo "user $site"
getent group "$site" >/dev/null && groupdel "$site" && echo "group $site"  # www-data kept it
true
