"""Where a release comes from: a commit of the app's git repository, archived on this machine.

The server never needs git or repository credentials: ``git archive`` of the resolved commit is
streamed to it. A remote URL is mirrored once into ``~/.cache/vpskit/repos`` and fetched after.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from vpskit.errors import ToolkitError

CACHE = Path.home() / ".cache" / "vpskit" / "repos"
# Files a release must never carry: secrets files (examples aside) and vpskit's backups.
_SECRETS_FILE = re.compile(r"(?:^|/)\.env(?:\.(?!(?:example|sample|template|dist)$)[^/]+)?$")
_BACKUP_SUFFIXES = (".dump", "-media.tar.gz")


@dataclass(frozen=True)
class Source:
    repo: Path  # a local git directory (work tree or bare mirror)
    sha: str
    ref: str

    @property
    def short(self) -> str:
        return self.sha[:7]

    def read(self, path: str) -> bytes | None:
        """A file of the commit, or None when it has none."""
        result = subprocess.run(["git", "-C", str(self.repo), "show", f"{self.sha}:{path}"],
                                capture_output=True)
        return result.stdout if result.returncode == 0 else None

    def files(self) -> list[str]:
        """The paths the commit tracks."""
        return _git(self.repo, "ls-tree", "-r", "-z", "--name-only", self.sha).split("\0")[:-1]

    def archive(self) -> bytes:
        """The commit's tree as an uncompressed tar."""
        return _git(self.repo, "archive", "--format=tar", self.sha, binary=True)

    def bundle(self) -> bytes:
        """The commit and its history as a git bundle (under a ref of its own while it is
        made: a bundle names refs, not commits)."""
        ref = f"refs/vpskit/bundle-{os.getpid()}"
        _git(self.repo, "update-ref", ref, self.sha)
        try:
            return _git(self.repo, "bundle", "create", "-", ref, binary=True)
        finally:
            _git(self.repo, "update-ref", "-d", ref)


def resolve(repo: str, ref: str) -> Source:
    """Find ``ref`` (branch, tag or sha) in ``repo``; a clear error when it is not there."""
    local = _local_repo(repo)
    try:
        sha = _git(local, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except ToolkitError:
        raise ToolkitError(f"ref '{ref}' not found in {repo}; push it or pass --ref "
                           f"with a branch, tag or sha that exists") from None
    return Source(local, sha, ref)


def refuse_unsafe_files(source: Source, backup_dir: str) -> None:
    """Refuse a commit that tracks a secrets file or a backup (see :func:`unsafe_files`)."""
    found = unsafe_files(source.files(), backup_dir)
    if found:
        shown = " ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise ToolkitError(
            f"commit {source.short} ({source.ref}) tracks {shown}: secrets and backups never "
            f"go to a server in a release; git rm --cached them, commit, and rotate any secret "
            f"they held (vpskit init adds them to .gitignore)")


def unsafe_files(paths: list[str], backup_dir: str) -> list[str]:
    """The secrets files (``.env``, ``.env.*`` but ``.env.example`` and the like), dumps
    (``*.dump``, ``*-media.tar.gz``) and files under ``backup_dir`` (when relative) in
    ``paths`` (pure)."""
    inside = backup_dir.strip("/") + "/" if not Path(backup_dir).is_absolute() else None
    return [path for path in paths
            if _SECRETS_FILE.search(path) or path.endswith(_BACKUP_SUFFIXES)
            or (inside and path.startswith(inside))]


def required_python(source: Source) -> tuple[str, tuple[int, int]] | None:
    """The minimum Python the app declares (pyproject ``requires-python``, ``.python-version``
    or ``runtime.txt``) as (where, (major, minor)), or None."""
    pyproject = source.read("pyproject.toml")
    if pyproject:
        spec = tomllib.loads(pyproject.decode()).get("project", {}).get("requires-python", "")
        match = re.search(r">=?\s*(\d+)\.(\d+)", spec)
        if match:
            return "pyproject.toml requires-python", (int(match[1]), int(match[2]))
    for name, pattern in ((".python-version", r"^(\d+)\.(\d+)"),
                          ("runtime.txt", r"python-(\d+)\.(\d+)")):
        content = source.read(name)
        match = re.search(pattern, (content or b"").decode().strip())
        if match:
            return name, (int(match[1]), int(match[2]))
    return None


def _local_repo(repo: str) -> Path:
    path = Path(repo)
    if path.exists():
        if not (path / ".git").exists() and not (path / "HEAD").exists():
            raise ToolkitError(f"app.repo {repo} is not a git repository; run 'git init' and "
                               f"commit the app, or point app.repo at its git URL")
        return path
    mirror = CACHE / hashlib.sha256(repo.encode()).hexdigest()[:16]
    if mirror.exists():
        _git(mirror, "remote", "update", "--prune")
    else:
        mirror.parent.mkdir(parents=True, exist_ok=True)
        _git(None, "clone", "--mirror", "--quiet", repo, str(mirror))
    return mirror


def _git(repo: Path | None, *args: str, binary: bool = False) -> bytes | str:
    cmd = ["git", *(["-C", str(repo)] if repo else []), *args]
    result = subprocess.run(cmd, capture_output=True)
    if result.returncode != 0:
        err = result.stderr.decode(errors="replace").strip().splitlines()
        raise ToolkitError(f"`{' '.join(cmd)}` failed: {err[-1] if err else result.returncode}")
    return result.stdout if binary else result.stdout.decode()
