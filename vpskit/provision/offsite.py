"""The db host's off-site configuration (:mod:`vpskit.offsite`): written, root's alone, while
``offsite.endpoint`` is set; removed once it is not. For an SFTP target the db host also gets
a key of its own (made there; the private half never leaves it), which the operator's login
authorizes on the target to write new copies only, and the target's host keys."""

from __future__ import annotations

from dataclasses import dataclass

from vpskit import facts, offsite, plan, render
from vpskit.config import Environment, Host
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan


def paths(env: Environment) -> list[str]:
    return [render.offsite_config(env), render.offsite_known_hosts(env),
            render.offsite_key(env), render.offsite_key(env) + ".pub", _authorized(env)]


def _authorized(env: Environment) -> str:
    """Says where the server's key was authorized, so a later provision need not connect."""
    return render.offsite_key(env) + ".authorized"


@dataclass(frozen=True)
class OffsiteFacts:
    offsite_files: dict[str, FileState]
    offsite_public_key: str | None = None  # these two only for an SFTP target
    offsite_authorized: str | None = None
    offsite_host_keys: str = ""  # the target's, from the operator's known_hosts (not a probe)


def probes(env: Environment, host: Host) -> list:
    """The files (to converge or remove), and for an SFTP target the server's key and where it
    was authorized."""
    sftp = [facts.text(render.offsite_key(env) + ".pub", "offsite_public_key"),
            facts.text(_authorized(env), "offsite_authorized")] if env.offsite.sftp else []
    return [file_probe(paths(env), "offsite_files"), *sftp]


def server_key(env: Environment, host: Host, found: OffsiteFacts) -> Plan:
    """For an SFTP target, the server's own key, made there when missing (the hatch
    ``offsite_key``)."""
    if not (env.offsite.enabled and env.offsite.sftp) or found.offsite_public_key is not None:
        return Plan()
    return plan.hatch("offsite_key") + Plan(changes=(f"{render.offsite_key(env)} made",))


def offsite_config(env: Environment, host: Host, found: OffsiteFacts) -> Plan:
    """The configuration while ``offsite.endpoint`` is set (for an SFTP target also the
    server's key authorized there, the hatch ``offsite_authorize``, and the target's host
    keys); its files removed once it is not."""
    present = found.offsite_files
    if env.offsite.enabled and env.offsite.sftp:
        public = found.offsite_public_key
        if public is None:  # a dry run: the key is not made
            return Plan(changes=("would authorize it on the target",))
        authorized = f"{env.offsite.endpoint} {public.strip()}\n"
        result = plan.hatch("offsite_authorize", public) \
            if found.offsite_authorized != authorized else Plan()
        return result + plan.write([offsite.server_spec(env),
                                    FileSpec(render.offsite_known_hosts(env),
                                             found.offsite_host_keys),
                                    FileSpec(_authorized(env), authorized)], present)
    if env.offsite.enabled:
        return plan.write([offsite.server_spec(env)], present)
    gone = [path for path in paths(env) if path in present]
    return plan.run("rm", "-f", *gone, change=f"removed {' '.join(gone)}") if gone else Plan()
