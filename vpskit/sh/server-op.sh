#!/usr/bin/env bash
# Run a command as a transient systemd unit, so that it goes on by itself when its caller goes
# (an operator killed, its link lost): the site's lock holder (hold-lock.sh) waits for every
# such unit of the site before it frees the lock. The unit's output goes to a root-only file,
# printed here when it ends; the exit code is the unit's. A caller stopped on purpose
# (`timeout`: SIGTERM, or SIGINT) stops the unit too.
# Stdin, when not empty, is a script saved as /run/vpskit-ops/<unit>.sh for the command to run
# (`bash` it there: in a unit's command line systemd would expand its `$` words).
# Arguments: unit name, then systemd-run's options, `--` and the command.
# Run as: bash -c "$SCRIPT" server-op ARGS...
set -u
unit="$1"
shift
dir=/run/vpskit-ops
log="$dir/$unit.log"
install -d -m 700 "$dir"
cat > "$dir/$unit.sh"
systemd-run --quiet --wait --collect --service-type=exec --unit="$unit" \
    --property=StandardOutput="truncate:$log" --property=StandardError="append:$log" \
    "$@" </dev/null &
client=$!
trap 'systemctl stop "$unit" 2>/dev/null' TERM INT
wait "$client"
code=$?
while kill -0 "$client" 2>/dev/null; do  # a trap cut the wait short: the unit is stopping
    wait "$client"
    code=$?
done
cat "$log" 2>/dev/null
rm -f "$log" "$dir/$unit.sh"
exit "$code"
