"""``fab remove``: take one environment off its hosts, leaving every other site as it was.

Everything on a host is named by the site, so removal is exact: on every host its units,
release tree, env file, Nginx sites, certificate, system user and the firewall rules no other
site needs; then, on the db host, a last dump (kept, with every other backup, in the site's
backup directory), its database and role, its pg_hba block and its Redis instance. A database
or role another site on the db host claims stops it before anything is removed. Running it
again finds nothing and says so.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

from vpskit import applier, facts, fleet, removal, session
from vpskit.applier import Context, Planner
from vpskit.config import Environment, Host
from vpskit.deploy.lock import deploy_lock
from vpskit.errors import ToolkitError
from vpskit.provision import database
from vpskit.steps import Reporter


def remove(env: Environment, yes: bool, out: Reporter, ask: Callable[[str], str] = input,
           dry_run: bool = False) -> list[str]:
    """``fab remove``: confirm, then remove the site from every host; return what went. A dry
    run asks nothing, takes no lock and only says what would go."""
    if not (yes or dry_run):
        if not sys.stdin.isatty():
            raise ToolkitError(f"remove deletes {env.site} from its hosts: confirm it on a "
                               f"terminal, or pass --yes (stdin is not a terminal)")
        answer = ask(f"Remove {env.site} (app, database, certificate) from "
                     f"{', '.join(h.address for h in env.hosts)}? Type {env.name} to go on: ")
        if answer.strip() != env.name:
            raise ToolkitError("remove cancelled; nothing changed")
    db = env.db_host
    if db is not None and env.own_postgres:
        with session.connected(env, db) as remote:
            found = facts.gather(remote, database.claim_probes())
        database.check_claims(env, db, found)
    removed = fleet.each_or_raise(
        env.hosts, lambda h, o: _locked(env, h, removal.site_probes(env), removal.site,
                                        removal.SiteFacts, o, dry_run), out, "remove")
    if db is not None and (env.own_postgres or env.own_redis):
        removed[db.address] += _locked(env, db, removal.service_probes(env), removal.services,
                                       removal.ServiceFacts, out, dry_run)
    everything = [item for items in removed.values() for item in items]
    verb = "would remove" if dry_run else "removed"
    out.line(f"{verb} {env.site}: {len(everything)} item(s)" if everything
             else f"nothing of {env.site} left to remove")
    return everything


def _locked(env: Environment, host: Host, probes: list[facts.Probe], planner: Planner,
            facts_type: type, out: Reporter, dry_run: bool) -> list[str]:
    """Gather ``probes`` on ``host``, then apply ``planner``'s plan there holding the site's
    lock (none in a dry run); what went (or would), a line each."""
    with session.connected(env, host) as remote, \
            contextlib.nullcontext() if dry_run else deploy_lock(remote, env.site, "remove"):
        ctx = Context(env, host, remote, Reporter(quiet=True), dry_run,
                      facts.gather(remote, probes))
        gone = applier.step(planner, facts_type)(ctx)
    for item in gone:
        out.line(f"  {'would remove' if dry_run else 'removed'} {item}")
    return gone
