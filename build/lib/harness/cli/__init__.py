"""Console scripts of the harness (see pyproject.toml, [project.scripts])."""
