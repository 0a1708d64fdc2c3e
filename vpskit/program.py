"""The ``vpskit`` command: Invoke's ``Program`` over :data:`vpskit.tasks.ns`, in any directory.

``vpskit deploy --env production`` is ``fab deploy --env production`` without a ``fabfile.py``;
``vpskit --list`` and ``vpskit --version`` answer without reading an inventory.
"""

from invoke import Program

from vpskit import __version__
from vpskit.cli import Executor
from vpskit.tasks import ns

program = Program(name="vpskit", binary="vpskit", version=__version__, namespace=ns,
                  executor_class=Executor)


def main() -> None:
    """Console entry point (``[project.scripts] vpskit``)."""
    program.run()
