#!/usr/bin/env bash
# Arguments: address port [address port ...]; prints the first unreachable one as address:port.
# Each value stays an argument, of this script and of the inner bash: no value is shell text.
# Run as: bash -c "$SCRIPT" reach ARGS...
# shellcheck disable=SC2016  # the inner script's $1/$2 are its own arguments
while [ $# -gt 0 ]; do timeout 3 bash -c '</dev/tcp/"$1"/"$2"' reach "$1" "$2" 2>/dev/null || { echo "$1:$2"; exit 1; }; shift 2; done
