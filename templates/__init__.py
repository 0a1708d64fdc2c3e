"""Jinja2 templates of the files vpskit writes on servers; shipped in the wheel as the package
``vpskit.templates`` (see pyproject.toml), read by ``vpskit.render``."""
