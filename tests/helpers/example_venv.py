"""Virtualenvs with a bundled example app's pinned requirements, for its smoke tests.

A venv is rebuilt only when its requirements.txt or the Python running the tests changes; when
pip cannot install the requirements (no index reachable, say) the tests using it skip and say
why.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CACHE = Path("/var/cache/vpskit")


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def example_venv(requirements: Path, venv: Path) -> Path:
    """The python of ``venv`` with ``requirements`` installed (built once, then reused)."""
    stamp_text = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()
    lock_path = venv.parent / f"{venv.name}.lock"
    try:
        venv.parent.mkdir(parents=True, exist_ok=True)
        lock_path.touch()
    except OSError as exc:
        pytest.skip(f"cannot create the example venv under {venv.parent}: {exc}")
    with open(lock_path) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel runs build it once
        stamp = venv / ".vpskit-stamp"
        venv_python = venv / "bin" / "python"
        if venv_python.exists() and stamp.exists() and stamp.read_text() == stamp_text:
            return venv_python
        shutil.rmtree(venv, ignore_errors=True)
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv_python), "-m", "pip", "install", "--disable-pip-version-check",
             "--no-input", "-q", "-r", str(requirements)],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, timeout=240)
            except subprocess.TimeoutExpired:
                done = None
            if done is None or done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                why = "timed out" if done is None else tail(done.stderr or done.stdout)
                pytest.skip(f"cannot build the example venv ({' '.join(step[:4])} ...): {why}")
        stamp.write_text(stamp_text)
        return venv_python
