"""``fab init``: read an app's repository and write a first ``inventory.yml`` for it.

:func:`detect` reads what a PaaS app already has: its code (Django, Flask, ASGI), ``Procfile``,
``railway.toml``/``railway.json``, ``gunicorn.conf.py``, requirements or ``pyproject.toml``,
``runtime.txt``/``.python-version`` and ``.git``. :func:`render_inventory` turns that into a
complete, commented inventory whose only placeholders are valid values marked ``FILL ME``, and
:func:`write_inventory` writes it beside the app. Pure and local: nothing here runs the app's
code or touches a server.
"""

from __future__ import annotations

import re
from pathlib import Path

from vpskit.errors import ToolkitError
from vpskit.init.detect import detect
from vpskit.init.detected import Detected
from vpskit.init.render import PLACEHOLDER_ADDRESS, PLACEHOLDER_DOMAIN, render_inventory

__all__ = ["PLACEHOLDER_ADDRESS", "PLACEHOLDER_DOMAIN", "Detected", "default_app_name", "detect",
           "render_inventory", "write_inventory"]


def default_app_name(app_dir: Path) -> str:
    """The directory's name as an app name: lowercase letters and digits, at most 20."""
    name = re.sub(r"[^a-z0-9]", "", Path(app_dir).resolve().name.lower()).lstrip("0123456789")
    return name[:20] or "app"


def write_inventory(app_dir: Path, force: bool = False, app_name: str | None = None) -> Path:
    """Detect, render and write ``<app_dir>/inventory.yml``; an existing one needs ``force``."""
    app_dir = Path(app_dir)
    target = app_dir / "inventory.yml"
    if target.exists() and not force:
        raise ToolkitError(f"{target} already exists; pass --force to overwrite it")
    text = render_inventory(detect(app_dir), app_name or default_app_name(app_dir))
    target.write_text(text)
    return target
