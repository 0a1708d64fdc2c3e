"""``fab remove``: take one environment off its hosts, leaving every other site as it was.

Everything on a host is named by the site, so removal is exact: on every host its units,
release tree, env file, Nginx sites, certificate, system user and the firewall rules no other
site needs; then, on the db host, a last dump (kept, with every other backup, in the site's
backup directory), its database and role, its pg_hba block and its Redis instance. A database
or role another site on the db host claims stops it before anything is removed. Running it
again finds nothing and says so.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import PurePosixPath

from vpskit import applier, backups, facts, files, fleet, pgadmin, render, session, sh
from vpskit.applier import Context
from vpskit.config import Environment, Host
from vpskit.deploy.lock import deploy_lock
from vpskit.errors import ToolkitError
from vpskit.provision import cache, database, firewall
from vpskit.remote import Remote
from vpskit.steps import Reporter

REMOVE_SITE = sh.script("remove-site")

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
    db, claimed = env.db_host, False
    if db is not None and env.own_postgres:
        with session.connected(env, db) as remote:
            found = facts.gather(remote, database.claim_probes())
        database.check_claims(env, db, found)
        claimed = env.site in found["pg_claims"]
    removed = fleet.each_or_raise(env.hosts, lambda h, o: _locked(env, h, _site_files, o),
                                  out, "remove")
    if db is not None and (env.own_postgres or env.own_redis):
        removed[db.address] += _locked(env, db, lambda e, h, r: _services(e, r, claimed), out)
    everything = [item for items in removed.values() for item in items]
    out.line(f"removed {env.site}: {len(everything)} item(s)" if everything
             else f"nothing of {env.site} left to remove")
    return everything


def _locked(env: Environment, host: Host,
            job: Callable[[Environment, Host, Remote], list[str]],
            out: Reporter) -> list[str]:
    with session.connected(env, host) as remote, \
            deploy_lock(remote, env.site, "remove"):
        gone = job(env, host, remote)
    for item in gone:
        out.line(f"  removed {item}")
    return gone


def _site_files(env: Environment, host: Host, remote: Remote) -> list[str]:
    nginx = [render.site_path(env), render.lb_site_path(env),
             str(PurePosixPath(render.upstream_path(env)).parent)]
    other = [str(env.root), str(env.run_dir), render.backup_script(env),
             database.credentials_path(env), render.maintenance_page_path(env)]
    cert_dir = str(PurePosixPath(render.cert_path(env)).parent)
    gone = remote.run(["bash", "-c", REMOVE_SITE, "remove", env.site, cert_dir, str(len(nginx)),
                       *nginx, *other], timeout=600).stdout.splitlines()
    rules = firewall.forget(env.site, facts.gather(remote, firewall.state_probes()), host.port)
    return gone + applier.apply(Context(env, host, remote, Reporter(quiet=True)), rules)


def _services(env: Environment, remote: Remote, claimed: bool) -> list[str]:
    """On the db host: a last dump, then the database, role, pg_hba block, the site's claim on
    them (when ``claimed``), Redis instance."""
    gone = []
    if env.own_postgres:
        with pgadmin.admin_connection(remote) as conn:
            if pgadmin.database_exists(conn, env.db_name):
                gone.append(f"database dumped first to "
                            f"{backups.dump(remote, env, label='preremove')}")
            gone += pgadmin.drop_database_and_role(conn, env.db_name, env.db_user)
        gone += _pg_hba(env, remote)
        if claimed:
            remote.run(["rm", "-f", database.claim_path(env.site)])
            gone.append(database.claim_path(env.site))
    if env.own_redis:
        gone += _redis(remote, env.site)
    return gone


def _redis(remote: Remote, site: str) -> list[str]:
    """The site's Redis instance stopped, its config, data and port gone; its database on the
    shared instance of earlier versions flushed. What went, a line each."""
    gone = remote.run(["bash", "-c", cache.REMOVE_INSTANCE, "redis-remove", cache.unit(site),
                       cache.conf_path(site), cache.data_file(site),
                       cache.registry_path(site)]).stdout.splitlines()
    return gone + remote.run(["bash", "-c", cache.LEAVE_SHARED, "redis-leave-shared",
                              *cache.leave_args(site)]).stdout.splitlines()


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
