"""Facts: a shell probe plus a pure parser, many gathered in one SSH round trip.

``gather(remote, [os_release(), packages([...]), ...])`` sends one script that prints a marked
section per probe, then parses each section locally; parsers never touch the network.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vpskit.remote import Remote

MARK = "@@vpskit-fact@@"


@dataclass(frozen=True)
class Probe:
    name: str
    command: str  # a shell snippet; quote every value with shlex.quote
    parse: Callable[[str, int], Any]  # (stdout, exit code) -> fact
    units: tuple[str, ...] = ()  # set by :func:`units`: its command is ``UNITS_SHOW`` of them


UNITS_SHOW = "systemctl show -p ActiveState,UnitFileState,MainPID -- "


def gather(remote: Remote, probes: Iterable[Probe]) -> dict[str, Any]:
    """Run every probe in one round trip and return ``{probe.name: parsed fact}``. The unit
    probes share one ``systemctl show`` (each costs a tenth of a second of a small server's
    CPU); each parses its own units' part of the output."""
    probes = list(probes)
    alone = [p for p in probes if not p.units]
    shared = [unit for p in probes for unit in p.units]
    commands = [p.command for p in alone] + ([UNITS_SHOW + shlex.join(shared)] if shared else [])
    sections = parse_sections(remote.script(gather_script(commands)).stdout)
    found = {p.name: p.parse(*sections[i]) for i, p in enumerate(alone)}
    if shared:
        out, rc = sections[-1]
        blocks, start = out.split("\n\n"), 0
        for probe in (p for p in probes if p.units):
            end = start + len(probe.units)
            found[probe.name] = probe.parse("\n\n".join(blocks[start:end]), rc)
            start = end
    return {p.name: found[p.name] for p in probes}


def gather_script(commands: list[str]) -> str:
    """The script running ``commands`` at once (probes only read), each into its own file in
    a private directory on tmpfs (a full disk does not stop it) with its exit code between
    marks, then printing the files in order with one ``cat``; one after the other when there
    is no such directory (pure)."""
    sections = [f"{{ echo {MARK}; ( {c} ) 2>/dev/null; echo \"{MARK} $?\"; }}"
                for c in commands]
    at_once = "\n".join(f'{section} >"$d/{i}" &' for i, section in enumerate(sections))
    in_order = " ".join(f'"$d/{i}"' for i in range(len(commands)))
    in_turn = "\n".join(sections) or "true"
    return (f'if d=$(mktemp -d -p /dev/shm 2>/dev/null); then\ntrap \'rm -rf "$d"\' EXIT\n'
            f'{at_once}\nwait\ncat {in_order} </dev/null\nelse\n{in_turn}\nfi\n')


def parse_sections(out: str) -> list[tuple[str, int]]:
    """Split the marked script output into ``(stdout, exit code)`` per probe, in order."""
    sections: list[tuple[str, int]] = []
    body: list[str] | None = None
    for line in out.split("\n"):
        if line == MARK:
            body = []
        elif MARK + " " in line and body is not None:  # output without a final newline
            last, _, code = line.rpartition(MARK + " ")
            sections.append(("\n".join(body + [last] if last else body), int(code)))
            body = None
        elif body is not None:
            body.append(line)
    return sections


# ---- common probes -----------------------------------------------------------------------------

def os_release() -> Probe:
    def parse(out: str, rc: int) -> dict[str, str]:
        values = {}
        for line in out.splitlines():
            key, _, value = line.partition("=")
            values[key] = value.strip().strip('"')
        return values
    return Probe("os", "cat /etc/os-release", parse)


def packages(names: Iterable[str]) -> Probe:
    """Which of ``names`` dpkg reports as installed."""
    names = list(names)

    def parse(out: str, rc: int) -> set[str]:
        return {line.split()[0] for line in out.splitlines()
                if line.endswith(" install ok installed")}
    cmd = "dpkg-query -W -f '${Package} ${Status}\\n' " + shlex.join(names)
    return Probe("packages", cmd, parse)


def resources() -> Probe:
    """Free disk on / (MiB), memory and swap (MiB)."""
    def parse(out: str, rc: int) -> dict[str, int]:
        lines = out.split()
        return {"disk_free_mb": int(lines[0]), "mem_mb": int(lines[1]), "swap_mb": int(lines[2])}
    cmd = ("df -Pm / | awk 'NR==2{print $4}'; "
           "awk '/^MemTotal/{print int($2/1024)} /^SwapTotal/{s=int($2/1024)} END{print s}' "
           "/proc/meminfo")
    return Probe("resources", cmd, parse)


def units(names: Iterable[str], name: str = "units",
          convert: Callable[[dict[str, tuple[str, str, int]]], Any] = lambda states: states
          ) -> Probe:
    """``{unit: (active state, enabled state, main pid)}`` for each unit (an enabled state of
    '' when there is no such unit file), as ``name``; ``convert`` makes the fact of it."""
    names = tuple(names)

    def parse(out: str, rc: int) -> Any:
        states = {}
        for unit, block in zip(names, out.split("\n\n"), strict=False):
            values = dict(line.partition("=")[::2] for line in block.splitlines())
            pid = values.get("MainPID", "0")
            states[unit] = (values.get("ActiveState", ""), values.get("UnitFileState", ""),
                            int(pid) if pid.isdigit() else 0)
        return convert(states)
    return Probe(name, UNITS_SHOW + shlex.join(names) if names else "true", parse, units=names)


def users(names: Iterable[str], name: str = "users") -> Probe:
    """``{user: [groups]}`` for the users that exist, as ``name``."""
    names = list(names)

    def parse(out: str, rc: int) -> dict[str, list[str]]:
        found = {}
        for line in out.splitlines():
            user, _, groups = line.partition(":")
            found[user.strip()] = groups.split()
        return found
    cmd = (f"for u in {shlex.join(names)}; do "
           'g=$(id -nG "$u" 2>/dev/null) && echo "$u: $g"; done; true')
    return Probe(name, cmd, parse)


def owners(paths: Iterable[str], name: str) -> Probe:
    """``{path: (owner, group, octal mode)}`` of each existing path, as ``name``."""
    def parse(out: str, rc: int) -> dict[str, tuple[str, ...]]:
        return {line.rsplit(" ", 3)[0]: tuple(line.rsplit(" ", 3)[1:])
                for line in out.splitlines()}
    return Probe(name, f"stat -c '%n %U %G %a' -- {shlex.join(paths)}; true", parse)


def group(name: str, probe_name: str) -> Probe:
    """Whether the group ``name`` exists, as ``probe_name``."""
    return Probe(probe_name, f"getent group {shlex.quote(name)}", lambda out, rc: rc == 0)


def nonempty(path: str, name: str) -> Probe:
    """Whether ``path`` is a non-empty file (a certificate is there), as ``name``."""
    return Probe(name, f"test -s {shlex.quote(path)}", lambda out, rc: rc == 0)


def link(path: str, name: str = "link") -> Probe:
    """The target of a symlink, or '' when it does not exist."""
    return Probe(name, f"readlink {shlex.quote(path)}", lambda out, rc: out.strip())


def registry(directory: str, name: str, convert: Callable[[dict[str, list[str]]], Any]
             ) -> Probe:
    """A registry of one file per site in ``directory``: ``convert`` gets ``{site: [lines]}``."""
    def parse(out: str, rc: int) -> Any:
        found: dict[str, list[str]] = {}
        for line in out.splitlines():  # grep -H: <directory>/<site>:<line>
            path, _, value = line.partition(":")  # a path has no ':', a value may (IPv6)
            found.setdefault(path.rsplit("/", 1)[-1], []).append(value)
        return convert(found)
    return Probe(name, f"grep -H . {shlex.quote(directory)}/*", parse)


def text(path: str, name: str) -> Probe:
    """A file's content, or None when missing (keep secret-bearing ones out of logs)."""
    return Probe(name, f"cat {shlex.quote(path)}", lambda out, rc: out if rc == 0 else None)
