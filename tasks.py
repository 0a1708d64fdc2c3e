"""Local developer tasks: ``inv --list``. Each is a module of ``harness.devtasks``."""

from invoke import Collection

from harness.devtasks import bench, checks, demo, vps

ns = Collection(vps, checks.test, checks.lint, bench.bench, demo.demo)
