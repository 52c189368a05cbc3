"""runner's Hydra configs; installed as the package `runner.configs` (see pyproject.toml)."""
