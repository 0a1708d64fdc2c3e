"""Facts: a shell probe plus a pure parser, many gathered in one SSH round trip.

``gather(remote, [os_release(), packages([...]), ...])`` sends one script that prints a marked
section per probe, then parses each section locally; parsers never touch the network.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vpskit.remote import Remote

MARK = "@@vpskit-fact@@"


@dataclass(frozen=True)
class Probe:
    name: str
    command: str  # a shell snippet; quote every value with shlex.quote
    parse: Callable[[str, int], Any]  # (stdout, exit code) -> fact


def gather(remote: Remote, probes: Iterable[Probe]) -> dict[str, Any]:
    """Run every probe in one round trip and return ``{probe.name: parsed fact}``."""
    probes = list(probes)
    out = remote.script(gather_script([p.command for p in probes])).stdout
    sections = parse_sections(out)
    return {p.name: p.parse(*sections[i]) for i, p in enumerate(probes)}


def gather_script(commands: list[str]) -> str:
    """The script running ``commands`` at once (probes only read), each into its own file in
    a private directory on tmpfs (a full disk does not stop it), then printing each one's
    output and exit code between marks, in order; one after the other when there is no such
    directory (pure)."""
    at_once = "\n".join(f"{{ ( {c} ) >\"$d/{i}\" 2>/dev/null; echo $? >\"$d/{i}.rc\"; }} &"
                        for i, c in enumerate(commands))
    in_turn = "\n".join(f"echo {MARK}; ( {c} ) 2>/dev/null; echo \"{MARK} $?\""
                        for c in commands)
    return (f'if d=$(mktemp -d -p /dev/shm 2>/dev/null); then\ntrap \'rm -rf "$d"\' EXIT\n'
            f'{at_once}\nwait\nfor i in $(seq 0 {len(commands) - 1}); do echo {MARK}; '
            f'cat "$d/$i"; echo "{MARK} $(cat "$d/$i.rc")"; done\nelse\n{in_turn}\nfi\n')


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
    cmd = "dpkg-query -W -f '${Package} ${Status}\\n' " + " ".join(map(shlex.quote, names))
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


def units(names: Iterable[str]) -> Probe:
    """``{unit: (active state, enabled state, main pid)}`` for each unit."""
    names = list(names)

    def parse(out: str, rc: int) -> dict[str, tuple[str, str, int]]:
        states = {}
        for line in out.splitlines():
            if line.count(" ") >= 3:
                unit, active, enabled, pid = line.split(" ", 3)
                states[unit] = (active, enabled, int(pid or 0))
        return states
    cmd = "; ".join(
        f"echo {shlex.quote(n)} $(systemctl is-active {shlex.quote(n)}) "
        f"$(systemctl is-enabled {shlex.quote(n)}) "
        f"$(systemctl show -p MainPID --value {shlex.quote(n)})" for n in names)
    return Probe("units", cmd or "true", parse)


def users(names: Iterable[str]) -> Probe:
    """``{user: [groups]}`` for the users that exist."""
    names = list(names)

    def parse(out: str, rc: int) -> dict[str, list[str]]:
        found = {}
        for line in out.splitlines():
            user, _, groups = line.partition(":")
            found[user.strip()] = groups.split()
        return found
    cmd = "; ".join(f"id -nG {shlex.quote(n)} >/dev/null 2>&1 && echo {shlex.quote(n)}: "
                    f"$(id -nG {shlex.quote(n)})" for n in names)
    return Probe("users", cmd + "; true", parse)


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
