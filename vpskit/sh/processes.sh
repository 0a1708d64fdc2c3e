#!/usr/bin/env bash
# Run each process type's instances of the live release; stop the surplus ones.
# Arguments: --no-block or '', site, then pairs of process name and instance count.
# Run as: bash -c "$SCRIPT" processes ARGS...
block="$1" site="$2"; shift 2
while [ $# -gt 0 ]; do
  name="$1" count="$2"; shift 2
  want=(); for i in $(seq 1 "$count"); do want+=("$site-$name@$i.service"); done
  for unit in $(systemctl list-units --all --plain --no-legend "$site-$name@*.service" \
                | awk '{print $1}'); do
    case " ${want[*]} " in *" $unit "*) ;; *) systemctl disable --now --quiet "$unit";; esac
  done
  if [ "$count" -gt 0 ]; then
    systemctl enable --quiet "${want[@]}" && systemctl restart ${block:+"$block"} "${want[@]}"
  fi
done
