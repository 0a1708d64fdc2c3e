#!/usr/bin/env bash
# Unpack the release archive (stdin) into its directory after checking free space.
# Arguments: release dir, site, sha, archive size in bytes.
# Run as: bash -c "$SCRIPT" unpack ARGS...
set -e; umask 027
release="$1" site="$2" sha="$3" size="$4"
need=$((size * 12 / 10 + 50000000))  # the archive unpacked, and room to spare
free=$(df --output=avail -B1 "${release%/*}" | tail -1)
if [ "$free" -lt "$need" ]; then echo "NOSPACE $need $free"; cat > /dev/null; exit 28; fi
rm -rf "$release"; mkdir -p "$release"
tar -x --no-same-owner -C "$release"
printf '%s\n' "$sha" > "$release/REVISION"
chown -R root:"$site" "$release"; chmod -R g+rX,g-w,o-rwx "$release"
