"""The releases on a host: what exists, which is live, which are good, which to prune.

Each release directory holds ``.vpskit-release.json`` (sha, ref, state, when, by); ``current``
points at the live one. States: ``ok`` (served healthily), ``failed`` (never went live),
``bad`` (was rolled back from). Rollback skips all but ``ok``.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from vpskit import facts, files, render, sh
from vpskit.config import Environment
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


def write_meta(remote: Remote, env: Environment, release: Release) -> None:
    """Record a release's metadata (always writes)."""
    path = f"{render.release_dir(env, release.id)}/{META}"
    files.write(remote, files.FileSpec(path, meta_json(release)))


CLONE_SCRIPT = sh.script("clone-release")


def clone(remote: Remote, env: Environment, live: Release, note: str, by: str) -> Release:
    """A new release (state ``new``) made of ``live``'s files, hard-linked: the same code and
    virtualenv, nothing copied or built. It appears whole or not at all."""
    made = Release(new_id(live.id.rpartition("-")[2]), live.sha, live.ref, "new",
                   datetime.now(UTC).isoformat(timespec="seconds"), by, note)
    remote.run(["bash", "-c", CLONE_SCRIPT, "clone-release", str(env.releases_dir), live.id,
                made.id], stdin=meta_json(made))
    return made


def set_state(remote: Remote, env: Environment, release: Release, state: str) -> Release:
    updated = replace(release, state=state)
    write_meta(remote, env, updated)
    return updated
