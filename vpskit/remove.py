"""``fab remove``: take one environment off its hosts, leaving every other site as it was.

Everything on a host is named by the site, so removal is exact: on every host its units,
release tree, env file, Nginx sites, certificate, system user and the firewall rules no other
site needs; then, on the db host, a last dump (kept, with every other backup, in the site's
backup directory), its database and role, its Redis database and its pg_hba block. Running it
again finds nothing and says so.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import PurePosixPath

from vpskit import backups, facts, files, fleet, pgadmin, render, session
from vpskit.config import Environment, Host
from vpskit.deploy.lock import deploy_lock
from vpskit.errors import ToolkitError
from vpskit.provision import cache, database, firewall
from vpskit.remote import Remote
from vpskit.steps import Reporter

# Prints one line per thing removed. The lock file stays: this run holds it.
# Arguments: site, certificate directory, how many Nginx paths follow, those, the other paths.
REMOVE_SITE = r"""
set -u
site="$1" cert_dir="$2" n="$3"; shift 3
nginx_paths=("${@:1:$n}"); other_paths=("${@:$((n + 1))}")
for unit in $(systemctl list-units --all --plain --no-legend "$site-*" | awk '{print $1}'); do
  systemctl disable --now --quiet "$unit" 2>/dev/null || systemctl stop "$unit"
  echo "unit $unit"
done
found=$(find /etc/systemd/system -name "$site-*")
if [ -n "$found" ]; then
  rm -rf $found; systemctl daemon-reload; systemctl reset-failed "$site-*" 2>/dev/null
  echo "unit files $site-*"
fi
if [ -d "$cert_dir" ] && command -v certbot >/dev/null; then
  certbot delete --non-interactive --cert-name "$site" >/dev/null 2>&1 && echo "certificate $site"
fi
nginx=0
for path in "${nginx_paths[@]}"; do
  [ -e "$path" ] && { rm -rf "$path"; echo "$path"; nginx=1; }
done
[ $nginx = 1 ] && nginx -t -q && systemctl reload nginx
for path in "${other_paths[@]}"; do
  [ -e "$path" ] && { rm -rf "$path"; echo "$path"; }
done
id "$site" >/dev/null 2>&1 && userdel "$site" && echo "user $site"
getent group "$site" >/dev/null && groupdel "$site" && echo "group $site"  # www-data kept it
true
"""

FLUSH_REDIS = r"""
site="$1" registry="$2" conf="$3"
[ -f "$registry/$site" ] || exit 0
n=$(cat "$registry/$site")
export REDISCLI_AUTH="$(sed -n 's/^requirepass //p' "$conf")"
redis-cli -n "$n" flushdb >/dev/null && rm -f "$registry/$site" && echo "redis database $n"
"""


def remove(env: Environment, yes: bool, out: Reporter,
           ask: Callable[[str], str] = input) -> list[str]:
    """``fab remove``: confirm, then remove the site from every host; return what went."""
    if not yes:
        if not sys.stdin.isatty():
            raise ToolkitError(f"remove deletes {env.site} from its hosts: confirm it on a "
                               f"terminal, or pass --yes (stdin is not a terminal)")
        answer = ask(f"Remove {env.site} (app, database, certificate) from "
                     f"{', '.join(h.address for h in env.hosts)}? Type {env.name} to go on: ")
        if answer.strip() != env.name:
            raise ToolkitError("remove cancelled; nothing changed")
    removed = fleet.each_or_raise(env.hosts, lambda h, o: _locked(env, h, _site_files, o),
                                  out, "remove")
    db = env.db_host
    if db is not None and (env.own_postgres or env.own_redis):
        removed[db.address] += _locked(env, db, _services, out)
    everything = [item for items in removed.values() for item in items]
    out.line(f"removed {env.site}: {len(everything)} item(s)" if everything
             else f"nothing of {env.site} left to remove")
    return everything


def _locked(env: Environment, host: Host,
            job: Callable[[Environment, Host, Remote], list[str]],
            out: Reporter) -> list[str]:
    with session.closing_remote(session.open_remote(env, host)) as remote, \
            deploy_lock(remote, env.site, "remove"):
        gone = job(env, host, remote)
    for item in gone:
        out.line(f"  removed {item}")
    return gone


def _site_files(env: Environment, host: Host, remote: Remote) -> list[str]:
    nginx = [render.site_path(env), render.lb_site_path(env),
             str(PurePosixPath(render.upstream_path(env)).parent)]
    other = [str(env.root), str(env.run_dir), render.backup_script(env),
             database.credentials_path(env)]
    cert_dir = str(PurePosixPath(render.cert_path(env)).parent)
    gone = remote.run(["bash", "-c", REMOVE_SITE, "remove", env.site, cert_dir, str(len(nginx)),
                       *nginx, *other], timeout=600).stdout.splitlines()
    return gone + firewall.forget(remote, env.site, host.port)


def _services(env: Environment, host: Host, remote: Remote) -> list[str]:
    """On the db host: a last dump, then the database, role, Redis database, pg_hba block."""
    gone = []
    if env.own_postgres:
        with pgadmin.admin_connection(remote) as conn:
            if pgadmin.database_exists(conn, env.db_name):
                gone.append(f"database dumped first to "
                            f"{backups.dump(remote, env, label='preremove')}")
            gone += pgadmin.drop_database_and_role(conn, env.db_name, env.db_user)
        gone += _pg_hba(env, remote)
    if env.own_redis:
        gone += remote.run(["bash", "-c", FLUSH_REDIS, "flush", env.site, cache.REGISTRY,
                            cache.VPSKIT_CONF]).stdout.splitlines()
    return gone


def _pg_hba(env: Environment, remote: Remote) -> list[str]:
    """The site's pg_hba block out, with a reload."""
    found = facts.gather(remote, database.cluster_probes())
    version, text = found["pg_version"], found["pg_hba"]
    kept = database.hba_with(text, env.site, env.db_name, env.db_user, [])
    if kept == text:
        return []
    path = database.hba_path(version)
    files.write(remote, files.FileSpec(path, kept, "postgres", "postgres", 0o640))
    remote.run(["systemctl", "reload", f"postgresql@{version}-main"])
    return [f"{path}: {env.site} block"]
