"""``fab provision``: a fresh Debian/Ubuntu VPS becomes an app server, idempotently.

Facts are gathered in two round trips (before and after packages are installed); each step
then compares and acts only where the server differs, so a second run changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vpskit import envfile, session
from vpskit.config import Environment, Host
from vpskit.facts import gather
from vpskit.provision import access, app, backup_timer, cache, database, firewall, system, tls, web
from vpskit.provision.context import Context
from vpskit.remote import Remote
from vpskit.secret import looks_secret
from vpskit.steps import Outcome, Reporter, run_steps


def provision(env: Environment, host: Host, remote: Remote, out: Reporter, *,
              public_key: str | None, verify_login: Callable[[], None],
              dry_run: bool = False) -> list[Outcome]:
    """Run every provision step on one host; raises the first step's error."""
    ctx = Context(env=env, host=host, remote=remote, out=out, dry_run=dry_run)
    ctx.facts = gather(remote, system.probes(ctx))
    outcomes = run_steps(ctx, [
        ("preflight", system.preflight),
        ("packages", system.packages),
        ("timezone", system.timezone),
        ("swap", system.swap),
    ], out, dry_run)
    probes = [*access.probes(ctx), *firewall.probes(ctx), *database.probes(ctx),
              *cache.probes(ctx), *app.probes(ctx), *web.probes(ctx), *tls.probes(ctx),
              *backup_timer.probes(ctx)]
    ctx.facts.update(gather(remote, probes))
    ctx.app_env = envfile.parse(ctx.facts["env_file"] or "", str(env.env_file))
    for key, value in ctx.app_env.items():
        if looks_secret(key):
            remote.add_secret(value)
    outcomes += run_steps(ctx, [
        ("users", lambda c: access.users(c, public_key)),
        ("ssh", lambda c: access.harden_ssh(c, verify_login)),
        ("firewall", firewall.firewall),
        ("postgres", database.postgres),
        ("redis", cache.redis),
        ("directories", app.site_dirs),
        ("app", app.app_service),
        ("backups", backup_timer.backup_timer),
        ("nginx", web.nginx),
        ("tls", tls.tls),
    ], out, dry_run)
    return outcomes


def provision_environment(env: Environment, out: Reporter, dry_run: bool = False) -> int:
    """Provision every host of ``env``; print a summary; return the number of changed steps."""
    changed = 0
    for host in env.hosts:
        start = time.monotonic()
        remote = session.open_for_provision(env, host)
        try:
            out.line(f"provision {env.site} on {host.address} as {remote.conn.user}"
                     f"{' (dry run: nothing is changed)' if dry_run else ''}")
            outcomes = provision(env, host, remote, out, public_key=session.public_key(host),
                                 verify_login=lambda h=host: session.verify_login(env, h),
                                 dry_run=dry_run)
        finally:
            remote.conn.close()
        n = sum(o.changed for o in outcomes)
        changed += n
        verb = "would change" if dry_run else "changed"
        out.line(f"{host.address}: {n} {verb}, {len(outcomes) - n} unchanged in "
                 f"{time.monotonic() - start:.1f}s ({remote.round_trips} round trips)")
    return changed
