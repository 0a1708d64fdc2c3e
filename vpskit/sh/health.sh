#!/usr/bin/env bash
# Health check of a release: GET path until the status is the wanted one.
# Arguments: mode (socket|http|https), target (socket path or port), host, path, status, tries, timeout.
# Run as: bash -c "$SCRIPT" health ARGS...
mode="$1" target="$2" host="$3" path="$4" want="$5" tries="$6" timeout="$7"
body=$(mktemp); trap 'rm -f "$body"' EXIT
if [ "$mode" = socket ]; then via=(--unix-socket "$target" "http://$host$path")
else via=(--resolve "$host:$target:127.0.0.1" -k "$mode://$host:$target$path"); fi
delay=0.2; start=$(date +%s.%N); code=000
for _ in $(seq "$tries"); do
  code=$(curl -s -o "$body" -w '%{http_code}' --max-time "$timeout" \
         -H "Host: $host" -H "X-Forwarded-Proto: https" "${via[@]}") || true
  [ "$code" = "$want" ] && exit 0
  sleep "$delay"; delay=$(awk -v d="$delay" 'BEGIN{d*=1.5; print (d>2)?2:d}')
done
waited=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
last=$(head -c 300 "$body" | tr '\n' ' ')
echo "no $want after $tries attempts in ${waited}s; last status $code: $last"
exit 1
