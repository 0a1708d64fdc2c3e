"""The script the backup timer runs on the db host, and the names and commands it shares with
``fab backup`` (:mod:`vpskit.backups`): what a backup is called, how it is made and pruned,
``fab backup``'s steps as plans, and the nightly restore check (pure)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from vpskit import ci_login, offsite, plan, render, sh
from vpskit.config import Environment
from vpskit.plan import Plan
from vpskit.sh.prune_backups import STAMP

DUMP, MEDIA = ".dump", "-media.tar.gz"

ARCHIVE_SCRIPT = sh.script("archive")
PRUNE_PROGRAM = sh.program("prune_backups")
RESTORE_SCRIPT = sh.script("restore")
RESTORE_CHECK_SCRIPT = sh.script("restore-check")


def restore_check_db(env: Environment) -> str:
    """The scratch database the nightly restore check fills and drops (pure)."""
    return f"{env.db_name[:48]}_restorecheck"


def backup_name(site: str, stamp: str, label: str = "", suffix: str = DUMP) -> str:
    """``<site>-<stamp>[-label]<suffix>`` (pure)."""
    clean = re.sub(r"[^A-Za-z0-9.-]", "-", label)
    return f"{site}-{stamp}{f'-{clean}' if clean else ''}{suffix}"


def archive_argv(env: Environment, name: str, kind: str) -> list[str]:
    """Make ``name`` in the backup directory: the database (``dump``) or shared/media."""
    source = env.db_name if kind == "dump" else str(env.shared_dir / "media")
    return ["bash", "-c", ARCHIVE_SCRIPT, "archive", str(env.backup_dir), name, kind, source]


@dataclass(frozen=True)
class Artifact:
    """A verified backup file on the server."""

    path: str
    size: int
    sha256: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"{self.path} ({self.size / 1e6:.1f} MB)"


def archived(env: Environment, name: str, kind: str = "dump") -> Plan:
    """Write, verify and rename ``name`` in the backup directory (always acts); its
    :class:`Artifact` becomes the fact named by its path."""
    command = ("pg_dump", env.db_name) if kind == "dump" else ("tar", str(env.shared_dir))
    return plan.run(*archive_argv(env, name, kind), timeout=3600,
                    read=("archived", f"{env.backup_dir}/{name}", command))


def backup_steps(env: Environment, stamp: str, local: str) -> list[tuple[str, Plan]]:
    """``fab backup`` at ``stamp``: the dump (and media) on the db host, the off-site copy
    sent from there, the copies fetched to ``local`` verified, then both sides pruned; a
    failed step stops the rest, so nothing is pruned after a failure."""
    names = [backup_name(env.site, stamp)]
    steps = [("dump", archived(env, names[0]))]
    if env.backups.media:
        names.append(backup_name(env.site, stamp, suffix=MEDIA))
        steps.append(("media", archived(env, names[1], "media")))
    paths = tuple(f"{env.backup_dir}/{name}" for name in names)
    if env.offsite.enabled:
        steps.append(("offsite", plan.run(*offsite.upload_argv(env, list(paths)), timeout=3600,
                                          check=False, read=("offsite",))))
    return [*steps, ("copy", plan.hatch("fetch_backups", local, ("cat", "--"))),
            ("prune", plan.run(*prune_argv(env), check=False,
                               read=("pruned", str(env.backup_dir)))
             + plan.hatch("prune_copies", local))]


def service_backup_steps(env: Environment, local: str) -> list[tuple[str, Plan]]:
    """``fab backup`` through the CI login: the server's backup service run by ``vpskit-site``
    (it waits for the site's lock, and also checks a restore and prunes the server), then the
    copies fetched to ``local`` verified, and the copies here and off-site pruned."""
    unit = render.backup_unit_name(env, "service")
    return [("backup", plan.run(*ci_login.argv("backup", env),  # it stops itself: no `timeout`
                                read=("made", str(env.backup_dir), unit))),
            ("copy", plan.hatch("fetch_backups", local, tuple(ci_login.argv("fetch", env)))),
            ("prune", plan.hatch("prune_copies", local))]


def prune_argv(env: Environment) -> list[str]:
    return ["python3", "-c", PRUNE_PROGRAM, str(env.backup_dir), env.site,
            str(env.backups.keep_days)]


def server_script(env: Environment) -> str:
    """What the backup timer runs: the commands ``fab backup`` runs on the server, named by the
    run's own UTC stamp, then the nightly restore check of the new dump (a failure fails the
    unit, which the watchdog tells of) and the server's retention."""
    stamp = "${stamp}"
    names = [backup_name(env.site, stamp)] + (
        [backup_name(env.site, stamp, suffix=MEDIA)] if env.backups.media else [])
    steps = [archive_argv(env, name, kind) for name, kind in zip(names, ("dump", "media"),
                                                                 strict=False)]
    programs = {ARCHIVE_SCRIPT: "archive", PRUNE_PROGRAM: "prune"}
    if env.offsite.enabled:
        steps.append(offsite.upload_argv(env, [f"{env.backup_dir}/{name}" for name in names]))
        programs[offsite.PROGRAM] = "offsite"
    steps.append(["bash", "-c", RESTORE_CHECK_SCRIPT, "restore-check", RESTORE_SCRIPT,
                  f"{env.backup_dir}/{names[0]}", restore_check_db(env), env.db_user])
    programs.update({RESTORE_CHECK_SCRIPT: "check", RESTORE_SCRIPT: "restore"})
    steps.append(prune_argv(env))

    def word(arg: str) -> str:
        if arg in programs:
            return f'"${programs[arg]}"'
        return f'"{arg}"' if stamp in arg else shlex.quote(arg)
    return "\n".join([
        "#!/bin/bash",
        f"# Managed by vpskit: {env.site} backup (dump, media archive, off-site copy, "
        f"restore check, retention); its timer runs it.",
        "set -euo pipefail",
        *(f"{var}={shlex.quote(text)}" for text, var in programs.items()),
        f"stamp=$(date -u +{STAMP})",
        *(" ".join(map(word, argv)) for argv in steps), "",
    ])
