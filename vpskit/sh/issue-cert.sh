#!/usr/bin/env bash
# Issue a server certificate from the host's own vpskit CA, for the other hosts to verify this
# one by. The CA is made first when missing: an EC P-256 key that never leaves this host,
# root-only, and a random part in its name that tells it from the CA of a host of the same
# name. Prints the CA certificate, which the other hosts trust.
# Arguments: directory, name (<name>.crt, <name>.key), subjectAltName (IP:<ip> or DNS:<name>),
# the key's owner.
# Run as: bash -c "$SCRIPT" issue-cert ARGS...
set -euo pipefail
dir="$1" name="$2" san="$3" owner="$4"
umask 077
mkdir -p "$dir" && chmod 755 "$dir" && cd "$dir"
trap 'rm -f ca.new.key ca.new.crt "$name.new.key" "$name.new.crt" "$name.csr"' EXIT
if [ ! -s ca.key ] || [ ! -s ca.crt ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=vpskit CA $(hostname) $(openssl rand -hex 4)" -keyout ca.new.key -out ca.new.crt \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
  chmod 644 ca.new.crt && mv -f ca.new.key ca.key && mv -f ca.new.crt ca.crt
fi
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${san#*:}" \
  -keyout "$name.new.key" -out "$name.csr" 2>/dev/null
openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
  -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") \
  -out "$name.new.crt" 2>/dev/null
chown "$owner" "$name.new.key" && chmod 644 "$name.new.crt"
mv -f "$name.new.key" "$name.key" && mv -f "$name.new.crt" "$name.crt"
cat ca.crt
