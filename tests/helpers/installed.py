"""vpskit as a user installs it: a wheel built from this checkout, in a fresh virtualenv
outside it, so nothing of the repository (harness, templates/, fabfile.py) is on its path."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
PIP_CACHE = "/var/cache/vpskit/pip-host"  # shared with scripts/install


@dataclass(frozen=True)
class Installed:
    bin: Path  # the virtualenv's bin/: vpskit, fab, python


def _run(argv: list[str], cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**env, "PIP_CACHE_DIR": PIP_CACHE}, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def build_wheel(out: Path) -> Path:
    """``pip wheel .`` of this checkout into ``out``; the wheel's path. One build at a time per
    checkout (setuptools builds in its ``build/``), whichever test process asks."""
    with (REPOSITORY / "build").with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
              str(REPOSITORY)])
    return next(out.glob("vpskit-*.whl"))


def install(wheel: Path, base: Path) -> Installed:
    """A fresh virtualenv in ``base`` with ``wheel`` and its dependencies from the index."""
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
          str(wheel)], cwd=base)
    return Installed(venv / "bin")
