"""Shared plumbing of the tasks: inventory lookup, flag checks and error-to-exit conversion."""

from __future__ import annotations

import functools
import os
import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from invoke import Executor as InvokeExecutor
from invoke import Exit

from vpskit import interrupts
from vpskit.errors import ToolkitError

if TYPE_CHECKING:
    from vpskit.config import Environment

DEFAULT_INVENTORY = "inventory.yml"


def inventory_path(given: str | None = None) -> str:
    """``--inventory``, else ``$VPSKIT_INVENTORY``, else ``inventory.yml``."""
    return given or os.environ.get("VPSKIT_INVENTORY", DEFAULT_INVENTORY)


def load_env(env: str | None, given_path: str | None = None, every_secret: bool = True
             ) -> Environment:
    """The validated environment; ``--env`` is required (``every_secret``: see
    :func:`vpskit.inventory.load`)."""
    from vpskit import inventory  # here, so ``--help`` never loads YAML
    path = inventory_path(given_path)
    if not env:
        names = ", ".join(inventory.environment_names(path))
        raise ToolkitError(f"which environment? pass --env (one of: {names})")
    return inventory.load(path, env, every_secret=every_secret)


def exits(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run the task with SIGTERM and SIGHUP acting as Ctrl-C (see :mod:`vpskit.interrupts`);
    turn a :class:`ToolkitError` into ``invoke.Exit`` (its one line on stderr, exit 1) and an
    interrupt nothing recovered from into exit 130."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with interrupts.as_interrupts():
                return func(*args, **kwargs)
        except ToolkitError as exc:
            raise Exit(f"error: {exc}", code=1) from None
        except KeyboardInterrupt as exc:
            raise Exit(f"error: interrupted ({str(exc) or 'SIGINT'})", code=130) from None
    return wrapper


def positive_int(flag: str, value: Any) -> int:
    """A flag's value as an integer of at least 1, or a one-line error naming the flag."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ToolkitError(f"{flag} {value!r}: expected a whole number of at least 1")
    return number


class Executor(InvokeExecutor):
    """Hand ``TASK -- WORDS`` to the task (see :func:`remainder`); under ``fab`` this also keeps
    Fabric from running WORDS as a shell command on ``-H`` hosts. The tasks open their own
    connections, so Invoke's executor is all they need."""

    def expand_calls(self, calls):
        if calls and self.core.remainder:
            # The words as the shell gave them: Invoke's remainder is one re-joined string.
            words = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else \
                shlex.split(self.core.remainder)
            self.config.load_overrides({"vpskit_remainder": words})
            self.core.remainder = ""
        return super().expand_calls(calls)


def remainder(c: Any) -> list[str]:
    """The words after ``--`` on the fab command line."""
    return list(c.config.get("vpskit_remainder", []))
