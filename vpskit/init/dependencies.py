"""What the release venv installs: the requirements file, the distributions it lists,
and the Python version the app asks for."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from vpskit.init.detected import Detected
from vpskit.init.repo import Repo

SERVER_PYTHON = (3, 11)  # Debian 12's python3, what release venvs are built with
_CLAUSE = re.compile(r"(~=|==|!=|<=|>=|<|>)\s*(\d+(?:\.\d+)*)(\.\*)?")


def requirements(repo: Repo, d: Detected) -> dict[str, str]:
    """Which requirements file the venv installs, and what it lists: distribution name -> version
    specifier (``""`` when unpinned)."""
    for rel in ("requirements.txt", "requirements/production.txt", "requirements/prod.txt",
                "requirements/base.txt"):
        if repo.text(rel) is not None:
            d.found("requirements", rel, rel)
            return _requirement_lines(repo, rel, set())
    pyproject = repo.text("pyproject.toml")
    if pyproject is None:
        return {}
    try:
        data = tomllib.loads(pyproject)
    except tomllib.TOMLDecodeError as exc:
        d.notes.append(f"pyproject.toml does not parse ({exc}); dependencies unknown")
        return {}
    poetry = data.get("tool", {}).get("poetry", {}).get("dependencies", {})
    listed = [*data.get("project", {}).get("dependencies", []),
              *(f"{name} {spec if isinstance(spec, str) else ''}" for name, spec in poetry.items())]
    exporter = ("uv export --no-hashes --no-dev -o requirements.txt"
                if (repo.root / "uv.lock").exists() else
                "poetry export -f requirements.txt -o requirements.txt"
                if (repo.root / "poetry.lock").exists() else
                "pip-compile -o requirements.txt pyproject.toml")
    d.notes.append(f"the dependencies are in pyproject.toml, but release venvs install a "
                   f"requirements file (pip install -r): commit one, e.g. `{exporter}`")
    return dict(filter(None, map(_requirement, listed)))


def _requirement_lines(repo: Repo, rel: str, seen: set[str]) -> dict[str, str]:
    seen.add(rel)
    found: dict[str, str] = {}
    for line in (repo.text(rel) or "").splitlines():
        line = line.split(" #")[0].strip()
        include = re.match(r"^-[rc]\s*(\S+)|^--requirement[=\s]+(\S+)", line)
        if include:
            target = (Path(rel).parent / (include[1] or include[2])).as_posix()
            if target not in seen:
                found.update(_requirement_lines(repo, target, seen))
        elif line and not line.startswith(("-", "#")) and (requirement := _requirement(line)):
            name, spec = requirement
            found[name] = ",".join(filter(None, (found.get(name, ""), spec)))  # both apply
    return found


def _requirement(line: str) -> tuple[str, str] | None:
    """``Flask[async]>=3 ; python_version < "3.12"`` -> ``("flask[async]", ">=3")``: the name
    normalised, extras kept (for Redis detection), markers and options dropped."""
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?(.*)$", line)
    if not match:
        return None
    name = re.sub(r"[-_.]+", "-", match[1]).lower() + (match[2] or "").lower()
    return name, re.split(r";|\s-", match[3])[0].strip(" \\()")


def admits_from(spec: str, floor: tuple[int, ...]) -> bool:
    """Whether a version specifier (``>=21,<26``) lets pip install ``floor`` or a later version.

    Reads ``==``, ``==X.*``, ``~=``, ``<``, ``<=``, ``>``, ``>=`` and ``!=``; an empty
    specifier, and a clause it cannot read (``@ url``, Poetry's ``^21``), admits.
    Example: ``admits_from("~=23.0", (26,))`` is ``False``: it means ``>=23.0,==23.*``.
    """
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        match = _CLAUSE.fullmatch(clause)
        if match and not _clause_admits_from(
                match[1], tuple(int(p) for p in match[2].split(".")), bool(match[3]), floor):
            return False
    return True


def _clause_admits_from(op: str, release: tuple[int, ...], wildcard: bool,
                        floor: tuple[int, ...]) -> bool:
    if op == "~=" and len(release) > 1 and not wildcard:
        op, release, wildcard = "==", release[:-1], True  # ~=X.Y.Z: from X.Y.Z within X.Y.*
    size = max(len(release), len(floor))
    version, bottom = (v + (0,) * (size - len(v)) for v in (release, floor))
    if wildcard:  # ==X.Y.*: some X.Y.* release is at least floor; other wildcards: unread
        return op != "==" or release >= bottom[:len(release)]
    return {"==": version >= bottom, "<=": version >= bottom, "<": version > bottom}.get(
        op, True)  # >, >= and != leave later versions in


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
