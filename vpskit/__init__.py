"""vpskit: provision a Debian/Ubuntu VPS and ship Python web apps to it safely."""

__version__ = "0.2.0"
