"""What the release venv installs: the requirements file, the distributions it lists,
and the Python version the app asks for."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from vpskit.init.detected import Detected
from vpskit.init.repo import Repo

SERVER_PYTHON = (3, 11)  # Debian 12's python3, what release venvs are built with


def requirements(repo: Repo, d: Detected) -> set[str]:
    """Which requirements file the venv installs, and the distribution names it lists."""
    for rel in ("requirements.txt", "requirements/production.txt", "requirements/prod.txt",
                "requirements/base.txt"):
        if repo.text(rel) is not None:
            d.found("requirements", rel, rel)
            return _requirement_names(repo, rel, set())
    pyproject = repo.text("pyproject.toml")
    if pyproject is None:
        return set()
    try:
        data = tomllib.loads(pyproject)
    except tomllib.TOMLDecodeError as exc:
        d.notes.append(f"pyproject.toml does not parse ({exc}); dependencies unknown")
        return set()
    listed = [*data.get("project", {}).get("dependencies", []),
              *data.get("tool", {}).get("poetry", {}).get("dependencies", {})]
    exporter = ("uv export --no-hashes --no-dev -o requirements.txt"
                if (repo.root / "uv.lock").exists() else
                "poetry export -f requirements.txt -o requirements.txt"
                if (repo.root / "poetry.lock").exists() else
                "pip-compile -o requirements.txt pyproject.toml")
    d.notes.append(f"the dependencies are in pyproject.toml, but release venvs install a "
                   f"requirements file (pip install -r): commit one, e.g. `{exporter}`")
    return {_dist_name(item) for item in listed if _dist_name(item)}


def _requirement_names(repo: Repo, rel: str, seen: set[str]) -> set[str]:
    seen.add(rel)
    names: set[str] = set()
    for line in (repo.text(rel) or "").splitlines():
        line = line.split(" #")[0].strip()
        include = re.match(r"^-[rc]\s*(\S+)|^--requirement[=\s]+(\S+)", line)
        if include:
            target = (Path(rel).parent / (include[1] or include[2])).as_posix()
            if target not in seen:
                names |= _requirement_names(repo, target, seen)
        elif line and not line.startswith(("-", "#")) and _dist_name(line):
            names.add(_dist_name(line))
    return names


def _dist_name(spec: str) -> str:
    """``Flask[async]>=3`` -> ``flask[async]`` (normalised, extras kept for Redis detection)."""
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?", spec)
    if not match:
        return ""
    return re.sub(r"[-_.]+", "-", match[1]).lower() + (match[2] or "").lower()


def python_version(repo: Repo, d: Detected) -> None:
    """The Python the app asks for, compared with the server's. A pinned version
    (``.python-version``, ``runtime.txt``) should match; ``requires-python`` is a minimum."""
    exact, where = True, ""
    for rel, pattern in ((".python-version", r"^\s*(?:python-?)?(\d+\.\d+)"),
                         ("runtime.txt", r"^\s*python-(\d+\.\d+)")):
        match = re.match(pattern, repo.text(rel) or "")
        if match:
            d.found("python", match[1], rel)
            where = rel
            break
    else:
        spec = re.search(r"requires-python\s*=\s*[\"']\s*>=?\s*(\d+\.\d+)",
                         repo.text("pyproject.toml") or "")
        if spec:
            d.found("python", spec[1], "pyproject.toml requires-python")
            exact, where = False, "pyproject.toml requires-python"
    if not d.python:
        return
    wanted = tuple(int(x) for x in d.python.split("."))
    server = ".".join(map(str, SERVER_PYTHON))
    if wanted > SERVER_PYTHON:
        d.notes.append(f"{where} asks for Python {d.python}, newer than the "
                       f"server's {server} (Debian 12): deploys will refuse it; use a "
                       f"Debian 13 server (3.13) or lower the requirement")
    elif wanted < SERVER_PYTHON and exact:
        d.notes.append(f"{where} pins Python {d.python}; the server runs "
                       f"{server}: check the pinned packages support it")
