"""Ensure files on a server: compare sha256/owner/mode first, upload only what changed.

Writes are atomic (temp file in the same directory, chown/chmod, then rename), and the content
travels on stdin, so secrets in a file never appear in a process list.
"""

from __future__ import annotations

import difflib
import hashlib
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from vpskit import sh
from vpskit.facts import Probe
from vpskit.remote import Remote
from vpskit.secret import mask

WRITE_SCRIPT = sh.script("write-file")


@dataclass(frozen=True)
class FileSpec:
    path: str
    content: str
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    secret: bool = False  # never show a diff of it

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()


@dataclass(frozen=True)
class FileState:
    sha256: str
    owner: str
    group: str
    mode: int


def file_probe(paths: Iterable[str], name: str = "files") -> Probe:
    """``{path: FileState}`` for each existing path (missing paths are absent)."""
    paths = list(paths)

    def parse(out: str, rc: int) -> dict[str, FileState]:
        states = {}
        for line in out.splitlines():
            parts = line.split(" ", 4)
            if len(parts) == 5:
                sha, owner, group, mode, path = parts
                states[path] = FileState(sha, owner, group, int(mode, 8))
        return states
    cmd = "; ".join(
        f"[ -f {q} ] && echo $(sha256sum < {q} | cut -d' ' -f1) $(stat -c '%U %G %a' {q}) {q}"
        for q in map(shlex.quote, paths))
    return Probe(name, (cmd or "true") + "; true", parse)


def differences(spec: FileSpec, state: FileState | None) -> list[str]:
    """What must change for ``spec`` to hold: [] when nothing (pure)."""
    if state is None:
        return ["created"]
    reasons = []
    if state.sha256 != spec.sha256:
        reasons.append("content")
    if (state.owner, state.group) != (spec.owner, spec.group):
        reasons.append(f"owner {state.owner}:{state.group} -> {spec.owner}:{spec.group}")
    if state.mode != spec.mode:
        reasons.append(f"mode {state.mode:o} -> {spec.mode:o}")
    return reasons


def write_argv(path: str, owner: str = "root", group: str = "root", mode: int = 0o644
               ) -> list[str]:
    """The command writing its stdin to ``path`` atomically (pure)."""
    return ["bash", "-c", WRITE_SCRIPT, "write", path, f"{owner}:{group}", f"{mode:o}"]


def write(remote: Remote, spec: FileSpec) -> None:
    """Write ``spec`` atomically (always acts; call after :func:`differences`)."""
    remote.run(write_argv(spec.path, spec.owner, spec.group, spec.mode), stdin=spec.content)


def unified_diff(spec: FileSpec, old: str | None, secrets: list[str]) -> str:
    """A masked unified diff for --dry-run; secret files show only that they change."""
    if spec.secret:
        return f"--- {spec.path}\n+++ {spec.path}\n(secret file: content hidden)\n"
    diff = difflib.unified_diff((old or "").splitlines(keepends=True),
                                spec.content.splitlines(keepends=True),
                                fromfile=spec.path if old is not None else "/dev/null",
                                tofile=spec.path)
    return mask("".join(diff), secrets)
