"""Deploy hooks: the inventory's ``hooks:`` commands, run on the operator's machine.

``pre_deploy`` runs before any connection and stops the deploy when it fails; ``post_deploy``,
``failed_deploy`` and ``post_rollback`` only warn when they fail (a good deploy stays good).
Each runs as ``sh -c COMMAND`` in the inventory's directory, stdin ``/dev/null``, for at most
:data:`TIMEOUT` seconds, with the operator's own environment plus the ``VPSKIT_*`` variables of
:func:`variables`. The app's secrets are never added to it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from vpskit.config import Environment, Host
from vpskit.errors import ToolkitError
from vpskit.secret import mask
from vpskit.steps import Reporter

TIMEOUT = 300  # seconds a hook may run
LINE_MAX = 200  # characters of a failed hook's last output line kept in its message
TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def variables(env: Environment, hosts: Sequence[Host], release: str, sha: str, ref: str
              ) -> dict[str, str]:
    """What a hook learns about the deploy, added to the operator's environment (pure).

    Example: ``{"VPSKIT_ENV": "production", "VPSKIT_RELEASE": "20261127T101500Z-1a2b3c4",
    "VPSKIT_SHA": "1a2b3c4…", "VPSKIT_REF": "main", "VPSKIT_URL": "https://shop.example.com/",
    "VPSKIT_HOSTS": "203.0.113.20,203.0.113.21"}``. Holds no secret.
    """
    scheme = "https" if env.tls.enabled else "http"
    return {"VPSKIT_ENV": env.name, "VPSKIT_RELEASE": release, "VPSKIT_SHA": sha,
            "VPSKIT_REF": ref, "VPSKIT_URL": f"{scheme}://{env.primary_domain}/",
            "VPSKIT_HOSTS": ",".join(h.address for h in hosts)}


def failed(about: Mapping[str, str], error: BaseException) -> dict[str, str]:
    """``about`` (see :func:`variables`) plus ``VPSKIT_ERROR``: ``error`` as the one line the
    operator sees (pure)."""
    if isinstance(error, ToolkitError):
        text = str(error)
    elif isinstance(error, KeyboardInterrupt):
        text = f"interrupted ({str(error) or 'SIGINT'})"
    else:
        text = f"{type(error).__name__}: {error}"
    return {**about, "VPSKIT_ERROR": " ".join(line.strip() for line in text.splitlines())}


def run_hook(name: str, command: str, extra: Mapping[str, str], cwd: str | Path,
             timeout: float = TIMEOUT, hide: Sequence[str] = ()) -> None:
    """Run one hook: ``sh -c command`` in ``cwd`` with stdin ``/dev/null`` and the operator's
    environment plus ``extra``; its output is captured, not shown.

    Raises a one-line :class:`ToolkitError` naming the hook, its exit code (or the timeout) and
    its last output line, ``hide`` values masked, when it fails. The hook runs in a session of
    its own, killed whole on a timeout or Ctrl-C (which then propagates).
    """
    with subprocess.Popen(["sh", "-c", command], cwd=cwd, env={**os.environ, **extra},
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, start_new_session=True) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
            code = proc.returncode
            why = f"exit {code}" if code > 0 else f"killed by signal {-code}" if code else ""
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            output, _ = proc.communicate()
            why = f"timed out after {timeout:g}s"
        except BaseException:
            _kill_group(proc.pid)
            raise
    if why:
        raise ToolkitError(f"{name} hook failed ({why}): {last_line(output, hide)}")


def last_line(output: bytes, hide: Sequence[str] = ()) -> str:
    """The last non-blank line of ``output`` (after a ``\\r`` too), its colours and control
    characters dropped, ``hide`` values masked, at most :data:`LINE_MAX` characters (pure)."""
    text = TERMINAL_CODES.sub("", output.decode(errors="replace"))
    lines = [" ".join(s.split()) for s in re.split(r"[\r\n]", text)]
    last = next((s for s in reversed(lines) if s), "(no output)")
    return mask(last, list(hide))[:LINE_MAX]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # every process of it already gone
        os.killpg(pgid, signal.SIGKILL)


def run(env: Environment, name: str, extra: Mapping[str, str], out: Reporter) -> None:
    """Run the inventory's hook ``name`` (nothing when it has none) in the inventory's
    directory, the app's secrets masked in its error; say how long it took."""
    command = getattr(env.hooks, name)
    if not command:
        return
    start = time.monotonic()
    run_hook(name, command, extra, env.inventory_dir or ".",
             hide=[s.reveal() for s in env.secrets.values()])
    out.line(f"{name} hook ok in {time.monotonic() - start:.1f}s")


def warn(env: Environment, name: str, extra: Mapping[str, str], out: Reporter) -> None:
    """:func:`run`, a failure or interrupt being one ``warning:`` line on stderr, not an error."""
    try:
        run(env, name, extra, out)
    except ToolkitError as exc:
        print(f"warning: {exc}", file=sys.stderr, flush=True)
    except KeyboardInterrupt as exc:
        print(f"warning: {name} hook interrupted ({str(exc) or 'SIGINT'})", file=sys.stderr,
              flush=True)
