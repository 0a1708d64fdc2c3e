"""``fab init``: read an app's repository and write a first ``inventory.yml`` for it.

:func:`detect` reads what a PaaS app already has: its code (Django, Flask, ASGI), ``Procfile``,
``railway.toml``/``railway.json``, ``gunicorn.conf.py``, requirements or ``pyproject.toml``,
``runtime.txt``/``.python-version`` and ``.git``. :func:`render_inventory` turns that into a
complete, commented inventory whose only placeholders are valid values marked ``FILL ME``, and
:func:`write_inventory` writes it beside the app; :func:`write_files` adds what the repository
needs to run the tasks and stay safe to commit (see :mod:`vpskit.init.scaffold`) and, on request,
a CI workflow that deploys each push (:mod:`vpskit.init.ci`). Local: nothing here runs the app's
code or touches a server.
"""

from __future__ import annotations

import re
from pathlib import Path

from vpskit.config import Backups
from vpskit.errors import ToolkitError
from vpskit.init import ci as ci_workflow
from vpskit.init import scaffold
from vpskit.init.detect import detect
from vpskit.init.detected import Detected
from vpskit.init.render import PLACEHOLDER_ADDRESS, PLACEHOLDER_DOMAIN, render_inventory

__all__ = ["PLACEHOLDER_ADDRESS", "PLACEHOLDER_DOMAIN", "Detected", "default_app_name", "detect",
           "render_inventory", "write_files", "write_inventory"]


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


def write_files(app_dir: Path, force: bool = False, app_name: str | None = None,
                ci: str | None = None) -> list[str]:
    """``inventory.yml``, then ``fabfile.py``/``fabric.yaml`` and ``.gitignore`` entries in
    ``app_dir``; one line per file written or kept.

    With ``ci`` (``"github"``) also the CI workflow deploying each push (see
    :mod:`vpskit.init.ci`), rendered from the inventory: an existing inventory is then kept
    and read, and ``force`` overwrites only an existing workflow.
    """
    app_dir = Path(app_dir)
    workflow = ci_workflow.workflow_path(app_dir, ci, force) if ci else None
    inventory = app_dir / "inventory.yml"
    if workflow and inventory.exists():
        said = [f"kept {inventory}"]
    else:
        said = [f"wrote {write_inventory(app_dir, force=force, app_name=app_name)}"]
    said += scaffold.write_fabfile(app_dir)
    said += scaffold.update_gitignore(app_dir, scaffold.ignored_lines(Backups().local_dir))
    if workflow:
        said += ci_workflow.write_workflow(workflow, inventory)
    return said
