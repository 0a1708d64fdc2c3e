#!/usr/bin/env bash
# Create, enable and register a swap file of $1 MiB unless /swapfile exists.
# Run as: bash -c "$SCRIPT" swap ARGS...
set -e; [ -f /swapfile ] || { fallocate -l "$1M" /swapfile; chmod 600 /swapfile; mkswap /swapfile >/dev/null; }; swapon /swapfile; grep -q "^/swapfile " /etc/fstab || echo "/swapfile none swap sw 0 0" >> /etc/fstab
