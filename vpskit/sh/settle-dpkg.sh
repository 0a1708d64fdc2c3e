#!/usr/bin/env bash
# Wait for other apt/dpkg runs to end, then finish any interrupted dpkg configuration.
# Run as: bash -c "$SCRIPT" settle-dpkg ARGS...
for _ in $(seq 900); do pgrep -x 'apt|apt-get|dpkg' >/dev/null || break; sleep 1; done; if [ -n "$(dpkg --audit)" ]; then DEBIAN_FRONTEND=noninteractive dpkg --configure -a --force-confdef --force-confold; fi
