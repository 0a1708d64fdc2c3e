#!/usr/bin/env bash
# One transaction: drop everything the app role owns (tables made after the backup included),
# then the dump. pg_restore's COMMIT comes last in its output, so a dump that breaks off leaves
# the transaction open and psql's exit rolls it back: the database is then as it was.
# psql runs as the app's system user and logs in as the site's role (its password from the db
# host's credentials file, in psql's environment only): a crafted dump can do no more than the
# app can, in SQL (no superuser) or in psql's own commands (\! runs as the app user).
# Run as: bash -c "$SCRIPT" restore ARGS...
set -eo pipefail
file="$1" db="$2" role="$3"
site=$(basename "$(dirname "$file")")  # the dump is in the site's /var/backups/<site>/
creds="/etc/vpskit/credentials/$site.env"
mapfile -t url < <(python3 -c '
import sys, urllib.parse as p
url = [l.split("=", 1)[1].strip().strip("\"") for l in open(sys.argv[1])
       if l.startswith("DATABASE_URL=")][0]
u = p.urlsplit(url)
print(u.hostname, u.port or 5432, p.unquote(u.password or ""), sep="\n")' "$creds" 2>/dev/null)
[ "${#url[@]}" = 3 ] || { echo "no DATABASE_URL in $creds; run fab provision" >&2; exit 1; }
{ printf 'SET client_min_messages = error;\nBEGIN;\nDROP OWNED BY :"role";\n'
  pg_restore --single-transaction --clean --if-exists --no-owner --no-privileges \
    --role="$role" --file=- "$file"
} | PGPASSWORD="${url[2]}" PGSSLMODE=disable \
    setpriv --reuid="$site" --regid="$site" --init-groups --no-new-privs -- \
    psql -X -q -w -v ON_ERROR_STOP=1 -v role="$role" -h "${url[0]}" -p "${url[1]}" -U "$role" \
      --dbname="$db" -f -
