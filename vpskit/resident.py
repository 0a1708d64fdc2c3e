"""The resident vpskit: a copy of this vpskit that ``fab provision`` keeps on the host of a
one-host environment with a CI login, so that login ships and rolls back releases and restores
the database without sudo of its own (``vpskit-site deploy|rollback|restore`` runs it as root).

It logs into its own host as the deploy user over loopback, with a root-only key that sshd
takes from 127.0.0.1 only, and reads the environment as the last ``fab provision`` left it: the
inventory without its hooks (they would run as root there) and the secrets, both root-only.
What CI sends is a git bundle and the commit to deploy from it, the release to roll back to or
the backup to restore: never a command, a unit or a file of its choosing (pure names and texts
here).
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

HOME = "/usr/local/lib/vpskit-site/resident"  # venv/ and src/vpskit/, root-owned
PYTHON = f"{HOME}/venv/bin/python"
STAMP = f"{HOME}/stamp"  # the digest of what is installed
SELF_KEY = "/etc/vpskit/self/id_ed25519"  # root-only: the host logging into itself
SELF_KNOWN_HOSTS = "/etc/vpskit/self/known_hosts"
SELF_AUTHORIZED = "/etc/ssh/vpskit_self_keys"  # sshd's second AuthorizedKeysFile
SELF_OPTIONS = 'from="127.0.0.1,::1",restrict'  # the self key's line there: loopback, commands
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"
REPO = "repo"  # the copy's app.repo: where vpskit-site fetches the bundle, beside the copy
# Distribution: what pip installs (binary wheels only: no build step runs as root).
REQUIREMENTS = {"fabric": "fabric", "invoke": "invoke", "jinja2": "jinja2",
                "pyyaml": "pyyaml", "psycopg": "psycopg[binary]"}


def serves(env: Environment, host: Host) -> bool:
    """Whether ``host`` keeps a resident vpskit: the one host of its environment, with a CI
    login."""
    return bool(host.ci_user) and env.hosts == (host,)


def config_dir(env: Environment) -> str:
    """Where the site's copy of the inventory and its secrets live (root-only)."""
    return f"/etc/vpskit/ci/{env.site}.d"


def inventory_text(env: Environment, original: str) -> str:
    """The copy of the inventory (``original``) the resident reads: this environment only, its
    host reached over loopback with the self key, no hooks, the repository beside it."""
    doc = yaml.safe_load(original)
    body = doc["environments"][env.name]
    host = env.hosts[0]
    for section in (doc, body):
        section.pop("hooks", None)
    doc.setdefault("app", {})["repo"] = REPO
    if "repo" in body.get("app", {}):
        body["app"]["repo"] = REPO
    body["hosts"] = [{"address": "127.0.0.1", "port": host.port, "user": host.user,
                      "key": SELF_KEY, "known_hosts": SELF_KNOWN_HOSTS,
                      "roles": list(host.roles)}]
    doc["environments"] = {env.name: body}
    return "# Written by vpskit provision: what vpskit-site deploys with.\n" + yaml.safe_dump(
        doc, sort_keys=False)


def secrets_text(env: Environment) -> str:
    """The environment's secrets as the copy's ``.env.<env>``."""
    return envfile.render({key: value.reveal() for key, value in env.secrets.items()})


def known_hosts_text(host: Host, host_key: str) -> str:
    """The self login's known_hosts: the host's own ed25519 key at 127.0.0.1."""
    where = "127.0.0.1" if host.port == 22 else f"[127.0.0.1]:{host.port}"
    kind, key = host_key.split()[:2]
    return f"{where} {kind} {key}\n"


def authorized_text(public_key: str) -> str:
    """The self key, for any login from loopback only, with nothing but commands."""
    return f"{SELF_OPTIONS} {public_key.strip()}\n"


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
