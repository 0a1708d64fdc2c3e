"""Load ``inventory.yml`` into a validated :class:`vpskit.config.Environment`.

Every problem is an :class:`InventoryError` whose message names the file, the line, the key path
and the fix, e.g. ``inventory.yml:14: production.app.workers: expected an integer, got 'four'``.
Nothing here touches a server, and nothing later refuses an input: whatever rendering, TLS, units
or release commands could not take is refused here, before any connection opens.

Layout: top-level ``app``, optional section defaults (``postgres``, ``redis``, ``health``, ``tls``,
``backups``, ``offsite``, ``nginx``, ``maintenance``, ``alerts``, ``system``, ``hooks``,
``releases_keep``, ``env``, ``secrets``, ``optional_secrets``, ``processes``, ``schedule``)
and ``environments``; each environment lists ``hosts`` and ``domains`` and may override any section
key by key. Secret *values* come from the operator's environment or ``.env.<environment>`` beside
the inventory, never from the inventory itself.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import shlex
import stat
import typing
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vpskit import config, endpoints, envfile, schedule
from vpskit.errors import InventoryError, ToolkitError
from vpskit.secret import Secret

SECTIONS: dict[str, type] = {
    "app": config.App,
    "postgres": config.Postgres,
    "redis": config.Redis,
    "health": config.Health,
    "tls": config.TLS,
    "backups": config.Backups,
    "nginx": config.Nginx,
    "maintenance": config.Maintenance,
    "alerts": config.Alerts,
    "offsite": config.Offsite,
    "system": config.System,
    "hooks": config.Hooks,
}
SHARED_KEYS = (*SECTIONS, "releases_keep", "env", "secrets", "optional_secrets", "processes",
               "schedule")
TOP_KEYS = (*SHARED_KEYS, "environments")
ENV_KEYS = (*SHARED_KEYS, "hosts", "domains")
REQUIRED_APP_KEYS = ("name", "repo", "entry")
CHOICES = {
    ("app", "kind"): config.APP_KINDS,
    ("app", "server"): ("gunicorn", "uvicorn", "daphne"),
    ("tls", "www_redirect"): ("none", "to_bare", "to_www"),
    ("redis", "policy"): ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
                          "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"),
}
# Every pattern is used with fullmatch.
NAME_RE = re.compile(r"[a-z][a-z0-9]{0,19}")
DOMAIN_RE = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}")
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # a Linux user name (useradd's rules)
ENTRY_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(\))?")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PATH_RE = re.compile(r"/[\w./+-]+")
SIZE_RE = re.compile(r"[0-9]{1,9}[kmg]?")  # an Nginx size (bigger overflows its off_t)
RATE_RE = re.compile(r"[1-9][0-9]{0,8}r/[sm]")  # Nginx refuses a rate of 0
MEMORY_RE = re.compile(r"[0-9]{1,15}(k|kb|m|mb|g|gb)?", re.IGNORECASE)  # a Redis memory size
UNIT_MEMORY_RE = re.compile(r"[1-9][0-9]{0,15}[KMGT]?|[1-9][0-9]?%")  # systemd MemoryMax=
TIMEZONE_RE = re.compile(r"[A-Za-z][\w+-]*(/[\w+-]+)*", re.ASCII)  # UTC, America/New_York
PG_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
JOB_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,29}(?<!-)")  # in unit names: <site>-job-<name>
# Keywords of pg_hba.conf's database/user columns, and what every cluster already has.
PG_RESERVED = ("all", "replication", "sameuser", "samerole", "samegroup", "postgres",
               "template0", "template1")
PATH_CHARS_RE = re.compile(r"[\w~./+-]+")
OFF_MEANS_EMPTY = {("backups", "timer")}  # `timer: off` (YAML false) is the same as ""
TYPE_WORDS = {int: "an integer", str: "a string", bool: "true or false"}
MAX_VALUES = 10_000  # YAML aliases can blow a short file up; past this the file is refused
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # shown escaped in a message
UNIT_CHARS = "letters, digits, '.', '_', ':', '-'"


def _words(command: str) -> list[str] | None:
    """``command`` split as systemd and systemd-run will run it; None if it has no word or an
    unbalanced quote."""
    try:
        return shlex.split(command) or None
    except ValueError:
        return None


def _is_network(value: str) -> bool:
    """An IP address or a network whose host bits are zero (``10.0.0.0/8``), no IPv6 zone."""
    try:
        ipaddress.ip_network(value)
    except ValueError:
        return False
    return "%" not in value


def _pg_name(value: str) -> bool:
    """A Postgres identifier that is no pg_hba.conf keyword nor a cluster's own, or ''."""
    return not value or (bool(PG_NAME_RE.fullmatch(value)) and value not in PG_RESERVED)


PG_RULE = (_pg_name, "expected lowercase letters, digits and '_', starting with a letter, at "
                     f"most 63, none of {', '.join(PG_RESERVED)}; or '' for the site name")
HOOK_RULE = (envfile.one_line, "expected one line of shell; put a longer script in a file and "
                                "run that, e.g. './scripts/notify-deploy'")
USER_RULE = (USER_RE.fullmatch, "expected a Linux user name: lowercase letters, digits, '_' and "
                                "'-', starting with a letter or '_', at most 32")
# (section, key) -> (check, fix); "host" is one item of an environment's hosts.
RULES: dict[tuple[str, str], tuple[typing.Callable[[Any], object], str]] = {
    ("app", "name"): (NAME_RE.fullmatch,
                      "use 1-20 lowercase letters and digits, starting with a letter"),
    ("app", "entry"): (ENTRY_RE.fullmatch,
                       "expected 'module:callable', e.g. 'shop.wsgi:application'"),
    ("app", "worker_class"): (config.SYSTEMD_WORD.fullmatch,
                              f"expected a gunicorn worker class such as 'gthread' ({UNIT_CHARS})"),
    ("app", "django_settings"): (lambda v: not v or config.SYSTEMD_WORD.fullmatch(v),
                                 f"expected a module such as 'shop.settings' ({UNIT_CHARS})"),
    ("app", "release_commands"): (_words, "expected a command such as 'python manage.py "
                                          "migrate', with its quotes balanced"),
    ("app", "workers"): (lambda v: 1 <= v <= 64, "expected 1 to 64"),
    ("app", "timeout"): (lambda v: v >= 1, "expected a positive number of seconds"),
    ("app", "graceful_timeout"): (lambda v: v >= 1, "expected a positive number of seconds"),
    ("app", "memory_max"): (lambda v: not v or UNIT_MEMORY_RE.fullmatch(v),
                            "expected a size such as '512M' or '2G' (K, M, G, T), a share of "
                            "RAM such as '50%', or '' for no limit"),
    ("postgres", "db"): PG_RULE,
    ("postgres", "user"): PG_RULE,
    ("postgres", "lock_timeout"): (lambda v: v >= 0, "expected seconds a migration may wait for "
                                                     "a table lock, e.g. 5; 0 waits for ever"),
    ("redis", "maxmemory"): (MEMORY_RE.fullmatch, "expected a size such as '256mb' or '1gb'"),
    ("health", "path"): (config.URL_PATH.fullmatch, "expected a path starting with '/', of "
                                                    "letters, digits and ._~/%+,:@=&?-"),
    ("health", "status"): (lambda v: 100 <= v <= 599, "expected an HTTP status code"),
    ("health", "retries"): (lambda v: v >= 1, "expected at least 1"),
    ("health", "timeout"): (lambda v: v >= 1, "expected a positive number of seconds"),
    ("tls", "email"): (lambda v: not v or EMAIL_RE.fullmatch(v), "expected an email address"),
    ("tls", "acme_url"): (lambda v: v.startswith("https://"), "expected an https:// URL"),
    ("tls", "ca_bundle"): (lambda v: not v or PATH_RE.fullmatch(v),
                           "expected an absolute path of letters, digits and ./+-_"),
    ("backups", "keep_days"): (lambda v: v >= 1, "keep at least 1 day of backups"),
    ("backups", "keep_predeploy"): (lambda v: v >= 1,
                                    "keep at least the newest pre-deploy dump"),
    ("backups", "timer"): (lambda v: not v or config.CALENDAR.fullmatch(v),
                           "expected a systemd calendar such as 'daily' or '*-*-* 03:00:00', "
                           "or off"),
    ("nginx", "client_max_body_size"): (lambda v: SIZE_RE.fullmatch(v.lower()),
                                        "expected a size such as '20m'"),
    ("nginx", "rate_limit"): (RATE_RE.fullmatch, "expected a rate such as '10r/s'"),
    ("nginx", "rate_burst"): (lambda v: v >= 1, "expected at least 1 (Nginx refuses 0)"),
    ("nginx", "trusted_proxies"): (_is_network, "expected an IP address or a network such as "
                                                "'10.0.0.0/8' (host bits zero)"),
    ("maintenance", "allow"): (_is_network, "expected a client's IP address or a network such "
                                            "as '203.0.113.0/24' (host bits zero)"),
    ("maintenance", "retry_after"): (lambda v: 1 <= v <= 86400,
                                     "expected seconds from 1 to 86400 (a day)"),
    **{("alerts", key): (lambda v: not v or envfile.KEY_RE.fullmatch(v),
                         f"expected the name of a secret holding the URL, e.g. {example}")
       for key, example in (("webhook", "ALERT_WEBHOOK_URL"), ("heartbeat", "HEARTBEAT_URL"))},
    ("alerts", "email"): (lambda v: not v or EMAIL_RE.fullmatch(v), "expected an email address"),
    ("alerts", "smtp"): (lambda v: not v or re.fullmatch(r"[\w.-]+:[0-9]{1,5}", v),
                         "expected the relay as host:port, e.g. smtp.example.com:587"),
    ("alerts", "smtp_login"): (lambda v: not v or envfile.KEY_RE.fullmatch(v),
                               "expected the name of a secret holding user:password"),
    ("alerts", "every"): (lambda v: 1 <= v <= 60, "expected minutes from 1 to 60"),
    ("alerts", "disk_free_percent"): (lambda v: 1 <= v <= 99, "expected a percentage, 1 to 99"),
    ("alerts", "cert_days"): (lambda v: 1 <= v <= 60, "expected days from 1 to 60"),
    ("alerts", "backup_hours"): (lambda v: v >= 1, "expected at least 1 hour"),
    ("offsite", "endpoint"): (lambda v: not v or re.fullmatch(r"https?://[\w.:\[\]-]+/?", v)
                              or config.SFTP_RE.fullmatch(v),
                              "expected an S3 endpoint's URL such as "
                              "https://s3.eu-central-1.amazonaws.com, or an SFTP target such as "
                              "sftp://backup@203.0.113.9/srv/backups/"),
    **{("offsite", key): (lambda v: not v or PATH_CHARS_RE.fullmatch(v),
                          "expected a file's path of letters, digits and ~./+-_")
       for key in ("key", "known_hosts")},
    ("offsite", "bucket"): (lambda v: not v or re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", v),
                            "expected a bucket name: 3-63 lowercase letters, digits, '.' and '-'"),
    ("offsite", "prefix"): (lambda v: not v or re.fullmatch(r"[\w.-]+(/[\w.-]+)*/", v),
                            "expected a folder such as 'shop/production/' (ending in '/')"),
    ("offsite", "region"): (lambda v: re.fullmatch(r"[a-z0-9-]{1,40}", v),
                            "expected a region such as 'us-east-1'"),
    ("offsite", "recipient"): (lambda v: not v or re.fullmatch(r"age1[02-9ac-hj-np-z]{58}", v),
                               "expected an age public key (age1..., from age-keygen -y)"),
    **{("offsite", key): (lambda v: not v or envfile.KEY_RE.fullmatch(v),
                          f"expected the name of a secret, e.g. {example}")
       for key, example in (("write_key", "OFFSITE_WRITE_KEY"), ("admin_key", "OFFSITE_ADMIN_KEY"),
                            ("identity", "OFFSITE_IDENTITY"))},
    ("offsite", "keep_days"): (lambda v: v >= 1, "keep at least 1 day of off-site copies"),
    ("system", "swap_mb"): (lambda v: v >= 0, "expected 0 (no swap) or a size in MiB"),
    ("system", "timezone"): (TIMEZONE_RE.fullmatch,
                             "expected a zone name such as 'UTC' or 'Europe/Berlin'"),
    ("system", "min_free_mb"): (lambda v: v >= 0, "expected 0 or a size in MiB"),
    **{("hooks", f.name): HOOK_RULE for f in dataclasses.fields(config.Hooks)},
    ("host", "address"): (endpoints.valid_host,
                          "expected an IP address or a DNS name, e.g. 203.0.113.10"),
    ("host", "user"): USER_RULE,
    ("host", "bootstrap_user"): USER_RULE,
    ("host", "ci_user"): USER_RULE,
    ("host", "private_address"): (lambda v: not v or endpoints.is_ip(v),
                                  "expected the IP address the other hosts reach it at"),
    ("host", "ssh_address"): (lambda v: not v or endpoints.valid_host(v),
                              "expected the IP address or DNS name SSH reaches it at"),
}


class _Doc:
    """The parsed YAML plus the line of every key path, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines: dict[tuple[str, ...], int] = {}
        self._open: set[int] = set()  # the collections being converted, to catch alias loops
        self._count = 0
        self._loader = yaml.SafeLoader("")  # constructs the scalars
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data: Any = {} if node is None else self._convert(node, ())
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InventoryError(f"{path.name}:{_error_line(exc, text)}: malformed YAML: "
                                 f"{problem}; fix the indentation or quoting") from None
        except RecursionError:
            raise InventoryError(f"{path.name}: malformed YAML: nested too deeply; flatten "
                                 f"it") from None

    def _convert(self, node: yaml.Node, path: tuple[str, ...]) -> Any:
        """``node`` as plain data, noting each key path's line; refuses alias loops."""
        self.lines.setdefault(path, node.start_mark.line + 1)
        self._count += 1
        if self._count > MAX_VALUES:
            self.fail(path, f"the file expands to over {MAX_VALUES} values (YAML aliases?); "
                            f"write the values out")
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._open:
            self.fail(path, "a YAML alias inside the value it names (a loop); write it out")
        self._open.add(id(node))
        if isinstance(node, yaml.MappingNode):
            value: Any = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.fail(path, "a key must be a plain word, not a list or mapping",
                              line=key_node.start_mark.line + 1)
                key = str(key_node.value)
                if key in value:
                    self.fail(path + (key,), "duplicate key; keep one of them",
                              line=key_node.start_mark.line + 1)
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                value[key] = self._convert(value_node, path + (key,))
        else:
            value = [self._convert(item, path + (str(i),)) for i, item in enumerate(node.value)]
        self._open.remove(id(node))
        return value

    def _scalar(self, node: yaml.ScalarNode, path: tuple[str, ...]) -> Any:
        """The scalar's value; text its tag cannot read (``!!int four``, ``2024-13-45``) fails."""
        try:
            value = self._loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, LookupError, AttributeError):  # what bad text raises
            kind = node.tag.rsplit(":", 1)[-1]
            self.fail(path, f"{node.value!r} is not a valid {kind}; quote it to make it a string")
        if isinstance(value, str) and "\x00" in value:  # no path, argument or file can hold it
            self.fail(path, f"{value!r} has a NUL character (\\0); remove it")
        return value

    def line(self, path: tuple[str, ...]) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def fail(self, path: tuple[str, ...], message: str, line: int | None = None) -> typing.NoReturn:
        where = ".".join(path) if path else "(top level)"
        text = f"{self.path.name}:{line or self.line(path)}: {where}: {message}"
        raise InventoryError(CONTROL_RE.sub(lambda m: repr(m[0])[1:-1], text))  # one line


def _error_line(exc: yaml.YAMLError, text: str) -> int:
    """The line a YAML error points at: its mark, or a bad character's position."""
    mark = getattr(exc, "problem_mark", None)
    if mark:
        return mark.line + 1
    position = getattr(exc, "position", None)  # a ReaderError's
    return text.count("\n", 0, position) + 1 if position is not None else 1


def environment_names(path: str | Path) -> list[str]:
    """The environments an inventory declares (validates only the outline)."""
    doc = _read(Path(path))
    return list(_environments(doc))


def load(path: str | Path, env_name: str, environ: Mapping[str, str] | None = None,
         every_secret: bool = True) -> config.Environment:
    """Validate the inventory and build the config of ``env_name``, secrets resolved.

    Example: ``load("inventory.yml", "production")``. Reads ``.env.<env_name>`` beside the
    inventory when present; the operator's environment (``environ``) wins over that file. Not
    ``every_secret``: a required secret that is not set is left out instead of an error (for
    what sends the app's secrets nowhere, e.g. ``fab backup`` through a CI login).
    """
    path = Path(path)
    doc, envs, others = _validated(path, env_name)
    environ = os.environ if environ is None else environ
    env = _build(doc, env_name, envs, secrets=_secret_values(path, env_name, environ),
                 every_secret=every_secret)
    _check_databases_unique(doc, envs, {**others, env_name: env})
    return env


def outline(path: str | Path, env_name: str) -> tuple[config.Environment, list[str]]:
    """``env_name`` validated as by :func:`load` but without secret values (its ``secrets`` is
    empty), and the names of its secrets, required then optional: for what describes the
    environment rather than deploys it (``vpskit init --ci``)."""
    doc, envs, others = _validated(Path(path), env_name)
    body = envs[env_name]
    names = _names(doc, "secrets", body, env_name) + _names(doc, "optional_secrets", body, env_name)
    env = _build(doc, env_name, envs, secrets=None)
    _check_databases_unique(doc, envs, {**others, env_name: env})
    return env, list(dict.fromkeys(names))


def _validated(path: Path, env_name: str
               ) -> tuple[_Doc, dict[str, dict[str, Any]], dict[str, config.Environment]]:
    """The parsed inventory, its environments and every one but ``env_name`` built (so a typo
    in staging fails a prod deploy too); ``env_name`` must exist."""
    doc = _read(path)
    envs = _environments(doc)
    built = {name: _build(doc, name, envs, secrets=None) for name in envs if name != env_name}
    if env_name not in envs:
        known = ", ".join(envs) or "none"
        raise InventoryError(
            f"{path.name}: unknown environment '{env_name}' (known: {known}); "
            f"add it under 'environments:' or pass one of those to --env"
        )
    return doc, envs, built


def _read(path: Path) -> _Doc:
    doc = _Doc(path, _text(path, "inventory file",
                           "copy the example inventory.yml or pass --inventory"))
    if not isinstance(doc.data, dict):
        doc.fail((), "expected a mapping with 'app' and 'environments' at the top level")
    _check_keys(doc, (), doc.data, TOP_KEYS)
    for required in ("app", "environments"):
        if required not in doc.data:
            doc.fail((required,), "missing required key; see the example inventory.yml")
    return doc


def _text(path: Path, kind: str, fix: str) -> str:
    """The UTF-8 text of ``path``; ``fix`` says what to do when it is missing or a directory."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InventoryError(f"{path}: no such {kind}; {fix}") from None
    except IsADirectoryError:
        raise InventoryError(f"{path}: a directory, not the {kind}; {fix}") from None
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read it ({exc.strerror}); check its "
                             f"permissions") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InventoryError(f"{path.name}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                             f"save the file as UTF-8") from None


def _environments(doc: _Doc) -> dict[str, dict[str, Any]]:
    envs = doc.data["environments"]
    if not isinstance(envs, dict) or not envs:
        doc.fail(("environments",), "expected a mapping of environment names, e.g. 'production:'")
    for name, body in envs.items():
        if not NAME_RE.fullmatch(name):
            doc.fail(("environments", name),
                     "environment names are lowercase letters and digits, starting with a letter")
        if not isinstance(body, dict):
            doc.fail(("environments", name), "expected a mapping with 'hosts' and 'domains'")
        _check_keys(doc, ("environments", name), body, ENV_KEYS)
    _check_domains_unique(doc, envs)
    return envs


def _check_keys(doc: _Doc, path: tuple[str, ...], data: dict, allowed: typing.Iterable[str]
                ) -> None:
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
            doc.fail(path + (key,), f"unknown key; {hint}")


def _check_databases_unique(doc: _Doc, envs: dict[str, dict[str, Any]],
                            built: dict[str, config.Environment]) -> None:
    """Environments whose Postgres runs on the same host each need their own database and
    role: sharing one, provisioning either resets the other's password and removing or
    restoring either destroys the other's data."""
    owner: dict[tuple[str, str, str], str] = {}
    for name, env in ((name, built[name]) for name in envs):  # the later one is named
        managed = "DATABASE_URL" in (_names(doc, "secrets", envs[name], name)
                                     + _names(doc, "optional_secrets", envs[name], name))
        if not env.postgres.enabled or managed or env.db_host is None:
            continue
        for key, kind, value in (("db", "database", env.db_name), ("user", "role", env.db_user)):
            ident = (env.db_host.address, key, value)
            if ident in owner:
                doc.fail(_key_path(doc, envs[name], name, "postgres", key),
                         f"{kind} '{value}' on {ident[0]} is also environment "
                         f"'{owner[ident]}''s; sharing it, each would reset the other's password "
                         f"and destroy its data: give each environment its own postgres.{key}")
            owner[ident] = name


def _check_domains_unique(doc: _Doc, envs: dict[str, dict[str, Any]]) -> None:
    owner: dict[str, str] = {}
    for name, body in envs.items():
        domains = body.get("domains")
        for i, domain in enumerate(domains if isinstance(domains, list) else []):
            if not isinstance(domain, str):
                continue  # _domains names it
            if domain in owner and owner[domain] != name:
                doc.fail(("environments", name, "domains", str(i)),
                         f"'{domain}' is already claimed by environment '{owner[domain]}'; "
                         f"each domain belongs to one environment")
            owner[domain] = name


def _build(doc: _Doc, name: str, envs: dict[str, dict[str, Any]],
           secrets: dict[str, str | None] | None, every_secret: bool = True
           ) -> config.Environment:
    body = envs[name]
    base = ("environments", name)
    sections = {key: _section(doc, name, key, body) for key in SECTIONS}
    sections["app"] = _served(doc, name, body, sections["app"])
    if sections["tls"].enabled and not sections["tls"].email:
        doc.fail(_key_path(doc, body, name, "tls", "email"),
                 "missing required key (the ACME account email); set it or tls.enabled: false")
    env_vars = _string_map(doc, "env", body, name)
    required = _names(doc, "secrets", body, name)
    optional = _names(doc, "optional_secrets", body, name)
    for key in env_vars:
        if key in required or key in optional:
            doc.fail(_key_path(doc, body, name, "env", key),
                     "also listed as a secret; keep secrets out of 'env'")
    resolved = {} if secrets is None else _resolve(doc, name, body, required, optional, secrets,
                                                   every_secret)
    _check_alert_secrets(doc, name, body, sections["alerts"], required + optional, resolved)
    sections["offsite"] = _check_offsite(doc, name, body, sections["offsite"], required + optional,
                                         resolved)
    releases_keep = _scalar(doc, base + ("releases_keep",), body.get(
        "releases_keep", doc.data.get("releases_keep", 5)), int)
    if releases_keep < 2:
        doc.fail(base + ("releases_keep",), "keep at least 2 releases, or rollback has nothing")
    hosts = _hosts(doc, name, body)
    domains = _domains(doc, name, body)
    processes = _processes(doc, body, name)
    jobs = _schedule(doc, body, name)
    _check_roles(doc, name, hosts, needs_db=(
        sections["postgres"].enabled and "DATABASE_URL" not in required + optional
        or sections["redis"].enabled and "REDIS_URL" not in required + optional),
        needs_worker=bool(processes), tls=sections["tls"].enabled)
    return config.Environment(
        name=name, hosts=hosts, domains=domains, releases_keep=releases_keep,
        env=env_vars, secrets=resolved, processes=processes, schedule=jobs, **sections,
        inventory_dir=str(doc.path.parent.resolve()), inventory_file=str(doc.path.resolve()),
    )


def _check_alert_secrets(doc: _Doc, env: str, body: dict, alerts: config.Alerts,
                         names: list[str], resolved: dict[str, Secret]) -> None:
    """``alerts.webhook``/``heartbeat`` name secrets of the environment holding http(s) URLs,
    ``smtp_login`` one holding ``user:password``."""
    for key in ("webhook", "heartbeat", "smtp_login"):
        name = getattr(alerts, key)
        if not name:
            continue
        if name not in names:
            doc.fail(_key_path(doc, body, env, "alerts", key),
                     f"'{name}' is not one of the environment's secrets; list it under secrets "
                     f"and set its URL in .env.{env}")
        value = resolved.get(name)
        form, fix = ((r"[^:\s]+:\S+", "user:password; set both, joined by ':'")
                     if key == "smtp_login" else
                     (r"https?://[^\s]+", "an http(s):// URL; set the receiver's URL"))
        if value is not None and not re.fullmatch(form, value.reveal()):
            doc.fail(_key_path(doc, body, env, "alerts", key), f"secret '{name}' is not {fix}")


def _check_offsite(doc: _Doc, env: str, body: dict, offsite: config.Offsite,
                   names: list[str], resolved: dict[str, Secret]) -> config.Offsite:
    """An S3 endpoint needs a bucket, a recipient and the server's credentials, an SFTP target
    a recipient; each credential names a secret of the environment, ``KEY_ID:SECRET`` when set.
    ``offsite`` with its key file paths expanded."""
    if not offsite.enabled:
        return offsite
    paths = {key: _expanded(doc, _key_path(doc, body, env, "offsite", key), getattr(offsite, key))
             for key in ("key", "known_hosts") if getattr(offsite, key)}
    for key in ("recipient",) if offsite.sftp else ("bucket", "recipient", "write_key"):
        if not getattr(offsite, key):
            doc.fail(_key_path(doc, body, env, "offsite", key),
                     "missing required key for off-site copies; set it or remove "
                     "offsite.endpoint")
    for key in ("write_key", "admin_key", "identity"):
        name = getattr(offsite, key)
        if name and name not in names:
            doc.fail(_key_path(doc, body, env, "offsite", key),
                     f"'{name}' is not one of the environment's secrets; list it under "
                     f"secrets or optional_secrets and set it in .env.{env}")
        value = resolved.get(name)
        if value is None:
            continue
        text = value.reveal()
        if key == "identity" and not text.startswith("AGE-SECRET-KEY-1"):
            doc.fail(_key_path(doc, body, env, "offsite", key),
                     f"secret '{name}' is not an age secret key (AGE-SECRET-KEY-1..., from "
                     f"age-keygen)")
        if key != "identity" and not re.fullmatch(r"[^:\s]+:\S+", text):
            doc.fail(_key_path(doc, body, env, "offsite", key),
                     f"secret '{name}' is not KEY_ID:SECRET; set both, joined by ':'")
    return dataclasses.replace(offsite, **paths)


def _served(doc: _Doc, env: str, body: dict, app: config.App) -> config.App:
    """``app`` with its server settled (uvicorn for an asgi app that names none); a server that
    cannot serve the app as written is an error."""
    if app.kind == "asgi" and not any("server" in src for _, src in _sources(doc, "app", body,
                                                                             env)):
        app = dataclasses.replace(app, server="uvicorn")
    if app.kind != "asgi" and app.server != "gunicorn":
        doc.fail(_key_path(doc, body, env, "app", "server"),
                 f"'{app.server}' serves ASGI apps only; use kind: asgi or server: gunicorn")
    if app.server == "daphne" and app.entry.endswith("()"):
        doc.fail(_key_path(doc, body, env, "app", "entry"),
                 f"{app.entry!r}: daphne cannot call an app factory; name the ASGI application "
                 f"or use server: uvicorn")
    return app


def _resolve(doc: _Doc, env: str, body: dict, required: list[str], optional: list[str],
             secrets: dict[str, str | None], every_secret: bool) -> dict[str, Secret]:
    """The values of the secrets; one with a line break is an error (the app's env file holds
    one line per variable), and so is one required but unset if ``every_secret``."""
    resolved: dict[str, Secret] = {}
    for key in required + optional:
        value = secrets.get(key)
        listed = _key_path(doc, body, env, "secrets" if key in required else "optional_secrets")
        where = f"{doc.path.name}:{doc.line(listed)}: secret '{key}' of environment '{env}'"
        if value and not envfile.one_line(value):
            raise InventoryError(f"{where} has a line break, which the app's env file cannot "
                                 f"hold; put it on one line (e.g. base64-encoded)")
        if value and key in endpoints.SERVICE_PORTS:
            try:
                endpoints.service_endpoint(value, endpoints.SERVICE_PORTS[key])
            except ValueError as exc:
                raise InventoryError(f"{where}: {exc}; fix the URL where the secret is set "
                                     f"(the environment or .env.{env})") from None
        if value:
            resolved[key] = Secret(value)
        elif key in required and every_secret:
            raise InventoryError(f"{where} is not set; export {key}=... or add it to "
                                 f"{doc.path.parent / ('.env.' + env)} (mode 0600)")
    return resolved


def _check_roles(doc: _Doc, env: str, hosts: tuple[config.Host, ...], needs_db: bool,
                 needs_worker: bool, tls: bool) -> None:
    """Every needed role has a host; db and lb have at most one; several web hosts with TLS
    have an lb host, which holds the one certificate."""
    path = ("environments", env, "hosts")
    wanted = {"web": "every environment serves its app from a host with role 'web'",
              "worker": "its processes run on hosts with role 'worker'" if needs_worker else "",
              "db": "Postgres/Redis run on the host with role 'db'; or list DATABASE_URL and "
                    "REDIS_URL under secrets for managed services" if needs_db else ""}
    for role, why in wanted.items():
        if why and not any(role in h.roles for h in hosts):
            doc.fail(path, f"no host has role '{role}': {why}; add '{role}' to a host's roles")
    for role in ("db", "lb"):
        holders = [i for i, h in enumerate(hosts) if role in h.roles]
        if len(holders) > 1:
            doc.fail(path + (str(holders[1]), "roles"),
                     f"a second host with role '{role}' ({hosts[holders[1]].address}; the first "
                     f"is {hosts[holders[0]].address}): an environment has one {role} host; "
                     f"remove '{role}' from one of them")
    web = [h.address for h in hosts if "web" in h.roles]
    if tls and len(web) > 1 and not any("lb" in h.roles for h in hosts):
        doc.fail(path, f"{len(web)} web hosts ({', '.join(web)}) and TLS, but no host has role "
                       f"'lb': each would ask for the same certificate and answer the ACME "
                       f"challenges of the others; add 'lb' to one host's roles, or terminate "
                       f"TLS at a cloud load balancer and set tls.enabled: false")


def _key_path(doc: _Doc, body: dict, env: str, *keys: str) -> tuple[str, ...]:
    """Where a (possibly inherited) key is written: the environment's override or the default."""
    local = ("environments", env, *keys)
    node: Any = body
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return tuple(keys) if tuple(keys) in doc.lines else local
        node = node[key]
    return local


def _section(doc: _Doc, env: str, key: str, body: dict) -> Any:
    cls = SECTIONS[key]
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for source_path, source in _sources(doc, key, body, env):
        if not isinstance(source, dict):
            doc.fail(source_path, f"expected a mapping of {key} settings")
        _check_keys(doc, source_path, source, fields)
        for field_name, raw in source.items():
            values[field_name] = _scalar(doc, source_path + (field_name,), raw,
                                         hints[field_name])
            choices = CHOICES.get((key, field_name))
            if choices and values[field_name] not in choices:
                doc.fail(source_path + (field_name,),
                         f"'{raw}' is not one of: {', '.join(choices)}")
            _check_value(doc, source_path + (field_name,), key, field_name, values[field_name])
    if key == "app":
        for required in REQUIRED_APP_KEYS:
            if required not in values:
                doc.fail(("app", required), "missing required key; see the example inventory.yml")
        values["repo"] = _resolve_repo(doc, values["repo"])
    return cls(**values)


def _check_value(doc: _Doc, path: tuple[str, ...], section: str, name: str, value: Any) -> None:
    """Apply ``RULES[(section, name)]`` to ``value``, or to each item of a list."""
    rule = RULES.get((section, name))
    if rule is None:
        return
    items = enumerate(value) if isinstance(value, tuple) else [(None, value)]
    for i, item in items:
        if not rule[0](item):
            doc.fail(path if i is None else path + (str(i),), f"{item!r}: {rule[1]}")


def _resolve_repo(doc: _Doc, repo: str) -> str:
    """A URL or ``user@host:path`` as written; a local path made absolute."""
    if "://" in repo or re.match(r"[\w.-]+@[\w.-]+:", repo):
        return repo
    return str((doc.path.parent / _expanded(doc, ("app", "repo"), repo)).resolve())


def _expanded(doc: _Doc, path: tuple[str, ...], value: str) -> str:
    """``value`` with a leading ``~`` or ``~user`` expanded."""
    try:
        return str(Path(value).expanduser())
    except RuntimeError:  # no such user, or no home directory
        doc.fail(path, f"{value!r}: cannot expand '~' here; write the path out")


def _scalar(doc: _Doc, path: tuple[str, ...], raw: Any, hint: Any) -> Any:
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            doc.fail(path, f"expected {TYPE_WORDS[int]}, got {raw!r}")
        return raw
    if hint is bool:
        if not isinstance(raw, bool):
            doc.fail(path, f"expected {TYPE_WORDS[bool]}, got {raw!r}")
        return raw
    if hint is str or hint == (str | None):
        if raw is None and hint is not str:
            return None
        if raw is False and path[-2:] in OFF_MEANS_EMPTY:
            return ""
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            doc.fail(path, f"expected {TYPE_WORDS[str]}, got {raw!r}")
        return str(raw)
    if typing.get_origin(hint) is tuple:
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            doc.fail(path, f"expected a list of strings, got {raw!r}")
        return tuple(raw)
    raise AssertionError(f"unsupported type {hint!r} at {path}")


def _required_list(doc: _Doc, path: tuple[str, ...], raw: Any, missing: str, wrong: str
                   ) -> list:
    if raw is None:
        doc.fail(path, f"missing required key: {missing}")
    if not isinstance(raw, list) or not raw:
        doc.fail(path, wrong)
    return raw


def _sources(doc: _Doc, key: str, body: dict, env: str
             ) -> typing.Iterator[tuple[tuple[str, ...], Any]]:
    """Where ``key`` is set, defaults first: (path, value) for the top level and the env."""
    for path, source in (((key,), doc.data.get(key)), (("environments", env, key), body.get(key))):
        if source is not None:
            yield path, source


def _hosts(doc: _Doc, env: str, body: dict) -> tuple[config.Host, ...]:
    path = ("environments", env, "hosts")
    raw = _required_list(doc, path, body.get("hosts"),
                         "list at least one host with an 'address'",
                         "expected a list of hosts, e.g. '- address: 203.0.113.10'")
    hints = typing.get_type_hints(config.Host)
    fields = [f.name for f in dataclasses.fields(config.Host)]
    hosts: list[config.Host] = []
    seen: dict[tuple[str, int], int] = {}
    for i, item in enumerate(raw):
        item_path = path + (str(i),)
        if isinstance(item, str):
            item = {"address": item}
        if not isinstance(item, dict):
            doc.fail(item_path, "expected a host mapping with 'address'")
        _check_keys(doc, item_path, item, fields)
        if "address" not in item:
            doc.fail(item_path + ("address",), "missing required key: the host's IP or DNS name")
        values = {k: _scalar(doc, item_path + (k,), v, hints[k]) for k, v in item.items()}
        for key, value in values.items():
            _check_value(doc, item_path + (key,), "host", key, value)
        for role in values.get("roles", ()):
            if role not in config.ROLES:
                doc.fail(item_path + ("roles",),
                         f"unknown role '{role}'; roles are {', '.join(config.ROLES)}")
        port = values.get("port", 22)
        if not 1 <= port <= 65535:
            doc.fail(item_path + ("port",), f"{port} is not a TCP port (1-65535)")
        for path_key in ("key", "known_hosts", "ci_key"):
            if values.get(path_key):
                values[path_key] = _expanded(doc, item_path + (path_key,), values[path_key])
        host = config.Host(**values)
        _check_ci_login(doc, item_path, host)
        ident = (host.address, host.port)
        if ident in seen:
            doc.fail(item_path + ("address",),
                     f"duplicate host {host.address}:{host.port} (also host #{seen[ident] + 1}); "
                     f"list each host once with all its roles")
        seen[ident] = i
        hosts.append(host)
    return tuple(hosts)


def _check_ci_login(doc: _Doc, path: tuple[str, ...], host: config.Host) -> None:
    """``ci_user`` is a login of its own (never root, the deploy user or the bootstrap user),
    and comes with the key CI and cron log in with."""
    if not host.ci_user:
        if host.ci_key:
            doc.fail(path + ("ci_key",), "ci_key without ci_user; set ci_user (e.g. 'ci') too")
        return
    if host.ci_user in ("root", host.user, host.bootstrap_user):
        doc.fail(path + ("ci_user",), f"'{host.ci_user}' is a login with full sudo; name a user "
                                      f"of its own, e.g. 'ci'")
    if not host.ci_key:
        doc.fail(path + ("ci_user",), "ci_user needs ci_key: the private key CI and cron log "
                                      "in with (its .pub is authorized on the server)")


def _domains(doc: _Doc, env: str, body: dict) -> tuple[str, ...]:
    path = ("environments", env, "domains")
    raw = _required_list(doc, path, body.get("domains"),
                         "list the domain names this environment serves",
                         "expected a non-empty list of domain names")
    for i, domain in enumerate(raw):
        if not isinstance(domain, str) or not DOMAIN_RE.fullmatch(domain):
            doc.fail(path + (str(i),),
                     f"{domain!r} is not a valid domain name (lowercase, e.g. shop.example.com)")
    if len(set(raw)) != len(raw):
        doc.fail(path, "a domain is listed twice")
    return tuple(raw)


def _string_map(doc: _Doc, key: str, body: dict, env: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for path, source in _sources(doc, key, body, env):
        if not isinstance(source, dict):
            doc.fail(path, "expected a mapping of VARIABLE: value")
        for var, value in source.items():
            if not envfile.KEY_RE.fullmatch(var):
                doc.fail(path + (var,), "not a valid environment variable name")
            if isinstance(value, (dict, list)) or value is None:
                doc.fail(path + (var,), f"expected a string value, got {value!r}")
            merged[var] = str(value).lower() if isinstance(value, bool) else str(value)
            if not envfile.one_line(merged[var]):
                doc.fail(path + (var,), "has a line break, which the app's env file cannot "
                                        "hold; put it on one line")
    return merged


def _processes(doc: _Doc, body: dict, env: str) -> tuple[config.Process, ...]:
    """``processes: {worker: "celery -A proj worker"}`` or ``{worker: {command, count, ...}}``;
    an environment's entry replaces the default of the same name."""
    hints = typing.get_type_hints(config.Process)
    found: dict[str, config.Process] = {}
    for where, name, spec in _named_entries(doc, body, env, "processes", (
            "process names, e.g. 'worker: celery -A app worker'")):
        if not NAME_RE.fullmatch(name) or name == "web":
            doc.fail(where, "process names are lowercase letters and digits, not 'web'")
        spec = {"command": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, dict) or not spec.get("command"):
            doc.fail(where, "expected a command, or a mapping with 'command'")
        _check_keys(doc, where, spec, [f for f in hints if f != "name"])
        values = {k: _scalar(doc, where + (k,), v, hints[k]) for k, v in spec.items()}
        _check_command(doc, where + ("command",), values["command"])
        if not 0 <= values.get("count", 1) <= 32:
            doc.fail(where + ("count",), "expected 0 to 32 instances")
        if values.get("stop_timeout", 60) < 1:
            doc.fail(where + ("stop_timeout",), "expected a positive number of seconds")
        found[name] = config.Process(name=name, **values)
    return tuple(found.values())


def _schedule(doc: _Doc, body: dict, env: str) -> tuple[config.Job, ...]:
    """``schedule: {name: {command, cron | calendar, timezone, timeout}}``; an environment's
    entry replaces the default of the same name, ``name: false`` drops it."""
    found: dict[str, config.Job] = {}
    for where, name, spec in _named_entries(doc, body, env, "schedule", (
            "job names, e.g. 'cleanup: {command: python manage.py clearsessions, "
            "cron: \"0 3 * * *\"}'")):
        if not JOB_NAME_RE.fullmatch(name):
            doc.fail(where, "job names are 1-30 lowercase letters, digits and '-', starting "
                            "with a letter")
        if spec is False:
            found.pop(name, None)
            continue
        found[name] = _job(doc, where, name, spec)
    return tuple(found.values())


def _named_entries(doc: _Doc, body: dict, env: str, section: str, example: str
                   ) -> typing.Iterator[tuple[tuple[str, ...], str, Any]]:
    """Each ``name: spec`` of ``section``, the defaults' then the environment's, with its
    path; a section that is not a mapping fails with ``example`` of one."""
    for path, source in _sources(doc, section, body, env):
        if not isinstance(source, dict):
            doc.fail(path, f"expected a mapping of {example}")
        for name, spec in source.items():
            yield path + (name,), name, spec


def _job(doc: _Doc, where: tuple[str, ...], name: str, spec: Any) -> config.Job:
    """One job of ``schedule:``, its calendar checked or translated from cron."""
    keys = ("command", "cron", "calendar", "timezone", "timeout")
    if not isinstance(spec, dict) or not spec.get("command"):
        doc.fail(where, "expected a mapping with 'command' and 'cron' or 'calendar'")
    _check_keys(doc, where, spec, keys)
    values = {k: _scalar(doc, where + (k,), v, int if k == "timeout" else str)
              for k, v in spec.items()}
    _check_command(doc, where + ("command",), values["command"])
    kinds = [k for k in ("cron", "calendar") if k in values]
    if len(kinds) != 1:
        doc.fail(where, "give exactly one of cron: (five fields, e.g. '0 3 * * *') and "
                        "calendar: (systemd OnCalendar, e.g. '*-*-* 03:00:00')")
    zone = values.get("timezone", "UTC")
    if not TIMEZONE_RE.fullmatch(zone) or not _known_zone(zone):
        doc.fail(where + ("timezone",), f"{zone!r}: expected a zone name such as 'UTC' or "
                                        f"'Europe/Berlin'")
    timeout = values.get("timeout", 3600)
    if timeout < 1:
        doc.fail(where + ("timeout",), "expected a positive number of seconds")
    kind = kinds[0]
    translate = schedule.from_cron if kind == "cron" else schedule.check_calendar
    try:
        calendars = translate(values[kind], zone)
    except ValueError as exc:
        doc.fail(where + (kind,), str(exc))
    return config.Job(name=name, command=values["command"], calendars=calendars,
                      written=f"{kind}: {' '.join(values[kind].split())}", timeout=timeout)


def _known_zone(name: str) -> bool:
    """Whether the zone database here knows ``name`` (any name when this machine has none)."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return not zoneinfo.available_timezones()
    return True


def _check_command(doc: _Doc, path: tuple[str, ...], command: str) -> None:
    """A process command becomes its unit's ExecStart: words of :data:`config.COMMAND_WORD`."""
    words = _words(command)
    if words is None:
        doc.fail(path, f"{command!r}: expected a command such as 'celery -A shop worker', with "
                       f"its quotes balanced")
    for word in words:
        if not config.COMMAND_WORD.fullmatch(word):
            doc.fail(path, f"{word!r} has what a unit file can't take (spaces, quotes, $, %); "
                           f"move the command into a script in the repo and run that")


def _names(doc: _Doc, key: str, body: dict, env: str) -> list[str]:
    names: list[str] = []
    for path, source in _sources(doc, key, body, env):
        if not isinstance(source, list):
            doc.fail(path, "expected a list of secret names, e.g. [SECRET_KEY]")
        for i, name in enumerate(source):
            if not isinstance(name, str) or not envfile.KEY_RE.fullmatch(name):
                doc.fail(path + (str(i),), f"{name!r} is not a valid environment variable name")
            if name not in names:
                names.append(name)
    return names


def _secret_values(inventory: Path, env_name: str, environ: Mapping[str, str]
                   ) -> dict[str, str | None]:
    """Values from ``.env.<env>`` (must be mode 0600), overridden by the operator's environment."""
    values: dict[str, str | None] = {}
    env_file = inventory.parent / f".env.{env_name}"
    if env_file.exists():
        text = _text(env_file, "secrets file", "make it a file of KEY=value lines (mode 0600)")
        mode = stat.S_IMODE(env_file.stat().st_mode)
        if mode & 0o077:
            raise InventoryError(
                f"{env_file}: readable by others (mode {mode:04o}); run: chmod 600 {env_file}")
        try:
            values.update(envfile.parse(text, env_file.name))
        except ToolkitError as exc:
            raise InventoryError(str(exc)) from None
    values.update({k: v for k, v in environ.items() if envfile.KEY_RE.fullmatch(k)})
    return values
