"""A step's plan: what it will do to one server, as frozen data decided from facts alone.

A step module declares its facts (a frozen dataclass next to its probes, built by
:func:`facts_of`) and a pure ``plan(env, host, facts) -> Plan``. :mod:`vpskit.applier` carries
plans out, or in a dry run shows them; nothing here touches a server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from vpskit.files import FileSpec, FileState, differences

NOTHING: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Run:
    """A command that changes the server; ``check=False`` lets it fail (a stop of what may
    not run)."""
    argv: tuple[str, ...]
    stdin: str | None = None
    timeout: float | None = None
    check: bool = True


@dataclass(frozen=True)
class Write:
    """Files written atomically. With ``validate`` (e.g. ``("nginx", "-t")``) the previous
    files are kept aside and put back byte for byte when it fails, so a bad config never
    stays live."""
    specs: tuple[FileSpec, ...]
    validate: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hatch:
    """Work that must talk to the server (or another one) mid-step: psycopg, certbot's
    pre-flight, reach checks, a second login. Named in :data:`vpskit.hatch.HATCHES`; its
    arguments are data. Not run in a dry run, which says ``would`` instead (when set)."""
    name: str
    args: tuple[Any, ...] = ()
    would: str = ""


Action = Run | Write | Hatch


@dataclass(frozen=True)
class Plan:
    """What a step does: its actions in order, one line per change (said in a dry run too),
    the facts it makes true for later steps (``outputs``), the values it gives the app's
    env file (``app_env``) and the ones never to show (``secrets``). No actions: nothing to
    do."""
    actions: tuple[Action, ...] = ()
    changes: tuple[str, ...] = ()
    outputs: Mapping[str, Any] = field(default_factory=lambda: NOTHING)
    app_env: Mapping[str, str] = field(default_factory=lambda: NOTHING)
    secrets: tuple[str, ...] = ()

    def __add__(self, other: Plan) -> Plan:
        """This plan, then ``other``."""
        return Plan(self.actions + other.actions, self.changes + other.changes,
                    MappingProxyType({**self.outputs, **other.outputs}),
                    MappingProxyType({**self.app_env, **other.app_env}),
                    self.secrets + other.secrets)


def run(*argv: str, change: str = "", stdin: str | None = None, timeout: float | None = None,
        check: bool = True) -> Plan:
    """A plan of one command; ``change`` is its line (none: it is part of another change)."""
    return Plan((Run(tuple(argv), stdin, timeout, check),), (change,) if change else ())


def commands(argvs: Iterable[Sequence[str]]) -> Plan:
    """A plan running each command, each its own change line (the command itself)."""
    argvs = [tuple(argv) for argv in argvs]
    return Plan(tuple(Run(argv) for argv in argvs), tuple(" ".join(argv) for argv in argvs))


def write(specs: Iterable[FileSpec], states: Mapping[str, FileState],
          validate: Sequence[str] = ()) -> Plan:
    """A plan writing the specs that differ from ``states`` (validated together), a line
    each naming why; none when all hold."""
    todo = [(spec, differences(spec, states.get(spec.path))) for spec in specs]
    todo = [(spec, why) for spec, why in todo if why]
    if not todo:
        return Plan()
    return Plan((Write(tuple(spec for spec, _ in todo), tuple(validate)),),
                tuple(f"{spec.path} ({', '.join(why)})" for spec, why in todo))


def hatch(name: str, *args: Any, would: str = "") -> Plan:
    return Plan((Hatch(name, args, would),))


def outputs(**values: Any) -> Plan:
    return Plan(outputs=MappingProxyType(values))


def app_env(values: Mapping[str, str], secrets: Iterable[str] = ()) -> Plan:
    return Plan(app_env=MappingProxyType(dict(values)), secrets=tuple(secrets))


def secret(*values: str) -> Plan:
    """Values masked in every later output and error."""
    return Plan(secrets=tuple(v for v in values if v))


def writes(plan: Plan) -> list[str]:
    """The paths ``plan`` writes."""
    return [spec.path for action in plan.actions if isinstance(action, Write)
            for spec in action.specs]


F = TypeVar("F")


def facts_of(cls: type[F], found: Mapping[str, Any]) -> F:
    """A step's facts dataclass from the gathered ``{probe name: fact}``: each field is the
    fact of that name; a field with a default may be missing (its probe is not always
    gathered) (pure)."""
    return cls(**{f.name: found[f.name] for f in dataclasses.fields(cls)  # type: ignore
                  if f.name in found or f.default is dataclasses.MISSING})
