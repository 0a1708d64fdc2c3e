"""The resident vpskit: a copy of this vpskit that ``fab provision`` keeps on the first host of
an environment when that host has a CI login, so that login ships and rolls back releases and
restores the database on every host of the environment without sudo of its own
(``vpskit-site deploy|rollback|restore`` runs it as root).

It logs in as each host's deploy user with a root-only key of its own host: into that host over
loopback, into the environment's other hosts (its *members*) at their private addresses, where
sshd takes that key from the first host's addresses only. It reads the environment as the last
``fab provision`` left it: the inventory without its hooks (they would run as root there) and
the secrets, both root-only. What CI sends is a git bundle and the commit to deploy from it, the
release to roll back to or the backup to restore: never a command, a unit or a file of its
choosing (pure names and texts here).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from importlib import metadata, resources
from importlib.resources.abc import Traversable

import yaml

from vpskit import envfile
from vpskit.config import Environment, Host
from vpskit.endpoints import is_ip, known_hosts_name

HOME = "/usr/local/lib/vpskit-site/resident"  # venv/ and src/vpskit/, root-owned
PYTHON = f"{HOME}/venv/bin/python"
STAMP = f"{HOME}/stamp"  # the digest of what is installed
SELF_KEY = "/etc/vpskit/self/id_ed25519"  # root-only: the resident vpskit's logins
SELF_AUTHORIZED = "/etc/ssh/vpskit_self_keys"  # sshd's second AuthorizedKeysFile
SELF_OPTIONS = 'from="127.0.0.1,::1",restrict'  # the self key's line there: loopback, commands
SELF_TAG = "vpskit-self"  # the comment ending that line (ssh-keygen -C)
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"
COPIES = "/etc/vpskit/ci"  # <site>.d/ of each site deploying through a resident vpskit here
REPO = "repo"  # the copy's app.repo: where vpskit-site fetches the bundle, beside the copy
# Distribution: what pip installs (binary wheels only: no build step runs as root).
REQUIREMENTS = {"fabric": "fabric", "invoke": "invoke", "jinja2": "jinja2",
                "pyyaml": "pyyaml", "psycopg": "psycopg[binary]"}


def orchestrator(env: Environment) -> Host | None:
    """The host keeping ``env``'s resident vpskit: its first, when that has a CI login."""
    first = env.hosts[0]
    return first if first.ci_user else None


def serves(env: Environment, host: Host) -> bool:
    """Whether ``host`` keeps ``env``'s resident vpskit."""
    return host == orchestrator(env)


def members(env: Environment) -> tuple[Host, ...]:
    """The other hosts the resident vpskit logs into (none without one)."""
    return env.hosts[1:] if orchestrator(env) else ()


def reached_at(env: Environment, host: Host) -> str:
    """Where the resident vpskit reaches ``host`` of ``env``: itself over loopback, a member at
    its private address."""
    return "127.0.0.1" if serves(env, host) else host.private


def config_dir(env: Environment) -> str:
    """Where the site's copy of the inventory, its secrets and its hosts' keys live
    (root-only)."""
    return f"{COPIES}/{env.site}.d"


def known_hosts_path(env: Environment) -> str:
    """The keys of the site's hosts, as the resident reaches them."""
    return f"{config_dir(env)}/known_hosts"


def inventory_text(env: Environment, original: str) -> str:
    """The copy of the inventory (``original``) the resident reads: this environment only, each
    host reached at :func:`reached_at` as its deploy user with the self key, no hooks, the
    repository beside it."""
    doc = yaml.safe_load(original)
    body = doc["environments"][env.name]
    for section in (doc, body):
        section.pop("hooks", None)
    doc.setdefault("app", {})["repo"] = REPO
    if "repo" in body.get("app", {}):
        body["app"]["repo"] = REPO
    body["hosts"] = [{"address": host.address, "ssh_address": reached_at(env, host),
                      **({"private_address": host.private_address} if host.private_address
                         else {}),
                      "port": host.port, "user": host.user, "key": SELF_KEY,
                      "known_hosts": known_hosts_path(env), "roles": list(host.roles)}
                     for host in env.hosts]
    doc["environments"] = {env.name: body}
    return "# Written by vpskit provision: what vpskit-site deploys with.\n" + yaml.safe_dump(
        doc, sort_keys=False)


def secrets_text(env: Environment) -> str:
    """The environment's secrets as the copy's ``.env.<env>``."""
    return envfile.render({key: value.reveal() for key, value in env.secrets.items()})


def known_hosts_text(env: Environment, host_keys: dict[str, str]) -> str:
    """The resident's known_hosts: each host's ed25519 key (``host_keys`` by address) where the
    resident reaches it."""
    lines = []
    for host in env.hosts:
        if host.address in host_keys:
            kind, key = host_keys[host.address].split()[:2]
            lines.append(f"{known_hosts_name(reached_at(env, host), host.port)} {kind} {key}\n")
    return "".join(lines)


def member_options(env: Environment) -> str:
    """The self key's options on a member: from the first host's IP addresses, commands only."""
    first = env.hosts[0]
    addresses = sorted({a for a in (first.address, first.private) if is_ip(a)})
    return f'from="{",".join(addresses)}",restrict' if addresses else "restrict"


def member_tag(env: Environment) -> str:
    """The comment ending the line of ``env``'s resident key on a member."""
    return f"vpskit-resident:{env.site}"


def authorized_text(current: str, tag: str, line: str | None) -> str:
    """sshd's second AuthorizedKeysFile (``current``) with the line ending in ``tag`` replaced
    by ``line`` (removed for None): one line per resident key, kept by the site that owns it
    (pure)."""
    kept = [old for old in current.splitlines() if old.strip() and old.split()[-1] != tag]
    return "".join(f"{kept_line}\n" for kept_line in kept + ([line] if line else []))


def authorized_line(options: str, public_key: str, tag: str) -> str:
    """A resident key's line: ``options``, the key (``ssh-ed25519 AAAA...``) and ``tag``."""
    kind, key = public_key.split()[:2]
    return f"{options} {kind} {key} {tag}"


def pins() -> list[str]:
    """What pip installs: this machine's versions of vpskit's requirements."""
    return [f"{spec}=={metadata.version(name)}" for name, spec in REQUIREMENTS.items()]


def package() -> bytes:
    """This vpskit's modules, scripts and templates as a tar, byte for byte the same for the
    same files (sorted, no times or owners)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        trees = [("vpskit", resources.files("vpskit")),
                 ("vpskit/templates", resources.files("vpskit.templates"))]
        for prefix, tree in trees:
            for name, data in _files(tree, prefix):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _files(tree: Traversable, prefix: str) -> list[tuple[str, bytes]]:
    found = []
    for child in sorted(tree.iterdir(), key=lambda c: c.name):
        if child.is_dir() and child.name not in ("__pycache__", "templates"):
            found += _files(child, f"{prefix}/{child.name}")
        elif child.is_file() and child.name.endswith((".py", ".sh", ".j2")):
            found.append((f"{prefix}/{child.name}", child.read_bytes()))
    return found


def digest(tar: bytes, versions: list[str]) -> str:
    """What a host's stamp holds when its resident is ``tar`` with ``versions``."""
    return hashlib.sha256(tar + "\n".join(versions).encode()).hexdigest()
