#!/usr/bin/env bash
# The nightly proof that a dump restores: into a scratch database owned by the site's role,
# through the same restore script `fab restore` runs (as the app's user and role, never a
# superuser), then every table the dump holds must be there (none for a site never deployed);
# the scratch database goes either way.
# Arguments: the restore script's text, the dump, the scratch database, the site's role.
# Run as: bash -c "$SCRIPT" restore-check ARGS...
set -eo pipefail
restore="$1" file="$2" scratch="$3" role="$4"
name=$(basename "$file")
drop() { runuser -u postgres -- dropdb --if-exists "$scratch"; }
drop
runuser -u postgres -- createdb --owner="$role" "$scratch"
trap drop EXIT
held=$(pg_restore --list "$file" | awk '$4 == "TABLE" && $5 != "DATA" && $5 != "ATTACH"' | wc -l)
bash -c "$restore" restore "$file" "$scratch" "$role" ||
  { echo "restore check: $name did not restore" >&2; exit 1; }
tables=$(runuser -u postgres -- psql -XAt -d "$scratch" \
  -c "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
if [ "$tables" -lt "$held" ]; then
  echo "restore check: $name restored $tables of its $held tables" >&2
  exit 1
fi
echo "restore check: $name restored $tables tables (the dump holds $held)"
