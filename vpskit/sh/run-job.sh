#!/usr/bin/env bash
# Start a scheduled job's service now and print its output as it comes, until the run ends.
# Prints "result=<systemd's Result>" on stderr; exits 0 when the run succeeded, 1 when it failed,
# 2 when it did not start.
# Arguments: the job's service unit.
# Run as: bash -c "$SCRIPT" run-job UNIT
set -u
unit="$1"
show() { systemctl show -p "$1" --value "$unit"; }
if [ "$(show ActiveState)" = activating ]; then
  echo "$unit is running already (its timer started it); fab jobs shows how it ends" >&2
  exit 2
fi
before=$(show InvocationID)
systemctl reset-failed "$unit" 2>/dev/null
systemctl start --no-block "$unit" || exit 2
id=$before
for _ in $(seq 100); do  # the run gets its invocation id as it starts
  id=$(show InvocationID)
  if [ -n "$id" ] && [ "$id" != "$before" ]; then break; fi
  sleep 0.1
done
if [ -z "$id" ] || [ "$id" = "$before" ]; then
  echo "$unit did not start: nothing deployed yet? (its condition: a current release)" >&2
  exit 2
fi
journalctl --follow --quiet --output=cat --lines=all "_SYSTEMD_INVOCATION_ID=$id" &
follower=$!
while [ "$(show ActiveState)" = activating ] || [ "$(show ActiveState)" = deactivating ]; do
  sleep 0.5
done
sleep 1  # the journal's last lines
kill "$follower" 2>/dev/null; wait "$follower" 2>/dev/null
result=$(show Result)
echo "result=$result" >&2
[ "$result" = success ]
