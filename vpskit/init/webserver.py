"""The web server's settings (server, entry, workers, worker class, timeouts) from the web
command line and from ``gunicorn.conf.py``."""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from pathlib import Path
from typing import NoReturn

from vpskit.init.detected import Detected
from vpskit.init.framework import entry_settings
from vpskit.init.paas import SPLIT, release_lines
from vpskit.init.repo import Repo
from vpskit.inventory import ENTRY_RE

SERVERS = ("gunicorn", "uvicorn", "daphne")


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _server_parser(server: str) -> _ArgParser:
    """The options of each server that matter to the inventory. Other options stay in the
    leftovers with their values, where none looks like an entry point (``module:name``)."""
    parser = _ArgParser(prog=server, add_help=False, allow_abbrev=False)
    add = parser.add_argument
    if server == "gunicorn":
        for flags in (("-w", "--workers"), ("-k", "--worker-class"), ("-t", "--timeout"),
                      ("--graceful-timeout",), ("--threads",), ("-c", "--config"), ("--chdir",),
                      ("--log-level",)):  # a level would pass for gunicorn's bare `module`
            add(*flags)
    elif server == "uvicorn":
        add("--workers")
        add("--timeout-graceful-shutdown")
        add("--factory", action="store_true")
        add("--app-dir")
    else:
        add("--http-timeout")
    return parser


def web_command(repo: Repo, d: Detected, command: str, source: str) -> None:
    """Server, entry, workers, worker class and timeouts from the web command line."""
    segments = [part for part in SPLIT.split(command.strip()) if part]
    for index, segment in enumerate(segments):
        try:
            words = shlex.split(segment)
        except ValueError as exc:
            d.notes.append(f"{source} `{command}` does not parse ({exc}); not used")
            return
        server_at = next((i for i, w in enumerate(words) if Path(w).name in SERVERS), None)
        if server_at is None:
            continue
        before = [w for w in words[:server_at] if w != "exec" and not re.match(r"^\w+=", w)]
        if before[-2:] in (["python", "-m"], ["python3", "-m"]):
            before = before[:-2]
        if before:
            d.notes.append(f"{source} wraps the server in `{' '.join(before)}`: dropped, vpskit "
                           f"starts the server itself")
        if index:
            moved = release_lines(" && ".join(segments[:index]), d)
            d.found("release_commands", (d.release_commands or []) + moved,
                    f"{source} (before the server)")
            d.notes.append(f"{source} runs `{' && '.join(segments[:index])}` before the server: "
                           f"moved to release_commands (run once per deploy, before the switch)")
        if segments[index + 1:]:
            d.notes.append(f"{source}: `{' && '.join(segments[index + 1:])}` after the server "
                           f"is ignored")
        _server_args(repo, d, Path(words[server_at]).name, words[server_at + 1:], source)
        return
    d.notes.append(f"{source} `{command}` starts none of {', '.join(SERVERS)}: the server "
                   f"settings below are defaults")


def _server_args(repo: Repo, d: Detected, server: str, args: list[str], source: str) -> None:
    try:
        opts, rest = _server_parser(server).parse_known_args(args)
    except ValueError as exc:
        d.notes.append(f"{source}: {server} options do not parse ({exc}); defaults used")
        return
    d.found("server", server, source)
    entries = [w for w in rest if ENTRY_RE.match(w)]
    if not entries and server == "gunicorn":  # gunicorn's `module` means `module:application`
        entries = [f"{w}:application" for w in rest
                   if re.fullmatch(r"[A-Za-z_][\w.]*", w) and repo.module_text(w)]
    if entries:
        entry = entries[-1] + ("()" if getattr(opts, "factory", False) else "")
        d.found("entry", entry, source)
        _kind_of_entry(repo, d, entry, source)
    if server == "gunicorn":
        for name in ("workers", "worker_class", "timeout", "graceful_timeout"):
            _set_option(d, name, getattr(opts, name), source)
        if opts.threads:
            if d.worker_class in (None, "sync"):
                d.found("worker_class", "gthread", f"{source} --threads")
            d.notes.append(f"{source} --threads {opts.threads}: vpskit does not pass --threads "
                           f"(gthread workers then run one thread each); raise workers instead")
        for flag, what in ((opts.config, "--config"), (opts.chdir, "--chdir")):
            if flag:
                d.notes.append(f"{source} {what} {flag}: not passed by vpskit; check the "
                               f"inventory's values match it")
        if d.worker_class and "uvicorn" in d.worker_class.lower():
            d.found("kind", "asgi", f"{source} --worker-class {d.worker_class}")
    elif server == "uvicorn":
        _set_option(d, "workers", opts.workers, source)
        _set_option(d, "graceful_timeout", opts.timeout_graceful_shutdown, source)
        if opts.app_dir:
            d.notes.append(f"{source} --app-dir {opts.app_dir}: not passed by vpskit; the "
                           f"entry is imported from the release root")
    else:
        _set_option(d, "timeout", opts.http_timeout, source)
    if server in ("uvicorn", "daphne"):
        d.found("kind", "asgi", f"{source} {server}")


def _set_option(d: Detected, name: str, raw: str | None, source: str) -> None:
    if raw is None:
        return
    if name == "worker_class":
        d.found(name, raw, source)
        return
    default = re.fullmatch(r"\$\{\w+:-(\d+)\}", raw)
    value = int(default[1] if default else raw) if raw.isdigit() or default else None
    if value is None:
        d.notes.append(f"{source}: {name} `{raw}` is not a number; left at the default")
    elif not 1 <= value <= (64 if name == "workers" else 86400):
        d.notes.append(f"{source}: {name} {value} is outside what vpskit accepts; left at the "
                       f"default")
    else:
        d.found(name, value, source)
        if default:
            d.notes.append(f"{source}: {name} `{raw}` read from the environment; the inventory "
                           f"uses its default, {value}")


def _kind_of_entry(repo: Repo, d: Detected, entry: str, source: str) -> None:
    found = repo.module_text(entry.split(":")[0])
    text = found[1] if found else ""
    if "get_wsgi_application" in text:
        d.found("kind", "django", f"{source} entry is Django's WSGI application")
    elif "get_asgi_application" in text or "ProtocolTypeRouter" in text:
        d.found("kind", "asgi", f"{source} entry is an ASGI application")
    elif "Flask(" in text:
        d.found("kind", "flask", f"{source} entry is a Flask app")
    if d.django_settings and found:
        entry_settings(repo, d, entry)


def gunicorn_conf(repo: Repo, d: Detected) -> None:
    """Literal settings of ``gunicorn.conf.py``, which gunicorn also loads on the server."""
    text = repo.text("gunicorn.conf.py")
    if text is None:
        return
    try:
        tree = ast.parse(text)
    except SyntaxError:
        d.notes.append("gunicorn.conf.py does not parse; its settings are not in the inventory")
        return
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("workers", "worker_class", "timeout", "graceful_timeout"):
                if isinstance(node.value, ast.Constant):
                    _set_option(d, name, str(node.value.value), "gunicorn.conf.py")
                else:
                    d.notes.append(f"gunicorn.conf.py computes {name}; the inventory's value "
                                   f"wins on the command line")
    d.notes.append("gunicorn.conf.py is loaded by gunicorn on the server too (from the release "
                   "directory); the inventory's flags win over it")
