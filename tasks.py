"""Local developer tasks: ``inv --list``. Each namespace is a module of ``vpskit.devtasks``;
add one with ``ns.add_collection(module)``."""

from invoke import Collection

from vpskit.devtasks import vps

ns = Collection(vps)
