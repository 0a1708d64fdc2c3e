"""Work the server finishes by itself: a migration, a restore. Each runs as a transient systemd
unit ``<site>-op-<what>-<token>`` (``sh/server-op.sh``), not as a child of the operator's SSH
session, so a killed operator or a lost link never cuts it short, and the site's lock holder
(``sh/hold-lock.sh``) keeps the lock until every such unit of the site has ended. A caller's
timeout stops the unit, as does systemd itself after ``RuntimeMaxSec``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vpskit import sh

if TYPE_CHECKING:
    from vpskit.remote import Remote, Result

SCRIPT = sh.script("server-op")
SCRIPTS_DIR = "/run/vpskit-ops"  # root-only: a script sent on stdin waits here for its unit


def unit_name(site: str, what: str) -> str:
    """``shop-production-op-release-1a2b3c4d``: a new name for each run."""
    return f"{site}-op-{what}-{secrets.token_hex(4)}"


def units_glob(site: str) -> str:
    """What the lock holder waits for: every server-side unit of ``site``."""
    return f"{site}-op-*.service"


def argv(unit: str, options: Sequence[str], command: Sequence[str], timeout: float
         ) -> list[str]:
    """The remote command running ``command`` as ``unit`` with systemd-run ``options``, stopped
    by systemd after ``timeout`` seconds (pure)."""
    return ["bash", "-c", SCRIPT, "server-op", unit, *options,
            f"--property=RuntimeMaxSec={timeout:.0f}", "--", *command]


def script_command(unit: str, args: Sequence[str]) -> list[str]:
    """The unit's command for a script sent on its stdin (:func:`script_argv`) (pure)."""
    return ["bash", f"{SCRIPTS_DIR}/{unit}.sh", *args]


def run(remote: Remote, unit_argv: Sequence[str], timeout: float, script: str = "") -> Result:
    """Run ``unit_argv`` (from :func:`argv`, with the same ``timeout``) and wait for its unit:
    the output and exit code are the unit's; a caller's timeout stops the unit too."""
    return remote.run(unit_argv, stdin=script, check=False, timeout=timeout)


def script_argv(site: str, what: str, args: Sequence[str], timeout: float) -> list[str]:
    """The remote command running a shell script sent on its stdin, with ``args``, as a new
    unit of ``site`` doing ``what`` (pure but for the unit's name)."""
    unit = unit_name(site, what)
    return argv(unit, [], script_command(unit, args), timeout)
