"""The CI login (:mod:`vpskit.ci_login`) on a host: its user, key and sudoers entry naming only
``vpskit-site``, that program, and the site's registry entry; with no ``ci_user``, the site's
entry is removed, which takes the login's every right on the site away."""

from __future__ import annotations

from dataclasses import dataclass

from vpskit import ci_login, facts, plan, sh
from vpskit.config import Environment, Host
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan
from vpskit.provision import access

LIBRARY = "/usr/local/lib/vpskit-site"  # the helper's own modules (root-only)


@dataclass(frozen=True)
class CiFacts:
    ci_files: dict[str, FileState]
    ci_public_key: str | None  # from the inventory's ci_key (not a probe)
    ci_users: dict[str, list[str]] | None = None  # probed with a ci_user only


def paths(env: Environment, host: Host) -> list[str]:
    """The helper, its module, the site's entry; with a ``ci_user``, its key and sudoers files."""
    found = [ci_login.HELPER, f"{LIBRARY}/prune_backups.py", ci_login.registry_path(env)]
    if host.ci_user:
        found += [access.authorized_keys_path(host.ci_user), access.sudoers_path(host.ci_user)]
    return found


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    found = [file_probe(paths(env, host), "ci_files")]
    if host.ci_user:
        found.append(facts.users([host.ci_user], "ci_users"))
    return found


def program_specs() -> list[FileSpec]:
    return [FileSpec(ci_login.HELPER, "#!/usr/bin/python3 -I\n" + sh.program("site_helper"),
                     mode=0o755),
            FileSpec(f"{LIBRARY}/prune_backups.py", sh.program("prune_backups"))]


def ci_access(env: Environment, host: Host, found: CiFacts) -> Plan:
    """The CI user with its key and restricted sudo, the helper and the site's entry; or, with
    no ``ci_user``, the site's entry gone (pure)."""
    registry = ci_login.registry_path(env)
    if not host.ci_user:
        if registry not in found.ci_files:
            return Plan()
        return plan.run("rm", "-f", registry, change=f"removed {registry}")
    user = host.ci_user
    if not found.ci_public_key:
        raise ToolkitError(f"no public key for the CI login {user}: put it beside "
                           f"{host.ci_key} as {host.ci_key}.pub")
    result = Plan()
    if user not in found.ci_users:
        result += plan.run("useradd", "--create-home", "--shell", "/bin/bash", user,
                           change=f"user {user} created (sudo: {ci_login.HELPER} only)")
    return (result + access.login(user, found.ci_public_key, ci_login.sudoers_rule(user),
                                  found.ci_files)
            + plan.write([*program_specs(),
                          FileSpec(registry, ci_login.entry(env, host), mode=0o600)],
                         found.ci_files))
