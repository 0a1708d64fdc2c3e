"""The releases on a host: what exists, which is live, which are good, which to prune; and
the plans (pure) that unpack, build, record, clone and prune them.

Each release directory holds ``.vpskit-release.json`` (sha, ref, state, when, by); ``current``
points at the live one. States: ``ok`` (served healthily), ``failed`` (never went live),
``bad`` (was rolled back from). Rollback skips all but ``ok``.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vpskit import facts, plan, render, sh
from vpskit.config import Environment
from vpskit.files import FileSpec
from vpskit.plan import Plan

if TYPE_CHECKING:
    from vpskit.remote import Remote

META = ".vpskit-release.json"
FIELDS = ("sha", "ref", "state", "at", "by", "note")


@dataclass(frozen=True)
class Release:
    id: str
    sha: str = ""
    ref: str = ""
    state: str = "unknown"
    at: str = ""
    by: str = ""
    note: str = ""  # why a release that is not a deploy exists, e.g. "env: FEATURE_FLAG"


@dataclass(frozen=True)
class Releases:
    items: tuple[Release, ...]  # oldest first
    current: str | None

    def get(self, release_id: str) -> Release | None:
        return next((r for r in self.items if r.id == release_id), None)

    def previous_good(self) -> Release | None:
        """The newest ``ok`` release older than the live one (the rollback target)."""
        older = [r for r in self.items if self.current is None or r.id < self.current]
        return next((r for r in reversed(older) if r.state == "ok"), None)

    def to_prune(self, keep: int) -> list[str]:
        """Everything but the live release and the newest good ones, ``keep`` in all.

        Failed, bad and unfinished releases go first: they are never rollback targets.
        """
        kept = {self.current} if self.current else set()
        for release in reversed(self.items):
            if len(kept) >= keep:
                break
            if release.state == "ok":
                kept.add(release.id)
        return [r.id for r in self.items if r.id not in kept]


def probe(env: Environment) -> facts.Probe:
    rel = shlex.quote(str(env.releases_dir))
    cmd = (f"for d in {rel}/*/; do [ -d \"$d\" ] || continue; "
           f"printf '%s %s\\n' \"$(basename \"$d\")\" \"$(tr -d '\\n' < \"$d{META}\" "
           f"2>/dev/null)\"; done; printf 'current %s\\n' "
           f"\"$(readlink {shlex.quote(str(env.current_link))})\"")
    return facts.Probe("releases", cmd, lambda out, rc: parse(out))


def parse(out: str) -> Releases:
    """Parse the probe's lines: ``<id> <json>`` per release, then ``current <target>`` (pure)."""
    items, current = [], None
    for line in out.splitlines():
        rid, _, rest = line.partition(" ")
        if rid == "current":
            current = rest.strip().rstrip("/").rsplit("/", 1)[-1] or None
            continue
        try:
            meta = json.loads(rest) if rest.strip() else {}
        except ValueError:
            meta = {}
        items.append(Release(rid, **{k: str(v) for k, v in meta.items()
                                     if k in FIELDS}))
    return Releases(tuple(sorted(items, key=lambda r: r.id)), current)


def load(remote: Remote, env: Environment) -> Releases:
    return facts.gather(remote, [probe(env)])["releases"]


def new_id(short_sha: str, now: datetime | None = None) -> str:
    """``<UTC timestamp>-<short sha>``, sortable by time (pure)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{short_sha}"


def meta_json(release: Release) -> str:
    return json.dumps({k: getattr(release, k) for k in FIELDS if getattr(release, k)}) + "\n"


UNPACK_SCRIPT = sh.script("unpack")
VENV_SCRIPT = sh.script("venv")
PIP_LOG = ".vpskit-pip.log"
PRUNE_SCRIPT = sh.script("prune-releases")


def unpack(env: Environment, made: Release, archive: bytes) -> Plan:
    """The commit's tree (``archive``, a tar) as release ``made``, root's and read-only for the
    app, recorded as ``new``; too little free space for it is one line."""
    return plan.run("bash", "-c", UNPACK_SCRIPT, "unpack", render.release_dir(env, made.id),
                    env.app_user, made.sha, str(len(archive)), stdin=archive, timeout=600,
                    read=("room", "the release", str(env.releases_dir))) + record(env, made)


def virtualenv(env: Environment, release_id: str, requirements: bytes | None,
               python: tuple[int, int] | None) -> Plan:
    """Build the venv for these ``requirements`` as the app user, then make it root's and
    read-only for the app (reused when built before); a pip failure is one line (for the
    server's ``python``), with pip's full output left in the release's ``.vpskit-pip.log``
    (0600), and so is too little space."""
    key = hashlib.sha256(requirements or b"").hexdigest()[:16]
    release = render.release_dir(env, release_id)
    log, venvs = f"{release}/{PIP_LOG}", f"{env.root}/venvs"
    return plan.run("bash", "-c", VENV_SCRIPT, "venv", venvs, key, release,
                    env.app.requirements, log, env.app_user, timeout=1800,
                    read=("venv", key, env.app.requirements, log, venvs, python))


def pruned(env: Environment, found: Releases) -> Plan:
    """Remove the releases beyond ``releases_keep`` (:meth:`Releases.to_prune`) and the
    virtualenvs no release links to any more."""
    doomed = found.to_prune(env.releases_keep)
    if not doomed:
        return Plan()
    return plan.run("bash", "-c", PRUNE_SCRIPT, "prune", str(env.root), *doomed,
                    change=f"removed {len(doomed)} old release(s)")


def record(env: Environment, release: Release) -> Plan:
    """Record a release's metadata (always writes)."""
    path = f"{render.release_dir(env, release.id)}/{META}"
    return plan.overwrite(FileSpec(path, meta_json(release)))


CLONE_SCRIPT = sh.script("clone-release")


def successor(live: Release, note: str, by: str) -> Release:
    """A new release (state ``new``) of ``live``'s code, made now for ``note`` (pure but for
    the clock)."""
    return Release(new_id(live.id.rpartition("-")[2]), live.sha, live.ref, "new",
                   datetime.now(UTC).isoformat(timespec="seconds"), by, note)


def clone(env: Environment, live: Release, made: Release) -> Plan:
    """``made`` of ``live``'s files, hard-linked: the same code and virtualenv, nothing copied
    or built. It appears whole or not at all."""
    return plan.run("bash", "-c", CLONE_SCRIPT, "clone-release", str(env.releases_dir), live.id,
                    made.id, stdin=meta_json(made))


def marked(env: Environment, release: Release, state: str) -> Plan:
    """Record ``release`` as now in ``state``."""
    return record(env, replace(release, state=state))
