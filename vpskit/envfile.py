"""The app's env file: ``KEY="value"`` lines that systemd's EnvironmentFile= and we both read.

One parser serves the server's ``shared/.env`` and the operator's ``.env.<environment>``:
comments, ``export`` prefixes, bare, single-quoted (literal) and double-quoted (backslash
escapes) values.
"""

from __future__ import annotations

import re

from vpskit.errors import ToolkitError

# A variable name. Use with fullmatch; the ``\Z`` keeps a bare ``.match`` whole-string too.
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse(text: str, name: str = ".env") -> dict[str, str]:
    """Parse env-file text into a dict; a malformed line raises with ``name:LINE``."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not KEY_RE.fullmatch(key):
            raise ToolkitError(f"{name}:{number}: expected KEY=value; fix or remove the line")
        values[key] = _unquote(value.strip())
    return values


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def one_line(value: str) -> bool:
    """Whether ``value`` has no line break (any that :func:`parse` would split the file at)."""
    return "".join(value.splitlines()) == value


def render(values: dict[str, str]) -> str:
    """Render sorted ``KEY="value"`` lines; each value must be :func:`one_line`."""
    lines = []
    for key in sorted(values):
        value = values[key]
        if not one_line(value) or not KEY_RE.fullmatch(key):
            raise ToolkitError(f"env variable {key}: names are A-Z, 0-9, _ and values one line")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{key}="{escaped}"\n')
    return "".join(lines)
