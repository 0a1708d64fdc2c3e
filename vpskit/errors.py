"""One exception root: its message is exactly what the operator sees (one line, secrets masked)."""


class ToolkitError(Exception):
    """Base of every error the toolkit raises on purpose; ``str()`` is the user-facing line."""


class InventoryError(ToolkitError):
    """The inventory (or a secret it names) is wrong; raised before anything touches a server."""


class ConnectError(ToolkitError):
    """A host could not be reached or refused our credentials."""


class RemoteError(ToolkitError):
    """A command on the server failed; the message names the command, exit code and output tail."""


class LockHeldError(ToolkitError):
    """Another deploy holds the site's lock."""


class HealthCheckError(ToolkitError):
    """A release did not answer its health check before the deadline."""
