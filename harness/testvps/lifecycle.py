"""Bring a whole test VPS up or down: rootfs copy, caches, network, supervisor, saved record."""

from __future__ import annotations

from pathlib import Path

from harness.testvps import caches, keys, machine, network, pebble, rootfs, state
from harness.testvps.shell import HarnessError, ensure_packages, run
from harness.testvps.state import Vps, check_args, vps_dir

HOST_PACKAGES = ("debootstrap", "systemd-container", "nftables", "openssl", "acl", "iproute2")


def up(
    name: str = "vps1", index: int = 0, suite: str = "bookworm", domains: tuple[str, ...] = ()
) -> Vps:
    """Boot a fresh VPS ``name`` at 10.77.<index>.2 and wait for its sshd.

    The first call per ``suite`` builds the cached rootfs with debootstrap (1-2 min); later ones
    start in seconds. Each of ``domains`` gets a line in the host's /etc/hosts, so Pebble (and
    the host) resolve it to the VPS. What a run killed before its teardown left on ``name`` or
    ``index`` (its supervisor gone: a SIGKILL, a reboot) is torn down first; a name or index in
    use by a VPS that runs, or a stale veth, fails before anything is touched; a failure after
    that tears down what was made.
    """
    domains = tuple(domains)
    check_args(name, index, suite, domains)
    with state.lock():
        ensure_packages(*HOST_PACKAGES)
    rootfs.ensure_base(suite)
    for dead in _left_by_killed_runs(name, index):
        down(dead)
    claimed = False
    try:
        with state.lock():
            _check_free(name, index)
            claimed = True
            vps = _create(name, index, suite, domains)
        machine.wait_ssh(name, vps.address, vps_dir(name))
    except BaseException:
        if claimed:
            down(name)
        raise
    return vps


def _left_by_killed_runs(name: str, index: int) -> list[str]:
    """Names of the VPSes on ``name`` or ``index`` whose supervisor is gone: ``up`` makes the
    folder, the record and the supervisor under the lock, so no run is half way through."""
    with state.lock():
        names = {vps.name for vps in state.load_all() if vps.index == index}
        names.update([name] if vps_dir(name).exists() else [])
        return sorted(other for other in names if not machine.running(other))


def _check_free(name: str, index: int) -> None:
    for other in state.load_all():
        if other.name == name:
            raise HarnessError(f"VPS {name} is already up at {other.address}: down it first")
        if other.index == index:
            raise HarnessError(f"index {index} is taken by VPS {other.name}: pick another")
    if vps_dir(name).exists():
        raise HarnessError(
            f"{vps_dir(name)} is left from a failed run: "
            f"run `python -m harness.testvps down --name {name}`"
        )
    network.check_free(name, index)


def _create(name: str, index: int, suite: str, domains: tuple[str, ...]) -> Vps:
    folder = vps_dir(name)
    folder.mkdir(parents=True)
    address, host_address = f"10.77.{index}.2", f"10.77.{index}.1"
    key = keys.operator_key()
    root = rootfs.mount_copy(suite, folder)
    host_keys = rootfs.give_identity(
        root, name, address, host_address, Path(f"{key}.pub").read_text()
    )
    rootfs.add_test_environment(root, [pebble.ensure_listener_ca()])
    known_hosts = folder / "known_hosts"
    known_hosts.write_text("".join(f"{address} {line}\n" for line in host_keys))
    binds = caches.prepare(folder, suite, root)
    network.add_nat(name, index)
    network.write_hosts(network.hosts_with(network.HOSTS.read_text(), name, address, domains))
    vps = Vps(
        name=name,
        index=index,
        suite=suite,
        address=address,
        host_address=host_address,
        pid=machine.start(name, folder, f"{host_address}/24", binds),
        key_path=str(key),
        known_hosts_path=str(known_hosts),
        domains=domains,
    )
    state.save(vps)
    return vps


def down(name: str) -> None:
    """Tear VPS ``name`` down: supervisor and container, veth, NAT chain (and the vpsnat table
    and ip_forward with the last VPS), its /etc/hosts lines, its rootfs. Idempotent; also
    cleans up after an ``up`` that failed half way. Keeps the operator key and the caches."""
    check_args(name)
    folder = vps_dir(name)
    machine.stop(name, folder)
    with state.lock():
        if Path(f"/sys/class/net/{network.veth(name)}").exists():
            run("ip", "link", "delete", network.veth(name))
        network.remove_nat(name)
        network.write_hosts(network.hosts_without(network.HOSTS.read_text(), name))
        caches.give_back(folder)
    rootfs.unmount_copy(folder)
    run("rm", "-rf", "--one-file-system", folder)


def power_cut(vps: Vps) -> None:
    """Cut the power of ``vps``: every process killed at once, then a boot; returns when SSH
    answers again."""
    machine.power_cut(vps.name, vps.address, vps_dir(vps.name))


def status() -> list[Vps]:
    """Every VPS that has a saved record (see :func:`is_running` for whether it still runs)."""
    return state.load_all()


def is_running(vps: Vps) -> bool:
    return machine.running(vps.name)


def describe(vps: Vps) -> str:
    """One line: name, state, address, suite, supervisor PID and how to log in."""
    state_word = "up" if is_running(vps) else "DEAD (run down)"
    return (
        f"{vps.name} {state_word} at {vps.address} ({vps.suite}, pid {vps.pid}): "
        f"{vps.ssh_command()}"
    )
