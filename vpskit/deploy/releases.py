"""The releases on a host: what exists, which is live, which are good, which to prune.

Each release directory holds ``.vpskit-release.json`` (sha, ref, state, when, by); ``current``
points at the live one. States: ``ok`` (served healthily), ``failed`` (never went live),
``bad`` (was rolled back from). Rollback skips all but ``ok``.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, replace

from vpskit import facts, files, render
from vpskit.config import Environment
from vpskit.remote import Remote

META = ".vpskit-release.json"


@dataclass(frozen=True)
class Release:
    id: str
    sha: str = ""
    ref: str = ""
    state: str = "unknown"
    at: str = ""
    by: str = ""


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
                                     if k in ("sha", "ref", "state", "at", "by")}))
    return Releases(tuple(sorted(items, key=lambda r: r.id)), current)


def load(remote: Remote, env: Environment) -> Releases:
    return facts.gather(remote, [probe(env)])["releases"]


def write_meta(remote: Remote, env: Environment, release: Release) -> None:
    """Record a release's metadata (always writes)."""
    data = json.dumps({"sha": release.sha, "ref": release.ref, "state": release.state,
                       "at": release.at, "by": release.by})
    path = f"{render.release_dir(env, release.id)}/{META}"
    remote.run(files.write_argv(path), stdin=data + "\n")


def set_state(remote: Remote, env: Environment, release: Release, state: str) -> Release:
    updated = replace(release, state=state)
    write_meta(remote, env, updated)
    return updated
