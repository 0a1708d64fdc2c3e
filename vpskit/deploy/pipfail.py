"""Say in one line why ``pip install -r requirements.txt`` failed on the server (pure).

pip's own output runs to pages (a resolver report, a build's compiler log); the full text is
kept in a log file on the server and the deploy error carries only this summary.
"""

from __future__ import annotations

import re
from itertools import takewhile

from vpskit.deploy.applog import last_error_line

IGNORED = re.compile(r"Ignored the following versions that require a different python "
                     r"version: (.*)")
NOT_FOUND = re.compile(r"Could not find a version that satisfies the requirement (\S+)")
REQUIRES = re.compile(r"(\S+) Requires-Python (.+)")
LOWER_BOUND = re.compile(r">=?\s*(\d+)\.(\d+)")
BLOCK = re.compile(r"\[\d+ lines? of output\]")
STEP = re.compile(r"× (.+?) did not run successfully")
SOURCE = re.compile(r"^(?:Collecting|Processing|Building wheel for) (\S+)")
VERSIONS = re.compile(r"\(from versions: ([^)]*)\)")
NEWEST_DEBIAN = ("Debian 13", (3, 13))
MAX_CHARS = 400


def summarize_pip_failure(output: str, server_python: tuple[int, int] | None) -> str:
    """One line saying why pip failed, from its full ``output``.

    A requirement whose matching releases all need a newer Python than ``server_python`` is
    named with the fix (a newer server, or an older release pinned); a package whose build
    failed is named with its build's last error line; anything else gives pip's first ERROR
    line. Example: ``Django>=6.0 needs Python >= 3.12 (Django 6.0 and later) but the server
    has Python 3.11; use a server with a newer Python (Debian 13 has 3.13) or pin an older
    release, e.g. Django<6.0``.
    """
    summary = (_python_too_old(output, server_python) or _build_failed(output)
               or _error_line(output))
    return " ".join(summary.split())[:MAX_CHARS]


def _python_too_old(output: str, server: tuple[int, int] | None) -> str | None:
    ignored, wanted = IGNORED.search(output), NOT_FOUND.search(output)
    if not ignored or not wanted:
        return None
    needs: dict[tuple[int, ...], tuple[int, int]] = {}  # release -> the Python it needs
    for item in ignored[1].split(";"):
        entry = REQUIRES.match(item.strip())
        low = entry and LOWER_BOUND.search(entry[2])
        if low and (server is None or (int(low[1]), int(low[2])) > server):
            needs[_release(entry[1])] = (int(low[1]), int(low[2]))
    if not needs:
        return None
    requirement = wanted[1]
    name = re.match(r"[A-Za-z0-9._-]*", requirement)[0] or requirement
    first = ".".join(map(str, min(needs)))
    python = "{}.{}".format(*min(needs.values()))
    debian, newest = NEWEST_DEBIAN
    server_text = "Python {}.{}".format(*server) if server else "an older Python"
    newer = (f"a newer Python ({debian} has {newest[0]}.{newest[1]})"
             if min(needs.values()) <= newest else f"Python >= {python}")
    return (f"{requirement} needs Python >= {python} ({name} {first} and later) but the server "
            f"has {server_text}; use a server with {newer} or pin an older release, e.g. "
            f"{name}<{first}")


def _release(version: str) -> tuple[int, ...]:
    """``6.0.1`` -> (6, 0, 1); a pre-release counts as its release (``6.0a1`` -> (6, 0))."""
    return tuple(int(part) for part in re.match(r"\d+(?:\.\d+)*", version)[0].split("."))


def _build_failed(output: str) -> str | None:
    lines = [line.strip() for line in output.splitlines()]
    start = next((i for i, line in enumerate(lines) if BLOCK.search(line)), None)
    if start is None:
        return None
    end = next((i for i in range(start, len(lines)) if lines[i] == "[end of output]"),
               len(lines))
    sources = [m[1] for line in lines[:start] if (m := SOURCE.match(line))]
    steps = [m[1] for line in lines[:start + 1] if (m := STEP.search(line))]
    cause = last_error_line("\n".join(lines[start + 1:end]))
    what = sources[-1] if sources else "a package"
    return f"pip could not build {what}: {cause or (steps[-1] if steps else 'see the log')}"


def _error_line(output: str) -> str:
    lines = output.splitlines()
    errors = [line.removeprefix("ERROR: ") for line in lines
              if line.startswith("ERROR: ") and not IGNORED.search(line)]
    if not errors:
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        return f"pip failed; its last line: {last}"
    first = VERSIONS.sub(_shorten_versions, errors[0])
    if "The conflict is caused by:" in lines:
        at = lines.index("The conflict is caused by:") + 1
        causes = [line.strip() for line in takewhile(str.strip, lines[at:])]
        first = f"{first.rstrip('.')}: {'; '.join(causes)}" if causes else first
    return f"pip: {first}"


def _shorten_versions(match: re.Match[str]) -> str:
    versions = match[1].split(", ")
    listed = match[1] if len(versions) <= 3 else f"{versions[0]} ... {versions[-1]}"
    return f"(from versions: {listed})"
