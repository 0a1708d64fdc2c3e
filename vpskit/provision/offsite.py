"""The db host's off-site configuration (:mod:`vpskit.offsite`): written, root's alone, while
``offsite.endpoint`` is set; removed once it is not."""

from __future__ import annotations

from vpskit import offsite, render
from vpskit.files import file_probe
from vpskit.provision.context import Context


def probes(ctx: Context) -> list:
    return [file_probe([render.offsite_config(ctx.env)], "offsite_files")]


def offsite_config(ctx: Context) -> list[str]:
    env, present = ctx.env, ctx.facts["offsite_files"]
    path = render.offsite_config(env)
    if env.offsite.enabled:
        return ctx.apply_files([offsite.server_spec(env)], present)
    if path in present:
        ctx.act(["rm", "-f", path])
        return [f"removed {path}"]
    return []
