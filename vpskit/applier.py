"""The one applier: carries a step's :class:`~vpskit.plan.Plan` out on its server, or in a dry
run shows it (a diff per file; a hatch says what it would do). Plans come from pure
``plan(env, host, facts)`` functions; this module and :mod:`vpskit.hatch` are the only ones a
step's work reaches the server through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vpskit import files, hatch, interrupts, readers
from vpskit.config import Environment, Host
from vpskit.errors import RemoteError, ToolkitError
from vpskit.files import FileSpec
from vpskit.plan import Hatch, Plan, Run, Undo, Write, facts_of
from vpskit.remote import Remote
from vpskit.steps import Reporter, run_steps


@dataclass
class Context:
    """One host's run: its config, connection, reporter, and the facts gathered there, with
    what earlier steps' plans made true (``outputs``; the app's env values in ``managed_env``)."""
    env: Environment
    host: Host
    remote: Remote
    out: Reporter
    dry_run: bool = False
    facts: dict[str, Any] = field(default_factory=dict)


Planner = Callable[[Environment, Host, Any], Plan]


def step(planner: Planner, facts_type: type, *more: tuple[Planner, type]
         ) -> Callable[[Context], list[str]]:
    """A step for :func:`vpskit.steps.run_steps`: each planner in turn gets its facts (of
    ``facts_type``, as the earlier ones left them) and its plan is applied."""
    def run(ctx: Context) -> list[str]:
        changes: list[str] = []
        for plan_of, kind in ((planner, facts_type), *more):
            changes += apply(ctx, plan_of(ctx.env, ctx.host, facts_of(kind, ctx.facts)))
        return changes
    return run


def apply_steps(ctx: Context, steps: Sequence[tuple[str, Plan]]) -> None:
    """Apply each named step's plan in turn, a line per step (:func:`run_steps`)."""
    run_steps(ctx, [(name, lambda c, p=p: apply(c, p)) for name, p in steps], ctx.out,
              ctx.dry_run)


def apply_quietly(env: Environment, host: Host, remote: Remote, plan: Plan) -> Context:
    """:func:`apply` ``plan`` on ``host`` with no lines of its own (a part of a step said
    elsewhere); the context, holding the facts it learnt."""
    ctx = Context(env, host, remote, Reporter(quiet=True))
    apply(ctx, plan)
    return ctx


def apply(ctx: Context, plan: Plan) -> list[str]:
    """Carry ``plan`` out in order (a dry run writes and runs nothing); return its change
    lines. Its outputs and env values are facts for later steps from here on. Should an
    action fail or be interrupted, the undos guarding it run, the last registered first."""
    _learn(ctx, plan)
    changes = list(plan.changes)
    guards: list[tuple[Undo, int]] = []  # (undo, how many actions it still covers)
    try:
        for action in plan.actions:
            if not isinstance(action, Undo):
                changes += _act(ctx, action)
            guards = [(undo, left - 1) for undo, left in guards if left > 1]
            if isinstance(action, Undo):
                guards.append((action, action.covers))
    except BaseException as exc:
        if guards and not ctx.dry_run:
            _undo(ctx, [undo for undo, _ in guards], exc)
        raise
    return changes


def _act(ctx: Context, action: Run | Write | Hatch) -> list[str]:
    """Carry one action out (or show it, in a dry run); the change lines it read or made."""
    if isinstance(action, Write):
        _write(ctx, action)
    elif isinstance(action, Run) and not ctx.dry_run:
        return _run(ctx, action)
    elif isinstance(action, Hatch) and ctx.dry_run:
        return [action.would] if action.would else []
    elif isinstance(action, Hatch):
        result = hatch.HATCHES[action.name](ctx, *action.args)
        _learn(ctx, result)
        return list(result.changes)
    return []


def _run(ctx: Context, action: Run) -> list[str]:
    """Run one command; its reader (if any) gives its lines and facts or its one (masked)
    error, then a failure it let pass fails as any checked command does."""
    remote = ctx.remote
    result = remote.run(action.argv, stdin=action.stdin, timeout=action.timeout,
                        check=action.check and not action.read)
    if not action.read:
        return []
    name, *args = action.read
    try:
        made = readers.READERS[name](remote.host, result, *args)
    except readers.FailedAs as exc:
        raise remote.error(exc.argv, result) from None
    except ToolkitError as exc:
        raise type(exc)(remote.masked(str(exc))) from None
    if action.check and not result.ok:
        raise remote.error(action.argv, result)
    _learn(ctx, made)
    return list(made.changes)


def _undo(ctx: Context, undos: list[Undo], exc: BaseException) -> None:
    """Run ``undos`` last first, shielded from signals; ``exc`` then says what they did (or
    that they failed too)."""
    with interrupts.shielded():
        try:
            for undo in reversed(undos):
                for action in undo.actions:
                    _act(ctx, action)
        except Exception as failed:
            raise RemoteError(ctx.remote.masked(f"{exc}; putting back also failed: {failed}")
                              ) from exc
    said = "; ".join(u.said for u in reversed(undos) if u.said)
    if said and isinstance(exc, ToolkitError) and exc.args:
        exc.args = (f"{exc.args[0]}; {said}", *exc.args[1:])


def _learn(ctx: Context, plan: Plan) -> None:
    """``plan``'s secrets masked, its outputs and env values facts, from now on."""
    for value in plan.secrets:
        ctx.remote.add_secret(value)
    ctx.facts.update(plan.outputs)
    if plan.app_env:
        ctx.facts["managed_env"] = {**ctx.facts.get("managed_env", {}), **plan.app_env}


def _write(ctx: Context, action: Write) -> None:
    if ctx.dry_run:
        for spec in action.specs:
            old = ctx.remote.run(["cat", spec.path], check=False)
            ctx.out.line(files.unified_diff(spec, old.stdout if old.ok else None,
                                            ctx.remote.secrets))
    elif action.validate:
        write_validated(ctx.remote, action.specs, action.validate)
    else:
        for spec in action.specs:
            files.write(ctx.remote, spec)


def write_validated(remote: Remote, specs: Sequence[FileSpec], validate: Sequence[str]) -> None:
    """Write ``specs``, then run ``validate``; when it fails, the previous files are put back
    byte for byte and the error says so."""
    paths = [s.path for s in specs]
    remote.script(BACKUP, args=paths)
    try:
        for spec in specs:
            files.write(remote, spec)
        remote.run(validate)
    except RemoteError as exc:
        remote.script(RESTORE, args=paths)
        raise RemoteError(f"{exc}; previous files restored") from None
    remote.script(DROP_BACKUP, args=paths)


# Previous versions wait outside their directory (nginx includes sites-enabled/* whole).
KEEP = "/var/lib/vpskit/previous"
BACKUP = (f'for f in "$@"; do b={KEEP}$f; rm -f "$b"; mkdir -p "$(dirname "$b")"; '
          '[ -e "$f" ] && cp -a "$f" "$b"; done; true')
RESTORE = (f'for f in "$@"; do b={KEEP}$f; if [ -e "$b" ]; then mv -f "$b" "$f"; '
           'else rm -f "$f"; fi; done')
DROP_BACKUP = f'for f in "$@"; do rm -f {KEEP}$f; done'
