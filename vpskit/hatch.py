"""The named escape hatch: the work a plan cannot say as commands and files, because it must
talk to the server (or another machine) mid-step. A plan names it (:class:`vpskit.plan.Hatch`)
with data arguments; :mod:`vpskit.applier` calls it here with the host's context, outside a
dry run. Each returns a :class:`~vpskit.plan.Plan` of what it changed (lines, facts, env
values), never actions.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from vpskit import files, plan
from vpskit.plan import Plan

if TYPE_CHECKING:
    from vpskit.applier import Context


def verify_login(ctx: Context) -> Plan:
    """The deploy user logs in with its key and gets sudo, before SSH is hardened."""
    from vpskit import session
    session.verify_login(ctx.env, ctx.host)
    return Plan()


def issue_certificate(ctx: Context, service: str, wanted: str, old_ca: str | None) -> Plan:
    """Issue ``service``'s certificate from the host's CA (made when missing); the CA's
    certificate the server printed becomes the fact ``host_ca``."""
    from vpskit.provision import hostca
    ca = ctx.remote.run(hostca.issue_argv(service, wanted)).stdout
    return plan.outputs(**hostca.issued_facts(service, wanted, ca, old_ca))


def postgres_role(ctx: Context, known: str | None) -> Plan:
    """The site's role and database, through psycopg over SSH: the ``known`` password kept
    while the role exists, else a new one; ``DATABASE_URL`` names it."""
    from vpskit import pgadmin  # psycopg loads only when a role or database must change
    from vpskit.provision import database
    env = ctx.env
    with pgadmin.admin_connection(ctx.remote) as conn:
        password = known if known and pgadmin.role_exists(conn, env.db_user) else None
        new_password = None if password else secrets.token_urlsafe(24)
        ctx.remote.add_secret(new_password or password or "")
        changes = [c for c in (pgadmin.ensure_role(conn, env.db_user, new_password),
                               pgadmin.ensure_database(conn, env.db_name, env.db_user)) if c]
    url = database.database_url(env.db_user, password or new_password or "", env.db_name)
    return Plan(changes=tuple(changes)) + plan.app_env({"DATABASE_URL": url})


def reach(ctx: Context, targets: tuple[tuple[str, int], ...], own: bool) -> Plan:
    """Every ``(address, port)`` answers a TCP connect from the host, else one line naming
    the first that did not."""
    from vpskit.provision import database
    result = ctx.remote.run(["bash", "-c", database.REACH, "reach",
                             *(str(x) for target in targets for x in target)], check=False)
    if not result.ok:
        raise database.unreached(ctx.env, ctx.host, result.stdout.strip(), own)
    return Plan()


def tls_preflight(ctx: Context, domains: tuple[str, ...]) -> Plan:
    """Serve a random token from the ACME webroot and fetch it through every domain from
    here; one line naming each domain that does not answer with it."""
    import urllib.request

    from vpskit.provision import tls
    token = tls.preflight_token()
    path = f"{tls.CHALLENGE_DIR}/{token}"
    ctx.remote.run(["install", "-d", "-m", "755", tls.CHALLENGE_DIR])  # nginx workers read it
    files.write(ctx.remote, files.FileSpec(path, token))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def fetch(url: str) -> str:
        with opener.open(url, timeout=10) as response:
            return response.read(200).decode(errors="replace")
    try:
        problems = [p for p in (tls.preflight_problem(d, token, fetch) for d in domains) if p]
    finally:
        ctx.remote.run(["rm", "-f", path], check=False)
    if problems:
        raise tls.unreached(ctx.host, problems)
    return Plan()


def offsite_key(ctx: Context) -> Plan:
    """The db host's own key for the SFTP target, made there; its public half a fact."""
    from vpskit import render
    env, key = ctx.env, render.offsite_key(ctx.env)
    ctx.remote.run(["install", "-d", "-m", "700", key.rsplit("/", 1)[0]])
    ctx.remote.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                    f"vpskit {env.site} off-site writer", "-f", key])
    return plan.outputs(offsite_public_key=ctx.remote.run(["cat", key + ".pub"]).stdout)


def offsite_authorize(ctx: Context, public: str) -> Plan:
    """The operator's login on the SFTP target authorizes the server's key there."""
    from vpskit import sftp_target
    return Plan(changes=tuple(sftp_target.authorize(ctx.env, public)))


def health(ctx: Context, mode: str, target: str, what: str, unit: str) -> Plan:
    """Poll the health path (:func:`vpskit.deploy.switch.health_argv`) until it answers; on
    failure one masked line, naming ``unit``'s last error when given (from its journal)."""
    from vpskit.deploy import applog, switch
    from vpskit.errors import HealthCheckError
    h = ctx.env.health
    result = ctx.remote.run(switch.health_argv(ctx.env, mode, target), check=False,
                            timeout=h.retries * (h.timeout + 2) + 30)
    if result.ok:
        return Plan()
    message = f"health check of {what} failed: {result.stdout.strip().removesuffix(':')}"
    if unit:
        journal = ctx.remote.run(applog.journal_argv(unit), check=False, timeout=30)
        error = applog.last_error_line(journal.stdout) if journal.ok else None
        message += f"; last error in {unit}: {error}" if error else ""
    raise HealthCheckError(ctx.remote.masked(" ".join(message.split())))


def release_command(ctx: Context, release_id: str, argv: tuple[str, ...]) -> Plan:
    """One release command as a server-side unit; a failure is one line with the output's
    tail, the whole output kept in the release's log (0600)."""
    from vpskit import render
    from vpskit.deploy import appcmd
    from vpskit.errors import RemoteError
    env, remote = ctx.env, ctx.remote
    result = appcmd.run_release_command(remote, env, release_id, argv)
    if not result.ok:
        output = result.stdout + result.stderr
        log = f"{render.release_dir(env, release_id)}/{appcmd.RELEASE_LOG}"
        files.write(remote, files.FileSpec(log, f"$ {' '.join(argv)}\n{output}", mode=0o600),
                    check=False)
        raise RemoteError(remote.error(argv, result).args[0]
                          + appcmd.lock_timeout_hint(env, output) + f" (full output: {log})")
    return Plan(changes=(" ".join(argv[:3]),))


def predeploy_dump(ctx: Context, release_id: str) -> Plan:
    """A dump on the db host (this one, or a separate one over a login of its own) before the
    release commands; then the automatic dumps beyond ``backups.keep_predeploy`` go."""
    import contextlib

    from vpskit import backups, session
    env, db = ctx.env, ctx.env.db_host
    with contextlib.ExitStack() as stack:
        remote = ctx.remote if db == ctx.host else stack.enter_context(
            session.connected(env, db))
        where = "" if db == ctx.host else f"{db.address}: "
        made = backups.dump(remote, env, label=f"predeploy-{release_id}")
        pruned = backups.prune_automatic(remote, env)
    return Plan(changes=(f"{where}{made}", *([f"pruned {len(pruned)} older pre-deploy dump(s)"]
                                             if pruned else [])))


def fetch_backups(ctx: Context, local: str, via: tuple[str, ...]) -> Plan:
    """The backups just made (the :class:`Artifact` facts) copied to ``local`` by ``via``
    (the command that prints a file, given its path), verified."""
    from pathlib import Path

    from vpskit import backups
    from vpskit.backup_script import Artifact
    made = [fact for fact in ctx.facts.values() if isinstance(fact, Artifact)]
    return Plan(changes=(backups.fetch_all(ctx.remote, made, Path(local), via),))


def prune_copies(ctx: Context, local: str) -> Plan:
    """The copies in ``local`` and off-site pruned by age."""
    from pathlib import Path

    from vpskit import backups
    return Plan(changes=tuple(backups.prune_copies(ctx.env, Path(local))))


def restart_app(ctx: Context) -> Plan:
    """The live release restarted as a new one (new env file or units), once any deploy
    running has finished."""
    from vpskit.deploy.lock import deploy_lock
    from vpskit.deploy.run import restart_host
    from vpskit.steps import Reporter
    with deploy_lock(ctx.remote, ctx.env.site, "provision", queue=600):
        made = restart_host(ctx.env, ctx.host, ctx.remote, "provision: env or units",
                            Reporter(quiet=True))
    return Plan(changes=(f"restarted as {made.id}",) if made else ())


def drop_database(ctx: Context) -> Plan:
    """For ``fab remove``: a last dump of the site's database, then the database (its
    connections closed) and its role dropped."""
    from vpskit import backups, pgadmin
    env, gone = ctx.env, []
    with pgadmin.admin_connection(ctx.remote) as conn:
        if pgadmin.database_exists(conn, env.db_name):
            gone.append(f"database dumped first to "
                        f"{backups.dump(ctx.remote, env, label='preremove')}")
        gone += pgadmin.drop_database_and_role(conn, env.db_name, env.db_user)
    return Plan(changes=tuple(gone))


HATCHES: dict[str, Callable[..., Plan]] = {
    f.__name__: f for f in (verify_login, issue_certificate, postgres_role, reach,
                            tls_preflight, offsite_key, offsite_authorize, health,
                            release_command, predeploy_dump, fetch_backups, prune_copies,
                            restart_app, drop_database)}
