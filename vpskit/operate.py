"""Day-to-day operator tasks: logs, releases, management commands, app variables.

Each runs on every app host at once, lines prefixed by host when there are several."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from vpskit import ci_login, envfile, files, fleet, interrupts, render, session
from vpskit.config import Environment, Host
from vpskit.deploy import appcmd, releases
from vpskit.deploy.lock import deploy_lock
from vpskit.deploy.run import restart_host
from vpskit.errors import ToolkitError
from vpskit.provision.app import base_env
from vpskit.remote import Remote
from vpskit.secret import MASK
from vpskit.steps import Reporter


def _on_app_hosts(env: Environment, job: Callable[[Host, Remote, Reporter], None],
                  out: Reporter, what: str, ci: bool = False) -> None:
    """``job(host, remote, reporter)`` on every web/worker host at once; with ``ci``, logged
    in as the host's CI login where it has one."""
    def one(host: Host, host_out: Reporter) -> None:
        with session.connected(env, host.ci if ci and host.ci_user else host) as remote:
            job(host, remote, host_out)
    fleet.each_or_raise(env.app_hosts, one, out, what)


def list_releases(env: Environment, out: Reporter) -> None:
    _on_app_hosts(env, lambda host, remote, o: _releases(env, host, remote, o), out, "releases")


def _releases(env: Environment, host: Host, remote: Remote, out: Reporter) -> None:
    rel = releases.load(remote, env)
    out.line(f"{env.site} on {host.address}")
    for r in reversed(rel.items):
        mark = "*" if r.id == rel.current else " "
        note = f"  ({r.note})" if r.note else ""
        out.line(f" {mark} {r.id}  sha {r.sha[:12]:<12}  {r.state:<8} {r.at}  {r.by}{note}")


def logs(env: Environment, follow: bool, lines: int, out: Reporter) -> None:
    """The app's journal (every release's web unit, the processes and the scheduled jobs),
    optionally followed."""
    def show(host: Host, remote: Remote, host_out: Reporter) -> None:
        argv = (ci_login.argv("logs", env, str(lines), *(["--follow"] if follow else []))
                if host.ci_user else
                ["journalctl", "--no-pager", "-o", "short-iso", "-n", str(lines),
                 *(word for unit in render.log_units(env) for word in ("-u", unit)),
                 *(["-f"] if follow else [])])
        remote.run(argv, on_stdout=host_out.line, timeout=None)
    _on_app_hosts(env, show, out, "logs", ci=True)


def manage(env: Environment, args: Sequence[str]) -> int:
    """A command in the live release with its env, e.g. ``python manage.py createsuperuser``."""
    if not args:
        raise ToolkitError("nothing to run; e.g. fab manage --env production -- createsuperuser")
    argv = list(args)
    if env.app.kind in ("django", "asgi") and argv[0] not in ("python", "flask", "celery"):
        argv = ["python", "manage.py", *argv]
    host = env.hosts_with("web")[0]
    with session.connected(env, host) as remote:
        live = releases.load(remote, env).current
        if not live:
            raise ToolkitError(f"nothing deployed on {host.address}; run fab deploy first")
        tty = sys.stdin.isatty()
        line = remote.command(appcmd.systemd_run_argv(env, live, argv, pty=tty))
        if tty:
            return remote.conn.run(line, pty=True, warn=True).exited
        result = remote.run(appcmd.systemd_run_argv(env, live, argv), check=False, timeout=None,
                            on_stdout=print)
        sys.stderr.write(result.stderr)
        return result.exited


def env_vars(env: Environment, settings: Sequence[str], unset: Sequence[str], out: Reporter
             ) -> None:
    """List the app's variables (values hidden), or set/unset some on every app host and
    restart the app there gracefully (:func:`vpskit.deploy.run.restart_host`); when it does not
    come up with them, the old values are put back."""
    wanted: dict[str, str] = {}
    for item in settings:  # stdin is read once, here, not once per host
        key, sep, value = item.partition("=")
        if not sep or not envfile.KEY_RE.match(key):
            raise ToolkitError(f"'{item.split('=')[0]}': expected KEY=VALUE (KEY=- reads "
                               f"the value from stdin)")
        wanted[key] = sys.stdin.readline().rstrip("\n") if value == "-" else value
    _on_app_hosts(env, lambda host, remote, o: _set_vars(env, host, remote, wanted, unset, o),
                  out, "env")


def _set_vars(env: Environment, host: Host, remote: Remote, settings: dict[str, str],
              unset: Sequence[str], out: Reporter) -> None:
    if not settings and not unset:
        out.line(f"{env.site} on {host.address}: {env.env_file}")
        for key in sorted(_read_env(remote, env)):
            out.line(f"  {key}={MASK}")
        return
    _hide(remote, env, settings)
    with deploy_lock(remote, env.site, "env"):
        current = _read_env(remote, env)
        wanted = {k: v for k, v in {**current, **settings}.items() if k not in unset}
        if wanted == current:
            out.line(f"{host.address}: unchanged")
            return
        changed = sorted(set(wanted) ^ set(current) | {k for k in wanted
                                                       if current.get(k) != wanted[k]})
        _write_env(remote, env, wanted)
        try:
            made = restart_host(env, host, remote, f"env: {', '.join(changed)}", out)
        except BaseException as exc:  # the app did not come up with it: the old values back
            with interrupts.shielded():
                _write_env(remote, env, current)
            raise interrupts.failure(exc, f"{env.env_file} is as it was") from exc
    done = f"app restarted as {made.id}" if made else "nothing deployed yet"
    out.line(f"{host.address}: changed {', '.join(changed)}; {done}")


def _write_env(remote: Remote, env: Environment, values: dict[str, str]) -> None:
    files.write(remote, files.FileSpec(str(env.env_file), envfile.render(values),
                                       env.app_user, env.app_user, 0o600))


def _read_env(remote: Remote, env: Environment) -> dict[str, str]:
    text = remote.run(["cat", str(env.env_file)], check=False)
    if not text.ok:
        raise ToolkitError(f"{remote.host}: no {env.env_file}; run fab provision --env "
                           f"{env.name}")
    values = envfile.parse(text.stdout, str(env.env_file))
    _hide(remote, env, values)
    return values


def _hide(remote: Remote, env: Environment, values: dict[str, str]) -> None:
    """Mask the values in error messages, but those vpskit sets itself (domains, paths, the
    environment's name) and those too short to be a secret (masking ``on`` garbles every
    message it appears in)."""
    public = base_env(env)
    for key, value in values.items():
        if len(value) >= 4 and public.get(key) != value:
            remote.add_secret(value)
