"""``inv test`` and ``inv lint``: the suite and the linters, as CI runs them."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from invoke import task


@task(help={"fast": "skip the tests that need the real test VPS", "k": "pytest -k expression"})
def test(c, fast=False, k=None):
    """Run the test suite (unit, rendered configs, integration on a real test VPS)."""
    args = [*(["-m", "not vps"] if fast else []), *(["-k", k] if k else [])]
    c.run(shlex.join([sys.executable, "-m", "pytest", *args]))


SHELL_SCRIPTS = ("scripts/*", ".ci/run", "vpskit/sh/*.sh")


@task
def lint(c):
    """ruff over the whole tree, shellcheck over the shell scripts."""
    c.run(f"{Path(sys.executable).parent / 'ruff'} check .")
    c.run(f"shellcheck {' '.join(SHELL_SCRIPTS)}")
