"""Reading plans in tests: the commands, files and hatches a plan holds."""

from __future__ import annotations

from vpskit.plan import Hatch, Plan, Run


def runs(plan: Plan) -> list[list[str]]:
    """The commands ``plan`` runs, in order."""
    return [list(action.argv) for action in plan.actions if isinstance(action, Run)]


def hatches(plan: Plan) -> list[tuple]:
    """``(name, *args)`` of each hatch ``plan`` calls, in order."""
    return [(action.name, *action.args) for action in plan.actions if isinstance(action, Hatch)]
