#!/usr/bin/env bash
# Run under flock: record the holder, say LOCKED, hold until stdin closes (the holder is done,
# or its SSH session ended: killed, link lost). Before and after, still holding the lock, run
# what a holder left to undo ("$1.undo": armed before a risky step, removed once it is over),
# so a holder that died never leaves the site stopped.
# Arguments: lock path, holder description.
# Run as: bash -c "$SCRIPT" hold-lock ARGS...
trap '' HUP PIPE
undo() {
    if [ -s "$1.undo" ]; then
        bash "$1.undo" 2>&1 | logger -t vpskit-undo
    fi
    rm -f "$1.undo"
}
undo "$1"
printf "%s\n" "$2" > "$1.holder"; echo LOCKED; cat >/dev/null
undo "$1"
rm -f "$1.holder"
