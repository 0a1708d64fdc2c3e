"""``vpskit init --ci github``: a GitHub Actions workflow that deploys each push of the branch.

The workflow (``templates/init/github-deploy.yml.j2``) is rendered from the inventory: the
branch is ``app.ref``, the app's secrets come from repository secrets of the same names, and
the SSH key and pinned host keys (repository secrets ``VPSKIT_SSH_KEY``, ``VPSKIT_KNOWN_HOSTS``)
are written, mode 0600, to the paths the hosts' ``key`` and ``known_hosts`` name, as written
(``~`` being the runner's home; ``~/.ssh/id_ed25519`` and ``~/.ssh/known_hosts`` where a host
names none). An environment with a ``ci_user`` on its first host deploys with ``--ci``: the
key is that login's (``ci_key``), which is not root, and no app secret goes to CI (the server's
resident vpskit has them). vpskit itself is installed from the repository variable
``VPSKIT_PIP_SPEC``. Local: nothing here touches a server.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from vpskit import inventory, render, resident
from vpskit.errors import ToolkitError

WORKFLOWS = {"github": Path(".github/workflows/deploy.yml")}
ENV_NAME = "production"
# Actions pinned by full commit SHA (the tag's commit in the action's repository), tag after.
CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2"
SETUP_PYTHON = "actions/setup-python@0b93645e9fea7318ecaed2b359559ac225c90a2b # v5.3.0"
DEFAULT_KEY = "~/.ssh/id_ed25519"  # where paramiko looks for an Ed25519 key when none is named
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
SSH_SECRETS = ("VPSKIT_SSH_KEY", "VPSKIT_KNOWN_HOSTS")
BRANCH = re.compile(r"[\w.+-]+(/[\w.+-]+)*")
# A path the runner's shell gets as written: no ``~user``, no control character, no ``$``
# (GitHub would read ``${{`` as an expression).
PLAIN_PATH = re.compile(r"(?:~/|(?!~))[^\x00-\x1f\x7f$]+")


@dataclass(frozen=True)
class Target:
    """What the workflow deploys, as the inventory says it."""

    env_name: str
    branch: str
    secrets: tuple[str, ...]  # the app's, required then optional (none with ``ci``)
    keys: tuple[str, ...]  # hosts[].key as written (hosts[].ci_key with ``ci``)
    known_hosts: tuple[str, ...]  # hosts[].known_hosts as written
    ci: bool = False  # deploys through the CI login (``vpskit deploy --ci``)


def workflow_path(app_dir: Path, provider: str, force: bool = False) -> Path:
    """Where ``provider``'s workflow goes in ``app_dir``; an unknown provider, or a workflow
    already there without ``force``, is an error."""
    if provider not in WORKFLOWS:
        raise ToolkitError(f"--ci {provider!r}: expected one of {', '.join(WORKFLOWS)}")
    path = Path(app_dir) / WORKFLOWS[provider]
    if path.exists() and not force:
        raise ToolkitError(f"{path} already exists; pass --force to overwrite it")
    return path


def read_target(inventory_path: Path, env_name: str = ENV_NAME) -> Target:
    """``env_name`` of the inventory (validated) as the workflow needs it."""
    env, secrets = inventory.outline(inventory_path, env_name)
    if not BRANCH.fullmatch(env.app.ref):
        raise ToolkitError(f"app.ref {env.app.ref!r}: the workflow deploys each push of a branch; "
                           f"name one (letters, digits, '.', '_', '/', '+', '-')")
    hosts = yaml.safe_load(inventory_path.read_text())["environments"][env_name]["hosts"]
    written = [h if isinstance(h, dict) else {} for h in hosts]  # a bare address names none
    known_hosts = _unique(str(h.get("known_hosts") or DEFAULT_KNOWN_HOSTS) for h in written)
    if resident.serves(env, env.hosts[0]):
        return Target(env_name, env.app.ref, (), (str(written[0]["ci_key"]),), known_hosts,
                      ci=True)
    return Target(env_name, env.app.ref, tuple(secrets),
                  _unique(str(h.get("key") or DEFAULT_KEY) for h in written), known_hosts)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def shell_path(path: str) -> str:
    """``path`` as one shell word for the runner: ``~/x`` as ``"$HOME"/x``, the rest quoted
    (pure). A path the workflow cannot hold as written (``~user``, ``$``, a control character)
    is an error naming it."""
    if not PLAIN_PATH.fullmatch(path):
        raise ToolkitError(f"hosts[].key/known_hosts {path!r}: the CI workflow writes it as "
                           f"written; use ~/... or an absolute path, without '$'")
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def render_workflow(target: Target) -> str:
    """The GitHub Actions workflow deploying ``target`` on each push of its branch (pure)."""
    return render.render_template("init/github-deploy.yml.j2", t=target, checkout=CHECKOUT,
                                  setup_python=SETUP_PYTHON, shell_path=shell_path,
                                  expr=lambda text: "${{ " + text + " }}")


def write_workflow(path: Path, inventory_path: Path) -> list[str]:
    """Render the workflow from ``inventory_path`` and write it at ``path`` (over what is
    there); say what was written and what to set in the repository's settings."""
    target = read_target(inventory_path)
    text = render_workflow(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    names = ", ".join((*SSH_SECRETS, *target.secrets))
    return [f"wrote {path}",
            f"CI: set the repository secrets {names} and the variable VPSKIT_PIP_SPEC "
            f"(where pip installs vpskit from); the workflow deploys each push of "
            f"{target.branch} to {target.env_name}"]
