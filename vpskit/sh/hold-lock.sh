#!/usr/bin/env bash
# Run under flock: record the holder, say LOCKED, hold until stdin closes (the holder is done,
# or its SSH session ended: killed, link lost). Then, still holding the lock, wait for the
# site's server-side units (a migration, a restore: "$3") to end, so a dead holder's work is
# never raced by the next one; and before and after, run what a holder left to undo
# ("$1.undo": armed before a risky step, removed once it is over), so a holder that died never
# leaves the site stopped. What was finished or undone for a holder is kept in "$1.recovered"
# and told to the next holder ("RECOVERED <time> <holder> <what was done>" before LOCKED).
# Arguments: lock path, holder description, glob of the site's server-side units.
# Run as: bash -c "$SCRIPT" hold-lock ARGS...
trap '' HUP PIPE
units() {
    systemctl list-units --plain --no-legend --all --state=activating,active,deactivating \
        "$1" 2>/dev/null | cut -d' ' -f1 | tr '\n' ' '
}
recovered() {
    printf '%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$(cat "$1.holder" 2>/dev/null)" "$2" \
        >> "$1.recovered"
}
undo() {
    if [ -s "$1.undo" ]; then
        recovered "$1" "ran its undo: $(tr '\n' ';' < "$1.undo")"
        bash "$1.undo" 2>&1 | logger -t vpskit-undo
    fi
    rm -f "$1.undo"
}
undo "$1"
if [ -s "$1.recovered" ]; then
    sed 's/^/RECOVERED\t/' "$1.recovered"
fi
rm -f "$1.recovered"
printf "%s\n" "$2" > "$1.holder"; echo LOCKED; cat >/dev/null
left=$(units "$3")
if [ -n "$left" ]; then
    recovered "$1" "waited for ${left% } to end"
    while [ -n "$(units "$3")" ]; do
        sleep 1
    done
fi
undo "$1"
rm -f "$1.holder"
