"""The PaaS's files: ``Procfile`` and ``railway.toml``/``railway.json`` give the web command,
the release commands and the other processes; Railway's ``cronSchedule`` and Dokku's
``app.json`` ``cron`` give scheduled jobs."""

from __future__ import annotations

import json
import re
import shlex
import tomllib

from vpskit import schedule
from vpskit.init.detected import Detected
from vpskit.init.repo import Repo

SPLIT = re.compile(r"\s*(?:&&|;)\s*")
_SHELL_CHARS = re.compile(r"[$`|<>*?]")
# What a process unit's ExecStart takes (vpskit.render.process_units): words without quotes, $,
# % or spaces, the first a program of the venv or an absolute path.
_PROCESS_WORD = re.compile(r"^[\w.:=/@+,-]+$")
_PROGRAM = re.compile(r"^(?:[\w.+-]+|/[\w./+-]+)$")


def procfile(repo: Repo, d: Detected) -> tuple[str, str] | None:
    """Process lines: ``release`` -> release commands, ``web`` -> returned, the rest ->
    processes."""
    text = repo.text("Procfile")
    if text is None:
        return None
    web = None
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+?)\s*$", line)
        if not match or line.lstrip().startswith("#"):
            continue
        name, command = match[1], match[2]
        if name == "web":
            web = (command, "Procfile web:")
        elif name == "release":
            d.found("release_commands", release_lines(command, d), "Procfile release:")
        else:
            _process(d, name, command)
    return web


def _process(d: Detected, name: str, command: str) -> None:
    """A Procfile process as an inventory process, named as vpskit names them; or a note when
    its process unit could not run the command as written."""
    source = f"Procfile {name}:"
    key = re.sub(r"[^a-z0-9]", "", name.lower()).lstrip("0123456789")[:20]
    if not key or key == "web" or key in d.processes:
        d.notes.append(f"{source} `{command}`: {name!r} makes no process name of its own "
                       f"(lowercase letters and digits, not web); add it to processes: yourself")
    elif not _unit_command(command):
        d.notes.append(f"{source} `{command}` needs a shell ($, quotes, &&) or a relative "
                       f"program path, which a process unit does not have: left out of "
                       f"processes:; add it there as a plain command, or a script by its "
                       f"absolute path")
    else:
        if key != name:
            d.notes.append(f"{source} is the process {key} (vpskit's process names are "
                           f"lowercase letters and digits)")
        d.processes[key] = command
        d.sources[f"processes.{key}"] = source


def _unit_command(command: str) -> bool:
    """Whether a unit's ExecStart can run ``command`` as written (no shell)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return bool(words) and bool(_PROGRAM.match(words[0])) and all(map(_PROCESS_WORD.match, words))


def job(d: Detected, name: str, command: str, cron: str, source: str) -> None:
    """A scheduled job for ``schedule:`` (a crontab schedule, UTC as on Railway); or a note when
    vpskit could not run it as written."""
    try:
        schedule.from_cron(cron)
    except ValueError as exc:
        d.notes.append(f"{source}: {exc}; add the job to schedule: yourself")
        return
    if not _unit_command(command):
        d.notes.append(f"{source} `{cron}` runs `{command}`, which needs a shell ($, quotes, &&) "
                       f"or a relative program path: left out of schedule:; add it there as a "
                       f"plain command, or a script by its absolute path")
        return
    d.schedule[name] = (command, cron)
    d.sources[f"schedule.{name}"] = source


def app_json(repo: Repo, d: Detected) -> None:
    """Dokku's ``app.json`` ``cron``: ``[{"command": ..., "schedule": ...}]``, the jobs
    ``cron``, ``cron-2``, ... after Railway's."""
    text = repo.text("app.json")
    if text is None:
        return
    try:
        entries = json.loads(text).get("cron") or []
    except (ValueError, AttributeError):
        d.notes.append("app.json does not parse as a JSON object; ignored")
        return
    for i, entry in enumerate(entries if isinstance(entries, list) else [], start=1):
        if isinstance(entry, dict):
            name = f"cron-{len(d.schedule) + 1}" if d.schedule else "cron"
            job(d, name, str(entry.get("command", "")), str(entry.get("schedule", "")),
                f"app.json cron #{i}")


def railway(repo: Repo, d: Detected) -> tuple[str, str] | None:
    """``railway.toml`` (or ``.json``) ``[deploy]``: startCommand, preDeployCommand,
    healthcheckPath; other settings become notes."""
    for rel, parse in (("railway.toml", tomllib.loads), ("railway.json", json.loads)):
        text = repo.text(rel)
        if text is None:
            continue
        try:
            data = parse(text)
        except ValueError as exc:
            d.notes.append(f"{rel} does not parse ({exc}); ignored")
            return None
        deploy, build = data.get("deploy") or {}, data.get("build") or {}
        if deploy.get("healthcheckPath"):
            path = "/" + str(deploy["healthcheckPath"]).lstrip("/")
            d.found("health_path", path, f"{rel} healthcheckPath")
        if deploy.get("healthcheckTimeout"):
            d.notes.append(f"{rel} healthcheckTimeout = {deploy['healthcheckTimeout']}: vpskit "
                           f"waits health.retries x health.timeout seconds instead")
        pre = deploy.get("preDeployCommand")
        if pre:
            lines = [line for item in ([pre] if isinstance(pre, str) else pre)
                     for line in release_lines(str(item), d)]
            d.found("release_commands", lines, f"{rel} preDeployCommand")
        if build.get("buildCommand"):
            d.notes.append(f"{rel} buildCommand `{build['buildCommand']}`: vpskit has no build "
                           f"step; add what it does to release_commands if the app needs it")
        if deploy.get("cronSchedule"):  # the service is a job: its start command, scheduled
            job(d, "cron", str(deploy.get("startCommand") or ""), str(deploy["cronSchedule"]),
                f"{rel} cronSchedule")
            return None
        if deploy.get("numReplicas", 1) != 1:
            d.notes.append(f"{rel} numReplicas = {deploy['numReplicas']}: vpskit runs one web "
                           f"service per host; raise app.workers instead")
        if deploy.get("startCommand"):
            return str(deploy["startCommand"]), f"{rel} startCommand"
    return None


def release_lines(command: str, d: Detected) -> list[str]:
    """A release command line as vpskit runs it: one argv per command, no shell. A leading
    ``python`` runs from the venv; anything needing a shell or another program goes through
    ``/bin/sh -c`` (whose PATH starts with the venv's bin)."""
    lines = []
    for part in SPLIT.split(command.strip()):
        if not part:
            continue
        words = part.split()
        if words[0] in ("python", "python3") and not _SHELL_CHARS.search(part):
            lines.append(part)
        else:
            lines.append(f"/bin/sh -c {shlex.quote(part)}")
    if len(lines) > 1:
        d.notes.append(f"release `{command}` became {len(lines)} commands, run in order "
                       f"(a failing one stops the deploy)")
    return lines
