"""What every provision step gets: config, the host's runner, facts, and file application."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vpskit import files
from vpskit.config import Environment, Host
from vpskit.errors import RemoteError
from vpskit.files import FileSpec, FileState
from vpskit.remote import Remote
from vpskit.steps import Reporter


@dataclass
class Context:
    env: Environment
    host: Host
    remote: Remote
    out: Reporter
    dry_run: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    app_env: dict[str, str] = field(default_factory=dict)  # the server's env file as found
    managed_env: dict[str, str] = field(default_factory=dict)  # values steps derived (URLs)
    restart_app: bool = False  # the env file or units changed: restart once all else is done

    def act(self, argv: Sequence[str], **kwargs: Any) -> None:
        """Run a changing command, or only note it in a dry run."""
        if not self.dry_run:
            self.remote.run(argv, **kwargs)

    def apply_files(self, specs: Sequence[FileSpec], states: dict[str, FileState],
                    validate: Sequence[str] | None = None) -> list[str]:
        """Write the specs that differ; return one change line each.

        With ``validate`` (e.g. ``["nginx", "-t"]``) the previous files are kept aside and put
        back byte for byte when validation fails, so a bad config never stays live.
        """
        todo = [(s, files.differences(s, states.get(s.path))) for s in specs]
        todo = [(s, why) for s, why in todo if why]
        if self.dry_run:
            for spec, _ in todo:
                old = self.remote.run(["cat", spec.path], check=False)
                self.out.line(files.unified_diff(spec, old.stdout if old.ok else None,
                                                 self.remote.secrets))
        elif validate and todo:
            self._write_validated([s for s, _ in todo], validate)
        else:
            for spec, _ in todo:
                files.write(self.remote, spec)
        return [f"{s.path} ({', '.join(why)})" for s, why in todo]

    def _write_validated(self, specs: list[FileSpec], validate: Sequence[str]) -> None:
        paths = [s.path for s in specs]
        self.remote.script(BACKUP, args=paths)
        try:
            for spec in specs:
                files.write(self.remote, spec)
            self.remote.run(validate)
        except RemoteError as exc:
            self.remote.script(RESTORE, args=paths)
            raise RemoteError(f"{exc}; previous files restored") from None
        self.remote.script(DROP_BACKUP, args=paths)


# Previous versions wait outside their directory (nginx includes sites-enabled/* whole).
KEEP = "/var/lib/vpskit/previous"
BACKUP = (f'for f in "$@"; do b={KEEP}$f; rm -f "$b"; mkdir -p "$(dirname "$b")"; '
          '[ -e "$f" ] && cp -a "$f" "$b"; done; true')
RESTORE = (f'for f in "$@"; do b={KEEP}$f; if [ -e "$b" ]; then mv -f "$b" "$f"; '
           'else rm -f "$f"; fi; done')
DROP_BACKUP = f'for f in "$@"; do rm -f {KEEP}$f; done'
