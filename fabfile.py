"""vpskit's tasks for ``fab`` in this repository (``fab --list``); the same as ``vpskit --list``."""

from vpskit.tasks import ns  # noqa: F401
