"""``python -m vpskit``: the ``vpskit`` command."""

from vpskit.program import main

main()
