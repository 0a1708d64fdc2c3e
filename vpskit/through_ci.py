"""``fab deploy|rollback|restore --ci``: through the CI login of the environment's first host,
whose key is not root, that host's resident vpskit (:mod:`vpskit.resident`) ships or rolls back
the release on every host, or restores the database, with the inventory and secrets of the last
``fab provision``; this machine sends the commit as a git bundle, or names the release or the
backup, and shows what the server says."""

from __future__ import annotations

import dataclasses

from vpskit import ci_login, resident, session
from vpskit.config import Environment, Host
from vpskit.deploy.source import refuse_unsafe_files, resolve
from vpskit.errors import ToolkitError
from vpskit.steps import Reporter


def ci_host(env: Environment) -> Host:
    """The host of ``env`` where its resident vpskit lives; else the one-line error."""
    host = resident.orchestrator(env)
    if host is None:
        raise ToolkitError(f"--ci: environment '{env.name}' needs a ci_user on its first host "
                           f"({env.hosts[0].address}), whose resident vpskit deploys; set "
                           f"ci_user and ci_key there and run fab provision")
    return host


def deploy(env: Environment, ref: str | None, out: Reporter, batch: int = 1,
           maintenance: bool = False) -> None:
    """``batch`` web hosts switched at a time; ``maintenance``: 503 from the release commands
    until after the switch (as ``fab deploy`` takes them)."""
    host = ci_host(env)
    options = [*([f"--batch={batch}"] if batch != 1 else []),
               *(["--maintenance"] if maintenance else [])]
    source = resolve(env.app.repo, ref or env.app.ref)
    refuse_unsafe_files(source, env.backups.local_dir)
    _say_hooks(env, out)
    out.line(f"deploy {env.site} {source.short} ({source.ref}) on {host.address} as "
             f"{host.ci_user}")
    _run(env, host, ci_login.argv("deploy", env, source.sha, *options), out,
         stdin=source.bundle())


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
