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
from typing import TYPE_CHECKING

from vpskit import sh
from vpskit.facts import Probe
from vpskit.secret import mask

if TYPE_CHECKING:
    from vpskit.remote import Remote

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
    return Probe(name, states_command(shlex.join(paths)), parse_states)


def states_command(words: str) -> str:
    """The shell command printing the checksums, then owner, group and mode, of the regular
    files among ``words`` (shell words: quoted paths, or globs): two processes for them all."""
    return (f'f=(); for p in {words}; do [ -f "$p" ] && f+=("$p"); done; '
            'if [ ${#f[@]} -gt 0 ]; then sha256sum -- "${f[@]}"; '
            'stat -c "%U %G %a %n" -- "${f[@]}"; fi; true')


def parse_states(out: str, rc: int) -> dict[str, FileState]:
    """``states_command``'s output as ``{path: FileState}`` (pure)."""
    sums, meta = {}, {}
    for line in out.splitlines():
        first, _, rest = line.partition(" ")
        if len(first) == 64 and rest.startswith(" "):  # sha256sum: "<hex>  <path>"
            sums[rest[1:]] = first
        elif line.count(" ") >= 3:
            owner, group, mode, path = line.split(" ", 3)
            meta[path] = (owner, group, int(mode, 8))
    return {path: FileState(sums[path], *meta[path]) for path in meta if path in sums}


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


def write_argv(spec: FileSpec) -> list[str]:
    """The command writing ``spec`` from its stdin atomically, and only when the content came
    whole (pure)."""
    return ["bash", "-c", WRITE_SCRIPT, "write", spec.path, f"{spec.owner}:{spec.group}",
            f"{spec.mode:o}", spec.sha256]


def write(remote: Remote, spec: FileSpec, check: bool = True) -> None:
    """Write ``spec`` atomically (always acts; call after :func:`differences`)."""
    remote.run(write_argv(spec), stdin=spec.content, check=check)


def unified_diff(spec: FileSpec, old: str | None, secrets: list[str]) -> str:
    """A masked unified diff for --dry-run; secret files show only that they change."""
    if spec.secret:
        return f"--- {spec.path}\n+++ {spec.path}\n(secret file: content hidden)\n"
    diff = difflib.unified_diff((old or "").splitlines(keepends=True),
                                spec.content.splitlines(keepends=True),
                                fromfile=spec.path if old is not None else "/dev/null",
                                tofile=spec.path)
    return mask("".join(diff), secrets)
