"""Run a command of a release the way its service runs: app user, env file, release directory.

``systemd-run`` starts it as a transient unit (a release command: one the server finishes by
itself, :mod:`vpskit.serverop`) with the same ``EnvironmentFile=``, so secrets
reach the command without ever being in an argument list, and migrations see exactly the
settings the web process will; and in the same sandbox (:data:`vpskit.render.SANDBOX`), able to
write only ``shared/static`` (collectstatic) and ``shared/media``.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Sequence

from vpskit import plan, render, serverop
from vpskit.config import App, Environment
from vpskit.plan import Plan
from vpskit.remote import Remote, Result

DEFAULT_RELEASE_COMMANDS = {
    "django": ("python manage.py migrate --noinput", "python manage.py collectstatic --noinput"),
    "flask": (),
    "asgi": (),
}


def release_commands(app: App) -> list[list[str]]:
    """What runs before the switch: the inventory's list, else the kind's default (pure)."""
    lines = app.release_commands or DEFAULT_RELEASE_COMMANDS[app.kind]
    if app.kind == "asgi" and not app.release_commands and app.django_settings:
        lines = DEFAULT_RELEASE_COMMANDS["django"]
    return [shlex.split(line) for line in lines]


def unit_options(env: Environment, release_id: str, setenv: Sequence[str] = ()) -> list[str]:
    """The ``systemd-run`` options that run a command of release ``release_id`` as its service
    runs: app user, env file, release directory, sandbox; ``setenv`` adds ``NAME=value``
    settings (never secrets: they are in the argument list) (pure)."""
    release = render.release_dir(env, release_id)
    sandbox = [f"--property={key}={value}"
               for key, value in render.sandbox(env, "static", "media")]
    return [f"--property=User={env.app_user}", f"--property=Group={env.app_user}",
            f"--property=EnvironmentFile={env.env_file}",
            f"--property=WorkingDirectory={release}", *sandbox,
            f"--setenv=RELEASE={release_id}", f"--setenv=PATH={release}/.venv/bin:/usr/bin:/bin",
            *(f"--setenv={setting}" for setting in setenv)]


def release_program(env: Environment, release_id: str, argv: Sequence[str]) -> list[str]:
    """``argv`` with a leading ``python`` (or any program found in the venv) taken from the
    release's venv (pure)."""
    venv = f"{render.release_dir(env, release_id)}/.venv/bin"
    return [argv[0] if "/" in argv[0] else f"{venv}/{argv[0]}", *argv[1:]]


def systemd_run_argv(env: Environment, release_id: str, argv: Sequence[str],
                     pty: bool = False) -> list[str]:
    """The ``systemd-run`` line for ``fab manage``: ``argv`` in release ``release_id``, on the
    operator's terminal (``pty``) or pipes, ended with its SSH session (pure)."""
    return ["systemd-run", "--quiet", "--wait", "--collect", "--pty" if pty else "--pipe",
            "--service-type=exec", f"--unit={env.site}-run-{secrets.token_hex(4)}",
            *unit_options(env, release_id), "--", *release_program(env, release_id, argv)]


def release_command_argv(env: Environment, release_id: str, argv: Sequence[str],
                         timeout: float) -> list[str]:
    """A release command as a server-side unit (:mod:`vpskit.serverop`) with the Postgres lock
    timeout: a migration goes on to its end if the operator goes (pure but for the name)."""
    return serverop.argv(serverop.unit_name(env.site, "release"),
                         unit_options(env, release_id, lock_timeout_env(env)),
                         release_program(env, release_id, argv), timeout)


def lock_timeout_env(env: Environment) -> list[str]:
    """``PGOPTIONS`` giving a release command's Postgres sessions ``postgres.lock_timeout``, so
    a migration that queues for a lock behind a long transaction fails after that many seconds
    instead of stalling every app query queued behind it (libpq clients: psycopg, psql)."""
    seconds = env.postgres.lock_timeout
    return [f"PGOPTIONS=-c lock_timeout={seconds}s"] if seconds else []


def lock_timeout_hint(env: Environment, output: str) -> str:
    """A fix for a release command that hit ``postgres.lock_timeout``, or ''."""
    if "lock timeout" not in output:
        return ""
    return (f"; it waited over {env.postgres.lock_timeout} s for a table lock held by another "
            "transaction (a long query or a worker): the old release still serves; deploy again "
            "when it is done, or raise postgres.lock_timeout")


RELEASE_LOG = ".vpskit-release.log"


def release_plan(env: Environment, release_id: str) -> Plan:
    """The release commands (:func:`release_commands`) of release ``release_id``, in order,
    each as a server-side unit through the hatch ``release_command``."""
    result = Plan()
    for argv in release_commands(env.app):
        result += plan.hatch("release_command", release_id, tuple(argv),
                             would=" ".join(argv[:3]))
    return result


def run_release_command(remote: Remote, env: Environment, release_id: str, argv: Sequence[str],
                        timeout: float = 1800) -> Result:
    """One release command in release ``release_id`` (:func:`release_command_argv`)."""
    return serverop.run(remote, release_command_argv(env, release_id, argv, timeout), timeout)
