"""The deploy user (operator's key, passwordless sudo), the app's system user, SSH hardening."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from vpskit import facts
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec, differences, file_probe
from vpskit.provision.context import Context

SSHD_DROPIN = "/etc/ssh/sshd_config.d/00-vpskit.conf"  # sshd keeps the first value: sort first
CLIENT_ALIVE = (5, 2)  # sshd asks a silent client every 5 s; gone after about 30 s (measured)


def sudoers_path(user: str) -> str:
    return f"/etc/sudoers.d/vpskit-{user}"


def authorized_keys_path(user: str) -> str:
    return f"/home/{user}/.ssh/authorized_keys"


def probes(ctx: Context) -> list[facts.Probe]:
    user = ctx.host.user
    return [
        facts.users([user, ctx.env.app_user, "www-data"]),
        facts.Probe("app_group", f"getent group {shlex.quote(ctx.env.app_user)}",
                    lambda out, rc: rc == 0),
        file_probe([sudoers_path(user), authorized_keys_path(user), SSHD_DROPIN], "access_files"),
        facts.text("/root/.ssh/authorized_keys", "root_keys"),
    ]


def sshd_config(root_login: bool) -> str:
    """Key-only logins; root only when the inventory logs in as root. A client that stops
    answering (a laptop gone, a dropped link) is cut after about 30 s, which ends its
    commands' sessions and so frees the site lock it held (pure)."""
    return (
        "# managed by vpskit\n"
        f"PermitRootLogin {'prohibit-password' if root_login else 'no'}\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\n"
        f"ClientAliveInterval {CLIENT_ALIVE[0]}\n"
        f"ClientAliveCountMax {CLIENT_ALIVE[1]}\n"
    )


def users(ctx: Context, public_key: str | None) -> list[str]:
    """Create the deploy user and the app's system user; never removes or renames users."""
    user, app_user = ctx.host.user, ctx.env.app_user
    found = ctx.facts["users"]
    changes = []
    if user != "root" and user not in found:
        ctx.act(["useradd", "--create-home", "--shell", "/bin/bash", user])
        changes.append(f"user {user} created")
    if app_user not in found:  # a group left by an earlier site of that name is reused
        group = ["--gid", app_user] if ctx.facts["app_group"] else ["--user-group"]
        ctx.act(["useradd", "--system", *group, "--home-dir", str(ctx.env.root),
                 "--no-create-home", "--shell", "/usr/sbin/nologin", app_user])
        changes.append(f"system user {app_user} created")
    if app_user not in found.get("www-data", []):
        ctx.act(["usermod", "--append", "--groups", app_user, "www-data"])
        changes.append(f"www-data joined group {app_user}")
    if user == "root":
        return changes
    keys = public_key or ctx.facts["root_keys"]
    if not keys:
        raise ToolkitError(f"no public key to give user {user}: set the host's 'key' in the "
                           f"inventory or put your key in root's authorized_keys")
    if authorized_keys_path(user) not in ctx.facts["access_files"]:
        ctx.act(["install", "-d", "-m", "700", "-o", user, "-g", user, f"/home/{user}/.ssh"])
    specs = [
        FileSpec(authorized_keys_path(user), keys.rstrip("\n") + "\n", user, user, 0o600),
        FileSpec(sudoers_path(user), f"{user} ALL=(ALL:ALL) NOPASSWD:ALL\n", mode=0o440),
    ]
    changes += ctx.apply_files(specs, ctx.facts["access_files"])
    return changes


def harden_ssh(ctx: Context, verify_login: Callable[[], None]) -> list[str]:
    """Disable password and root logins, but only after ``verify_login`` proved the deploy user
    gets in with sudo — so the operator is never locked out."""
    spec = FileSpec(SSHD_DROPIN, sshd_config(root_login=ctx.host.user == "root"))
    if not differences(spec, ctx.facts["access_files"].get(spec.path)):
        return []
    if not ctx.dry_run:
        verify_login()
    changes = ctx.apply_files([spec], ctx.facts["access_files"], validate=["sshd", "-t"])
    ctx.act(["systemctl", "reload", "ssh"])
    return changes
