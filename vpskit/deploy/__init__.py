"""Deploys, rollbacks and restarts of a site's releases: :mod:`vpskit.deploy.run` carries them
over an environment's hosts."""
