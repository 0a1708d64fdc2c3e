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
    not run). ``read`` names how its result is read, then the reader's arguments
    (:data:`vpskit.readers.READERS`): its exit code and output become change lines and facts,
    or one error."""
    argv: tuple[str, ...]
    stdin: bytes | str | None = None
    timeout: float | None = None
    check: bool = True
    read: tuple[Any, ...] = ()


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


@dataclass(frozen=True)
class Undo:
    """What puts the server back, registered before the ``covers`` risky actions after it:
    should one of them fail or be interrupted, the applier runs these (shielded from signals),
    and the error ends with ``said``."""
    actions: tuple[Run | Write, ...]
    covers: int
    said: str = ""


Action = Run | Write | Hatch | Undo


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


def run(*argv: str, change: str = "", stdin: bytes | str | None = None,
        timeout: float | None = None, check: bool = True, read: tuple[Any, ...] = ()) -> Plan:
    """A plan of one command; ``change`` is its line (none: it is part of another change)."""
    return Plan((Run(tuple(argv), stdin, timeout, check, read),), (change,) if change else ())


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


def overwrite(*specs: FileSpec) -> Plan:
    """A plan writing ``specs`` whatever is there, with no line of its own (part of a change
    said elsewhere)."""
    return Plan((Write(specs),))


def guarded(risky: Plan, back: Plan, said: str = "") -> Plan:
    """``risky``, with ``back`` (commands and writes) to put the server back should one of its
    actions fail."""
    kept = tuple(a for a in back.actions if isinstance(a, Run | Write))
    assert len(kept) == len(back.actions), "an undo is commands and writes only"
    return Plan((Undo(kept, len(risky.actions), said),)) + risky


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
                  if f.name in found or (f.default is dataclasses.MISSING
                                         and f.default_factory is dataclasses.MISSING)})
