"""The scripts run on the server: files beside this module, shipped in the wheel. Shell
scripts (checked by shellcheck in ``inv lint``) run as ``bash -c SCRIPT NAME ARGS...`` and
Python programs as ``python3 -c PROGRAM ARGS...``: every value arrives as an argument, never
as code."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def script(name: str) -> str:
    """The text of ``<name>.sh``."""
    return files(__package__).joinpath(f"{name}.sh").read_text()


@cache
def program(name: str) -> str:
    """The text of the standard-library-only Python module ``<name>.py``."""
    return files(__package__).joinpath(f"{name}.py").read_text()
