"""The db host's off-site configuration (:mod:`vpskit.offsite`): written, root's alone, while
``offsite.endpoint`` is set; removed once it is not. For an SFTP target the db host also gets
a key of its own (made there; the private half never leaves it), which the operator's login
authorizes on the target to write new copies only, and the target's host keys."""

from __future__ import annotations

from vpskit import facts, offsite, render, sftp_target
from vpskit.files import FileSpec, file_probe
from vpskit.provision.context import Context


def paths(ctx: Context) -> list[str]:
    env = ctx.env
    return [render.offsite_config(env), render.offsite_known_hosts(env),
            render.offsite_key(env), render.offsite_key(env) + ".pub", _authorized(ctx)]


def _authorized(ctx: Context) -> str:
    """Says where the server's key was authorized, so a later provision need not connect."""
    return render.offsite_key(ctx.env) + ".authorized"


def probes(ctx: Context) -> list:
    """The files (to converge or remove), and for an SFTP target the server's key and where it
    was authorized."""
    sftp = [facts.text(render.offsite_key(ctx.env) + ".pub", "offsite_public_key"),
            facts.text(_authorized(ctx), "offsite_authorized")] if ctx.env.offsite.sftp else []
    return [file_probe(paths(ctx), "offsite_files"), *sftp]


def offsite_config(ctx: Context) -> list[str]:
    env, present = ctx.env, ctx.facts["offsite_files"]
    if env.offsite.enabled and env.offsite.sftp:
        return _sftp(ctx)
    if env.offsite.enabled:
        return ctx.apply_files([offsite.server_spec(env)], present)
    gone = [path for path in paths(ctx) if path in present]
    if gone:
        ctx.act(["rm", "-f", *gone])
        return [f"removed {' '.join(gone)}"]
    return []


def _sftp(ctx: Context) -> list[str]:
    """The server's key (made when missing) authorized on the target, its host keys and the
    configuration."""
    env, key = ctx.env, render.offsite_key(ctx.env)
    public, changes = ctx.facts["offsite_public_key"], []
    if public is None:
        changes.append(f"{key} made")
        if ctx.dry_run:
            return [*changes, "would authorize it on the target"]
        ctx.remote.run(["install", "-d", "-m", "700", key.rsplit("/", 1)[0]])
        ctx.remote.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                        f"vpskit {env.site} off-site writer", "-f", key])
        public = ctx.remote.run(["cat", key + ".pub"]).stdout
    authorized = f"{env.offsite.endpoint} {public.strip()}\n"
    if ctx.facts["offsite_authorized"] != authorized and not ctx.dry_run:
        changes += sftp_target.authorize(env, public)
    specs = [offsite.server_spec(env),
             FileSpec(render.offsite_known_hosts(env), sftp_target.host_keys(env)),
             FileSpec(_authorized(ctx), authorized)]
    return changes + ctx.apply_files(specs, ctx.facts["offsite_files"])
