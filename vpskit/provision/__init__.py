"""``fab provision``'s steps: each module declares its facts (probes and a frozen dataclass)
and pure ``plan(env, host, facts)`` functions; :mod:`vpskit.provision.runner` runs them on
every host through :mod:`vpskit.applier`."""
