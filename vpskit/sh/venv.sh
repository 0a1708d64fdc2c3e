#!/usr/bin/env bash
# Build (or reuse) the release's virtualenv as the app user, keyed by its requirements.
# Arguments: venvs dir, key, release dir, requirements file, pip log, app user, ...
# Run as: bash -c "$SCRIPT" venv ARGS...
set -e; umask 022
venvs="$1" key="$2" release="$3" reqs="$4" log="$5" user="$6"
dir="$venvs/$key" work="$venvs/$key/.vpskit-build" group=$(id -gn "$user")
mkdir -p "$venvs"
# One build per key at a time: a deploy whose operator died leaves its pip running here, and
# the next deploy waits for it (then reuses what it built) instead of building over it.
exec 9>"$venvs/.$key.lock"; flock 9
as_user() {  # as_user DIR CMD...: CMD in DIR as $user, with a private HOME (pip's cache)
  local cwd="$1"; shift
  setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs -- \
    env -i -C "$cwd" HOME="$work/home" PATH="$PATH" LANG=C.UTF-8 "$@"
}
if [ ! -f "$dir/.vpskit-complete" ]; then  # built in place: venv scripts embed their path
  rm -rf "$dir"
  largest=$(du -s -B1 "$venvs"/*/ 2>/dev/null | sort -n | tail -1 | cut -f1)
  if [ -n "$largest" ]; then need=$((largest * 12 / 10)); else need=300000000; fi
  need=$((need + $(du -s -B1 "$release" | cut -f1)))  # and the copy pip runs in
  free=$(df --output=avail -B1 "$venvs" | tail -1)
  if [ "$free" -lt "$need" ]; then echo "NOSPACE $need $free"; exit 28; fi
  install -d -o "$user" -g "$group" -m 700 "$dir"
  as_user "$dir" mkdir -p "$work/home"
  as_user "$dir" python3 -m venv "$dir"
  if [ -f "$release/$reqs" ]; then  # relative paths (./pkg) resolve, and build, in a copy
    as_user "$dir" cp -R "$release" "$work/src"
    (umask 077; : > "$log")  # pip's full output; only root reads it
    as_user "$work/src" "$dir/bin/pip" install --disable-pip-version-check --no-input \
      --progress-bar off -r "$release/$reqs" > "$log" 2>&1 || { cat "$log"; exit 3; }
  fi
  rm -rf "$work"
  if [ -n "$(find "$dir" ! -type d -links +1 -print -quit)" ]; then  # would become root's
    echo "the build left a hard link in $dir; refusing it" >&2; exit 1
  fi
  chown -R root:"$group" "$dir"; chmod -R ug-s,g+rX,go-w "$dir"  # read-only for the app
  rm -f "$dir/.vpskit-complete"; touch "$dir/.vpskit-complete"  # rm: never follow its link
  echo built
fi
ln -sfn "$dir" "$release/.venv"
