"""The deploy user (operator's key, passwordless sudo), the app's system user, SSH hardening."""

from __future__ import annotations

from dataclasses import dataclass

from vpskit import facts, plan, resident
from vpskit.config import Environment, Host
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan

SSHD_DROPIN = "/etc/ssh/sshd_config.d/00-vpskit.conf"  # sshd keeps the first value: sort first
CLIENT_ALIVE = (5, 2)  # sshd asks a silent client every 5 s; gone after about 30 s (measured)


def sudoers_path(user: str) -> str:
    return f"/etc/sudoers.d/vpskit-{user}"


def authorized_keys_path(user: str) -> str:
    return f"/home/{user}/.ssh/authorized_keys"


@dataclass(frozen=True)
class AccessFacts:
    users: dict[str, list[str]]  # user: its groups
    app_group: bool
    access_files: dict[str, FileState]
    root_keys: str | None
    public_key: str | None  # the operator's, from the inventory's key (not a probe)


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    user = host.user
    return [
        facts.users([user, env.app_user, "www-data"]),
        facts.group(env.app_user, "app_group"),
        file_probe([sudoers_path(user), authorized_keys_path(user), SSHD_DROPIN], "access_files"),
        facts.text("/root/.ssh/authorized_keys", "root_keys"),
    ]


def sshd_config(root_login: bool) -> str:
    """Key-only logins; root only when the inventory logs in as root. A client that stops
    answering (a laptop gone, a dropped link) is cut after about 30 s, which ends its
    commands' sessions and so frees the site lock it held. Besides each user's own keys, the
    root-only key of the host's resident vpskit, which that file allows from loopback only
    (pure)."""
    return (
        "# managed by vpskit\n"
        f"PermitRootLogin {'prohibit-password' if root_login else 'no'}\n"
        f"AuthorizedKeysFile .ssh/authorized_keys {resident.SELF_AUTHORIZED}\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\n"
        f"ClientAliveInterval {CLIENT_ALIVE[0]}\n"
        f"ClientAliveCountMax {CLIENT_ALIVE[1]}\n"
    )


def users(env: Environment, host: Host, found: AccessFacts) -> Plan:
    """Create the deploy user and the app's system user; never removes or renames users."""
    user, app_user = host.user, env.app_user
    result = Plan()
    if user != "root" and user not in found.users:
        result += plan.run("useradd", "--create-home", "--shell", "/bin/bash", user,
                           change=f"user {user} created")
    if app_user not in found.users:  # a group left by an earlier site of that name is reused
        group = ["--gid", app_user] if found.app_group else ["--user-group"]
        result += plan.run("useradd", "--system", *group, "--home-dir", str(env.root),
                           "--no-create-home", "--shell", "/usr/sbin/nologin", app_user,
                           change=f"system user {app_user} created")
    if app_user not in found.users.get("www-data", []):
        result += plan.run("usermod", "--append", "--groups", app_user, "www-data",
                           change=f"www-data joined group {app_user}")
    if user == "root":
        return result
    keys = found.public_key or found.root_keys
    if not keys:
        raise ToolkitError(f"no public key to give user {user}: set the host's 'key' in the "
                           f"inventory or put your key in root's authorized_keys")
    return result + login(user, keys, f"{user} ALL=(ALL:ALL) NOPASSWD:ALL\n", found.access_files)


def login(user: str, keys: str, sudo_rule: str, files: dict[str, FileState]) -> Plan:
    """``user`` (who exists) logs in with ``keys`` and has the sudo of ``sudo_rule``;
    ``files`` are the states of its authorized_keys and sudoers file (pure)."""
    result = Plan()
    if authorized_keys_path(user) not in files:
        result += plan.run("install", "-d", "-m", "700", "-o", user, "-g", user,
                           f"/home/{user}/.ssh")
    specs = [FileSpec(authorized_keys_path(user), keys.rstrip("\n") + "\n", user, user, 0o600),
             FileSpec(sudoers_path(user), sudo_rule, mode=0o440)]
    return result + plan.write(specs, files, validate=["visudo", "-c", "-q"])


def harden_ssh(env: Environment, host: Host, found: AccessFacts) -> Plan:
    """Disable password and root logins, but only after the deploy user was seen to log in
    with sudo (the hatch ``verify_login``), so the operator is never locked out."""
    spec = FileSpec(SSHD_DROPIN, sshd_config(root_login=host.user == "root"))
    write = plan.write([spec], found.access_files, validate=["sshd", "-t"])
    if not write.actions:
        return Plan()
    return plan.hatch("verify_login") + write + plan.run("systemctl", "reload", "ssh")
