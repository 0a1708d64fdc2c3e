"""Run a command of a release the way its service runs: app user, env file, release directory.

``systemd-run`` starts it as a transient unit with the same ``EnvironmentFile=``, so secrets
reach the command without ever being in an argument list, and migrations see exactly the
settings the web process will; and in the same sandbox (:data:`vpskit.render.SANDBOX`), able to
write only ``shared/static`` (collectstatic) and ``shared/media``.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Callable, Sequence

from vpskit import render
from vpskit.config import App, Environment
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


def systemd_run_argv(env: Environment, release_id: str, argv: Sequence[str],
                     pty: bool = False) -> list[str]:
    """The ``systemd-run`` line for ``argv`` in release ``release_id`` (pure).

    A leading ``python`` (or any program found in the venv) runs from the release's venv.
    """
    release = f"{env.releases_dir}/{release_id}"
    program = argv[0] if "/" in argv[0] else f"{release}/.venv/bin/{argv[0]}"
    sandbox = [f"--property={key}={value}"
               for key, value in render.sandbox(env, "static", "media")]
    return ["systemd-run", "--quiet", "--wait", "--collect", "--pty" if pty else "--pipe",
            "--service-type=exec", f"--unit={env.site}-run-{secrets.token_hex(4)}",
            f"--property=User={env.app_user}", f"--property=Group={env.app_user}",
            f"--property=EnvironmentFile={env.env_file}",
            f"--property=WorkingDirectory={release}", *sandbox,
            f"--setenv=RELEASE={release_id}", f"--setenv=PATH={release}/.venv/bin:/usr/bin:/bin",
            "--", program, *argv[1:]]


def run_in_release(remote: Remote, env: Environment, release_id: str, argv: Sequence[str],
                   check: bool = True, timeout: float | None = 1800,
                   on_stdout: Callable[[str], None] | None = None) -> Result:
    return remote.run(systemd_run_argv(env, release_id, argv), check=check, timeout=timeout,
                      on_stdout=on_stdout)
