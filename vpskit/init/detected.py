"""What ``fab init`` learnt about an app, and where each part came from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Detected:
    """What :func:`detect` found; ``None`` = could not be determined (the renderer says so).

    ``sources`` names where each field came from (a process: ``processes.<name>``); ``notes``
    are what the operator should know (a flag vpskit cannot honour, a command moved, a Python
    version the server lacks).
    """

    kind: str | None = None
    entry: str | None = None
    django_settings: str | None = None
    server: str | None = None
    workers: int | None = None
    worker_class: str | None = None
    timeout: int | None = None
    graceful_timeout: int | None = None
    release_commands: list[str] | None = None
    requirements: str | None = None
    python: str | None = None
    health_path: str | None = None
    postgres: bool | None = None
    redis: bool | None = None
    media: bool = False
    git: bool = False
    ref: str | None = None
    remote: str | None = None
    processes: dict[str, str] = field(default_factory=dict)
    schedule: dict[str, tuple[str, str]] = field(default_factory=dict)  # name: (command, cron)
    secrets: list[str] = field(default_factory=list)
    optional_secrets: list[str] = field(default_factory=list)
    env_vars: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def found(self, name: str, value: object, source: str) -> None:
        setattr(self, name, value)
        self.sources[name] = source
