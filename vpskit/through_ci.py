"""``fab deploy|rollback|restore --ci``: through the host's CI login, whose key is not root, the
host's resident vpskit (:mod:`vpskit.resident`) ships or rolls back the release, or restores
the database, with the inventory and secrets of the last ``fab provision``; this machine sends
the commit as a git bundle, or names the release or the backup, and shows what the server
says."""

from __future__ import annotations

import dataclasses

from vpskit import ci_login, resident, session
from vpskit.config import Environment, Host
from vpskit.deploy.source import refuse_unsafe_files, resolve
from vpskit.errors import ToolkitError
from vpskit.steps import Reporter


def ci_host(env: Environment) -> Host:
    """The one host of ``env``, where its resident vpskit lives; else the one-line error."""
    if not resident.serves(env, env.hosts[0]):
        raise ToolkitError(f"--ci: environment '{env.name}' needs to be one host with a ci_user "
                           f"(that host's resident vpskit deploys); it has {len(env.hosts)} "
                           f"host(s){' without ci_user' if len(env.hosts) == 1 else ''}")
    return env.hosts[0]


def deploy(env: Environment, ref: str | None, out: Reporter) -> None:
    host = ci_host(env)
    source = resolve(env.app.repo, ref or env.app.ref)
    refuse_unsafe_files(source, env.backups.local_dir)
    _say_hooks(env, out)
    out.line(f"deploy {env.site} {source.short} ({source.ref}) on {host.address} as "
             f"{host.ci_user}")
    _run(env, host, ci_login.argv("deploy", env, source.sha), out, stdin=source.bundle())


def rollback(env: Environment, to: str | None, out: Reporter) -> None:
    host = ci_host(env)
    _say_hooks(env, out)
    out.line(f"rollback {env.site} on {host.address} as {host.ci_user}")
    _run(env, host, ci_login.argv("rollback", env, *([to] if to else [])), out)


def restore(env: Environment, file: str, out: Reporter) -> None:
    """``file``: "latest" or a backup's name on the host (the server cannot ask: no prompt)."""
    host = ci_host(env)
    out.line(f"restore {env.site} on {host.address} from {file} as {host.ci_user}")
    _run(env, host, ci_login.argv("restore", env, file), out)


def _say_hooks(env: Environment, out: Reporter) -> None:
    named = [f.name for f in dataclasses.fields(env.hooks) if getattr(env.hooks, f.name)]
    if named:
        out.line(f"hooks not run through the CI login: {', '.join(named)} (run them as CI "
                 f"steps)")


def _run(env: Environment, host: Host, argv: list[str], out: Reporter,
         stdin: bytes | None = None) -> None:
    """``argv`` (no ``timeout``: sudo allows the helper alone); its lines shown as they come."""
    with session.connected(env, host.ci) as remote:
        remote.run(argv, stdin=stdin, on_stdout=out.line)
