#!/usr/bin/env bash
# Install or refresh the resident vpskit (vpskit/resident.py): a virtualenv with its
# requirements (binary wheels only: no build step runs as root), the package from the tar on
# stdin, and the stamp naming both, written last.
# Arguments: the home directory, the digest for the stamp, the requirements (name==version).
# Run as: bash -c "$SCRIPT" resident-install ARGS...
set -eo pipefail; umask 022
home="$1" digest="$2"; shift 2
install -d -m 755 "$home"
[ -x "$home/venv/bin/python" ] || python3 -m venv "$home/venv"
"$home/venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
  --only-binary=:all: "$@"
rm -rf "$home/src.new"; mkdir "$home/src.new"
tar -x -C "$home/src.new" --no-same-owner --no-same-permissions
rm -rf "$home/src"; mv "$home/src.new" "$home/src"
site=$("$home/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
echo "$home/src" > "$site/vpskit-resident.pth"
echo "$digest" > "$home/stamp"
