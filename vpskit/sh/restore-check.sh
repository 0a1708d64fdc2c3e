#!/usr/bin/env bash
# The nightly proof that a dump restores: into a scratch database owned by the site's role,
# through the same restore script `fab restore` runs (as the app's user and role, never a
# superuser), then at least one table must be there; the scratch database goes either way.
# Arguments: the restore script's text, the dump, the scratch database, the site's role.
# Run as: bash -c "$SCRIPT" restore-check ARGS...
set -eo pipefail
restore="$1" file="$2" scratch="$3" role="$4"
drop() { runuser -u postgres -- dropdb --if-exists "$scratch"; }
drop
runuser -u postgres -- createdb --owner="$role" "$scratch"
trap drop EXIT
bash -c "$restore" restore "$file" "$scratch" "$role"
tables=$(runuser -u postgres -- psql -XAt -d "$scratch" \
  -c "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
if [ "$tables" -lt 1 ]; then
  echo "restore check: $(basename "$file") restored no table" >&2
  exit 1
fi
echo "restore check: $(basename "$file") restored $tables tables"
