"""The inventory text of what was detected: valid values, each commented with its source, and
``FILL ME`` where only the operator knows."""

from __future__ import annotations

import functools
import json
import re
import textwrap

import yaml

from vpskit import config, render
from vpskit.errors import ToolkitError
from vpskit.init.detected import Detected
from vpskit.inventory import NAME_RE

PLACEHOLDER_ADDRESS = "203.0.113.10"  # TEST-NET-3: valid, and never a real server
PLACEHOLDER_DOMAIN = "app.example.com"
PLACEHOLDER_EMAIL = "ops@example.com"
_COMMENT_COLUMN = 36


def _scalar(value: object) -> str:
    """``value`` as a YAML scalar that reads back as exactly that value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = (re.fullmatch(r"[A-Za-z0-9_./~][\w./:@~+=, ()-]*", text) and not text.endswith(":")
             and ": " not in text and " #" not in text and not text.endswith(" "))
    if plain:
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text)


def _why(d: Detected, name: str, fallback: str) -> str:
    """The comment of a detected setting: where it came from, or that it was not found."""
    source = d.sources.get(name)
    return f"from {source}" if source else f"not detected: {fallback}"


def _comment_block(text: str, first: str = "# ", rest: str = "# ") -> list[str]:
    return textwrap.wrap(text, 99, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False, break_long_words=False)


def render_inventory(detected: Detected, app_name: str) -> str:
    """A complete inventory for ``detected``, loadable once the host and domain are filled in
    (the template ``templates/init/inventory.yml.j2``).

    Every value is valid; what could not be detected is a default marked ``not detected`` and
    what only the operator knows (server address, domains, ACME email) is marked ``FILL ME``.
    """
    if not NAME_RE.match(app_name):
        raise ToolkitError(f"app name {app_name!r}: use 1-20 lowercase letters and digits, "
                           f"starting with a letter")
    d = detected
    read = ", ".join([*d.read, "the Python sources"])
    intro = _comment_block(
        f"vpskit inventory of {app_name}, written by `fab init` from this repository (read: "
        f"{read}). Fill in every FILL ME and check every `not detected`, then run: "
        f"fab provision --env production")
    notes = [line for note in d.notes
             for line in _comment_block(note, first="#   - ", rest="#     ")]
    text = render.render_template(
        "init/inventory.yml.j2", d=d, intro=intro, notes=notes,
        app=config.App(name=app_name, repo="."), redis=config.Redis(), health=config.Health(),
        tls=config.TLS(), backups=config.Backups(), nginx=config.Nginx(),
        system=config.System(), scalar=_scalar, why=functools.partial(_why, d),
        placeholder_address=PLACEHOLDER_ADDRESS, placeholder_domain=PLACEHOLDER_DOMAIN,
        placeholder_email=PLACEHOLDER_EMAIL)
    return "\n".join(_aligned(line) for line in text.splitlines()) + "\n"


def _aligned(line: str) -> str:
    """A template line with its comment (after `` #| ``) moved to the comment column."""
    text, marker, comment = line.rpartition(" #| ")
    return f"{text.ljust(_COMMENT_COLUMN - 1)} # {comment}" if marker else line
