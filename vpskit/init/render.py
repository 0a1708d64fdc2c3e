"""The inventory text of what was detected: valid values, each commented with its source, and
``FILL ME`` where only the operator knows."""

from __future__ import annotations

import json
import re
import textwrap

import yaml

from vpskit import config
from vpskit.errors import ToolkitError
from vpskit.init.detected import Detected
from vpskit.inventory import NAME_RE

PLACEHOLDER_ADDRESS = "203.0.113.10"  # TEST-NET-3: valid, and never a real server
PLACEHOLDER_DOMAIN = "app.example.com"
PLACEHOLDER_EMAIL = "ops@example.com"
_COMMENT_COLUMN = 36


def _scalar(value: object) -> str:
    """``value`` as a YAML scalar that reads back as exactly that value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = (re.fullmatch(r"[A-Za-z0-9_./~][\w./:@~+=, ()-]*", text) and not text.endswith(":")
             and ": " not in text and " #" not in text and not text.endswith(" "))
    if plain:
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text)


def _line(indent: int, text: str, comment: str = "") -> str:
    line = " " * indent + text
    if not comment:
        return line
    return f"{line.ljust(_COMMENT_COLUMN - 1)} # {comment}"


def _why(d: Detected, name: str, fallback: str) -> str:
    """The comment of a detected setting: where it came from, or that it was not found."""
    source = d.sources.get(name)
    return f"from {source}" if source else f"not detected: {fallback}"


def _comment_block(text: str, first: str = "# ", rest: str = "# ") -> list[str]:
    return textwrap.wrap(text, 99, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False, break_long_words=False)


def render_inventory(detected: Detected, app_name: str) -> str:
    """A complete inventory for ``detected``, loadable once the host and domain are filled in.

    Every value is valid; what could not be detected is a default marked ``not detected`` and
    what only the operator knows (server address, domains, ACME email) is marked ``FILL ME``.
    """
    if not NAME_RE.match(app_name):
        raise ToolkitError(f"app name {app_name!r}: use 1-20 lowercase letters and digits, "
                           f"starting with a letter")
    d = detected
    app = config.App(name=app_name, repo=".")
    read = ", ".join([*d.read, "the Python sources"])
    out = _comment_block(
        f"vpskit inventory of {app_name}, written by `fab init` from this repository (read: "
        f"{read}). Fill in every FILL ME and check every `not detected`, then run: "
        f"fab provision --env production")
    out += [
        "#",
        "# Sections at the top level are defaults; an environment may override any key of them.",
        "# Secret VALUES never go here: list their names under `secrets:` and put the values in",
        "# the operator's environment (export SECRET_KEY=...) or in `.env.<environment>` next to",
        "# this file (mode 0600, never committed).",
    ]
    if d.notes:
        out += ["#", "# What fab init noticed:"]
        for note in d.notes:
            out += _comment_block(note, first="#   - ", rest="#     ")
    out.append("")

    repo_comment = ("this directory (a git repository)" if d.git else
                    "FILL ME: not a git repository: git init + commit, or a git URL")
    if d.remote:
        repo_comment += f"; or its remote {d.remote}"
    kind = d.kind or "flask"
    server = d.server or ("uvicorn" if kind == "asgi" else app.server)
    gunicorn = server == "gunicorn"
    out += [
        "app:",
        _line(2, f"name: {app_name}", "1-20 lowercase letters/digits; site = <name>-<environment>"),
        _line(2, "repo: .", repo_comment),
        _line(2, f"ref: {_scalar(d.ref or app.ref)}",
              _why(d, "ref", "the branch, tag or sha deployed by default")),
        _line(2, f"kind: {kind}", _why(d, "kind", "django | flask (any WSGI app) | asgi")),
        _line(2, f"entry: {_scalar(d.entry or 'app:app')}",
              _why(d, "entry", "FILL ME with the WSGI/ASGI callable, module:name")),
    ]
    if d.django_settings:
        out.append(_line(2, f"django_settings: {_scalar(d.django_settings)}",
                         f"DJANGO_SETTINGS_MODULE, {_why(d, 'django_settings', '')}"))
    out += [
        _line(2, f"server: {server}", _why(d, "server", f"the usual server of {kind} apps")),
        _line(2, f"workers: {d.workers or (1 if server == 'daphne' else app.workers)}",
              "unused: daphne runs one process" if server == "daphne" else
              _why(d, "workers", "vpskit's default")),
        _line(2, f"worker_class: {_scalar(d.worker_class or app.worker_class)}",
              _why(d, "worker_class", "gunicorn's sync workers") if gunicorn else
              f"unused by {server}"),
        _line(2, f"timeout: {d.timeout or app.timeout}",
              _why(d, "timeout", "seconds a request may take")),
        _line(2, f"graceful_timeout: {d.graceful_timeout or app.graceful_timeout}",
              _why(d, "graceful_timeout", "seconds the server gets to finish on stop")),
        _line(2, f"requirements: {_scalar(d.requirements or app.requirements)}",
              _why(d, "requirements", "FILL ME: no requirements file found; commit one")),
    ]
    if d.release_commands:
        out.append(_line(2, "release_commands:",
                         f"{_why(d, 'release_commands', '')}; run in order before the switch"))
        out += [f"    - {_scalar(line)}" for line in d.release_commands]
    else:
        default = "migrate + collectstatic" if d.django_settings else "nothing"
        out.append(_line(2, "# release_commands: []",
                         f"not detected: the {kind} default runs {default}"))

    redis, health = config.Redis(), config.Health()
    tls, backups, nginx, system = config.TLS(), config.Backups(), config.Nginx(), config.System()
    deps = d.requirements or "the requirements"
    out += [
        "",
        "postgres:",
        _line(2, f"enabled: {_scalar(d.postgres is not False)}",
              "not detected: no requirements read" if d.postgres is None else
              f"a PostgreSQL driver is in {deps}" if d.postgres else
              f"no PostgreSQL driver in {deps}"),
        "",
        "redis:",
        _line(2, f"enabled: {_scalar(d.redis is not False)}",
              "not detected: no requirements read" if d.redis is None else
              f"a Redis client is in {deps}" if d.redis else f"no Redis client in {deps}"),
        _line(2, f"maxmemory: {_scalar(redis.maxmemory)}"),
        _line(2, f"policy: {_scalar(redis.policy)}"),
        "",
        "health:",
        _line(2, f"path: {_scalar(d.health_path or health.path)}",
              _why(d, "health_path", "the app must answer it with 200, or change it")),
        _line(2, f"status: {health.status}"),
        _line(2, f"timeout: {health.timeout}", "seconds per attempt"),
        _line(2, f"retries: {health.retries}"),
        "",
        "tls:",
        _line(2, f"enabled: {_scalar(tls.enabled)}"),
        _line(2, f"email: {PLACEHOLDER_EMAIL}", "FILL ME: the ACME account email"),
        _line(2, f"www_redirect: {tls.www_redirect}", "none | to_bare | to_www"),
        "",
        "backups:",
        _line(2, f"keep_days: {backups.keep_days}", "retention on the server and in local_dir"),
        _line(2, f"local_dir: {_scalar(backups.local_dir)}",
              "off-site copy on the machine running `fab backup`"),
        _line(2, f"timer: {_scalar(backups.timer)}", "e.g. \"*-*-* 03:00:00\" for a nightly timer"),
        _line(2, f"media: {_scalar(d.media)}",
              "the app reads MEDIA_ROOT (uploads)" if d.media else "the app reads no MEDIA_ROOT"),
        "",
        "nginx:",
        _line(2, f"client_max_body_size: {_scalar(nginx.client_max_body_size)}"),
        _line(2, f"rate_limit: {_scalar(nginx.rate_limit)}"),
        _line(2, f"rate_burst: {nginx.rate_burst}"),
        "",
        "system:",
        _line(2, f"swap_mb: {system.swap_mb}", "swap file on machines with less than 2 GiB RAM"),
        _line(2, f"timezone: {_scalar(system.timezone)}"),
        "",
        "releases_keep: 5",
        "",
        _line(0, "env:" if d.env_vars else "env: {}",
              "non-secret app settings, written to the server's env file"),
    ]
    if d.env_vars:
        out.append("  # The app also reads these; its own defaults apply unless they are set here:")
        out += [f"  # {name}:" for name in d.env_vars]
    out.append(_line(0, "secrets:" if d.secrets else "secrets: []",
                     "required: values from the environment or .env.<environment>"))
    out += [f"  - {name}" for name in d.secrets]
    out.append(_line(0, "optional_secrets:" if d.optional_secrets else "optional_secrets: []"))
    out += [f"  - {name}" for name in d.optional_secrets]
    if d.processes:
        out += ["", "# Other Procfile processes; vpskit does not run these yet:"]
        out += [f"#   {name}: {command}" for name, command in d.processes.items()]
    out += [
        "",
        "environments:",
        "  production:",
        "    hosts:",
        _line(6, f"- address: {PLACEHOLDER_ADDRESS}", "FILL ME: the server's IP or DNS name"),
        _line(8, "# key: ~/.ssh/id_ed25519", "private key; default: ssh-agent / ~/.ssh keys"),
        _line(8, "roles: [web, worker, db]"),
        _line(4, f"domains: [{PLACEHOLDER_DOMAIN}]", "FILL ME: the domains it serves"),
        "",
        "  # staging:                        # another environment: its own hosts and domains",
        "  #   hosts: [{address: 203.0.113.11}]",
        "  #   domains: [staging.app.example.com]",
        "  #   tls: {acme_url: https://acme-staging-v02.api.letsencrypt.org/directory}",
    ]
    return "\n".join(out) + "\n"
